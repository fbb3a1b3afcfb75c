"""Detector graphs users bring: plain skl2onnx and torch.onnx exports load; others are refused."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from engines import (
    METHODS,
    EngineConfig,
    MethodUnavailableError,
    OnnxEngine,
    UnsupportedModelError,
    create_engine,
)
from engines.metadata import write_metadata
from tests._models import IR_VERSION, ONNX_OPSET, linear_detector, reference_scores

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
OPSET = {"": 17, "ai.onnx.ml": 3}  # skl2onnx IsolationForest needs both (FACTS.md)


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(200, 4)).astype(np.float32)


def _convert(estimator: Any, X: np.ndarray, score_samples: bool = False, **options: Any) -> Any:
    """A plain skl2onnx export, as a user makes it (options keyed by the estimator class)."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if score_samples:
        options["score_samples"] = True
    return to_onnx(
        estimator, X[:1], target_opset=OPSET, options={type(final): options} if options else None
    )


def _assert_methods_answer_exactly(engine: OnnxEngine, X: np.ndarray) -> None:
    """Every listed method answers one value per row; every other one says it cannot."""
    for method in METHODS:
        if method in engine.methods:
            assert getattr(engine, method)(X).shape == (len(X),)
        else:
            with pytest.raises(MethodUnavailableError, match=f"cannot answer {method}"):
                getattr(engine, method)(X)


# -- plain scikit-learn conversions that must load and answer --------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: IsolationForest(n_estimators=10, random_state=0),
        lambda: OneClassSVM(nu=0.1),
        lambda: LocalOutlierFactor(novelty=True),
        lambda: make_pipeline(StandardScaler(), OneClassSVM(nu=0.1)),
    ],
    ids=["iforest", "ocsvm", "lof", "scaler-ocsvm"],
)
def test_plain_skl2onnx_detectors_answer_and_derive_score_samples_from_offset(
    make: Any, X: np.ndarray
) -> None:
    estimator = make().fit(X)
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    model = _convert(estimator, X)
    plain = OnnxEngine(model, CPU1)
    assert plain.methods == {"predict", "decision_function"}
    assert plain.info()["output_roles"] == {"label": "label", "decision_function": "scores"}
    _assert_methods_answer_exactly(plain, X)
    with pytest.raises(MethodUnavailableError, match=r"offset unknown \(pass offset="):
        plain.score_samples(X)
    np.testing.assert_allclose(
        plain.decision_function(X), estimator.decision_function(X), rtol=1e-3, atol=1e-3
    )
    assert np.mean(plain.predict(X) == estimator.predict(X)) >= 0.99
    derived = OnnxEngine(model, CPU1, offset=final.offset_)
    assert derived.methods == set(METHODS)
    assert derived.info()["offset_source"] == "argument"
    np.testing.assert_allclose(
        derived.score_samples(X), estimator.score_samples(X), rtol=1e-3, atol=1e-3
    )


def test_iforest_score_samples_option_gives_all_three_without_offset(X: np.ndarray) -> None:
    forest = IsolationForest(n_estimators=10, random_state=0).fit(X)
    engine = OnnxEngine(_convert(forest, X, score_samples=True), CPU1)
    assert engine.methods == set(METHODS)
    assert engine.info()["offset"] is None
    np.testing.assert_allclose(engine.score_samples(X), forest.score_samples(X), atol=1e-5)
    np.testing.assert_array_equal(engine.predict(X), forest.predict(X))


def test_create_engine_passes_the_offset(X: np.ndarray) -> None:
    forest = IsolationForest(n_estimators=10, random_state=0).fit(X)
    engine = create_engine(_convert(forest, X), CPU1, offset=forest.offset_)
    np.testing.assert_allclose(engine.score_samples(X), forest.score_samples(X), atol=1e-5)
    with_fallback = create_engine(_convert(forest, X), CPU1, fallback=forest, offset=-0.5)
    assert with_fallback.info()["primary"]["offset"] == -0.5


