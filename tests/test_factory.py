from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import skops.io as sio
from sklearn.ensemble import IsolationForest

from engines import (
    EngineConfig,
    ModelLoadError,
    OnnxEngine,
    SklearnEngine,
    UnsupportedModelError,
    create_engine,
)
from tests._models import linear_detector

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)


def test_dispatch_on_onnx_sources(linear_path: Path) -> None:
    model = linear_detector()
    for source in (linear_path, str(linear_path), model, model.SerializeToString()):
        assert isinstance(create_engine(source, CPU1), OnnxEngine)


def test_dispatch_on_estimators_and_skops(tmp_path: Path, iforest: IsolationForest) -> None:
    assert isinstance(create_engine(iforest, CPU1), SklearnEngine)
    path = tmp_path / "det.skops"
    sio.dump(iforest, path)
    engine = create_engine(path, CPU1)
    assert isinstance(engine, SklearnEngine)
    assert engine.info()["model_sha256"] is not None
    relative = create_engine("det.skops", CPU1.replace(model_dir=tmp_path))
    assert isinstance(relative, SklearnEngine)


def test_default_config_comes_from_the_environment(
    linear_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONNX_THREADS", "1")
    engine = create_engine(linear_path)
    assert isinstance(engine, OnnxEngine)
    assert engine.info()["session_options"]["intra_op_threads"] == 1
    monkeypatch.setenv("ONNX_ENGINE", "bogus")
    with pytest.raises(ValueError, match="ONNX_ENGINE"):
        create_engine(linear_path)


def test_sklearn_engine_kind_uses_the_reference(
    linear_path: Path, iforest: IsolationForest
) -> None:
    config = CPU1.replace(engine="sklearn")
    assert isinstance(create_engine(linear_path, config, fallback=iforest), SklearnEngine)
    assert isinstance(create_engine(iforest, config), SklearnEngine)
    with pytest.raises(ValueError, match="needs a scikit-learn model"):
        create_engine(linear_path, config)


def test_unknown_objects_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="cannot build an engine from int"):
        create_engine(3, CPU1)
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="unknown model format"):
        create_engine(tmp_path / "m.txt", CPU1)


def test_onnx_as_fallback_is_refused(linear_path: Path) -> None:
    other = linear_path.with_name("other.onnx")
    onnx.save_model(linear_detector(), other)
    with pytest.raises(ModelLoadError, match="scikit-learn model was expected"):
        create_engine(linear_path, CPU1, fallback=other)
