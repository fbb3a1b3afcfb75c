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
from harness.checks.strategies import (
    hyperparameters,
    input_rows,
    split_rows,
    split_thresholds,
    training_data,
)

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


def _on_a_split_of_its_path(forest: IsolationForest, row: np.ndarray) -> bool:
    """Whether ``row`` reaches, in some tree, a split whose feature it holds at the largest
    float32 not above the threshold or at the next float32."""
    for estimator, features in zip(forest.estimators_, forest.estimators_features_, strict=True):
        tree, x = estimator.tree_, row[features][None, :].astype(np.float32)
        for node in estimator.decision_path(x).indices:
            if tree.children_left[node] == -1:
                continue
            t = tree.threshold[node]
            below = (
                np.float32(t)
                if float(np.float32(t)) <= t
                else np.nextafter(np.float32(t), np.float32(-np.inf))
            )
            if x[0, tree.feature[node]] in (below, np.nextafter(below, np.float32(np.inf))):
                return True
    return False


@SETTINGS
@given(X=training_data(max_rows=200, max_features=6), params=hyperparameters("IsolationForest"))
def test_split_rows_reach_the_split_they_sit_on(X: np.ndarray, params: dict[str, Any]) -> None:
    forest = IsolationForest(**params).fit(X)
    rows = split_rows(forest, X, limit=64)
    inner = sum(int((e.tree_.children_left != -1).sum()) for e in forest.estimators_)
    assert rows.dtype == np.float32
    assert len(rows) <= 2 * min(64, inner)
    assert len(rows) >= min(64, inner)  # at least one side of every split drawn
    assert all(_on_a_split_of_its_path(forest, row) for row in rows)
    if not len(rows):
        return  # no split: every tree a single leaf (a constant column, say)
    engine = OnnxEngine(native_to_onnx(forest), CPU1)  # as scikit-learn on them
    clear = np.abs(forest.decision_function(rows)) > 1e-6  # a row on the cut is a tie
    np.testing.assert_array_equal(engine.predict(rows)[clear], forest.predict(rows)[clear])
    np.testing.assert_allclose(
        engine.score_samples(rows), forest.score_samples(rows), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("n_bins", [5, "auto"])
def test_split_rows_of_a_histogram_sit_on_its_bin_edges(n_bins: int | str) -> None:
    from pyod.models.hbos import HBOS

    X = np.random.default_rng(0).normal(size=(200, 3))
    model = HBOS(n_bins=n_bins).fit(X)
    edges = model.bin_edges_
    columns = list(edges) if isinstance(edges, list) else list(np.asarray(edges).T)
    rows = split_rows(model, X, limit=1000)
    assert len(rows) == 2 * sum(len(c) for c in columns)  # either side of every edge
    for row in rows:  # one feature on an edge (or the float32 above it), the others a data row
        on_edge = [
            j
            for j, column in enumerate(columns)
            if any(abs(float(row[j]) - e) <= abs(np.spacing(np.float32(e))) for e in column)
        ]
        assert on_edge


def test_split_rows_need_trees_on_the_input() -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(0).normal(size=(50, 3))
    assert split_rows(GaussianMixture(random_state=0).fit(X), X).shape == (0, 3)
    scaled = make_pipeline(StandardScaler(), IsolationForest(n_estimators=3)).fit(X)
    assert split_rows(scaled, X).shape == (0, 3)  # its thresholds are in scaled space
    forest = IsolationForest(n_estimators=3, random_state=0).fit(X)
    assert split_rows(forest, np.full((2, 3), np.nan)).shape == (0, 3)  # no finite base row
    np.testing.assert_array_equal(split_rows(forest, X), split_rows(forest, X))  # seeded


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
