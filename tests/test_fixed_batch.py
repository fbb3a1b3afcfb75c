"""Graphs whose input has a fixed batch dimension ([1, d], [8, d]: skl2onnx with
``FloatTensorType([1, d])``, torch.onnx without dynamic axes) answer any batch, as the same
model with a dynamic batch does."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import IsolationForest
from sklearn.svm import OneClassSVM

from engines import (
    EngineConfig,
    InferenceError,
    InputError,
    ModelLoadError,
    OnnxEngine,
    export,
)
from engines.base import METHODS
from engines.onnx_engine import _ort_message
from harness.checks.pair import check_pair, outcomes_table
from tests._models import fails_above_one_row, linear_detector

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
WIDTH = 4
SIZES = (1, 5, 8, 13, 0)
OPSETS = {"": 17, "ai.onnx.ml": 3}


def _with_batch(model: onnx.ModelProto, batch: int | None) -> onnx.ModelProto:
    """``model`` with the leading dimension of its input and outputs fixed at ``batch``
    (None: no dimension given at all), as a torch export without dynamic axes has it."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in [*fixed.graph.input, *fixed.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        if batch is None:
            dim.Clear()
        else:
            dim.dim_value = batch
    return fixed


def _skl2onnx(estimator: object, batch: int | None) -> onnx.ModelProto:
    types = [("X", FloatTensorType([batch, WIDTH]))]
    model: onnx.ModelProto = to_onnx(estimator, initial_types=types, target_opset=OPSETS)
    return model


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(13, WIDTH)).astype(np.float32)


@pytest.fixture(scope="module")
def ocsvm(rng_data: np.ndarray) -> OneClassSVM:
    return OneClassSVM(nu=0.1, gamma=0.5).fit(rng_data[:60])


def _runs_of(dynamic: OnnxEngine, method: str, X: np.ndarray, size: int) -> np.ndarray:
    """What ``dynamic`` answers for ``X`` run ``size`` rows at a time, the last run padded
    with its last row: onnxruntime's tree ensembles sum one row in another order than a batch,
    so a dynamic graph's scores themselves differ by an ulp between batch sizes."""
    call = getattr(dynamic, method)
    parts = [call(X[:0])]
    for i in range(0, len(X), size):
        chunk = X[i : i + size]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])
        parts.append(call(padded)[: len(chunk)])
    return np.concatenate(parts)


@pytest.mark.parametrize("size", [1, 8])
def test_a_hand_made_fixed_batch_graph_answers_as_the_dynamic_one(
    rows: np.ndarray, size: int
) -> None:
    dynamic = OnnxEngine(linear_detector(WIDTH), CPU1)
    fixed = OnnxEngine(_with_batch(linear_detector(WIDTH), size), CPU1)
    for n in SIZES:
        for method in METHODS:
            ours, theirs = getattr(fixed, method)(rows[:n]), getattr(dynamic, method)(rows[:n])
            assert ours.dtype == theirs.dtype, (n, method)
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{n} rows, {method}")


@pytest.mark.parametrize("size", [1, 8])
@pytest.mark.parametrize("detector", ["iforest", "ocsvm"])
def test_a_skl2onnx_fixed_batch_graph_answers_as_the_dynamic_one(
    request: pytest.FixtureRequest, rows: np.ndarray, detector: str, size: int
) -> None:
    estimator = request.getfixturevalue(detector)
    offset = float(np.ravel(estimator.offset_)[0])  # OneClassSVM's is an array of one
    dynamic = OnnxEngine(_skl2onnx(estimator, None), CPU1, offset=offset)
    fixed = OnnxEngine(_skl2onnx(estimator, size), CPU1, offset=offset)
    assert (dynamic.fixed_batch, fixed.fixed_batch) == (None, size)
    assert fixed.methods == dynamic.methods == frozenset(METHODS)
    for n in SIZES:
        for method in METHODS:
            ours, whole = getattr(fixed, method)(rows[:n]), getattr(dynamic, method)(rows[:n])
            assert ours.shape == whole.shape == (n,), (n, method)
            assert ours.dtype == whole.dtype, (n, method)
            expected = _runs_of(dynamic, method, rows[:n], size)
            np.testing.assert_array_equal(ours, expected, err_msg=f"{n} rows, {method}")
            np.testing.assert_allclose(ours, whole, rtol=1e-6, atol=1e-6)  # batch: an ulp apart
    np.testing.assert_array_equal(fixed.predict(rows), estimator.predict(rows))


