"""Shared fixtures for the engines and harness unit tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from sklearn.ensemble import IsolationForest

from tests._models import linear_detector


@pytest.fixture(scope="session")
def rng_data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)


@pytest.fixture(scope="session")
def iforest(rng_data: np.ndarray) -> IsolationForest:
    return IsolationForest(n_estimators=10, random_state=0).fit(rng_data)


@pytest.fixture
def linear_path(tmp_path: Path) -> Path:
    path = tmp_path / "linear.onnx"
    onnx.save_model(linear_detector(), path)
    return path
