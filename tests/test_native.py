from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.covariance import EllipticEnvelope
from sklearn.ensemble import IsolationForest
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from engines import EngineConfig, OnnxEngine, PCAReconstructionDetector, UnsupportedModelError
from engines.native import native_supported, native_to_onnx
from engines.native.iforest import IForestVariant, iforest_to_onnx

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
RNG = np.random.default_rng(42)
TRAIN = (RNG.normal(size=(1_500, 6)) * [1, 2, 0.5, 3, 1, 1] + [0, 1, -1, 2, 0, 5]).astype(
    np.float32
)
TEST = np.vstack([TRAIN[:300] + RNG.normal(scale=0.1, size=(300, 6)), RNG.normal(size=(60, 6)) * 8])
TEST = TEST.astype(np.float32)


def engine_for(model: Any, dtype: Any = np.float32, **options: Any) -> OnnxEngine:
    return OnnxEngine(native_to_onnx(model, dtype=dtype, **options), CPU1)


def assert_forest_parity(model: Any, X: np.ndarray, dtype: Any = np.float32) -> None:
    """Exact labels; scores within 1e-6 absolute (IsolationForest's promise)."""
    engine = engine_for(model, dtype)
    Xd = X.astype(dtype)
    np.testing.assert_array_equal(engine.predict(Xd), model.predict(Xd))
    np.testing.assert_allclose(engine.score_samples(Xd), model.score_samples(Xd), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        engine.decision_function(Xd), model.decision_function(Xd), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(
    "params",
    [
        {"n_estimators": 50},
        {"n_estimators": 50, "contamination": 0.05},
        {"n_estimators": 40, "max_features": 0.5},
        {"n_estimators": 40, "max_features": 2},
        {"n_estimators": 40, "bootstrap": True},
        {"n_estimators": 40, "max_samples": 32},
        {"n_estimators": 40, "max_samples": 0.9, "bootstrap": True, "max_features": 0.7},
        {"n_estimators": 3, "max_samples": 2},
    ],
    ids=str,
)
def test_isolation_forest_hyperparameters(params: dict[str, Any]) -> None:
    forest = IsolationForest(random_state=0, **params).fit(TRAIN)
    assert_forest_parity(forest, TEST)


@pytest.mark.parametrize("scaler", [StandardScaler, MinMaxScaler, RobustScaler, MaxAbsScaler])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaler_pipelines_replay_sklearn_rounding(scaler: type, dtype: Any) -> None:
    pipe = make_pipeline(scaler(), IsolationForest(n_estimators=40, random_state=0)).fit(TRAIN)
    assert_forest_parity(pipe, TEST, dtype)


def test_two_scalers_in_a_row() -> None:
    pipe = make_pipeline(
        StandardScaler(), MinMaxScaler(), IsolationForest(n_estimators=20, random_state=0)
    )
    assert_forest_parity(pipe.fit(TRAIN), TEST)


def _rows_with_nan() -> np.ndarray:
    X = TEST.copy()
    mask = np.random.default_rng(1).random(X.shape) < 0.2
    X[mask] = np.nan
    X[:5] = np.nan  # whole rows missing
    X[5, 0] = np.inf  # infinities stay themselves next to NaN
    X[6, 1] = -np.inf
    return X


def test_nan_rows_follow_sklearn_missing_value_routing() -> None:
    forest = IsolationForest(n_estimators=60, random_state=0).fit(TRAIN)
    assert_forest_parity(forest, _rows_with_nan())


ROUTINGS = [
    IForestVariant(opset, kind, nan_routing=routing)
    for opset in (5, 3)
    for kind in ("double", "float")
    for routing in ("columns", "kernel")
]


@pytest.mark.parametrize("variant", ROUTINGS, ids=str)
def test_nan_routing_variants_agree_with_sklearn(variant: IForestVariant) -> None:
    forest = IsolationForest(n_estimators=40, random_state=0).fit(TRAIN)
    X = _rows_with_nan()
    engine = OnnxEngine(iforest_to_onnx(forest, variant=variant), CPU1)
    np.testing.assert_array_equal(engine.predict(X), forest.predict(X))
    np.testing.assert_allclose(engine.score_samples(X), forest.score_samples(X), rtol=0, atol=1e-6)


def test_columns_routing_leaves_the_kernel_untracked() -> None:
    """The speed of "columns" comes from ONNX Runtime's no-missing-value fast path."""
    forest = IsolationForest(n_estimators=40, random_state=0).fit(TRAIN)
    graph = iforest_to_onnx(forest, variant=IForestVariant(nan_routing="columns")).graph
    ensemble = next(n for n in graph.node if n.op_type == "TreeEnsemble")
    attrs = {a.name: a for a in ensemble.attribute}
    assert not any(attrs["nodes_missing_value_tracks_true"].ints)
    n = forest.n_features_in_
    assert max(attrs["nodes_featureids"].ints) >= n  # some nodes read the NaN -> -inf copy
    assert [node.op_type for node in graph.node][:3] == ["Cast", "IsNaN", "Where"]


def _boundary_rows(forest: IsolationForest, base: np.ndarray) -> np.ndarray:
    """Rows with one feature exactly at, just below and just above each split threshold."""
    rows = []
    for estimator, features in zip(forest.estimators_, forest.estimators_features_, strict=True):
        tree = estimator.tree_
        for node in np.flatnonzero(tree.children_left != -1)[:20]:
            column = int(np.asarray(features)[tree.feature[node]])
            t64 = tree.threshold[node]
            t32 = np.float32(t64)
            below = t32 if float(t32) <= t64 else np.nextafter(t32, np.float32(-np.inf))
            for value in (below, np.nextafter(below, np.float32(np.inf)), t32):
                row = base[len(rows) % len(base)].copy()
                row[column] = value
                rows.append(row)
    return np.asarray(rows, dtype=np.float32)


VARIANTS = [IForestVariant(opset, kind) for opset in (5, 3) for kind in ("double", "float")]


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_rows_on_split_thresholds(variant: IForestVariant) -> None:
    forest = IsolationForest(n_estimators=30, random_state=0).fit(TRAIN)
    X = _boundary_rows(forest, TEST)
    assert len(X) > 1000
    engine = OnnxEngine(iforest_to_onnx(forest, variant=variant), CPU1)
    np.testing.assert_array_equal(engine.predict(X), forest.predict(X))
    np.testing.assert_allclose(engine.score_samples(X), forest.score_samples(X), rtol=0, atol=1e-6)


def test_float64_input_scores_to_1e12_relative() -> None:
    forest = IsolationForest(n_estimators=60, random_state=0).fit(TRAIN)
    X = TEST.astype(np.float64) + 1e-9  # values that are not float32-representable
    engine = engine_for(forest, np.float64)
    assert engine.info()["input_dtype"] == "float64"
    np.testing.assert_allclose(engine.score_samples(X), forest.score_samples(X), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(engine.predict(X), forest.predict(X))


@pytest.mark.parametrize("n_parts", [2, 3])
def test_forest_split_into_parts_sums_the_same(n_parts: int) -> None:
    forest = IsolationForest(n_estimators=31, random_state=0).fit(TRAIN)
    engine = OnnxEngine(iforest_to_onnx(forest, variant=IForestVariant(n_parts=n_parts)), CPU1)
    np.testing.assert_allclose(engine.score_samples(TEST), forest.score_samples(TEST), atol=1e-12)


def test_far_and_infinite_rows() -> None:
    forest = IsolationForest(n_estimators=30, random_state=0).fit(TRAIN)
    X = np.array([[1e30] * 6, [-1e30] * 6, [np.inf] * 6, [-np.inf] * 6], dtype=np.float32)
    assert_forest_parity(forest, X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elliptic_envelope(dtype: Any) -> None:
    envelope = EllipticEnvelope(contamination=0.05, random_state=0).fit(TRAIN)
    engine = engine_for(envelope, dtype)
    X = TEST.astype(dtype)
    np.testing.assert_array_equal(engine.predict(X), envelope.predict(X))
    np.testing.assert_allclose(engine.score_samples(X), envelope.score_samples(X), rtol=1e-9)
    np.testing.assert_allclose(
        engine.decision_function(X), envelope.decision_function(X), rtol=1e-9, atol=1e-9
    )


# Parity does not depend on convergence: an unconverged mixture is still a model to export.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("cls", [GaussianMixture, BayesianGaussianMixture])
def test_mixtures_all_covariance_types(cls: type, covariance_type: str) -> None:
    mixture = cls(n_components=3, covariance_type=covariance_type, max_iter=500, random_state=0)
    mixture.fit(TRAIN)
    engine = engine_for(mixture, np.float64)
    assert engine.methods == {"score_samples"}
    X = TEST.astype(np.float64)
    np.testing.assert_allclose(engine.score_samples(X), mixture.score_samples(X), rtol=1e-7)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_mixture_far_rows_stay_finite(covariance_type: str) -> None:
    mixture = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(TRAIN)
    X = np.full((3, 6), 1e6, dtype=np.float64) * [[1], [-1], [100]]
    ours = engine_for(mixture, np.float64).score_samples(X)
    expected = mixture.score_samples(X)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pca_reconstruction_detector(dtype: Any) -> None:
    detector = make_pipeline(StandardScaler(), PCAReconstructionDetector(n_components=3)).fit(TRAIN)
    engine = engine_for(detector, dtype)
    X = TEST.astype(dtype)
    np.testing.assert_array_equal(engine.predict(X), detector.predict(X))
    np.testing.assert_allclose(engine.score_samples(X), detector.score_samples(X), rtol=1e-6)


def test_pca_detector_validates_contamination() -> None:
    with pytest.raises(ValueError, match="contamination"):
        PCAReconstructionDetector(contamination=0.9).fit(TRAIN)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lof_novelty(dtype: Any) -> None:
    lof = LocalOutlierFactor(n_neighbors=15, novelty=True).fit(TRAIN)
    engine = engine_for(lof, dtype)
    X = TEST.astype(dtype)
    agreement = (engine.predict(X) == lof.predict(X)).mean()
    assert agreement == 1.0
    np.testing.assert_allclose(engine.score_samples(X), lof.score_samples(X), rtol=1e-4)


def test_lof_other_metrics_are_refused() -> None:
    lof = LocalOutlierFactor(n_neighbors=5, novelty=True, metric="manhattan").fit(TRAIN)
    with pytest.raises(UnsupportedModelError, match="euclidean metric only"):
        native_to_onnx(lof)


def test_native_support_is_reported() -> None:
    forest = IsolationForest(n_estimators=2).fit(TRAIN)
    assert native_supported(forest)
    assert native_supported(make_pipeline(StandardScaler(), forest))
    assert not native_supported(LocalOutlierFactor(novelty=False))
    from sklearn.decomposition import PCA

    odd = Pipeline([("pca", PCA(2)), ("forest", IsolationForest(n_estimators=2))]).fit(TRAIN)
    assert not native_supported(odd)
    with pytest.raises(UnsupportedModelError, match="not PCA"):
        native_to_onnx(odd)
    clipped = make_pipeline(MinMaxScaler(clip=True), IsolationForest(n_estimators=2)).fit(TRAIN)
    with pytest.raises(UnsupportedModelError, match="clip=True"):
        native_to_onnx(clipped)
