"""skl2onnx's own detector test scenarios, re-created against this project's ``export``.

The models, hyperparameters, data shapes and dtypes follow skl2onnx's tests for IsolationForest,
OneClassSVM, SGDOneClassSVM, LocalOutlierFactor, GaussianMixture and BayesianGaussianMixture
(tests/test_sklearn_isolation_forest.py, test_sklearn_svm_converters.py,
test_sklearn_sgd_oneclass_svm_converter.py, test_sklearn_local_outlier_factor.py,
test_sklearn_gaussian_mixture_converter.py and their float64 variants). Every scenario, under
every exporter and both dtypes, either exports with parity (export's own validation on
skl2onnx's test rows plus rows sampled around the fitted data; labels agree except where the
decision is within the score bound of 0) or is refused with UnsupportedModelError saying why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import SGDOneClassSVM
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.svm import OneClassSVM

from engines import (
    EngineConfig,
    OnnxEngine,
    UnsupportedModelError,
    export,
    load_model,
    save_model,
)
from engines.export import default_tolerance, validation_rows

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
# skl2onnx's small data sets: four 2-d rows with one far outlier, and 100 normal 4-d rows with
# two planted outliers; LOF's scenarios score the four rows shifted by 0.1 on the first column.
TINY = np.array([[-1.1, -1.2], [0.3, 0.2], [0.5, 0.4], [100.0, 99.0]], dtype=np.float32)
TINY_SHIFTED = TINY + np.array([0.1, 0.0], dtype=np.float32)
_RS = np.random.RandomState(0)
RND = _RS.randn(100, 4).astype(np.float32)
RND[-1, 2:] = 99.0
RND[-2, :2] = -99.0
IRIS = load_iris().data
SGD_TRAIN = np.array([[-1, -1], [-2, -1], [1, 1], [2, 1]], dtype=np.float64)
SGD_TEST = np.array([[0, 0], [-1, -1], [1, 1]], dtype=np.float32)

EUCLIDEAN_ONLY = "native LOF export supports the euclidean metric only"
FLOAT32_ONLY = "for float32 input only"


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One skl2onnx test model: how to fit it, which rows it is scored on, what exports do."""

    name: str
    factory: Callable[[], Any] = dataclasses.field(repr=False)
    train: np.ndarray = dataclasses.field(repr=False)
    rows: np.ndarray = dataclasses.field(repr=False)
    auto: str  # the exporter exporter="auto" must pick
    #: exporter -> (dtypes it refuses, words the refusal must contain)
    refused: Mapping[str, tuple[tuple[str, ...], str]] = dataclasses.field(default_factory=dict)
    fit_warning: type[Warning] | None = None  # a warning scikit-learn gives at fit (expected)

    def fitted(self) -> Any:
        if self.fit_warning is None:
            return self.factory().fit(self.train)
        with pytest.warns(self.fit_warning):
            return self.factory().fit(self.train)


BOTH: tuple[str, ...] = ("float32", "float64")
NO_NATIVE_SGD = {"native": (BOTH, "no native exporter for SGDOneClassSVM")}
SVM_FLOAT64 = {"skl2onnx": (("float64",), FLOAT32_ONLY)}
NATIVE_LOF_NO = {"native": (BOTH, EUCLIDEAN_ONLY)}


def _lof(**params: Any) -> Callable[[], Any]:
    return lambda: LocalOutlierFactor(novelty=True, **{"n_neighbors": 2, **params})


