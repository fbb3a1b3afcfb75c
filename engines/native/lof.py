"""LocalOutlierFactor(novelty=True): one MatMul for distances, TopK, reachability, lrd gathers."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from engines.errors import UnsupportedModelError
from engines.native._graph import GraphBuilder
from engines.native._preprocess import transform_graph

__all__ = ["lof_to_onnx", "lof_unsupported_reason"]

F64 = np.float64


def lof_unsupported_reason(lof: Any) -> str | None:
    """None when ``lof_to_onnx`` computes ``lof``'s distance (euclidean), else why it cannot."""
    metric = getattr(lof, "effective_metric_", lof.metric)
    params = dict(getattr(lof, "effective_metric_params_", None) or lof.metric_params or {})
    params = {key: value for key, value in params.items() if value is not None}  # w=None
    p = params.pop("p", lof.p)
    if not params and (metric == "euclidean" or (metric == "minkowski" and p == 2)):
        return None
    if metric == "minkowski":  # scikit-learn keeps p only while the metric stays minkowski
        found = f"'minkowski' (p={p})"
    elif lof.metric == "minkowski":  # p=1 became manhattan, p=inf chebyshev
        found = f"{metric!r} (metric='minkowski', p={lof.p})"
    else:
        found = repr(metric)
    if params:
        found += f" with metric_params {sorted(params)}"
    return (
        f"native LOF export supports the euclidean metric only, not {found}; "
        "exporter='auto' falls back to skl2onnx, which converts manhattan, cityblock, "
        "sqeuclidean, cosine and minkowski distances"
    )


def lof_to_onnx(
    lof: Any, *, dtype: Any = np.float32, steps: list[Any] | None = None
) -> onnx.ModelProto:
    """score_samples = -mean_j(lrd(n_j) / lrd(x)) over the k nearest training rows n_j."""
    reason = lof_unsupported_reason(lof)
    if reason is not None:
        raise UnsupportedModelError(reason)
    k = int(lof.n_neighbors_)
    fit_x = np.asarray(lof._fit_X, dtype=F64)
    builder = GraphBuilder("local_outlier_factor", np.dtype(dtype), int(lof.n_features_in_))
    x = transform_graph(builder, "X", steps or [])
    x = builder.cast(x, F64) if builder.dtype != F64 else x
    axes = builder.const([1], np.int64, "axes")
    # |x - y|^2 = |x|^2 + |y|^2 - 2 x.y, clipped at 0 against rounding.
    cross = builder.op("MatMul", [x, builder.const(-2.0 * fit_x.T, F64, "fit_x_t")])
    x_norm = builder.op("ReduceSum", [builder.op("Mul", [x, x]), axes], keepdims=1)
    y_norm = builder.const(np.einsum("ij,ij->i", fit_x, fit_x), F64, "fit_norm")
    squared = builder.op("Add", [builder.op("Add", [cross, x_norm]), y_norm])
    squared = builder.op("Max", [squared, builder.const(0.0, F64)])
    k_const = builder.const([k], np.int64, "k")
    nearest = builder.fresh("topk_values")
    indices = builder.fresh("topk_indices")
    builder.nodes.append(
        onnx.helper.make_node(
            "TopK", [squared, k_const], [nearest, indices], axis=1, largest=0, sorted=1
        )
    )
    distance = builder.op("Sqrt", [nearest])
    if builder.dtype == np.float32:  # scikit-learn casts float32 queries' distances to float32
        distance = builder.cast(builder.cast(distance, np.float32), F64)
    k_distance = builder.const(lof._distances_fit_X_[:, k - 1], F64, "k_distance")
    reach = builder.op("Max", [distance, builder.op("Gather", [k_distance, indices], axis=0)])
    mean_reach = builder.op("ReduceMean", [reach, axes], keepdims=1)
    lrd_x = builder.op("Reciprocal", [builder.op("Add", [mean_reach, builder.const(1e-10, F64)])])
    lrd_neighbours = builder.op("Gather", [builder.const(lof._lrd, F64, "lrd"), indices], axis=0)
    ratio = builder.op("Div", [lrd_neighbours, lrd_x])
    score = builder.op("Neg", [builder.op("ReduceMean", [ratio, axes], keepdims=0)])
    outputs = builder.anomaly_outputs(score, float(lof.offset_))
    return builder.finish(outputs, np.dtype(F64), doc="native LocalOutlierFactor(novelty=True)")
