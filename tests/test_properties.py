"""Property tests: random detectors and training sets, native export parity (Hypothesis)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture

from engines import EngineConfig, OnnxEngine
from engines.native import native_to_onnx
from harness.checks.strategies import hyperparameters, input_rows, split_thresholds, training_data

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(
    X=training_data(max_rows=200, max_features=6),
    params=hyperparameters("IsolationForest"),
    data=st.data(),
)
def test_any_isolation_forest_exports_exactly(
    X: np.ndarray, params: dict[str, Any], data: st.DataObject
) -> None:
    forest = IsolationForest(**params).fit(X)
    rows = data.draw(
        input_rows(base=X, thresholds=split_thresholds(forest), allow_nan=True, allow_inf=True)
    )
    engine = OnnxEngine(native_to_onnx(forest), CPU1)
    np.testing.assert_array_equal(engine.predict(rows), forest.predict(rows))
    np.testing.assert_allclose(
        engine.score_samples(rows), forest.score_samples(rows), rtol=0, atol=1e-6
    )


@SETTINGS
@given(
    X=training_data(min_rows=40, max_rows=200, max_features=5),
    params=hyperparameters("GaussianMixture"),
    data=st.data(),
)
def test_any_gaussian_mixture_scores_close(
    X: np.ndarray, params: dict[str, Any], data: st.DataObject
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on degenerate draws are expected
        try:
            mixture = GaussianMixture(**params).fit(X)
        except (ValueError, np.linalg.LinAlgError):
            assume(False)  # scikit-learn cannot fit this draw (collapsed components): not parity
    rows = data.draw(input_rows(base=X)).astype(np.float64)
    rows = rows[np.all(np.abs(rows) < 1e15, axis=1)]  # near float limits: see the zoo's known gaps
    assume(len(rows) > 0)
    engine = OnnxEngine(native_to_onnx(mixture, dtype=np.float64), CPU1)
    np.testing.assert_allclose(
        engine.score_samples(rows), mixture.score_samples(rows), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize(
    "bad", [{"min_rows": 0}, {"min_rows": 5, "max_rows": 2}, {"max_features": 0}]
)
def test_strategy_arguments_are_validated_early(bad: dict[str, int]) -> None:
    @given(training_data(**bad))
    def draw(X: np.ndarray) -> None:
        pass

    with pytest.raises(ValueError, match="need 1 <="):
        draw()


def test_unknown_estimator_strategy() -> None:
    with pytest.raises(ValueError, match="no hyperparameter strategy"):
        hyperparameters("KMeans")

    @given(input_rows(base=np.zeros((0, 3))))
    def draw(X: np.ndarray) -> None:
        pass

    with pytest.raises(ValueError, match="non-empty 2-D"):
        draw()