def test_a_fixed_batch_is_reported_and_a_dynamic_one_is_not() -> None:
    fixed = OnnxEngine(_with_batch(linear_detector(WIDTH), 8), CPU1)
    assert fixed.fixed_batch == 8
    assert fixed.info()["fixed_batch"] == 8
    assert "fixed_batch=8" in repr(fixed)
    for model in (linear_detector(WIDTH), _with_batch(linear_detector(WIDTH), None)):
        dynamic = OnnxEngine(model, CPU1)  # a named dimension, or none given
        assert dynamic.fixed_batch is None
        assert dynamic.info()["fixed_batch"] is None
        assert "fixed_batch" not in repr(dynamic)


def test_a_fixed_batch_graph_keeps_its_width_error(rows: np.ndarray) -> None:
    fixed = OnnxEngine(_with_batch(linear_detector(WIDTH), 1), CPU1)
    wide = np.concatenate([rows, rows[:, :1]], axis=1)
    with pytest.raises(InputError, match=f"expected {WIDTH} features"):
        fixed.score_samples(wide)


def test_check_pair_passes_a_fixed_batch_graph(
    iforest: IsolationForest, rng_data: np.ndarray
) -> None:
    model = _with_batch(export(iforest, WIDTH, validate=False).model, 1)
    assert OnnxEngine(model, CPU1).fixed_batch == 1
    outcomes = check_pair(model, iforest, data=rng_data[:40], profile="dev")
    assert outcomes
    assert all(o.status == "pass" for o in outcomes), outcomes_table(outcomes)


@pytest.mark.slow
def test_check_pair_finds_the_same_in_a_fixed_batch_graph_as_in_its_dynamic_twin(
    iforest: IsolationForest, rng_data: np.ndarray
) -> None:
    # Plain skl2onnx: the dynamic graph has a finding of its own (NaN rows, which it routes
    # otherwise than scikit-learn); the fixed one finds that and nothing else.
    found = {
        batch: {
            o.check: o.status
            for o in check_pair(
                _skl2onnx(iforest, batch), iforest, data=rng_data[:40], profile="ci"
            )
        }
        for batch in (None, 1)
    }
    assert found[1] == found[None]


def _ort_error(model: onnx.ModelProto, X: np.ndarray) -> Exception:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    try:
        session.run(None, {session.get_inputs()[0].name: X})
    except Exception as exc:  # onnxruntime's own exception types
        return exc
    raise AssertionError("onnxruntime ran it")


def test_onnxruntime_errors_are_quoted_whole_on_one_line(rows: np.ndarray) -> None:
    raw = _ort_error(_with_batch(linear_detector(WIDTH), 1), rows[:3])
    assert "\n" in str(raw)  # onnxruntime's details follow a line break
    said = _ort_message(raw)
    assert "\n" not in said
    assert said.startswith("INVALID_ARGUMENT: Got invalid dimensions")
    assert "Got: 3 Expected: 1" in said


def test_a_failed_warm_up_quotes_onnxruntime_whole_on_one_line() -> None:
    model = linear_detector(WIDTH)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "F"  # width unknown
    model.graph.node.insert(0, onnx.helper.make_node("Reshape", ["X", "bad_shape"], ["X_bad"]))
    model.graph.node[1].input[0] = "X_bad"
    model.graph.initializer.append(
        onnx.numpy_helper.from_array(np.array([3, 3], dtype=np.int64), "bad_shape")
    )
    with pytest.raises(ModelLoadError, match="failed its warm-up run") as caught:
        OnnxEngine(model, CPU1)
    assert "\n" not in str(caught.value)
    assert "requested shape:{3,3}" in str(caught.value)  # the end of onnxruntime's message


def test_a_failed_run_quotes_onnxruntime_first_on_one_line(rows: np.ndarray) -> None:
    engine = OnnxEngine(fails_above_one_row(WIDTH), CPU1)
    with pytest.raises(
        InferenceError, match=r"^onnxruntime failed on a batch of shape \(5, 4\)"
    ) as caught:
        engine.decision_function(rows[:5])
    assert "\n" not in str(caught.value)
    assert "requested shape:{1,4}" in str(caught.value)  # the end of onnxruntime's message