SCENARIOS: tuple[Scenario, ...] = (
    # test_sklearn_isolation_forest.py (skl2onnx: float32 only, opsets pinned as a dict)
    Scenario(
        "iforest-tiny",
        lambda: IsolationForest(n_estimators=3, random_state=0),
        TINY,
        TINY,
        "native",
        {"skl2onnx": (("float64",), FLOAT32_ONLY)},
    ),
    Scenario(
        "iforest-rnd",
        lambda: IsolationForest(n_estimators=2, random_state=0),
        RND,
        RND,
        "native",
        {"skl2onnx": (("float64",), FLOAT32_ONLY)},
    ),
    # test_sklearn_svm_converters.py: OneClassSVM on iris' first 3 columns, scored on rows 10:15
    *(
        Scenario(
            f"ocsvm-{kernel}",
            partial(OneClassSVM, kernel=kernel, gamma=gamma),
            IRIS[:, :3],
            IRIS[10:15, :3],
            "native",
            SVM_FLOAT64,
        )
        for kernel, gamma in (
            ("rbf", "scale"),
            ("linear", "scale"),
            ("poly", "scale"),
            ("sigmoid", 0.01),
        )
    ),
    # test_sklearn_sgd_oneclass_svm_converter.py
    Scenario(
        "sgd-ocsvm",
        lambda: SGDOneClassSVM(random_state=42),
        SGD_TRAIN,
        SGD_TEST,
        "skl2onnx",
        NO_NATIVE_SGD,
    ),
    # test_sklearn_local_outlier_factor.py
    Scenario("lof-k2", _lof(), TINY, TINY_SHIFTED, "native"),
    Scenario(
        "lof-k25-more-than-rows",
        _lof(n_neighbors=25),
        TINY,
        TINY_SHIFTED,
        "native",
        fit_warning=UserWarning,  # "n_neighbors (25) is greater than the number of samples"
    ),
    Scenario("lof-p3", _lof(p=3), TINY, TINY_SHIFTED, "skl2onnx", NATIVE_LOF_NO),
    Scenario("lof-p1", _lof(p=1), TINY, TINY_SHIFTED, "skl2onnx", NATIVE_LOF_NO),
    *(
        Scenario(
            f"lof-{metric}", _lof(metric=metric), TINY, TINY_SHIFTED, "skl2onnx", NATIVE_LOF_NO
        )
        for metric in ("cityblock", "manhattan", "sqeuclidean", "cosine")
    ),
    Scenario("lof-euclidean", _lof(metric="euclidean"), TINY, TINY_SHIFTED, "native"),
    Scenario("lof-double", _lof(), TINY.astype(np.float64), TINY, "native"),
    Scenario("lof-rnd", _lof(), RND, RND, "native"),
    # test_sklearn_gaussian_mixture_converter.py (and its float64 twin): score_samples only
    Scenario("gmm-default", lambda: GaussianMixture(random_state=0), IRIS, IRIS, "native"),
    *(
        Scenario(
            f"gmm-{cov}",
            partial(GaussianMixture, n_components=2, covariance_type=cov, random_state=0),
            IRIS,
            IRIS[40:60],
            "native",
        )
        for cov in ("full", "tied", "diag", "spherical")
    ),
    Scenario(
        "gmm-10-far-rows",
        lambda: GaussianMixture(n_components=10, covariance_type="full", random_state=0),
        IRIS,
        np.vstack([IRIS[40:60], IRIS[:5] * 1e2]),
        "native",
    ),
    *(
        Scenario(
            f"bgmm-{cov}",
            partial(BayesianGaussianMixture, covariance_type=cov, random_state=0),
            IRIS,
            IRIS,
            "native",
        )
        for cov in ("full", "tied", "diag", "spherical")
    ),
)
EXPORTERS = ("auto", "native", "skl2onnx")
CASES = [
    pytest.param(s, exporter, dtype, id=f"{s.name}-{exporter}-{dtype}")
    for s in SCENARIOS
    for exporter in EXPORTERS
    for dtype in BOTH
]
_FITTED: dict[str, Any] = {}


def fitted(scenario: Scenario) -> Any:
    if scenario.name not in _FITTED:
        _FITTED[scenario.name] = scenario.fitted()
    return _FITTED[scenario.name]


def rows_for(scenario: Scenario, model: Any) -> np.ndarray:
    """skl2onnx's test rows, then rows sampled around the fitted data (10% far out)."""
    width = scenario.train.shape[1]
    return np.vstack([scenario.rows.astype(np.float64), validation_rows(model, width, n=256)])


def assert_labels_agree_off_threshold(
    model: Any, proto: onnx.ModelProto, X: np.ndarray, exporter: str
) -> None:
    """Every label the export gets wrong lies where the decision is within its bound of 0."""
    if not hasattr(model, "decision_function"):
        return
    engine = OnnxEngine(proto, CPU1)
    wrong = np.flatnonzero(engine.predict(X) != model.predict(X))
    if len(wrong) == 0:
        return
    bound = default_tolerance(model, exporter)
    decision = model.decision_function(X[wrong])
    near = np.abs(decision) <= bound.atol + bound.rtol * np.abs(decision) + 1e-12
    assert near.all(), f"labels differ off the threshold: rows {wrong[~near].tolist()}"


