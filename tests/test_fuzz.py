"""Random arrays at every engine kind: correct shapes and dtypes, or a typed error. Never else."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engines import (
    EngineConfig,
    EngineError,
    FallbackEngine,
    InputError,
    OnnxEngine,
    SklearnEngine,
    export,
)
from harness.cases.zoo import fitted

N_FEATURES = 12  # the telemetry dataset's width


def _engines() -> dict[str, Any]:
    forest, svm = fitted("iforest-100"), fitted("ocsvm-rbf")
    config = EngineConfig(intra_op_threads=1, max_chunk_rows=512)
    return {
        "onnx-iforest": OnnxEngine(export(forest, validate=False).model, config),
        "onnx-ocsvm": OnnxEngine(export(svm, exporter="skl2onnx", validate=False).model, config),
        "sklearn-iforest": SklearnEngine(forest),
        "sklearn-ocsvm": SklearnEngine(svm),
        "fallback": FallbackEngine(
            OnnxEngine(export(forest, validate=False).model, config), SklearnEngine(forest)
        ),
    }


ENGINES = _engines()

DTYPES = st.sampled_from(
    [
        np.float32,
        np.float64,
        np.float16,
        np.int8,
        np.int64,
        np.uint16,
        np.bool_,
        np.complex64,
        "U3",
        object,
    ]
)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    ndim = draw(st.integers(0, 3))
    width = draw(st.sampled_from([N_FEATURES, N_FEATURES, 0, 1, N_FEATURES + 1]))
    rows = draw(st.sampled_from([0, 1, 2, 7, 600]))
    shape = {0: (), 1: (width,), 2: (rows, width), 3: (2, rows, width)}[ndim]
    if dtype.kind == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=min(64, dtype.itemsize * 8))
        limit = float(np.finfo(dtype).max)
        fill = st.sampled_from(
            [
                v
                for v in (np.nan, np.inf, -np.inf, 0.0, 1e30, -1e-40)
                if not np.isfinite(v) or abs(v) <= limit
            ]
        )
    elif dtype.kind == "O":
        elements, fill = st.sampled_from([1, 2.5, None, "x"]), st.just(None)
    else:
        elements, fill = None, None
    return draw(hnp.arrays(dtype, shape, elements=elements, fill=fill))


@pytest.mark.parametrize("name", sorted(ENGINES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=arrays())
def test_answers_with_right_shapes_or_raises_a_typed_error(name: str, X: np.ndarray) -> None:
    engine = ENGINES[name]
    for method in ("predict", "score_samples", "decision_function"):
        try:
            out = getattr(engine, method)(X)
        except EngineError:
            continue
        n = X.shape[0]
        assert X.ndim == 2
        assert X.shape[1] == N_FEATURES
        assert out.shape == (n,)
        if method == "predict":
            assert out.dtype == np.int64
            assert set(np.unique(out)) <= {-1, 1}
        else:
            assert out.dtype.kind == "f"


@pytest.mark.parametrize(("kind", "value"), [("nan", np.nan), ("inf", np.inf)])
def test_non_finite_rows_behave_like_sklearn(kind: str, value: float) -> None:
    """IsolationForest answers NaN and inf; OneClassSVM raises: the ONNX engines do the same."""
    X = np.zeros((3, N_FEATURES), dtype=np.float32)
    X[1, 2] = value
    forest_onnx, forest_sk = ENGINES["onnx-iforest"], ENGINES["sklearn-iforest"]
    np.testing.assert_allclose(forest_onnx.score_samples(X), forest_sk.score_samples(X), atol=1e-6)
    for name in ("onnx-ocsvm", "sklearn-ocsvm"):
        with pytest.raises(InputError, match=r"NaN|infinity"):
            ENGINES[name].score_samples(X)


def test_very_large_batch_is_scored_in_bounded_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = ENGINES["onnx-iforest"]
    seen: list[int] = []
    real = engine._session.run

    def spy(names: Any, feed: dict[str, np.ndarray]) -> Any:
        seen.append(len(next(iter(feed.values()))))
        return real(names, feed)

    monkeypatch.setattr(engine._session, "run", spy)
    X = np.random.default_rng(0).normal(size=(5_000, N_FEATURES)).astype(np.float32)
    out = engine.score_samples(X)
    assert out.shape == (5_000,)
    assert max(seen) <= 512
    assert sum(seen) == 5_000
