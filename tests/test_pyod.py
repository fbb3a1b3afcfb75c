"""PyOD detectors: export to native graphs, served in PyOD's convention by every engine.

Parity target: an exported graph's decision_function within a bound derived per detector from
how its arithmetic differs from PyOD's (``_bound``), and labels equal except on rows whose
reference decision lies within that bound of ``threshold_``.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper
from scipy.spatial.distance import cdist
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from engines import (
    EngineConfig,
    FallbackEngine,
    InputError,
    MethodUnavailableError,
    ModelLoadError,
    OnnxEngine,
    SklearnEngine,
    UnsupportedModelError,
    create_engine,
    export,
    load_model,
    save_model,
)
from engines.metadata import write_metadata
from engines.native.pyod import PYOD_EXPORTABLE
from harness.cases.datasets import load_dataset

pytest.importorskip("pyod")

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1, collect_metrics=False)
EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)
N_ROWS = 200  # test rows per check: ECOD/COPOD references score one row per PyOD call

#: name -> (pyod module, class, parameters)
DETECTORS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "iforest": ("iforest", "IForest", {"n_estimators": 50, "random_state": 0}),
    "ocsvm": ("ocsvm", "OCSVM", {}),
    "lof": ("lof", "LOF", {}),
    "knn": ("knn", "KNN", {}),
    "knn-mean": ("knn", "KNN", {"method": "mean"}),
    "knn-median": ("knn", "KNN", {"method": "median", "n_neighbors": 6}),
    "pca": ("pca", "PCA", {"n_components": 5}),
    "hbos": ("hbos", "HBOS", {}),
    "hbos-auto": ("hbos", "HBOS", {"n_bins": "auto"}),
    "ecod": ("ecod", "ECOD", {}),
    "copod": ("copod", "COPOD", {}),
    "mcd": ("mcd", "MCD", {"random_state": 0}),
    "gmm": ("gmm", "GMM", {"n_components": 2, "random_state": 0}),
}


def _make(name: str) -> Any:
    module, cls, params = DETECTORS[name]
    return getattr(importlib.import_module(f"pyod.models.{module}"), cls)(**params)


@functools.cache
def _fitted(name: str, dataset: str = "telemetry") -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyOD's and numba's own chatter while fitting
        return _make(name).fit(load_dataset(dataset).X_train)


@functools.cache
def _exported(name: str, dataset: str = "telemetry", dtype: str = "float32") -> onnx.ModelProto:
    data = load_dataset(dataset)
    report = export(_fitted(name, dataset), dtype=dtype, validation_data=data.X_test[:N_ROWS])
    assert report.exporter == "native"
    return report.model


def _rows(dataset: str, dtype: str = "float32") -> npt.NDArray[Any]:
    return load_dataset(dataset).X_test[:N_ROWS].astype(dtype)


def _pyod_alone(det: Any, X: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """PyOD's decision_function of each row scored alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([det.decision_function(X[i : i + 1])[0] for i in range(len(X))])


