"""``create_engine``: one entry point that dispatches on what it is given."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import onnx

from engines.base import Engine
from engines.config import EngineConfig
from engines.errors import ModelLoadError, UnsupportedModelError
from engines.fallback import FallbackEngine
from engines.onnx_engine import OnnxEngine
from engines.persistence import load_model_and_sha256
from engines.sklearn_engine import SklearnEngine

__all__ = ["create_engine"]


def create_engine(
    model: Any,
    config: EngineConfig | None = None,
    *,
    fallback: Any = None,
    offset: float | None = None,
    score_kind: str | None = None,
) -> Engine:
    """Build the right engine for ``model``.

    ``model`` is an ``.onnx`` path, ONNX bytes or ModelProto (OnnxEngine), a fitted estimator or
    an ``.skops`` path (SklearnEngine). With ``fallback`` (an estimator, engine or ``.skops``
    path) the result is a FallbackEngine that answers from scikit-learn if the ONNX model fails.
    ``config`` defaults to ``EngineConfig.from_env()``; with ``engine="sklearn"`` the
    scikit-learn model (``model`` or ``fallback``) answers directly. ``offset`` and
    ``score_kind`` go to OnnxEngine (see there): pass ``offset=reference.offset_`` so a plain
    skl2onnx graph also answers score_samples. A PyOD detector (and its export) is served in
    PyOD's convention (``engine.convention == "pyod"``: predict 1 = outlier); a fallback whose
    convention differs from the ONNX model's is refused (ModelLoadError).

    Example:
        >>> engine = create_engine("model.onnx", EngineConfig(provider="cpu", intra_op_threads=1))
        ... # doctest: +SKIP
        >>> engine.info()["active_providers"]  # doctest: +SKIP
        ['CPUExecutionProvider']
    """
    config = config if config is not None else EngineConfig.from_env()
    reference = None if fallback is None else _sklearn_engine(fallback, config)
    if config.engine == "sklearn":
        if _is_onnx_source(model):
            if reference is None:
                raise ValueError(
                    "engine='sklearn' (ONNX_ENGINE=sklearn) needs a scikit-learn model: pass an "
                    "estimator or .skops path as the model or as fallback="
                )
            return reference
        return _sklearn_engine(model, config)
    if not _is_onnx_source(model):
        return _sklearn_engine(model, config)
    if reference is None:
        return OnnxEngine(model, config, offset=offset, score_kind=score_kind)
    return FallbackEngine(
        lambda: OnnxEngine(model, config, offset=offset, score_kind=score_kind), reference
    )


def _is_onnx_source(model: Any) -> bool:
    if isinstance(model, onnx.ModelProto | bytes | bytearray):
        return True
    if isinstance(model, str | os.PathLike):
        return Path(model).suffix.lower() == ".onnx"
    return False


def _sklearn_engine(model: Any, config: EngineConfig) -> Engine:
    if isinstance(model, Engine):
        return model
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if not path.is_absolute() and config.model_dir is not None and not path.exists():
            path = Path(config.model_dir) / path
        if path.suffix.lower() == ".onnx":
            raise ModelLoadError(f"{path} is an ONNX model; a scikit-learn model was expected here")
        estimator, sha256 = load_model_and_sha256(path, max_bytes=config.max_model_bytes)
        return SklearnEngine(
            estimator,
            model_path=str(path),
            model_sha256=sha256,
            collect_metrics=config.collect_metrics,
        )
    if hasattr(model, "fit"):
        return SklearnEngine(model, collect_metrics=config.collect_metrics)
    raise UnsupportedModelError(
        f"cannot build an engine from {type(model).__name__}: expected an .onnx path, ONNX "
        "bytes/ModelProto, a fitted scikit-learn estimator or a .skops path"
    )
