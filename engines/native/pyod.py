"""PyOD detectors as native ONNX graphs that answer like PyOD.

A PyOD detector's graph keeps PyOD's conventions (metadata ``label_convention: "pyod"``):
``decision_function`` is PyOD's raw anomaly score (higher = more abnormal) and ``label`` is
int64 1 (outlier) where ``decision_function > threshold_`` (PyOD's ``predict``, strict ``>``)
and 0 (inlier) elsewhere. There is no ``score_samples``: PyOD has none.

What each graph computes, mapped from PyOD 3.x's source (pyod/models/*.py):

========  ==============================================================================
IForest   ``-IsolationForest.decision_function`` (the native forest graph, negated)
OCSVM     ``-OneClassSVM.decision_function`` = -(sum_i a_i K(x, sv_i) - rho), float64
LOF       ``-LocalOutlierFactor(novelty=True).score_samples`` (the native LOF graph)
KNN       distance to the k-th nearest training row (``method="largest"``), or the mean
          or median of the k distances; TopK on MatMul distances picks the neighbours,
          whose distances are then recomputed from differences (no cancellation)
PCA       sum_j |z - c_j| / w_j over the selected components c_j, z the standardized row
HBOS      -sum_f log2(hist_f[bin(x_f)] + alpha), with PyOD's rule for rows outside the
          fitted range (the edge bin within ``tol`` bin widths, else the lowest density)
ECOD      sum_f max(U_l, U_r, U_skew): tail probabilities of x against the training
COPOD     ECDFs; COPOD: sum_f max(U_skew, (U_l + U_r) / 2). See the note below.
MCD       squared Mahalanobis distance to MinCovDet's robust location
GMM       ``-GaussianMixture.score_samples`` (the native mixture graph, negated)
========  ==============================================================================

ECOD and COPOD have no fixed model of new rows: PyOD's ``decision_function(X)`` re-ranks the
training rows together with the whole batch X (ECDFs and skewness of their concatenation),
so a row's score depends on the rows scored with it. The graph computes the one answer that
does not: PyOD's ``decision_function`` of the row scored alone, i.e. its rank among the
training rows plus itself (``(#train <= x + 1) / (n + 1)``, by binary search over the sorted
training columns) and the skewness of the training column with the row added (by moment
updates). The ECDF terms are then bit-exact; the skewness sign is computed in float64 where
PyOD computes it in the input's precision, so the two can differ only for a feature whose
skewness is within rounding of 0. ``engines.SklearnEngine`` scores these detectors row by
row, so that the reference answers what the graph answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper

from engines.errors import UnsupportedModelError
from engines.metadata import LABEL_CONVENTION_KEY, OFFSET_KEY, THRESHOLD_KEY
from engines.native._graph import GraphBuilder
from engines.native._preprocess import split_pipeline, transform_graph
from engines.native._runtime import RuntimeVersion, installed_runtime
from engines.tolerance import Tolerance

__all__ = [
    "PYOD_EXPORTABLE",
    "ROW_BY_ROW",
    "check_pyod_exportable",
    "is_pyod_detector",
    "pyod_cloud",
    "pyod_metadata",
    "pyod_to_onnx",
    "pyod_tolerance",
    "pyod_width",
]

F64 = np.float64
I64 = np.int64

#: PyOD detectors with a native exporter, by class name (module ``pyod.models.<module>``).
PYOD_EXPORTABLE: tuple[str, ...] = (
    "IForest",
    "OCSVM",
    "LOF",
    "KNN",
    "PCA",
    "HBOS",
    "ECOD",
    "COPOD",
    "MCD",
    "GMM",
)
_MODULES = {
    "IForest": "iforest",
    "OCSVM": "ocsvm",
    "LOF": "lof",
    "KNN": "knn",
    "PCA": "pca",
    "HBOS": "hbos",
    "ECOD": "ecod",
    "COPOD": "copod",
    "MCD": "mcd",
    "GMM": "gmm",
}
#: PyOD detectors whose decision_function scores a batch jointly (see the module docstring):
#: engines answer them one row at a time.
ROW_BY_ROW: frozenset[str] = frozenset({"pyod.models.ecod.ECOD", "pyod.models.copod.COPOD"})


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _final(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def is_pyod_detector(model: Any) -> bool:
    """Whether ``model`` (or a Pipeline's final step) is a PyOD detector."""
    return type(_final(model)).__module__.split(".")[0] == "pyod"


def _supported_name(final: Any) -> str | None:
    name = type(final).__name__
    module = _MODULES.get(name)
    return (
        name if module is not None and _qualname(final) == f"pyod.models.{module}.{name}" else None
    )


def check_pyod_exportable(model: Any) -> Any:
    """The final PyOD detector of ``model``, or UnsupportedModelError saying why not."""
    final = _final(model)
    name = _supported_name(final)
    if name is None:
        raise UnsupportedModelError(
            f"cannot export PyOD's {type(final).__name__} ({_qualname(final)}): supported PyOD "
            f"detectors are {list(PYOD_EXPORTABLE)}, optionally in a Pipeline behind scalers"
        )
    if not all(hasattr(final, a) for a in ("decision_scores_", "threshold_", "labels_")):
        raise UnsupportedModelError(f"PyOD's {name} is not fitted; call fit() before exporting")
    if not isinstance(final.contamination, int | float):
        raise UnsupportedModelError(
            f"PyOD's {name} takes its labels from a {type(final.contamination).__name__} "
            "thresholder, not from threshold_: only a numeric contamination is exported"
        )
    if not math.isfinite(float(final.threshold_)):
        raise UnsupportedModelError(
            f"PyOD's {name} has threshold_ = {final.threshold_}: its training scores are not "
            "finite (PCA with weighted=True divides by a component's explained variance, 0 for "
            "constant columns); refit with fewer components or without constant columns"
        )
    if name == "LOF" and not final.novelty:
        raise UnsupportedModelError(
            "PyOD's LOF(novelty=False) cannot score new rows (its decision_function calls "
            "scikit-learn's score_samples, which novelty=False does not offer); refit with "
            "novelty=True (PyOD's default)"
        )
    return final


def pyod_width(final: Any) -> int:
    """How many features a fitted supported PyOD detector takes."""
    for owner, attr in (("detector_", "n_features_in_"), ("neigh_", "n_features_in_")):
        inner = getattr(final, owner, None)
        if inner is not None and hasattr(inner, attr):
            return int(getattr(inner, attr))
    if hasattr(final, "X_train"):
        return int(np.shape(final.X_train)[1])
    if hasattr(final, "bin_edges_"):
        edges = final.bin_edges_
        return len(edges) if isinstance(edges, list) else int(np.shape(edges)[1])
    raise UnsupportedModelError(f"cannot tell the input width of {type(final).__name__}")


def pyod_metadata(final: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """Export metadata with PyOD's convention: its threshold, no scikit-learn offset."""
    out = {k: v for k, v in meta.items() if k != OFFSET_KEY}
    out.update(_convention_metadata(final))
    out["estimator"] = f"pyod.{type(final).__name__}"
    return out


def pyod_tolerance(final: Any) -> Tolerance:
    """The bounds an export of ``final`` is held to (measured on the bundled data sets).

    Graphs that compute in float64 what PyOD computes in float64 agree to ~1e-13 relative
    (sums in another order, the MatMul distances of OCSVM's rbf kernel): rtol 1e-9. LOF and
    GMM reuse the native scikit-learn graphs, held to their bounds: scikit-learn computes
    them in float32 for float32 rows (relative differences up to 7e-4 measured, GMM on
    breast_cancer). KNN: scikit-learn's brute-force search gives float32 rows float32-precise
    distances (7e-8 relative measured).
    """
    name = type(final).__name__
    if name == "IForest":
        return Tolerance(label_agreement=1.0, rtol=0.0, atol=1e-6)
    if name in ("LOF", "GMM"):
        return Tolerance(label_agreement=0.99, rtol=1e-3, atol=1e-5)
    if name == "KNN":
        return Tolerance(label_agreement=0.999, rtol=1e-6, atol=1e-9)
    return Tolerance(label_agreement=0.999, rtol=1e-9, atol=1e-9)


def _convention_metadata(final: Any) -> dict[str, Any]:
    return {LABEL_CONVENTION_KEY: "pyod", THRESHOLD_KEY: float(final.threshold_)}


def pyod_cloud(final: Any, n_features: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """(centre, spread) of the data the detector was fitted on, from its fitted state."""
    data = _training_rows(final)
    if data is not None and len(data) > 1:
        data = np.asarray(data, dtype=F64)
        return data.mean(axis=0), data.std(axis=0) + 1e-3
    scaler = getattr(final, "scaler_", None)
    if scaler is not None:
        return np.asarray(scaler.mean_, dtype=F64), np.asarray(scaler.scale_, dtype=F64)
    inner = getattr(final, "detector_", None)
    if inner is not None and hasattr(inner, "location_"):
        spread = np.sqrt(np.diag(inner.covariance_)) + 1e-3
        return np.asarray(inner.location_, dtype=F64), spread
    if inner is not None and hasattr(inner, "means_"):
        means = np.asarray(inner.means_, dtype=F64)
        return means.mean(axis=0), means.std(axis=0) + 1.0
    edges = getattr(final, "bin_edges_", None)
    if edges is not None:
        cols = list(edges) if isinstance(edges, list) else list(np.asarray(edges).T)
        lo = np.array([float(c[0]) for c in cols])
        hi = np.array([float(c[-1]) for c in cols])
        return (lo + hi) / 2, (hi - lo) / 4 + 1e-3
    return np.zeros(n_features), np.ones(n_features)


def _training_rows(final: Any) -> Any:
    if hasattr(final, "X_train"):
        return final.X_train
    neigh = getattr(final, "neigh_", None)
    if neigh is not None and hasattr(neigh, "_fit_X"):
        return neigh._fit_X
    inner = getattr(final, "detector_", None)
    for attr in ("_fit_X", "support_vectors_"):
        if inner is not None and hasattr(inner, attr):
            return getattr(inner, attr)
    return None


def pyod_to_onnx(
    model: Any, *, dtype: Any = np.float32, target_runtime: RuntimeVersion | None = None
) -> onnx.ModelProto:
    """Export a fitted PyOD detector (optionally behind scalers) with PyOD's conventions.

    The graph loads on ``target_runtime`` (default: the installed onnxruntime) and newer.

    Example:
        >>> from pyod.models.knn import KNN  # doctest: +SKIP
        >>> proto = pyod_to_onnx(KNN(method="mean").fit(X))  # doctest: +SKIP
        >>> [o.name for o in proto.graph.output]  # doctest: +SKIP
        ['label', 'decision_function']
    """
    final = check_pyod_exportable(model)
    steps, _ = split_pipeline(model)
    name = _supported_name(final)
    assert name is not None
    proto = _BUILDERS[name](final, np.dtype(dtype), steps, target_runtime or installed_runtime())
    from engines.metadata import write_metadata

    write_metadata(proto, _convention_metadata(final))
    return proto


# -- graph pieces --------------------------------------------------------------------------


def _start(
    name: str, final: Any, dtype: np.dtype[Any], steps: list[Any]
) -> tuple[GraphBuilder, str]:
    builder = GraphBuilder(name, dtype, pyod_width(final))
    x = transform_graph(builder, "X", steps)
    return builder, x


def _f64(builder: GraphBuilder, x: str) -> str:
    return builder.cast(x, F64) if builder.dtype != F64 else x


def _pyod_outputs(builder: GraphBuilder, decision: str, threshold: float) -> dict[str, str]:
    """label = int64(decision > threshold_): PyOD's predict."""
    above = builder.op("Greater", [decision, builder.const(threshold, F64, "threshold")])
    label = builder.op("Cast", [above], to=TensorProto.INT64)
    return {"label": label, "decision_function": decision}


def _finish(builder: GraphBuilder, final: Any, decision: str, doc: str) -> onnx.ModelProto:
    outputs = _pyod_outputs(builder, decision, float(final.threshold_))
    return builder.finish(outputs, np.dtype(F64), doc=doc)


def _axes(builder: GraphBuilder, *axes: int) -> str:
    return builder.const(list(axes), I64, "axes")


def _squared_distances(builder: GraphBuilder, x: str, points: npt.NDArray[F64]) -> str:
    """|x - p|^2 for every row of x and every point p, (N, P), through one MatMul.

    Both sides are centred on the points' mean first, which keeps the cancellation in
    |x|^2 + |p|^2 - 2 x.p small; the result is clipped at 0.
    """
    centre = points.mean(axis=0)
    centred = points - centre
    xc = builder.op("Sub", [x, builder.const(centre, F64, "centre")])
    cross = builder.op("MatMul", [xc, builder.const(-2.0 * centred.T, F64, "points_t")])
    x_norm = builder.op("ReduceSum", [builder.op("Mul", [xc, xc]), _axes(builder, 1)], keepdims=1)
    p_norm = builder.const(np.einsum("ij,ij->i", centred, centred), F64, "points_norm")
    squared = builder.op("Add", [builder.op("Add", [cross, x_norm]), p_norm])
    return builder.op("Max", [squared, builder.const(0.0, F64)])


def _negated(model: onnx.ModelProto, source: str, threshold: float, doc: str) -> onnx.ModelProto:
    """A native scikit-learn graph rewired to PyOD's outputs: decision = -``source``."""
    graph = model.graph
    renamed = {o.name: f"sklearn_{o.name}" for o in graph.output}  # frees label & co.
    hidden = renamed[source]
    nodes = []
    for node in graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
        node.output[:] = [renamed.get(o, o) for o in node.output]
        nodes.append(node)
    thr = helper.make_tensor("pyod_threshold", TensorProto.DOUBLE, [], [threshold])
    nodes += [
        helper.make_node("Neg", [hidden], ["decision_function"]),
        helper.make_node("Greater", ["decision_function", "pyod_threshold"], ["pyod_above"]),
        helper.make_node("Cast", ["pyod_above"], ["label"], to=TensorProto.INT64),
    ]
    needed = {"label", "decision_function"}
    kept: list[onnx.NodeProto] = []
    for node in reversed(nodes):  # nodes are in topological order: keep what feeds the outputs
        if needed & set(node.output):
            kept.append(node)
            needed |= set(node.input)
    kept.reverse()
    initializers = [t for t in graph.initializer if t.name in needed] + [thr]
    outputs = [
        helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        helper.make_tensor_value_info("decision_function", TensorProto.DOUBLE, ["N"]),
    ]
    new_graph = helper.make_graph(kept, graph.name, list(graph.input), outputs, initializers)
    new_graph.doc_string = doc
    out = helper.make_model(
        new_graph, ir_version=model.ir_version, opset_imports=list(model.opset_import)
    )
    out.producer_name = model.producer_name
    onnx.checker.check_model(out)
    return out


# -- one builder per detector --------------------------------------------------------------


def _iforest(
    final: Any, dtype: np.dtype[Any], steps: list[Any], runtime: RuntimeVersion
) -> onnx.ModelProto:
    from engines.native.iforest import iforest_to_onnx

    proto = iforest_to_onnx(final.detector_, dtype=dtype, steps=steps, target_runtime=runtime)
    return _negated(proto, "decision_function", float(final.threshold_), "native PyOD IForest")


def _lof(
    final: Any, dtype: np.dtype[Any], steps: list[Any], runtime: RuntimeVersion
) -> onnx.ModelProto:
    from engines.native.lof import lof_to_onnx

    proto = lof_to_onnx(final.detector_, dtype=dtype, steps=steps)
    return _negated(proto, "score_samples", float(final.threshold_), "native PyOD LOF")


def _gmm(
    final: Any, dtype: np.dtype[Any], steps: list[Any], runtime: RuntimeVersion
) -> onnx.ModelProto:
    from engines.native.gaussian import mixture_to_onnx

    proto = mixture_to_onnx(final.detector_, dtype=dtype, steps=steps)
    return _negated(proto, "score_samples", float(final.threshold_), "native PyOD GMM")


def _ocsvm(
    final: Any, dtype: np.dtype[Any], steps: list[Any], runtime: RuntimeVersion
) -> onnx.ModelProto:
    svm = final.detector_
    kernel = svm.kernel
    if not isinstance(kernel, str) or kernel not in ("rbf", "linear", "poly", "sigmoid"):
        raise UnsupportedModelError(
            f"PyOD's OCSVM exports the rbf, linear, poly and sigmoid kernels, not {kernel!r}"
        )
    builder, x = _start("pyod_ocsvm", final, dtype, steps)
    x = _f64(builder, x)  # libsvm computes in float64 whatever the input
    sv = np.asarray(svm.support_vectors_, dtype=F64)
    gamma, coef0 = float(svm._gamma), float(svm.coef0)
    if kernel == "rbf":
        squared = _squared_distances(builder, x, sv)
        k = builder.op("Exp", [builder.op("Mul", [squared, builder.const(-gamma, F64)])])
    else:
        k = builder.op("MatMul", [x, builder.const(sv.T, F64, "support_t")])
        if kernel != "linear":
            k = builder.op("Mul", [k, builder.const(gamma, F64, "gamma")])
            k = builder.op("Add", [k, builder.const(coef0, F64, "coef0")])
            if kernel == "poly":
                k = builder.op("Pow", [k, builder.const(float(svm.degree), F64, "degree")])
            else:
                k = builder.op("Tanh", [k])
    coef = np.asarray(svm.dual_coef_, dtype=F64).reshape(-1, 1)
    summed = builder.op("MatMul", [k, builder.const(coef, F64, "dual_coef")])
    summed = builder.op("Reshape", [summed, builder.const([-1], I64, "flat")])
    sk_decision = builder.op("Add", [summed, builder.const(float(svm.intercept_[0]), F64)])
    decision = builder.op("Neg", [sk_decision])
    return _finish(builder, final, decision, "native PyOD OCSVM")


def _knn(
    final: Any, dtype: np.dtype[Any], steps: list[Any], runtime: RuntimeVersion
) -> onnx.ModelProto:
    neigh = final.neigh_
    metric, p = neigh.effective_metric_, neigh.effective_metric_params_.get("p", 2)
    if metric not in ("euclidean", "minkowski") or (metric == "minkowski" and p != 2):
        raise UnsupportedModelError(
            f"PyOD's KNN exports the euclidean metric (minkowski p=2) only, not {metric!r} (p={p})"
        )
    if final.method not in ("largest", "mean", "median"):
        raise UnsupportedModelError(f"PyOD's KNN method {final.method!r} is not exported")
    k = int(final.n_neighbors)
    fit_x = np.asarray(neigh._fit_X, dtype=F64)
    builder, x = _start("pyod_knn", final, dtype, steps)
    x = _f64(builder, x)
    squared = _squared_distances(builder, x, fit_x)
    nearest, indices = builder.fresh("topk_values"), builder.fresh("topk_indices")
    builder.nodes.append(
        helper.make_node(
            "TopK",
            [squared, builder.const([k], I64, "k")],
            [nearest, indices],
            axis=1,
            largest=0,
            sorted=1,
        )
    )
    # The MatMul distances only choose the neighbours: their distances are recomputed from
    # differences, as the tree or brute-force search computes them.
    rows = builder.op("Gather", [builder.const(fit_x, F64, "fit_x"), indices], axis=0)  # N,k,F
    diff = builder.op("Sub", [rows, builder.op("Unsqueeze", [x, _axes(builder, 1)])])
    summed = builder.op(
        "ReduceSum", [builder.op("Mul", [diff, diff]), _axes(builder, 2)], keepdims=0
    )
    distance = builder.op("Sqrt", [summed])  # (N, k)
    if final.method == "largest":
        decision = builder.op("ReduceMax", [distance, _axes(builder, 1)], keepdims=0)
    elif final.method == "mean":
        decision = builder.op("ReduceMean", [distance, _axes(builder, 1)], keepdims=0)
    else:  # median: the middle one, or the mean of the two middle ones (np.median)
        ordered = builder.fresh("sorted")
        builder.nodes.append(
            helper.make_node(
                "TopK",
                [distance, builder.const([k], I64, "k")],
                [ordered, builder.fresh("unused_indices")],
                axis=1,
                largest=0,
                sorted=1,
            )
        )
        middle = sorted({(k - 1) // 2, k // 2})
        picked = builder.op("Gather", [ordered, builder.const(middle, I64, "middle")], axis=1)
        if len(middle) == 1:
            decision = builder.op("Reshape", [picked, builder.const([-1], I64, "flat")])
        else:
            total = builder.op("ReduceSum", [picked, _axes(builder, 1)], keepdims=0)
            decision = builder.op("Mul", [total, builder.const(0.5, F64, "half")])
    return _finish(builder, final, decision, f"native PyOD KNN (method {final.method})")


def _pca(
    final: Any, dtype: np.dtype[Any], steps: list[Any], runtime: RuntimeVersion
) -> onnx.ModelProto:
    scalers = [*steps, final.scaler_] if final.standardization else list(steps)
    builder, x = _start("pyod_pca", final, dtype, scalers)
    x = _f64(builder, x)  # cdist computes in float64
    components = np.asarray(final.selected_components_, dtype=F64)
    weights = np.asarray(final.selected_w_components_, dtype=F64)
    squared = _squared_distances(builder, x, components)
    distance = builder.op("Sqrt", [squared])
    weighted = builder.op("Div", [distance, builder.const(weights, F64, "weights")])
    decision = builder.op("ReduceSum", [weighted, _axes(builder, 1)], keepdims=0)
    return _finish(builder, final, decision, "native PyOD PCA")


def _hbos(
    final: Any, dtype: np.dtype[Any], steps: list[Any], runtime: RuntimeVersion
) -> onnx.ModelProto:
    if isinstance(final.bin_edges_, list):  # n_bins="auto": one histogram size per feature
        edges = [np.asarray(e, dtype=F64) for e in final.bin_edges_]
        hists = [np.asarray(h, dtype=F64) for h in final.hist_]
    else:
        edges = [np.asarray(e, dtype=F64) for e in np.asarray(final.bin_edges_).T]
        hists = [np.asarray(h, dtype=F64) for h in np.asarray(final.hist_).T]
    n_features, widest = len(edges), max(len(h) for h in hists)
    tol, alpha = float(final.tol), float(final.alpha)
    padded = np.full((n_features, widest + 1), np.inf)
    table = np.zeros((n_features, widest + 1))  # slot 0: lowest density; slots 1..: the bins
    for f, (e, h) in enumerate(zip(edges, hists, strict=True)):
        padded[f, : len(e)] = e
        scores = np.log2(h + alpha)
        table[f, 0] = scores.min()
        table[f, 1 : len(h) + 1] = scores
    n_bins = np.array([len(h) for h in hists], dtype=I64)
    left_tol = np.array([(e[1] - e[0]) * tol for e in edges])
    right_tol = np.array([(e[-1] - e[-2]) * tol for e in edges])
    builder, x = _start("pyod_hbos", final, dtype, steps)
    x = _f64(builder, x)
    # np.digitize(x, edges, right=True): how many edges lie strictly below x (0 .. n_bins + 1).
    below = builder.op(
        "Less",
        [builder.const(padded, F64, "edges"), builder.op("Unsqueeze", [x, _axes(builder, 2)])],
    )
    count = builder.op(
        "ReduceSum",
        [builder.op("Cast", [below], to=TensorProto.INT64), _axes(builder, 2)],
        keepdims=0,
    )
    first = np.array([e[0] for e in edges])
    last = np.array([e[-1] for e in edges])
    near_left = builder.op(
        "LessOrEqual",
        [
            builder.op("Sub", [builder.const(first, F64, "first_edge"), x]),
            builder.const(left_tol, F64),
        ],
    )
    near_right = builder.op(
        "LessOrEqual",
        [
            builder.op("Sub", [x, builder.const(last, F64, "last_edge")]),
            builder.const(right_tol, F64),
        ],
    )
    zero, one = builder.const(0, I64, "zero"), builder.const(1, I64, "one")
    nb = builder.const(n_bins, I64, "n_bins")
    left_slot = builder.op("Where", [near_left, one, zero])  # the first bin, or the lowest
    right_slot = builder.op("Where", [near_right, nb, zero])  # the last bin, or the lowest
    is_left = builder.op("Equal", [count, zero])
    is_right = builder.op("Equal", [count, builder.const(n_bins + 1, I64, "past_last")])
    slot = builder.op(
        "Where", [is_left, left_slot, builder.op("Where", [is_right, right_slot, count])]
    )
    base = builder.const(np.arange(n_features, dtype=I64) * (widest + 1), I64, "row_base")
    flat = builder.op("Add", [slot, base])
    per_feature = builder.op(
        "Gather", [builder.const(table.reshape(-1), F64, "log_density"), flat], axis=0
    )
    total = builder.op("ReduceSum", [per_feature, _axes(builder, 1)], keepdims=0)
    decision = builder.op("Neg", [total])
    return _finish(builder, final, decision, "native PyOD HBOS")


def _ecdf_family(
    final: Any, dtype: np.dtype[Any], steps: list[Any], runtime: RuntimeVersion
) -> onnx.ModelProto:
    """ECOD / COPOD for a row scored alone against the training rows (module docstring)."""
    train = np.asarray(final.X_train)
    n, n_features = train.shape
    m = n + 1
    t64 = train.astype(F64)
    # PyOD's probabilities, bit for bit: linspace(1/m, 1, m) at rank r = #train on x's side.
    probabilities = np.linspace(np.ones(1) / m, np.ones(1), m)[:, 0]
    tail = -1 * np.log(probabilities)
    size = 1 << max(1, math.ceil(math.log2(n)))
    # Columns 0..F-1: the training columns sorted; F..2F-1: the negated ones (x -> -x), so one
    # "how many <= x" search gives #train <= x and #train >= x. Padded with +inf.
    both = np.concatenate([np.sort(t64, axis=0), np.sort(-t64, axis=0)], axis=1)
    sorted_cols = np.full((2 * n_features, size), np.inf)
    sorted_cols[:, :n] = both.T
    # Skewness of the training column with x added, from its centred moments.
    mean = t64.mean(axis=0)
    centred = t64 - mean
    c2, c3 = (centred**2).sum(axis=0), (centred**3).sum(axis=0)
    eps = float(np.finfo(np.result_type(train.dtype, dtype)).eps)

    builder, x = _start(f"pyod_{type(final).__name__.lower()}", final, dtype, steps)
    x = _f64(builder, x)
    probe = builder.op("Concat", [x, builder.op("Neg", [x])], axis=1)  # (N, 2F)
    flat_sorted = builder.const(sorted_cols.reshape(-1), F64, "sorted_columns")
    base = np.arange(2 * n_features, dtype=I64) * size
    zeros = helper.make_tensor("zero", TensorProto.INT64, [1], [0])
    count = builder.op("ConstantOfShape", [builder.op("Shape", [probe])], value=zeros)
    step = size // 2
    while step >= 1:
        at = builder.op("Add", [count, builder.const(base + step - 1, I64, "probe_at")])
        value = builder.op("Gather", [flat_sorted, at], axis=0)
        inside = builder.op("LessOrEqual", [value, probe])
        bigger = builder.op("Add", [count, builder.const(step, I64, "step")])
        count = builder.op("Where", [inside, bigger, count])
        step //= 2
    count = builder.op("Min", [count, builder.const(n, I64, "n_train")])  # x = +inf
    u = builder.op("Gather", [builder.const(tail, F64, "tail"), count], axis=0)  # (N, 2F)
    u_left, u_right = builder.fresh("u_left"), builder.fresh("u_right")
    builder.nodes.append(
        helper.make_node(
            "Split",
            [u, builder.const([n_features, n_features], I64, "halves")],
            [u_left, u_right],
            axis=1,
        )
    )

    def op(kind: str, *inputs: str) -> str:
        return builder.op(kind, list(inputs))

    def const(value: Any, stem: str = "c") -> str:
        return builder.const(value, F64, stem)

    # Centred sums of the column with x added, about its new mean mu + delta:
    #   sum (t - mu - delta)^2 over train = C2 + n delta^2, and (x - mean)^2 = e^2;
    #   sum (t - mu - delta)^3 over train = C3 - 3 delta C2 - n delta^3, and e^3.
    d = op("Sub", x, const(mean, "mean"))
    delta = op("Div", d, const(float(m), "m"))
    e = op("Sub", d, delta)
    delta2, e2 = op("Mul", delta, delta), op("Mul", e, e)
    n_rows = const(float(n), "n")
    m2 = op("Add", op("Add", const(c2, "c2"), op("Mul", delta2, n_rows)), e2)
    m3_plus = op("Add", const(c3, "c3"), op("Mul", e2, e))
    m3_minus = op(
        "Add",
        op("Mul", op("Mul", delta, const(c2, "c2")), const(3.0)),
        op("Mul", op("Mul", delta2, delta), n_rows),
    )
    m3 = op("Sub", m3_plus, m3_minus)
    # scipy.stats.skew: NaN (then 0) where m2 <= (eps * mean)^2, the moments divided by m.
    new_mean = op("Add", const(mean, "mean"), delta)
    limit = op("Mul", op("Mul", new_mean, new_mean), const(m * eps * eps))
    sign = builder.op("Where", [op("LessOrEqual", m2, limit), const(0.0), op("Sign", m3)])
    a = op("Neg", op("Sign", op("Sub", sign, const(1.0))))  # PyOD: -1 * sign(skewness - 1)
    b = op("Sign", op("Add", sign, const(1.0)))  # PyOD: sign(skewness + 1)
    u_skew = op("Add", op("Mul", u_left, a), op("Mul", u_right, b))
    if type(final).__name__ == "ECOD":
        outlying = builder.op("Max", [u_skew, builder.op("Max", [u_left, u_right])])
    else:
        halved = builder.op("Div", [builder.op("Add", [u_left, u_right]), builder.const(2.0, F64)])
        outlying = builder.op("Max", [u_skew, halved])
    decision = builder.op("ReduceSum", [outlying, _axes(builder, 1)], keepdims=0)
    return _finish(builder, final, decision, f"native PyOD {type(final).__name__} (row alone)")


def _mcd(
    final: Any, dtype: np.dtype[Any], steps: list[Any], runtime: RuntimeVersion
) -> onnx.ModelProto:
    mcd = final.detector_
    builder, x = _start("pyod_mcd", final, dtype, steps)
    x = _f64(builder, x)
    centred = builder.op("Sub", [x, builder.const(mcd.location_, F64, "location")])
    projected = builder.op("MatMul", [centred, builder.const(mcd.get_precision(), F64, "prec")])
    product = builder.op("Mul", [projected, centred])
    decision = builder.op("ReduceSum", [product, _axes(builder, 1)], keepdims=0)
    return _finish(builder, final, decision, "native PyOD MCD")


#: (detector, input dtype, scalers in front, the onnxruntime the graph must load on) -> graph.
_Builder = Callable[[Any, np.dtype[Any], list[Any], RuntimeVersion], onnx.ModelProto]
_BUILDERS: dict[str, _Builder] = {
    "IForest": _iforest,
    "OCSVM": _ocsvm,
    "LOF": _lof,
    "KNN": _knn,
    "PCA": _pca,
    "HBOS": _hbos,
    "ECOD": _ecdf_family,
    "COPOD": _ecdf_family,
    "MCD": _mcd,
    "GMM": _gmm,
}