def test_gaussian_mixture_with_score_samples_exposes_only_score_samples(X: np.ndarray) -> None:
    mixture = GaussianMixture(2, random_state=0).fit(X)
    engine = OnnxEngine(_convert(mixture, X, score_samples=True), CPU1)
    assert engine.methods == {"score_samples"}  # its label is a component index
    ignored = engine.info()["ignored_outputs"]
    assert set(ignored) == {"label", "probabilities"}
    assert "cluster index (from ArgMax)" in ignored["label"]
    _assert_methods_answer_exactly(engine, X)
    np.testing.assert_allclose(engine.score_samples(X), mixture.score_samples(X), rtol=1e-4)


# -- graphs that are not anomaly detectors: refused at load, saying what they are -------------


def test_gaussian_mixture_without_score_samples_is_refused_with_the_option(
    X: np.ndarray,
) -> None:
    mixture = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(UnsupportedModelError, match="classifier or clusterer") as err:
        OnnxEngine(_convert(mixture, X), CPU1)
    assert "{'score_samples': True}" in str(err.value)
    assert "'label' is a class or cluster index (from ArgMax)" in str(err.value)


def test_kmeans_is_refused_as_a_clusterer(X: np.ndarray) -> None:
    kmeans = KMeans(3, n_init=2, random_state=0).fit(X)
    with pytest.raises(UnsupportedModelError, match=r"clusterer.*'scores' has shape \[\?, 3\]"):
        OnnxEngine(_convert(kmeans, X), CPU1)


@pytest.mark.parametrize(
    ("make", "zipmap", "ops"),
    [
        (lambda: LogisticRegression(), True, r"\['LinearClassifier', 'ZipMap'\]"),
        (lambda: LogisticRegression(), False, r"\['LinearClassifier'\]"),
        (
            lambda: RandomForestClassifier(n_estimators=3, random_state=0),
            True,
            r"\['TreeEnsembleClassifier', 'ZipMap'\]",
        ),
    ],
    ids=["logreg", "logreg-no-zipmap", "forest"],
)
def test_classifiers_are_refused(make: Any, zipmap: bool, ops: str, X: np.ndarray) -> None:
    classifier = make().fit(X, (X[:, 0] > 0).astype(int))
    model = _convert(classifier, X) if zipmap else _convert(classifier, X, zipmap=False)
    with pytest.raises(UnsupportedModelError, match=f"it is a classifier \\(ops {ops}"):
        OnnxEngine(model, CPU1)


@pytest.mark.parametrize(
    "make",
    [lambda X: LinearRegression().fit(X, X[:, 0]), lambda X: PCA(2).fit(X)],
    ids=["regressor", "transformer"],
)
def test_skl2onnx_regressors_and_transformers_are_refused(make: Any, X: np.ndarray) -> None:
    with pytest.raises(UnsupportedModelError, match=r"regressor or a transformer.*score_kind="):
        OnnxEngine(_convert(make(X), X), CPU1)


def test_a_non_tensor_output_is_refused() -> None:
    model = linear_detector(outputs=("score_samples",))
    model.graph.node.append(helper.make_node("SequenceEmpty", [], ["probs"]))
    model.graph.output.append(
        helper.make_tensor_sequence_value_info("probs", TensorProto.FLOAT, None)
    )
    with pytest.raises(UnsupportedModelError, match=r"output 'probs' is seq\(tensor\(float\)\)"):
        OnnxEngine(model, CPU1)


def test_string_label_is_refused() -> None:
    model = _single_output_graph("label", [None], elem=TensorProto.STRING)
    with pytest.raises(UnsupportedModelError, match=r"label output 'label' is tensor\(string\)"):
        OnnxEngine(model, CPU1)