def _reference(name: str, det: Any, X: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    if name in ("ecod", "copod"):
        return _pyod_alone(det, X)
    return np.asarray(det.decision_function(X), dtype=np.float64)


def _bound(name: str, det: Any, X: npt.NDArray[Any], ref: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """How far the graph may be from PyOD on each row, from how their arithmetic differs."""
    return np.broadcast_to(np.asarray(_bound_of(name, det, X, ref), dtype=np.float64), ref.shape)


def _bound_of(name: str, det: Any, X: npt.NDArray[Any], ref: npt.NDArray[Any]) -> Any:
    x = X.astype(np.float64)
    n_features = x.shape[1]
    if name == "iforest":
        # Same trees, same float32 routing: path lengths summed in another order, one Pow.
        return 8 * EPS64 * (np.abs(ref) + abs(det.detector_.offset_) + 1.0)
    if name == "ocsvm":
        # rbf: |x - sv|^2 through a centred MatMul (error 4 eps (|x|^2 + |sv|^2)), scaled by
        # gamma in the exponent; then n_sv kernel terms summed in another order.
        svm = det.detector_
        sv = np.asarray(svm.support_vectors_, dtype=np.float64)
        centre = sv.mean(axis=0)
        norms = ((x - centre) ** 2).sum(axis=1) + ((sv - centre) ** 2).sum(axis=1).max()
        alphas = float(np.abs(svm.dual_coef_).sum())
        return alphas * (svm._gamma * 4 * EPS64 * norms + len(sv) * EPS64)
    if name == "lof":
        # scikit-learn computes LOF in the input's precision (float32 rows: float32).
        eps = EPS32 if X.dtype == np.float32 else EPS64
        return 64 * eps * np.abs(ref)
    if name.startswith("knn"):
        # Neighbour distances from differences (d squares summed: d eps relative); scikit-
        # learn's brute-force search uses |x|^2 + |y|^2 - 2 x.y (error 4 eps (|x|^2 + |y|^2)
        # on the square, halved over the distance) and float32 rows' precision.
        fit = np.asarray(det.neigh_._fit_X, dtype=np.float64)
        norms = (x**2).sum(axis=1) + (fit**2).sum(axis=1).max()
        dot_trick = 2 * EPS64 * norms / np.maximum(np.abs(ref), np.sqrt(EPS64 * norms))
        precision = 4 * EPS32 * np.abs(ref) if X.dtype == np.float32 else 0.0
        return 2 * n_features * EPS64 * np.abs(ref) + dot_trick + precision
    if name == "pca":
        # cdist from differences vs the graph's centred MatMul: 4 eps (|z|^2 + 1) on each
        # squared distance, halved over the distance, divided by the component's weight.
        z = det.scaler_.transform(X).astype(np.float64)
        comps = np.asarray(det.selected_components_, dtype=np.float64)
        dist = cdist(z, comps)
        sq = (z**2).sum(axis=1, keepdims=True) + 1.0
        w = np.asarray(det.selected_w_components_, dtype=np.float64)
        per = (2 * EPS64 * sq / np.maximum(dist, np.sqrt(EPS64 * sq)) + EPS64 * dist) / w
        return 4 * per.sum(axis=1)
    if name.startswith("hbos") or name in ("ecod", "copod"):
        # Table lookups identical to the bit; only the per-feature sum is in another order:
        # (d - 1) eps sum|terms|, terms bounded by the largest |log density| (HBOS) or
        # log(n + 1) (ECOD/COPOD: -log of 1 / (n + 1)).
        if name.startswith("hbos"):
            hists = det.hist_ if isinstance(det.hist_, list) else list(np.asarray(det.hist_).T)
            term = max(float(np.abs(np.log2(np.asarray(h) + det.alpha)).max()) for h in hists)
        else:
            term = 2 * float(np.log(len(det.X_train) + 1))
        return 2 * n_features * EPS64 * (np.abs(ref) + n_features * term)
    if name == "mcd":
        # delta' P delta as one MatMul vs scipy's sqrt of the same then squared.
        mcd = det.detector_
        delta = np.abs(x - mcd.location_)
        spread = np.einsum("ij,jk,ik->i", delta, np.abs(mcd.get_precision()), delta)
        return 4 * n_features * EPS64 * spread
    if name == "gmm":
        # The native mixture graph expands |P (x - mu)|^2 (cancellation on badly scaled
        # features) and scikit-learn scores float32 rows in float32: its own rtol 1e-3.
        return 1e-3 * np.abs(ref) + 1e-5
    raise KeyError(name)


CHEAP = ["iforest", "ocsvm", "lof", "knn", "knn-mean", "knn-median", "pca", "mcd", "gmm"]
ALL = [*CHEAP, "hbos", "hbos-auto", "ecod", "copod"]


# -- export and parity ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_export_answers_like_pyod(name: str) -> None:
    det = _fitted(name)
    engine = OnnxEngine(_exported(name), CPU1)
    X = _rows("telemetry")
    ref = _reference(name, det, X)
    ours = engine.decision_function(X)
    bound = _bound(name, det, X, ref)
    worst = int(np.argmax(np.abs(ours - ref) - bound))
    assert np.all(np.abs(ours - ref) <= bound), (
        f"{name}: row {worst} decision {ours[worst]!r} vs PyOD {ref[worst]!r}, "
        f"bound {bound[worst]:.3g}"
    )
    labels = engine.predict(X)
    expected = (ref > det.threshold_).astype(np.int64)
    near = np.abs(ref - det.threshold_) <= bound
    assert np.array_equal(labels[~near], expected[~near])
    assert set(np.unique(labels)) <= {0, 1}


@pytest.mark.parametrize(
    ("name", "dataset"),
    [("knn", "breast_cancer"), ("ocsvm", "breast_cancer"), ("pca", "digits"), ("ecod", "digits")],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_export_other_datasets_and_float64(name: str, dataset: str, dtype: str) -> None:
    det = _fitted(name, dataset)
    engine = OnnxEngine(_exported(name, dataset, dtype), CPU1)
    assert engine.input_dtype == np.dtype(dtype)
    X = _rows(dataset, dtype)
    ref = _reference(name, det, X)
    assert np.all(np.abs(engine.decision_function(X) - ref) <= _bound(name, det, X, ref))


def test_graph_outputs_and_metadata() -> None:
    det = _fitted("knn")
    proto = _exported("knn")
    assert [o.name for o in proto.graph.output] == ["label", "decision_function"]
    engine = OnnxEngine(proto, CPU1)
    meta = engine.info()["metadata"]
    assert meta["label_convention"] == "pyod"
    assert meta["threshold"] == det.threshold_
    assert meta["estimator"] == "pyod.KNN"
    assert "offset" not in meta
    assert meta["accepts_nan"] is False
    assert meta["validation"]["passed"] is True


def test_iforest_metadata_drops_sklearn_offset() -> None:
    """PyOD's IForest forwards scikit-learn's offset_: not a PyOD answer, so not stored."""
    det = _fitted("iforest")
    assert hasattr(det, "offset_")
    engine = OnnxEngine(_exported("iforest"), CPU1)
    assert engine.offset is None
    assert "offset" not in engine.metadata
    assert SklearnEngine(det).offset is None


# -- conventions -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["iforest", "knn", "ecod"])
def test_engines_count_outliers_like_pyod(name: str) -> None:
    det = _fitted(name)
    X = _rows("telemetry")
    expected = int((_reference(name, det, X) > det.threshold_).sum())
    assert expected > 0
    for engine in (create_engine(det, CPU1), OnnxEngine(_exported(name), CPU1)):
        assert engine.convention == "pyod"
        assert engine.info()["convention"] == "pyod"
        assert engine.methods == {"predict", "decision_function"}
        labels = engine.predict(X)
        assert labels.dtype == np.int64
        assert int((labels == 1).sum()) == expected
        assert int((labels == -1).sum()) == 0
        with pytest.raises(MethodUnavailableError, match="score_samples"):
            engine.score_samples(X)


def test_sklearn_engine_predict_is_pyods() -> None:
    det = _fitted("knn")
    X = _rows("telemetry")
    engine = SklearnEngine(det)
    assert np.array_equal(engine.predict(X), det.predict(X))
    assert np.array_equal(engine.decision_function(X), det.decision_function(X))
    assert engine.threshold == det.threshold_
    assert engine.info()["scoring"] == "batch"


def test_sklearn_detectors_keep_sklearns_convention() -> None:
    X = _rows("telemetry")
    engine = SklearnEngine(IsolationForest(n_estimators=10, random_state=0).fit(X))
    assert engine.convention == "sklearn"
    assert engine.info()["convention"] == "sklearn"
    assert not engine.row_by_row  # a batch scorer
    assert set(np.unique(engine.predict(X))) <= {-1, 1}


@pytest.mark.parametrize("name", ["ecod", "copod"])
def test_ecdf_detectors_score_each_row_alone(name: str) -> None:
    """PyOD re-ranks the whole batch with the training rows; engines answer each row alone."""
    det = _fitted(name)
    X = _rows("telemetry")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = det.decision_function(X)
        shorter = det.decision_function(X[:50])
    assert not np.allclose(batch[:50], shorter)  # PyOD: a row's score depends on its batch
    alone = _pyod_alone(det, X)
    sklearn_engine = SklearnEngine(det)
    assert sklearn_engine.info()["scoring"] == "row by row"
    assert sklearn_engine.row_by_row
    assert np.array_equal(sklearn_engine.decision_function(X), alone)
    onnx_engine = OnnxEngine(_exported(name), CPU1)
    assert np.array_equal(
        onnx_engine.decision_function(X[:50]), onnx_engine.decision_function(X)[:50]
    )
    assert np.all(np.abs(onnx_engine.decision_function(X) - alone) <= _bound(name, det, X, alone))


def test_ecdf_engine_refuses_nan_as_pyods_fit_does() -> None:
    det = _fitted("ecod")
    row = _rows("telemetry")[:1].copy()
    row[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        SklearnEngine(det).decision_function(row)
    with pytest.raises(InputError, match="NaN"):
        OnnxEngine(_exported("ecod"), CPU1).decision_function(row)


def test_fallback_never_changes_convention() -> None:
    det = _fitted("knn")
    proto = _exported("knn")
    same = FallbackEngine(lambda: OnnxEngine(proto, CPU1), SklearnEngine(det))
    assert same.convention == "pyod"
    assert same.info()["convention"] == "pyod"
    sklearn_forest = IsolationForest(n_estimators=10, random_state=0).fit(_rows("telemetry"))
    with pytest.raises(ModelLoadError, match="convention"):
        FallbackEngine(lambda: OnnxEngine(proto, CPU1), SklearnEngine(sklearn_forest))
    with pytest.raises(ModelLoadError, match="convention"):
        create_engine(proto, CPU1, fallback=sklearn_forest)


def test_pipeline_with_scaler_exports() -> None:
    data = load_dataset("breast_cancer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_pipeline(StandardScaler(), _make("knn")).fit(data.X_train)
    X = data.X_test[:N_ROWS]
    engine = OnnxEngine(export(model, validation_data=X).model, CPU1)
    assert engine.convention == "pyod"
    assert np.array_equal(engine.predict(X), model.predict(X))
    assert np.allclose(engine.decision_function(X), model.decision_function(X), rtol=1e-6)


# -- graphs users bring ------------------------------------------------------------------------


def _tiny_pyod_graph(labels: tuple[int, int] = (0, 1), with_label: bool = True) -> onnx.ModelProto:
    """decision = mean(|x|); label = labels[decision > 1]."""
    nodes = [
        helper.make_node("Abs", ["X"], ["abs"]),
        helper.make_node("ReduceMean", ["abs"], ["decision_function"], axes=[1], keepdims=0),
    ]
    outputs = [helper.make_tensor_value_info("decision_function", TensorProto.FLOAT, ["N"])]
    inits = [
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("no", TensorProto.INT64, [], [labels[0]]),
        helper.make_tensor("yes", TensorProto.INT64, [], [labels[1]]),
    ]
    if with_label:
        nodes += [
            helper.make_node("Greater", ["decision_function", "one"], ["above"]),
            helper.make_node("Where", ["above", "yes", "no"], ["label"]),
        ]
        outputs.insert(0, helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]))
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph(nodes, "tiny", [x], outputs, initializer=inits)
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])
    write_metadata(model, {"label_convention": "pyod", "threshold": 1.0})
    return model


def test_user_pyod_graph_is_served() -> None:
    X = np.array([[0.5, 0.5, 0.5], [3.0, 3.0, 3.0]], dtype=np.float32)
    engine = OnnxEngine(_tiny_pyod_graph(), CPU1)
    assert engine.predict(X).tolist() == [0, 1]
    without_label = OnnxEngine(_tiny_pyod_graph(with_label=False), CPU1)
    assert without_label.threshold == 1.0
    assert without_label.predict(X).tolist() == [0, 1]  # decision > threshold


def test_pyod_graph_with_sklearn_labels_is_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="PyOD's 0"):
        OnnxEngine(_tiny_pyod_graph(labels=(1, -1)), CPU1)


