from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines import (
    EngineConfig,
    ExportValidationError,
    OnnxEngine,
    Tolerance,
    UnsupportedModelError,
    export_torch,
    read_metadata,
)
from harness.cases.zoo import cases, fitted

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    return fitted("autoencoder")


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    (case,) = cases(names=["autoencoder"])
    return case.data().X_test


def test_single_file_dynamic_batch_matching_eager(
    detector, rows: np.ndarray, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ae.onnx"
    report = export_torch(detector.module_, rows[:8], path, offset=detector.offset_)
    assert report.path == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ae.onnx"]  # no external data
    assert report.validation is not None
    assert report.validation.passed
    engine = OnnxEngine(path, CPU1)
    for n in (1, 7, len(rows)):
        np.testing.assert_allclose(
            engine.score_samples(rows[:n]), detector.score_samples(rows[:n]), rtol=1e-4, atol=1e-6
        )
    np.testing.assert_array_equal(engine.predict(rows), detector.predict(rows))
    meta = read_metadata(path)
    assert meta["offset"] == pytest.approx(detector.offset_)
    assert meta["exporter"] == "torch.onnx(dynamo)"


def test_sign_conventions(detector, rows: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    scores = detector.score_samples(rows)
    assert (scores <= 0).all()  # minus an error
    np.testing.assert_allclose(detector.decision_function(rows), scores - detector.offset_)
    np.testing.assert_array_equal(
        detector.predict(rows) == -1, detector.decision_function(rows) < 0
    )
    train = cases(names=["autoencoder"])[0].data().X_train
    assert abs((detector.predict(train) == -1).mean() - detector.contamination) < 0.02


def test_validation_failure(detector, rows: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExportValidationError, match=r"disagrees with eager torch"):
        export_torch(detector.module_, rows[:8], tolerance=Tolerance(1.0, 0.0, 0.0))


def test_bad_arguments(detector) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnsupportedModelError, match=r"torch\.nn\.Module"):
        export_torch(object(), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        export_torch(detector.module_, np.zeros((1, detector.n_features_in_)))