def test_unknown_label_conventions_and_mislabelled_graphs_are_refused() -> None:
    unknown = linear_detector(metadata={"label_convention": "h2o"})
    with pytest.raises(UnsupportedModelError, match="label_convention='h2o'"):
        OnnxEngine(unknown, CPU1)
    # A scikit-learn-style graph (score_samples, labels -1/1) that claims PyOD's convention.
    pyod = linear_detector(metadata={"label_convention": "pyod"})
    with pytest.raises(UnsupportedModelError, match="label_convention='pyod'"):
        OnnxEngine(pyod, CPU1)
    sklearn = OnnxEngine(linear_detector(metadata={"label_convention": "sklearn"}), CPU1)
    assert sklearn.methods == set(METHODS)


# -- graphs with one output of any name (torch.onnx and friends) ------------------------------


def _single_output_graph(
    name: str,
    shape: Sequence[int | str | None] | None,
    *,
    producer: str = "pytorch",
    width: int | str = 4,
    elem: int = TensorProto.FLOAT,
    keep_columns: bool = False,
) -> onnx.ModelProto:
    """One output ``name``: mean(|x|) per row ([N] or [N, 1]), or |x| itself (keep_columns)."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", width])
    nodes = [helper.make_node("Abs", ["X"], ["abs"])]
    if keep_columns:
        nodes.append(helper.make_node("Identity", ["abs"], [name]))
    elif elem == TensorProto.STRING:
        nodes.append(helper.make_node("ReduceMean", ["abs"], ["mean"], axes=[1], keepdims=0))
        nodes.append(helper.make_node("Cast", ["mean"], [name], to=TensorProto.STRING))
    else:
        keep = shape is not None and len(shape) == 2
        nodes.append(helper.make_node("ReduceMean", ["abs"], [name], axes=[1], keepdims=int(keep)))
    y = helper.make_tensor_value_info(name, elem, shape)
    graph = helper.make_graph(nodes, "single", [x], [y])
    model = helper.make_model(
        graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", ONNX_OPSET)]
    )
    model.producer_name = producer
    return model


@pytest.mark.parametrize("name", ["output", "recon_err", "anomaly_score"])
@pytest.mark.parametrize("shape", [["N"], ["N", 1], None], ids=["N", "N-1", "unknown"])
def test_one_output_of_any_name_is_an_anomaly_score(
    name: str, shape: list[Any] | None, X: np.ndarray
) -> None:
    error = np.mean(np.abs(X), axis=1)
    engine = OnnxEngine(_single_output_graph(name, shape), CPU1)
    assert engine.methods == {"score_samples"}
    assert engine.info()["output_roles"] == {"reconstruction_error": name}
    assert engine.info()["role_source"].startswith("assumed: the only output is an anomaly score")
    np.testing.assert_allclose(engine.score_samples(X), -error, rtol=1e-6)
    _assert_methods_answer_exactly(engine, X)
    thresholded = OnnxEngine(_single_output_graph(name, shape), CPU1, offset=-0.8)
    np.testing.assert_array_equal(thresholded.predict(X), np.where(0.8 - error < 0, -1, 1))


def test_score_kind_argument_says_what_the_one_output_means(X: np.ndarray) -> None:
    model = _single_output_graph("output", ["N"])
    engine = OnnxEngine(model, CPU1, score_kind="score_samples")
    assert engine.info()["output_roles"] == {"score_samples": "output"}
    assert engine.info()["role_source"] == "score_kind argument"
    np.testing.assert_allclose(engine.score_samples(X), np.mean(np.abs(X), axis=1), rtol=1e-6)
    named = OnnxEngine(linear_detector(outputs=("scores",)), CPU1, score_kind="score_samples")
    assert named.info()["output_roles"] == {"score_samples": "scores"}


def test_score_kind_argument_is_checked() -> None:
    with pytest.raises(ValueError, match="score_kind must be one of"):
        OnnxEngine(linear_detector(), CPU1, score_kind="anomaly")
    with pytest.raises(UnsupportedModelError, match=r"one score output; .* has 2"):
        OnnxEngine(linear_detector(), CPU1, score_kind="score_samples")


@pytest.mark.parametrize("offset", [float("nan"), float("inf"), "0.5", True, np.zeros(2)])
def test_offset_argument_is_checked(offset: Any) -> None:
    with pytest.raises(ValueError, match="offset must be a finite number"):
        OnnxEngine(linear_detector(), CPU1, offset=offset)


def test_offset_argument_overrides_metadata(X: np.ndarray) -> None:
    score, _ = reference_scores(X)
    model = linear_detector(outputs=("score_samples",), metadata={"offset": -1.5})
    assert OnnxEngine(model, CPU1).info()["offset_source"] == "metadata"
    engine = OnnxEngine(model, CPU1, offset=np.float64(-0.5))
    assert (engine.info()["offset"], engine.info()["offset_source"]) == (-0.5, "argument")
    np.testing.assert_allclose(engine.decision_function(X), score + 0.5, rtol=1e-6, atol=1e-6)


def test_one_output_with_several_values_per_row_is_refused() -> None:
    model = _single_output_graph("recon", ["N", 4], keep_columns=True)
    with pytest.raises(UnsupportedModelError, match=r"'recon' has shape \[N, 4\].*per-row score"):
        OnnxEngine(model, CPU1)


def test_dynamic_width_output_is_caught_by_the_warm_up() -> None:
    model = _single_output_graph("recon", None, width="F", keep_columns=True)
    write_metadata(model, {"n_features": 4})  # the warm-up runs one row of 4 features
    with pytest.raises(UnsupportedModelError, match=r"gave shape \(1, 4\) for 1 input row"):
        OnnxEngine(model, CPU1)


def test_wrong_length_output_at_run_time_is_refused(X: np.ndarray) -> None:
    # Width unknown: the warm-up row has 1 feature and 1 value passes; 4 features give 4.
    model = _single_output_graph("recon", None, width="F", keep_columns=True)
    engine = OnnxEngine(model, CPU1)
    with pytest.raises(UnsupportedModelError, match=r"gave shape \(200, 4\) for 200 input row"):
        engine.score_samples(X)


def test_one_value_for_a_whole_batch_is_refused(X: np.ndarray) -> None:
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("score_samples", TensorProto.FLOAT, None)
    nodes = [helper.make_node("ReduceMean", ["X"], ["score_samples"], keepdims=0)]
    model = helper.make_model(
        helper.make_graph(nodes, "pooled", [x], [y]),
        ir_version=IR_VERSION,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
    )
    engine = OnnxEngine(model, CPU1)  # one row: one value, as it should
    assert engine.score_samples(X[:1]).shape == (1,)
    with pytest.raises(UnsupportedModelError, match=r"gave shape \(\) for 3 input row"):
        engine.score_samples(X[:3])


# torch.onnx's own internals warn (FutureWarning on LeafSpec); not this project's code.
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_real_torch_onnx_export_with_a_plain_output_name(X: np.ndarray) -> None:
    torch = pytest.importorskip("torch")

    class Error(torch.nn.Module):  # type: ignore[misc, name-defined]
        def forward(self, x: Any) -> Any:
            return (x * x).mean(dim=1)

    program = torch.onnx.export(
        Error().eval(),
        (torch.zeros(2, 4),),
        dynamo=True,
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        input_names=["X"],
        output_names=["output"],
        external_data=False,
        verbose=False,
    )
    engine = OnnxEngine(program.model_proto, CPU1)
    assert engine.methods == {"score_samples"}
    np.testing.assert_allclose(engine.score_samples(X), -np.mean(X * X, axis=1), rtol=1e-5)


# -- labels -----------------------------------------------------------------------------------


def _labelled(label_nodes: list[onnx.NodeProto], consts: dict[str, Any]) -> onnx.ModelProto:
    """linear_detector's decision_function plus a label built by ``label_nodes`` from it."""
    model = linear_detector(outputs=("decision_function",))
    model.graph.node.extend(label_nodes)
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    model.graph.output.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]))
    return model