def test_unknown_convention_is_refused() -> None:
    model = _tiny_pyod_graph()
    write_metadata(model, {"label_convention": "outlier-is-2"})
    with pytest.raises(UnsupportedModelError, match="conventions"):
        OnnxEngine(model, CPU1)


def test_offset_does_not_apply_to_pyod_graphs() -> None:
    with pytest.raises(ValueError, match="offset= does not apply"):
        OnnxEngine(_tiny_pyod_graph(), CPU1, offset=0.5)


# -- persistence -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["iforest", "knn", "pca", "ecod", "gmm"])
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    det = _fitted(name)
    X = _rows("telemetry")[:40]
    manifest = save_model(det, tmp_path / name, onnx=True, validation_data=X)
    assert manifest["exporter"] == "native"
    loaded = load_model(tmp_path / f"{name}.skops")  # PyOD's types trusted by default
    assert type(loaded) is type(det)
    assert np.array_equal(SklearnEngine(loaded).predict(X), SklearnEngine(det).predict(X))
    onnx_engine = create_engine(tmp_path / f"{name}.onnx", CPU1)
    assert onnx_engine.convention == "pyod"
    ref = _reference(name, det, X)
    assert np.all(np.abs(onnx_engine.decision_function(X) - ref) <= _bound(name, det, X, ref))


