"""EllipticEnvelope, GaussianMixture and the PCA reconstruction detector as small MatMul graphs."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from engines.native._graph import GraphBuilder
from engines.native._preprocess import transform_graph

__all__ = ["elliptic_to_onnx", "mixture_to_onnx", "pca_detector_to_onnx"]

F64 = np.float64


def _start(name: str, final: Any, dtype: Any, steps: list[Any]) -> tuple[GraphBuilder, str]:
    builder = GraphBuilder(name, np.dtype(dtype), int(final.n_features_in_))
    x = transform_graph(builder, "X", steps)
    return builder, builder.cast(x, F64) if builder.dtype != F64 else x


def _row_sum_of_squares(builder: GraphBuilder, y: str, axis: int) -> str:
    squared = builder.op("Mul", [y, y])
    return builder.op("ReduceSum", [squared, builder.const([axis], np.int64, "axes")], keepdims=0)


def elliptic_to_onnx(
    envelope: Any, *, dtype: Any = np.float32, steps: list[Any] | None = None
) -> onnx.ModelProto:
    """score_samples = -(x - location)^T precision (x - location), in float64."""
    builder, x = _start("elliptic_envelope", envelope, dtype, steps or [])
    centered = builder.op("Sub", [x, builder.const(envelope.location_, F64, "location")])
    projected = builder.op(
        "MatMul", [centered, builder.const(envelope.get_precision(), F64, "prec")]
    )
    product = builder.op("Mul", [projected, centered])
    distance = builder.op("ReduceSum", [product, builder.const([1], np.int64, "axes")], keepdims=0)
    score = builder.op("Neg", [distance])
    outputs = builder.anomaly_outputs(score, float(envelope.offset_))
    return builder.finish(outputs, np.dtype(F64), doc="native EllipticEnvelope")


def _cholesky_blocks(mixture: Any) -> np.ndarray:
    """Per-component precision Cholesky factors as full (K, F, F) matrices."""
    k, f = mixture.means_.shape
    pc = np.asarray(mixture.precisions_cholesky_, dtype=F64)
    kind = mixture.covariance_type
    if kind == "full":
        blocks = pc
    elif kind == "tied":
        blocks = np.broadcast_to(pc, (k, f, f))
    elif kind == "diag":
        blocks = np.stack([np.diag(row) for row in pc])
    elif kind == "spherical":
        blocks = np.stack([np.eye(f) * value for value in pc])
    else:
        raise ValueError(f"unknown covariance_type {kind!r}")
    return np.ascontiguousarray(blocks)


def mixture_to_onnx(
    mixture: Any, *, dtype: Any = np.float32, steps: list[Any] | None = None
) -> onnx.ModelProto:
    """score_samples = logsumexp_k(log w_k + log N(x | mu_k, Sigma_k)), stable for far rows.

    Full and tied covariances: one MatMul against the stacked precision Cholesky factors.
    Diagonal and spherical: two (N, F) x (F, K) MatMuls, as scikit-learn computes them.
    """
    builder, x = _start("gaussian_mixture", mixture, dtype, steps or [])
    k, f = mixture.means_.shape
    means = np.asarray(mixture.means_, dtype=F64)
    if mixture.covariance_type in ("full", "tied"):
        blocks = _cholesky_blocks(mixture)
        weights = np.concatenate(list(blocks), axis=1)  # (F, K*F): [P_1 | P_2 | ...]
        shift = np.concatenate([means[i] @ blocks[i] for i in range(k)])
        y = builder.op("MatMul", [x, builder.const(weights, F64, "prec_chol")])
        y = builder.op("Sub", [y, builder.const(shift, F64, "shift")])
        y = builder.op("Reshape", [y, builder.const([-1, k, f], np.int64, "shape")])
        squares = _row_sum_of_squares(builder, y, axis=2)  # (N, K)
    else:
        # Diagonal precisions: |P_k (x - mu_k)|^2 = (x*x) A + x B + c, O(N K F) like sklearn.
        precision = np.asarray(mixture.precisions_cholesky_, dtype=F64) ** 2
        if mixture.covariance_type == "spherical":
            precision = np.repeat(precision[:, None], f, axis=1)  # (K, F)
        quadratic = builder.op(
            "MatMul", [builder.op("Mul", [x, x]), builder.const(precision.T, F64)]
        )
        linear = builder.op("MatMul", [x, builder.const(-2.0 * (means * precision).T, F64)])
        constant = builder.const((means**2 * precision).sum(axis=1), F64, "const")
        squares = builder.op("Add", [builder.op("Add", [quadratic, linear]), constant])
    # Each component's constant (normaliser, log weight, and the Bayesian mixture's digamma
    # terms) is taken from scikit-learn itself at the component mean, where the quadratic is 0.
    bias = np.diag(mixture._estimate_log_prob(means)) + mixture._estimate_log_weights()
    scaled = builder.op("Mul", [squares, builder.const(-0.5, F64)])
    weighted = builder.op("Add", [scaled, builder.const(bias, F64, "bias")])
    axes = builder.const([1], np.int64, "axes")
    peak = builder.op("ReduceMax", [weighted, axes], keepdims=1)
    shifted = builder.op("Exp", [builder.op("Sub", [weighted, peak])])
    total = builder.op("ReduceSum", [shifted, axes], keepdims=0)
    flat_peak = builder.op("Reshape", [peak, builder.const([-1], np.int64, "flat")])
    score = builder.op("Add", [builder.op("Log", [total]), flat_peak])
    return builder.finish({"score_samples": score}, np.dtype(F64), doc="native GaussianMixture")


def pca_detector_to_onnx(
    detector: Any, *, dtype: Any = np.float32, steps: list[Any] | None = None
) -> onnx.ModelProto:
    """score_samples = -|(x - mean)(I - V^T V)|^2 with one MatMul."""
    builder, x = _start("pca_reconstruction", detector, dtype, steps or [])
    components = np.asarray(detector.pca_.components_, dtype=F64)
    residual_map = np.eye(components.shape[1]) - components.T @ components
    centered = builder.op("Sub", [x, builder.const(detector.pca_.mean_, F64, "mean")])
    residual = builder.op("MatMul", [centered, builder.const(residual_map, F64, "residual_map")])
    score = builder.op("Neg", [_row_sum_of_squares(builder, residual, axis=1)])
    outputs = builder.anomaly_outputs(score, float(detector.offset_))
    return builder.finish(outputs, np.dtype(F64), doc="native PCA reconstruction detector")