def test_sign_label_zero_is_an_anomaly_as_in_libsvm() -> None:
    model = _labelled(
        [
            helper.make_node("Sign", ["decision"], ["sign"]),
            helper.make_node("Cast", ["sign"], ["label"], to=TensorProto.INT64),
        ],
        {},
    )
    engine = OnnxEngine(model, CPU1)
    rows = np.array([[1.5] * 4, [0.0] * 4, [3.0] * 4], np.float32)  # decision 0, 1.5, -1.5
    np.testing.assert_array_equal(engine.predict(rows), [-1, 1, -1])
    wide = np.repeat(rows, 10, axis=0)  # the vectorised check, past 16 rows
    np.testing.assert_array_equal(engine.predict(wide), np.repeat([-1, 1, -1], 10))


@pytest.mark.parametrize(
    ("nodes", "consts"),
    [
        ([helper.make_node("Cast", ["below"], ["label"], to=TensorProto.INT64)], {}),
        (
            [helper.make_node("Where", ["below", "one", "zero_i"], ["label"])],
            {"zero_i": np.array(0, np.int64)},
        ),
    ],
    ids=["cast-of-less", "where-of-constants"],
)
def test_zero_one_label_is_refused_at_load(
    nodes: list[onnx.NodeProto], consts: dict[str, Any]
) -> None:
    less = helper.make_node("Less", ["decision", "zero"], ["below"])
    with pytest.raises(UnsupportedModelError, match=r"'label' can only be \[0\.0, 1\.0\]"):
        OnnxEngine(_labelled([less, *nodes], consts), CPU1)


