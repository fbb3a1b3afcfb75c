"""Which estimators have a native exporter, and the dispatch to it."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from sklearn.covariance import EllipticEnvelope
from sklearn.ensemble import IsolationForest
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.svm import OneClassSVM

from engines.detectors import PCAReconstructionDetector
from engines.errors import UnsupportedModelError
from engines.native._preprocess import split_pipeline
from engines.native._runtime import RuntimeVersion

__all__ = ["NATIVE_ESTIMATORS", "native_supported", "native_to_onnx"]

#: Final estimators with a native exporter (scalers in a Pipeline in front are replayed).
NATIVE_ESTIMATORS: tuple[type, ...] = (
    IsolationForest,
    EllipticEnvelope,
    GaussianMixture,
    BayesianGaussianMixture,
    PCAReconstructionDetector,
    LocalOutlierFactor,
    OneClassSVM,
)


def native_supported(model: Any) -> bool:
    """Whether ``native_to_onnx`` can export ``model``."""
    try:
        _, final = split_pipeline(model)
    except UnsupportedModelError:
        return False
    if isinstance(final, LocalOutlierFactor):
        from engines.native.lof import lof_unsupported_reason

        return bool(final.novelty) and lof_unsupported_reason(final) is None
    if isinstance(final, OneClassSVM):
        from engines.native.svm import ocsvm_unsupported_reason

        return ocsvm_unsupported_reason(final) is None
    return isinstance(final, NATIVE_ESTIMATORS)


def native_to_onnx(
    model: Any,
    *,
    dtype: Any = np.float32,
    target_runtime: RuntimeVersion | None = None,
    **options: Any,
) -> onnx.ModelProto:
    """Export ``model`` with its native exporter; UnsupportedModelError when there is none.

    The graph loads on ``target_runtime`` (default: the installed onnxruntime) and newer.
    """
    steps, final = split_pipeline(model)
    if isinstance(final, IsolationForest):
        from engines.native.iforest import iforest_to_onnx

        return iforest_to_onnx(
            final, dtype=dtype, steps=steps, target_runtime=target_runtime, **options
        )
    if isinstance(final, EllipticEnvelope):
        from engines.native.gaussian import elliptic_to_onnx

        return elliptic_to_onnx(final, dtype=dtype, steps=steps)
    if isinstance(final, GaussianMixture | BayesianGaussianMixture):
        from engines.native.gaussian import mixture_to_onnx

        return mixture_to_onnx(final, dtype=dtype, steps=steps)
    if isinstance(final, PCAReconstructionDetector):
        from engines.native.gaussian import pca_detector_to_onnx

        return pca_detector_to_onnx(final, dtype=dtype, steps=steps)
    if isinstance(final, LocalOutlierFactor) and final.novelty:
        from engines.native.lof import lof_to_onnx

        return lof_to_onnx(final, dtype=dtype, steps=steps)
    if isinstance(final, OneClassSVM):
        from engines.native.svm import ocsvm_to_onnx

        return ocsvm_to_onnx(final, dtype=dtype, steps=steps)
    raise UnsupportedModelError(
        f"no native exporter for {type(final).__name__}; native exporters exist for "
        f"{[cls.__name__ for cls in NATIVE_ESTIMATORS]} (use exporter='skl2onnx' or 'auto')"
    )
