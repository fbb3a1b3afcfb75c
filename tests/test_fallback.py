from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from sklearn.ensemble import IsolationForest

from engines import (
    EngineConfig,
    FallbackEngine,
    FallbackWarning,
    InputError,
    ModelLoadError,
    OnnxEngine,
    ProviderUnavailableError,
    SklearnEngine,
    create_engine,
)
from tests._models import fails_above_one_row, linear_detector

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)


def test_healthy_primary_answers(linear_path: Path, iforest: IsolationForest) -> None:
    engine = create_engine(linear_path, CPU1, fallback=iforest)
    assert isinstance(engine, FallbackEngine)
    X = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(engine.score_samples(X), [-1.0, -1.0])
    info = engine.info()
    assert info["engine"] == "fallback"
    assert info["answering_engine"] == "onnx"
    assert info["is_fallback"] is False
    assert engine.last_metrics is not None


def test_onnx_that_fails_to_load_answers_from_sklearn(
    tmp_path: Path, iforest: IsolationForest, rng_data: np.ndarray
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.warns(FallbackWarning, match="failed to load"):
        engine = create_engine(broken, CPU1, fallback=iforest)
    np.testing.assert_array_equal(engine.predict(rng_data), iforest.predict(rng_data))
    info = engine.info()
    assert info["is_fallback"] is True
    assert "not a valid ONNX model" in info["fallback_reason"]
    assert info["answering_engine"] == "sklearn"
    assert info["primary"] is None


def test_onnx_that_fails_to_run_answers_from_sklearn_and_warns_once(
    iforest: IsolationForest, rng_data: np.ndarray
) -> None:
    engine = FallbackEngine(OnnxEngine(fails_above_one_row(), CPU1), SklearnEngine(iforest))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = engine.decision_function(rng_data)
        engine.decision_function(rng_data)
        engine.predict(rng_data)
    assert [type(w.message) for w in record] == [FallbackWarning]
    assert "failed on decision_function" in str(record[0].message)
    np.testing.assert_array_equal(first, iforest.decision_function(rng_data))
    assert engine.info()["is_fallback"] is True


def test_method_the_onnx_model_lacks_comes_from_sklearn(
    iforest: IsolationForest, rng_data: np.ndarray
) -> None:
    primary = OnnxEngine(linear_detector(outputs=("label",)), CPU1)
    engine = FallbackEngine(primary, iforest_engine(iforest))
    with pytest.warns(FallbackWarning, match="score_samples comes from the fallback"):
        np.testing.assert_array_equal(
            engine.score_samples(rng_data), iforest.score_samples(rng_data)
        )
    # Routed for that method only: the primary still answers what it can.
    np.testing.assert_array_equal(engine.predict(rng_data), primary.predict(rng_data))
    info = engine.info()
    assert (info["is_fallback"], info["answering_engine"]) == (False, "onnx")
    assert info["methods_from_fallback"] == ["decision_function", "score_samples"]


def iforest_engine(est: IsolationForest) -> SklearnEngine:
    return SklearnEngine(est)


def test_input_errors_are_not_hidden(linear_path: Path, iforest: IsolationForest) -> None:
    engine = create_engine(linear_path, CPU1, fallback=iforest)
    with pytest.raises(InputError, match="expected 4 features"):
        engine.predict(np.zeros((1, 3), np.float32))
    assert engine.info()["is_fallback"] is False


def test_strict_provider_refusal_is_not_hidden(linear_path: Path, iforest: IsolationForest) -> None:
    with pytest.raises(ProviderUnavailableError):
        create_engine(linear_path, EngineConfig(provider="cuda"), fallback=iforest)


def test_non_strict_provider_fallback_is_reported(
    linear_path: Path, iforest: IsolationForest
) -> None:
    config = EngineConfig(provider="cuda", strict_provider=False)
    info = create_engine(linear_path, config, fallback=iforest).info()
    assert info["answering_engine"] == "onnx"
    assert info["is_fallback"] is True
    assert "CUDAExecutionProvider unavailable" in info["fallback_reason"]


def test_width_mismatch_with_the_reference_is_refused(
    tmp_path: Path, iforest: IsolationForest
) -> None:
    path = tmp_path / "wide.onnx"
    onnx.save_model(linear_detector(n_features=7), path)
    with pytest.raises(ModelLoadError, match="expects 7 features but the fallback expects 4"):
        create_engine(path, CPU1, fallback=iforest)