def _rounded_label() -> onnx.ModelProto:
    """label = clip(round(decision), -1, 1): 0 where |decision| < 0.5, unknowable statically."""
    return _labelled(
        [
            helper.make_node("Round", ["decision"], ["rounded"]),
            helper.make_node("Clip", ["rounded", "low", "high"], ["clipped"]),
            helper.make_node("Cast", ["clipped"], ["label"], to=TensorProto.INT64),
        ],
        {"low": np.array(-1, np.float32), "high": np.array(1, np.float32)},
    )


@pytest.mark.parametrize("n_rows", [3, 40])
def test_label_outside_minus_one_one_is_refused_at_run_time(n_rows: int) -> None:
    engine = OnnxEngine(_rounded_label(), CPU1)  # the warm-up row gives 1
    normal, outlier = np.zeros((n_rows, 4), np.float32), np.full((n_rows, 4), 3.0, np.float32)
    np.testing.assert_array_equal(engine.predict(normal), np.ones(n_rows))
    np.testing.assert_array_equal(engine.predict(outlier), -np.ones(n_rows))
    boundary = np.vstack([normal, np.full((1, 4), 1.5, np.float32)])  # decision 0: label 0
    with pytest.raises(UnsupportedModelError, match=r"label output 'label' gave \[0\]"):
        engine.predict(boundary)
    np.testing.assert_allclose(engine.decision_function(boundary)[-1], 0.0)


def test_argmax_label_beside_a_score_is_ignored() -> None:
    model = _labelled(
        [
            helper.make_node("Unsqueeze", ["decision", "axis"], ["column"]),
            helper.make_node("ArgMax", ["column"], ["index"], axis=1, keepdims=0),
            helper.make_node("Identity", ["index"], ["label"]),
        ],
        {"axis": np.array([1], np.int64)},
    )
    engine = OnnxEngine(model, CPU1, offset=-1.5)
    assert engine.methods == set(METHODS)  # predict from decision_function, not the index
    assert engine.info()["output_roles"] == {"decision_function": "decision_function"}
    assert "from ArgMax" in engine.info()["ignored_outputs"]["label"]