def test_pickled_pyod_detector_still_needs_trust(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "knn.pkl"
    path.write_bytes(pickle.dumps(_fitted("knn")))
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(path)


# -- bad inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["knn", "iforest", "ecod", "hbos"])
def test_unfitted_detector_is_refused(name: str) -> None:
    with pytest.raises(UnsupportedModelError, match="not fitted"):
        export(_make(name))
    with pytest.raises(UnsupportedModelError, match="not fitted"):
        SklearnEngine(_make(name))


def test_unsupported_pyod_detector_names_the_supported_ones() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kde = _make_with("kde", "KDE").fit(_rows("telemetry"))
    with pytest.raises(UnsupportedModelError, match="KDE") as info:
        export(kde)
    for name in PYOD_EXPORTABLE:
        assert name in str(info.value)
    assert SklearnEngine(kde).convention == "pyod"  # still served by PyOD itself


@pytest.mark.parametrize("exporter", ["skl2onnx", "torch"])
def test_other_exporters_refuse_pyod(exporter: str) -> None:
    with pytest.raises(UnsupportedModelError, match="exporter='native'"):
        export(_fitted("knn"), exporter=exporter)  # type: ignore[arg-type]


def test_wrong_width_is_refused() -> None:
    det = _fitted("knn")
    X = np.zeros((3, 5), dtype=np.float32)
    with pytest.raises(InputError, match="expected 12 features"):
        SklearnEngine(det).predict(X)
    with pytest.raises(InputError, match="expected 12 features"):
        OnnxEngine(_exported("knn"), CPU1).predict(X)
    with pytest.raises(ValueError, match="n_features=5"):
        export(det, n_features=5)


def test_unsupported_options_are_refused() -> None:
    X = _rows("telemetry")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manhattan = _make_with("knn", "KNN", metric="manhattan").fit(X)
        nan_pca = _make_with("pca", "PCA").fit(X)  # constant columns: zero-variance weights
        lof = _make_with("lof", "LOF", novelty=False).fit(X)
    with pytest.raises(UnsupportedModelError, match="euclidean"):
        export(manhattan)
    with pytest.raises(UnsupportedModelError, match="threshold_ = nan"):
        export(nan_pca)
    with pytest.raises(UnsupportedModelError, match="novelty=True"):
        export(lof)


def _make_with(module: str, cls: str, **params: Any) -> Any:
    factory: Callable[..., Any] = getattr(importlib.import_module(f"pyod.models.{module}"), cls)
    return factory(**params)


# -- edges of each detector's arithmetic ----------------------------------------------------


@pytest.mark.parametrize("kernel", ["linear", "poly", "sigmoid"])
def test_ocsvm_kernels(kernel: str) -> None:
    data = load_dataset("telemetry")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = _make_with("ocsvm", "OCSVM", kernel=kernel, gamma=0.05).fit(data.X_train[:500])
    X = data.X_test[:N_ROWS]
    engine = OnnxEngine(export(det, validation_data=X).model, CPU1)
    ref = det.decision_function(X)
    assert np.allclose(engine.decision_function(X), ref, rtol=1e-9, atol=1e-9)
    assert np.array_equal(engine.predict(X), det.predict(X))


def test_knn_odd_median() -> None:
    data = load_dataset("telemetry")
    det = _make_with("knn", "KNN", method="median", n_neighbors=5).fit(data.X_train)
    X = data.X_test[:N_ROWS]
    ours = OnnxEngine(export(det, validation_data=X).model, CPU1).decision_function(X)
    ref = det.decision_function(X)
    assert np.all(np.abs(ours - ref) <= _bound("knn", det, X, ref))


@pytest.mark.parametrize("name", ["hbos", "hbos-auto"])
def test_hbos_rows_on_and_beyond_the_bin_edges(name: str) -> None:
    """Rows exactly on edges, within ``tol`` bin widths outside the range, and beyond it."""
    det = _fitted(name)
    edges = det.bin_edges_ if isinstance(det.bin_edges_, list) else list(det.bin_edges_.T)
    base = _rows("telemetry")[:1].astype(np.float64)
    rows = []
    for f, e in enumerate(edges):
        first, last = e[1] - e[0], e[-1] - e[-2]
        for value in (*e, e[0] - 0.5 * first, e[0] - 0.51 * first, e[-1] + 0.49 * last, e[-1] + 9):
            row = base.copy()
            row[0, f] = value
            rows.append(row)
    X = np.concatenate(rows).astype(np.float32)  # what the float32 graph and PyOD both see
    ref = det.decision_function(X)
    ours = OnnxEngine(_exported(name), CPU1).decision_function(X)
    assert np.all(np.abs(ours - ref) <= _bound(name, det, X, ref))


@pytest.mark.parametrize("name", ["ecod", "copod"])
def test_ecdf_rows_on_training_values(name: str) -> None:
    """Rows equal to training values (ties), below the minimum and above the maximum."""
    det = _fitted(name)
    train = np.asarray(det.X_train)
    X = np.concatenate(
        [train[:20], train.min(axis=0, keepdims=True) - 1, train.max(axis=0, keepdims=True) + 1]
    ).astype(np.float32)
    ref = _pyod_alone(det, X)
    ours = OnnxEngine(_exported(name), CPU1).decision_function(X)
    assert np.all(np.abs(ours - ref) <= _bound(name, det, X, ref))