@pytest.mark.parametrize(("scenario", "exporter", "dtype"), CASES)
def test_scenario_exports_with_parity_or_is_refused(
    scenario: Scenario, exporter: str, dtype: str
) -> None:
    model = fitted(scenario)
    X = rows_for(scenario, model)
    refused_dtypes, words = scenario.refused.get(exporter, ((), ""))
    if dtype in refused_dtypes:
        with pytest.raises(UnsupportedModelError, match=words):
            export(model, exporter=exporter, dtype=dtype, validation_data=X)  # type: ignore[arg-type]
        return
    report = export(model, exporter=exporter, dtype=dtype, validation_data=X)  # type: ignore[arg-type]
    assert report.exporter == (scenario.auto if exporter == "auto" else exporter)
    summary = report.validation
    assert summary is not None
    assert summary.passed, summary
    assert summary.n_rows == len(X)
    checked = {c.output for c in summary.comparisons}
    is_mixture = hasattr(model, "means_")
    answers = {"label", "decision_function", "score_samples"}
    assert checked == ({"score_samples"} if is_mixture else answers)
    assert_labels_agree_off_threshold(model, report.model, X.astype(dtype), report.exporter)


# The gaps this suite found, each pinned by its own test.


def test_lof_p1_refusal_names_the_metric_and_p() -> None:
    model = fitted(next(s for s in SCENARIOS if s.name == "lof-p1"))
    with pytest.raises(UnsupportedModelError) as info:
        export(model, exporter="native")
    message = str(info.value)
    assert "'manhattan' (metric='minkowski', p=1)" in message
    assert "p=2" not in message
    assert "falls back to skl2onnx" in message


def test_lof_minkowski_weights_are_named() -> None:
    lof = LocalOutlierFactor(
        n_neighbors=2, novelty=True, p=3, metric_params={"w": np.array([1.0, 2.0])}
    ).fit(TINY)
    words = r"'minkowski' \(p=3\) with metric_params \['w'\]"
    with pytest.raises(UnsupportedModelError, match=words):
        export(lof, exporter="native")


@pytest.mark.parametrize("kernel", ["rbf", "linear", "poly", "sigmoid"])
def test_ocsvm_float64_is_a_native_float64_graph(kernel: str) -> None:
    model = fitted(next(s for s in SCENARIOS if s.name == f"ocsvm-{kernel}"))
    report = export(model, dtype="float64")
    assert report.exporter == "native"
    inputs = report.model.graph.input[0].type.tensor_type.elem_type
    assert inputs == onnx.TensorProto.DOUBLE
    ops = {node.op_type for node in report.model.graph.node}
    assert "SVMRegressor" not in ops
    assert "MatMul" in ops
    assert report.validation is not None
    assert report.validation.max_abs_err < 1e-9


def test_ocsvm_float64_by_skl2onnx_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    model = fitted(next(s for s in SCENARIOS if s.name == "ocsvm-rbf"))
    path = tmp_path / "ocsvm.onnx"
    with pytest.raises(UnsupportedModelError, match="exporter='native' or 'auto'"):
        export(model, path=path, exporter="skl2onnx", dtype="float64", validate=False)
    assert not path.exists()


def test_an_unloadable_export_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    module = importlib.import_module("engines.export")
    model = fitted(next(s for s in SCENARIOS if s.name == "gmm-full"))
    good = module.native_to_onnx(model)
    bad = onnx.ModelProto()
    bad.CopyFrom(good)
    bad.graph.node[0].op_type = "NoSuchOperator"
    monkeypatch.setattr(module, "native_to_onnx", lambda *args, **kwargs: bad)
    path = tmp_path / "bad.onnx"
    with pytest.raises(UnsupportedModelError, match="cannot be loaded by onnxruntime"):
        export(model, path=path, exporter="native", validate=False)
    assert not path.exists()


@pytest.mark.parametrize("name", ["gmm-full", "gmm-tied", "gmm-diag", "gmm-spherical", "bgmm-full"])
def test_mixtures_convert_in_float64_with_skl2onnx(name: str) -> None:
    model = fitted(next(s for s in SCENARIOS if s.name == name))
    report = export(model, exporter="skl2onnx", dtype="float64")
    assert report.validation is not None
    assert report.validation.max_rel_err < 1e-12


def test_small_lof_loads_through_skops_by_default(tmp_path: Path) -> None:
    model = fitted(next(s for s in SCENARIOS if s.name == "lof-rnd"))  # 4 features: a KD tree
    save_model(model, tmp_path / "lof.skops")
    loaded = load_model(tmp_path / "lof.skops")
    np.testing.assert_array_equal(loaded.score_samples(RND), model.score_samples(RND))
