from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from engines import InputError, MethodUnavailableError, SklearnEngine, UnsupportedModelError


def test_contract_matches_the_estimator(iforest: IsolationForest, rng_data: np.ndarray) -> None:
    engine = SklearnEngine(iforest)
    labels = engine.predict(rng_data)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, iforest.predict(rng_data))
    np.testing.assert_array_equal(engine.score_samples(rng_data), iforest.score_samples(rng_data))
    np.testing.assert_array_equal(
        engine.decision_function(rng_data), iforest.decision_function(rng_data)
    )
    info = engine.info()
    assert info["engine"] == "sklearn"
    assert info["offset"] == pytest.approx(iforest.offset_)
    assert info["active_providers"] == ["sklearn"]
    assert engine.last_metrics is not None
    assert engine.last_metrics.n_rows == len(rng_data)


def test_pipeline_reports_final_step(rng_data: np.ndarray) -> None:
    pipe = make_pipeline(StandardScaler(), IsolationForest(n_estimators=5, random_state=0))
    engine = SklearnEngine(pipe.fit(rng_data))
    assert engine.info()["final_estimator"] == "IsolationForest"
    assert engine.offset == pytest.approx(pipe[-1].offset_)


def test_lof_without_novelty_is_explained(rng_data: np.ndarray) -> None:
    with pytest.raises(UnsupportedModelError, match="refit it with novelty=True"):
        SklearnEngine(LocalOutlierFactor(n_neighbors=5).fit(rng_data))


def test_missing_method_is_explained(rng_data: np.ndarray) -> None:
    engine = SklearnEngine(LocalOutlierFactor(n_neighbors=5, novelty=True).fit(rng_data))
    assert engine.methods == {"predict", "score_samples", "decision_function"}
    engine._methods = frozenset({"predict"})
    with pytest.raises(MethodUnavailableError, match="cannot answer score_samples"):
        engine.score_samples(rng_data)


def test_unfitted_and_non_estimators_are_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="not fitted"):
        SklearnEngine(IsolationForest())
    with pytest.raises(UnsupportedModelError, match="expected a fitted scikit-learn estimator"):
        SklearnEngine(object())


def test_a_classifier_as_reference_is_pointed_to_supervised_scorer() -> None:
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).normal(size=(50, 3))
    classifier = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    with pytest.raises(UnsupportedModelError, match=r"SupervisedScorer\(model, prefit=True\)"):
        SklearnEngine(classifier)


def test_bad_inputs(iforest: IsolationForest) -> None:
    engine = SklearnEngine(iforest)
    with pytest.raises(InputError, match="expected 4 features"):
        engine.predict(np.zeros((2, 3)))
    with pytest.raises(InputError, match="2-D"):
        engine.predict(np.zeros(4))
    assert engine.predict(np.zeros((0, 4))).shape == (0,)


def test_dataframe_with_feature_names(rng_data: np.ndarray) -> None:
    frame = pd.DataFrame(rng_data, columns=["a", "b", "c", "d"])
    est = IsolationForest(n_estimators=5, random_state=0).fit(frame)
    engine = SklearnEngine(est)
    np.testing.assert_array_equal(engine.predict(frame[["d", "c", "b", "a"]]), est.predict(frame))
    np.testing.assert_array_equal(engine.predict(rng_data), est.predict(frame))
    with pytest.raises(InputError, match="missing"):
        engine.predict(frame.rename(columns={"a": "z"}))


def test_opposite_infinities_are_refused_with_a_typed_error(rng_data: np.ndarray) -> None:
    # scikit-learn's finiteness check sums the batch: -inf + inf warns (an error under
    # -W error) before it refuses the row; the refusal is the answer (a fuzz finding)
    engine = SklearnEngine(OneClassSVM().fit(rng_data))
    row = np.full((1, rng_data.shape[1]), np.inf, dtype=np.float32)
    row[0, 0] = -np.inf
    with pytest.raises(InputError, match="infinity"):
        engine.decision_function(row)
