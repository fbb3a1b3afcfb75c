"""Scalers in front of a detector, replayed with scikit-learn's exact float rounding."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from engines.errors import UnsupportedModelError
from engines.native._graph import GraphBuilder

__all__ = ["SUPPORTED_STEPS", "split_pipeline", "transform_graph"]

SUPPORTED_STEPS = (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler)


def split_pipeline(model: Any) -> tuple[list[Any], Any]:
    """(scaler steps, final estimator); raises if a step has no native replay."""
    if not isinstance(model, Pipeline):
        return [], model
    steps = [step for _, step in model.steps[:-1] if step not in (None, "passthrough")]
    for step in steps:
        if not isinstance(step, SUPPORTED_STEPS):
            raise UnsupportedModelError(
                f"native export replays {[s.__name__ for s in SUPPORTED_STEPS]} in a pipeline, "
                f"not {type(step).__name__}"
            )
        if getattr(step, "clip", False):
            raise UnsupportedModelError(
                f"native export does not replay {type(step).__name__}(clip=True)"
            )
    return steps, model.steps[-1][1]


def _ops(step: Any) -> list[tuple[str, np.ndarray, bool]]:
    """(ONNX op, parameter, computed in the input dtype?) in scikit-learn's order."""
    if isinstance(step, StandardScaler):
        # StandardScaler casts its parameters to X.dtype and computes in place in X.dtype.
        ops = []
        if step.with_mean:
            ops.append(("Sub", step.mean_, True))
        if step.with_std:
            ops.append(("Div", step.scale_, True))
        return ops
    if isinstance(step, MinMaxScaler):
        return [("Mul", step.scale_, False), ("Add", step.min_, False)]
    if isinstance(step, MaxAbsScaler):
        return [("Div", step.scale_, False)]
    if isinstance(step, RobustScaler):
        ops = []
        if step.with_centering:
            ops.append(("Sub", step.center_, False))
        if step.with_scaling:
            ops.append(("Div", step.scale_, False))
        return ops
    raise UnsupportedModelError(f"no native replay for {type(step).__name__}")


def transform_graph(builder: GraphBuilder, x: str, steps: list[Any]) -> str:
    """Add the scalers to the graph, rounding like NumPy's in-place float64 -> X.dtype ops."""
    dtype = builder.dtype
    for step in steps:
        for op, param, native_dtype in _ops(step):
            param = np.asarray(param, dtype=np.float64)
            if native_dtype or dtype == np.float64:
                x = builder.op(op, [x, builder.const(param.astype(dtype), dtype, op.lower())])
            else:
                wide = builder.op(
                    op, [builder.cast(x, np.float64), builder.const(param, np.float64)]
                )
                x = builder.cast(wide, dtype)
    return x
