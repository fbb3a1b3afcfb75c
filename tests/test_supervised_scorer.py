"""SupervisedScorer: LightGBM / XGBoost binary classifiers as anomaly scorers, exported via
onnxmltools into a graph with the project's outputs and no classifier operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from sklearn.base import is_outlier_detector
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, IsolationForest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from engines import (
    EngineConfig,
    ModelLoadError,
    OnnxEngine,
    UnsupportedModelError,
    export,
    load_model,
    read_metadata,
    save_model,
)
from engines._onnxmltools import split_thresholds, threshold_cloud
from engines.detectors import SupervisedScorer
from harness.cases.datasets import load_dataset
from harness.cases.zoo import cases, exported, fitted

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")
pytest.importorskip("onnxmltools")

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
_BUNCH = load_breast_cancer()
X = _BUNCH.data.astype(np.float32)
Y = np.where(_BUNCH.target == 0, -1, 1)  # malignant (the minority) = -1 = anomaly
TRAIN, TEST = slice(0, 400), slice(400, None)


def lgbm(**params: Any) -> Any:
    return lightgbm.LGBMClassifier(
        n_estimators=30, num_leaves=7, n_jobs=1, random_state=0, verbose=-1, **params
    )


def xgb(**params: Any) -> Any:
    return xgboost.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0, **params)


CLASSIFIERS = [pytest.param(lgbm, id="lightgbm"), pytest.param(xgb, id="xgboost")]


def scorer(make: Any, **params: Any) -> SupervisedScorer:
    return SupervisedScorer(make(), anomaly_class=-1, **params).fit(X[TRAIN], Y[TRAIN])


# The wrapper's conventions


@pytest.mark.parametrize("make", CLASSIFIERS)
def test_scores_follow_scikit_learns_outlier_conventions(make: Any) -> None:
    model = scorer(make, threshold=0.3)
    p_anomaly = model.classifier_.predict_proba(X[TEST])[:, 1].astype(np.float64)  # 1 = anomaly
    assert is_outlier_detector(model)
    assert model.offset_ == -0.3
    np.testing.assert_array_equal(model.score_samples(X[TEST]), -p_anomaly)
    np.testing.assert_allclose(model.decision_function(X[TEST]), 0.3 - p_anomaly)
    np.testing.assert_array_equal(model.predict(X[TEST]), np.where(p_anomaly > 0.3, -1, 1))
    assert model.classes_.tolist() == [1, -1]
    assert (model.predict(X[TEST]) == Y[TEST]).mean() > 0.9


def test_string_labels_and_the_anomaly_class() -> None:
    labels = np.where(Y == -1, "malignant", "benign")
    model = SupervisedScorer(lgbm(), anomaly_class="malignant").fit(X[TRAIN], labels[TRAIN])
    assert model.classes_.tolist() == ["benign", "malignant"]
    assert (model.predict(X[TEST]) == Y[TEST]).mean() > 0.9


@pytest.mark.parametrize("anomaly_class", [0, 1])
def test_prefit_classifier_is_used_as_it_is(anomaly_class: int) -> None:
    classifier = lgbm().fit(X[TRAIN], (Y[TRAIN] == -1).astype(int))
    model = SupervisedScorer(classifier, anomaly_class=anomaly_class, prefit=True).fit()
    assert model.classifier_ is classifier
    assert model.anomaly_index_ == anomaly_class
    expected = -classifier.predict_proba(X[TEST])[:, anomaly_class]
    np.testing.assert_array_equal(model.score_samples(X[TEST]), expected)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_threshold_out_of_range_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\)"):
        SupervisedScorer(lgbm(), threshold=threshold, anomaly_class=-1).fit(X[TRAIN], Y[TRAIN])


@pytest.mark.parametrize("threshold", ["0.5", True, None])
def test_threshold_must_be_a_number(threshold: Any) -> None:
    with pytest.raises(TypeError, match="threshold must be a number"):
        SupervisedScorer(lgbm(), threshold=threshold).fit(X[TRAIN], Y[TRAIN])


def test_multiclass_labels_are_refused_with_a_reason() -> None:
    labels = np.arange(len(X)) % 3
    with pytest.raises(ValueError, match=r"binary classifier .* 3 classes \[0, 1, 2\]"):
        SupervisedScorer(lgbm(), anomaly_class=2).fit(X, labels)


def test_multiclass_prefit_classifier_is_refused_with_a_reason() -> None:
    classifier = lgbm().fit(X, np.arange(len(X)) % 3)
    with pytest.raises(ValueError, match="LGBMClassifier was fitted on 3 classes"):
        SupervisedScorer(classifier, anomaly_class=2, prefit=True).fit()


def test_unknown_anomaly_class_is_refused() -> None:
    with pytest.raises(ValueError, match=r"anomaly_class=7 is not one of the classes \[-1, 1\]"):
        SupervisedScorer(lgbm(), anomaly_class=7).fit(X[TRAIN], Y[TRAIN])


def test_fit_without_labels_is_refused() -> None:
    with pytest.raises(ValueError, match=r"needs labelled rows fit\(X, y\)"):
        SupervisedScorer(lgbm()).fit(X[TRAIN])


def test_classifier_without_probabilities_is_refused() -> None:
    with pytest.raises(TypeError, match="LinearSVC has no predict_proba"):
        SupervisedScorer(LinearSVC()).fit(X[TRAIN], Y[TRAIN])


def test_unfitted_scorer_and_unfitted_prefit_classifier() -> None:
    unfitted = SupervisedScorer(lgbm(), anomaly_class=-1)
    with pytest.raises(NotFittedError):
        unfitted.score_samples(X[:2])
    with pytest.raises(UnsupportedModelError, match="not fitted"):
        export(unfitted)
    with pytest.raises(NotFittedError):
        SupervisedScorer(lgbm(), prefit=True).fit()


# Export through onnxmltools


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", CLASSIFIERS)
def test_export_answers_like_the_scorer(make: Any, dtype: str, tmp_path: Path) -> None:
    model = scorer(make)
    path = tmp_path / "scorer.onnx"
    report = export(model, path=path, dtype=dtype, validation_data=X[TEST])
    assert report.exporter == "onnxmltools"
    assert report.validation is not None
    assert report.validation.passed
    assert report.validation.label_agreement == 1.0
    assert report.validation.max_abs_err < 1e-6
    ops = {(n.domain, n.op_type) for n in report.model.graph.node}
    assert ("ai.onnx.ml", "TreeEnsembleRegressor") in ops
    assert not {op for _, op in ops} & {"TreeEnsembleClassifier", "ZipMap"}
    engine = OnnxEngine(path, CPU1)
    rows = X[TEST].astype(dtype)
    np.testing.assert_array_equal(engine.predict(rows), model.predict(rows))
    np.testing.assert_allclose(engine.score_samples(rows), model.score_samples(rows), atol=1e-6)
    meta = read_metadata(path)
    assert meta["exporter"] == "onnxmltools"
    assert meta["threshold"] == 0.5
    assert meta["anomaly_class"] == -1
    assert meta["offset"] == -0.5
    assert meta["classifier"] == type(model.classifier_).__name__


@pytest.mark.parametrize("make", CLASSIFIERS)
@pytest.mark.parametrize("threshold", [0.05, 0.9])
def test_threshold_is_carried_into_the_graph(make: Any, threshold: float) -> None:
    model = scorer(make, threshold=threshold)
    report = export(model, validation_data=X)
    engine = OnnxEngine(report.model, CPU1)
    np.testing.assert_array_equal(engine.predict(X), model.predict(X))
    np.testing.assert_allclose(engine.decision_function(X), model.decision_function(X), atol=1e-6)


def test_anomaly_class_first_negates_the_margin() -> None:
    classifier = xgb().fit(X[TRAIN], (Y[TRAIN] == 1).astype(int))  # class 0 is the anomaly
    model = SupervisedScorer(classifier, anomaly_class=0, prefit=True).fit()
    report = export(model, validation_data=X[TEST])
    assert report.validation is not None
    assert report.validation.label_agreement == 1.0


@pytest.mark.parametrize("make", CLASSIFIERS)
def test_missing_and_infinite_values_answer_like_the_library(make: Any) -> None:
    model = scorer(make)
    report = export(model, validation_data=X[TEST])
    rows = X[TEST].copy()
    rows[::3, ::2] = np.nan
    rows[1::5, 1] = np.inf
    rows[2::7, 3] = -np.inf
    engine = OnnxEngine(report.model, CPU1)
    assert engine.metadata["accepts_nan"]
    assert engine.metadata["accepts_inf"]
    np.testing.assert_array_equal(engine.predict(rows), model.predict(rows))
    np.testing.assert_allclose(engine.score_samples(rows), model.score_samples(rows), atol=1e-6)


def test_lightgbm_sigmoid_parameter_is_honoured() -> None:
    model = scorer(lambda: lgbm(sigmoid=2.0))
    report = export(model, validation_data=X)
    assert report.validation is not None
    assert report.validation.max_abs_err < 1e-6


def test_lightgbm_thresholds_are_the_exact_float64_ones() -> None:
    model = scorer(lgbm)
    report = export(model, validation_data=X[TEST])
    node = next(n for n in report.model.graph.node if n.op_type == "TreeEnsembleRegressor")
    attrs = {a.name: a for a in node.attribute}
    values = onnx.numpy_helper.to_array(attrs["nodes_values_as_tensor"].t)
    modes = [m.decode() for m in attrs["nodes_modes"].strings]
    splits = values[np.array(modes) == "BRANCH_LEQ"]
    exact = {t for _, t in split_thresholds(model)}
    assert set(splits.tolist()) <= exact
    assert (splits != splits.astype(np.float32)).any()  # float32 would have rounded them
    assert "ambiguous" not in report.model.graph.doc_string


def test_xgboost_with_feature_names() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=[str(n).replace(" ", "_") for n in _BUNCH.feature_names])
    model = SupervisedScorer(xgb(), anomaly_class=-1).fit(frame.iloc[TRAIN], Y[TRAIN])
    columns = {c for c, _ in split_thresholds(model)}
    assert columns
    assert columns <= set(range(X.shape[1]))
    center, spread = threshold_cloud(model, X.shape[1])
    assert center.shape == spread.shape == (X.shape[1],)
    report = export(model)  # validation rows around the split thresholds
    assert report.validation is not None
    assert report.validation.passed


@pytest.mark.parametrize("exporter", ["native", "skl2onnx", "torch"])
def test_other_exporters_do_not_apply_to_a_scorer(exporter: str) -> None:
    with pytest.raises(UnsupportedModelError, match="converted by onnxmltools"):
        export(scorer(xgb), exporter=exporter)  # type: ignore[arg-type]


def test_onnxmltools_does_not_apply_to_other_detectors() -> None:
    forest = IsolationForest(n_estimators=3, random_state=0).fit(X)
    with pytest.raises(UnsupportedModelError, match="does not apply to IsolationForest"):
        export(forest, exporter="onnxmltools")


def test_scorer_in_a_pipeline_is_refused() -> None:
    pipeline = make_pipeline(StandardScaler(), SupervisedScorer(xgb(), anomaly_class=-1))
    pipeline.fit(X[TRAIN], Y[TRAIN])
    with pytest.raises(UnsupportedModelError, match="exported on its own"):
        export(pipeline)


def test_other_classifiers_are_refused_with_what_converts() -> None:
    model = SupervisedScorer(GradientBoostingClassifier(n_estimators=3), anomaly_class=-1)
    model.fit(X[TRAIN], Y[TRAIN])
    words = r"converts \['LGBMClassifier', 'XGBClassifier'\]"
    with pytest.raises(UnsupportedModelError, match=words):
        export(model)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (
            lambda: lgbm(boosting_type="rf", bagging_freq=1, bagging_fraction=0.5),
            "boosting_type='rf'",
        ),
        (lambda: xgb(objective="binary:logitraw"), "only 'binary:logistic'"),
    ],
    ids=["lightgbm-rf", "xgboost-logitraw"],
)
def test_non_logistic_ensembles_are_refused(make: Any, words: str) -> None:
    with pytest.raises(UnsupportedModelError, match=words):
        export(scorer(make))


# Persistence


@pytest.mark.parametrize("make", CLASSIFIERS)
def test_scorer_round_trips_through_skops_by_default(make: Any, tmp_path: Path) -> None:
    model = scorer(make)
    save_model(model, tmp_path / "scorer.skops")
    loaded = load_model(tmp_path / "scorer.skops")
    np.testing.assert_array_equal(loaded.score_samples(X[TEST]), model.score_samples(X[TEST]))


def _objective(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    p = 1.0 / (1.0 + np.exp(-y_pred))
    return p - y_true, p * (1.0 - p)


def test_custom_objective_is_still_refused_at_load(tmp_path: Path) -> None:
    model = scorer(lambda: lgbm(objective=_objective))
    save_model(model, tmp_path / "custom.skops")
    with pytest.raises(ModelLoadError, match="_objective"):
        load_model(tmp_path / "custom.skops")


# Zoo cases


def test_labelled_dataset_has_both_classes_for_training() -> None:
    data = load_dataset("breast_cancer-labelled")
    assert data.y_train is not None
    assert set(data.y_train.tolist()) == set(data.y_test.tolist()) == {-1, 1}
    assert len(data.X_train) == len(data.y_train)
    assert len(data.X_test) == len(data.y_test)
    assert 0.3 < (data.y_train == -1).mean() < 0.45


@pytest.mark.parametrize("name", ["lgbm-scorer", "xgb-scorer"])
def test_zoo_scorer_cases(name: str) -> None:
    (case,) = cases(names=[name])
    report = exported(name, "onnxmltools")
    assert report.validation is not None
    assert report.validation.label_agreement == 1.0
    data = case.data()
    assert (fitted(name).predict(data.X_test) == data.y_test).mean() > 0.9
    for exporter in case.unsupported:
        if exporter != "torch":
            with pytest.raises(UnsupportedModelError):
                export(fitted(name), exporter=exporter, validate=False)  # type: ignore[arg-type]
