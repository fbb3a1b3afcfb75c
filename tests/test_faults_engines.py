"""Fault injection on the engines: hostile files, races on the model file, idle providers,
callers' mistakes behind a fallback, unbounded settings, and edge-case inputs (issue 14)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import skops.io as sio
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor

import engines.onnx_engine as onnx_engine_module
import engines.persistence as persistence_module
from engines import (
    EngineConfig,
    FallbackEngine,
    FallbackWarning,
    InputError,
    MethodUnavailableError,
    ModelLoadError,
    OnnxEngine,
    ProviderUnavailableError,
    SklearnEngine,
    UnsupportedModelError,
    create_engine,
)
from engines.config import MAX_THREADS
from engines.metadata import read_metadata
from engines.onnx_engine import placement_of
from engines.persistence import load_model, load_model_and_sha256
from tests._models import IR_VERSION, ONNX_OPSET, fails_above_one_row, linear_detector

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
ROWS = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)


def _save(path: Path, model: onnx.ModelProto) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _finishes(call: Callable[[], object], seconds: float = 10.0) -> BaseException | None:
    """Run ``call`` in a thread; fail the test if it has not returned within ``seconds``."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s (hung)"
    return outcome[0]


# -- the model is read once: hash, metadata, checks and session from the same bytes ---------


def test_a_model_replaced_during_load_is_the_one_hashed_and_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = linear_detector(offset=-1.5), linear_detector(offset=3.0)
    path = _save(tmp_path / "m.onnx", first)
    real_parse = onnx_engine_module._parse

    def parse_then_replace(payload: bytes, base_dir: Path | None, name: str) -> onnx.ModelProto:
        _save(path, second)  # another writer replaces the file after it was read
        return real_parse(payload, base_dir, name)

    monkeypatch.setattr(onnx_engine_module, "_parse", parse_then_replace)
    engine = OnnxEngine(path, CPU1)
    assert engine.model_sha256 == hashlib.sha256(first.SerializeToString()).hexdigest()
    assert engine.model_bytes() == first.SerializeToString()
    # The session runs the model that was hashed (offset -1.5), not the file now on disk.
    np.testing.assert_allclose(
        engine.decision_function(ROWS), -np.abs(ROWS).mean(axis=1) + 1.5, rtol=1e-6
    )


@pytest.mark.parametrize("in_memory", [True, False], ids=["ort-in-memory", "inlined"])
def test_external_data_is_read_once_from_the_model_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory: bool
) -> None:
    monkeypatch.setattr(
        onnx_engine_module,
        "_IN_MEMORY_EXTERNAL",
        in_memory and onnx_engine_module._IN_MEMORY_EXTERNAL,
    )
    path = tmp_path / "ext.onnx"
    onnx.save_model(
        linear_detector(offset=-1.5),
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.data",
        size_threshold=0,
    )
    data = (tmp_path / "ext.data").read_bytes()
    real_read = onnx_engine_module._read_external

    def read_then_corrupt(*args: Any) -> list[tuple[str, bytes]]:
        out = real_read(*args)
        (tmp_path / "ext.data").write_bytes(b"\xff" * len(data))  # replaced after the read
        return out

    monkeypatch.setattr(onnx_engine_module, "_read_external", read_then_corrupt)
    engine = OnnxEngine(path, CPU1)
    assert engine.info()["external_data_sha256"] == {"ext.data": hashlib.sha256(data).hexdigest()}
    np.testing.assert_allclose(
        engine.decision_function(ROWS), -np.abs(ROWS).mean(axis=1) + 1.5, rtol=1e-6
    )


def test_external_data_through_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\x00" * 64)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
    model = linear_detector()
    tensor = next(t for t in model.graph.initializer if t.name == "minus_one")
    onnx.external_data_helper.set_external_data(tensor, location="link.bin")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        OnnxEngine(_save(folder / "m.onnx", model), CPU1)


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory"])
def test_only_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model.onnx"
    if kind == "dev-zero":
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero on this system")
        path.symlink_to("/dev/zero")
        expected = "character device"
    elif kind == "fifo":
        os.mkfifo(path)  # no writer: a blocking open would wait forever
        expected = "FIFO (named pipe)"
    else:
        path.mkdir()
        expected = "directory"
    start = time.perf_counter()
    for load in (lambda: OnnxEngine(path, CPU1), lambda: read_metadata(path)):
        error = _finishes(load)
        assert isinstance(error, ModelLoadError)
        assert f"{path} is a {expected}, not a regular file" in str(error)
    assert time.perf_counter() - start < 5


def test_model_size_limit_names_the_setting(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.onnx", linear_detector())
    size = path.stat().st_size
    with pytest.raises(ModelLoadError, match=r"over the limit of 100 bytes.*max_model_bytes"):
        OnnxEngine(path, CPU1.replace(max_model_bytes=100))
    assert OnnxEngine(path, CPU1.replace(max_model_bytes=size)).model_sha256
    assert EngineConfig.from_env({"ONNX_MAX_MODEL_BYTES": "1234"}).max_model_bytes == 1234
    with pytest.raises(ValueError, match="ONNX_MAX_MODEL_BYTES"):
        EngineConfig.from_env({"ONNX_MAX_MODEL_BYTES": "-1"})


def test_external_data_counts_towards_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save_model(
        linear_detector(),
        path,
        save_as_external_data=True,
        location="ext.data",
        size_threshold=0,
    )
    limit = path.stat().st_size + 4  # the model fits, its data does not
    with pytest.raises(ModelLoadError, match=r"external data of .*share one limit"):
        OnnxEngine(path, CPU1.replace(max_model_bytes=limit))


def test_persistence_reads_one_regular_file_of_bounded_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = IsolationForest(n_estimators=3, random_state=0).fit(ROWS)
    second = IsolationForest(n_estimators=5, random_state=1).fit(ROWS)
    path = tmp_path / "det.skops"
    path.write_bytes(sio.dumps(first))
    original = path.read_bytes()
    real_load = persistence_module._load_skops

    def load_after_replace(where: Path, data: bytes, trusted: Any) -> Any:
        path.write_bytes(sio.dumps(second))  # replaced after the one read
        return real_load(where, data, trusted)

    monkeypatch.setattr(persistence_module, "_load_skops", load_after_replace)
    estimator, sha256 = load_model_and_sha256(path)
    assert sha256 == hashlib.sha256(original).hexdigest()
    assert len(estimator.estimators_) == 3  # the hashed model, not the replacement
    monkeypatch.undo()

    with pytest.raises(ModelLoadError, match="over the limit of 10 bytes"):
        load_model(path, max_bytes=10)
    with pytest.raises(ModelLoadError, match="over the limit"):
        create_engine(path, CPU1.replace(max_model_bytes=10))
    fifo = tmp_path / "pipe.skops"
    os.mkfifo(fifo)
    error = _finishes(lambda: load_model(fifo))
    assert isinstance(error, ModelLoadError)
    assert "FIFO" in str(error)


# -- a provider is active only where it runs nodes ------------------------------------------


def test_a_registered_provider_that_runs_no_node_is_not_active() -> None:
    if "AzureExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime {ort.__version__} has no AzureExecutionProvider to probe")
    azure = EngineConfig(provider="AzureExecutionProvider", intra_op_threads=1)
    with pytest.raises(ProviderUnavailableError, match=r"runs none of the graph's \d+ nodes"):
        OnnxEngine(linear_detector(), azure)
    engine = OnnxEngine(linear_detector(), azure.replace(strict_provider=False))
    info = engine.info()
    assert "AzureExecutionProvider" in info["registered_providers"]
    assert info["active_providers"] == ["CPUExecutionProvider"]
    assert info["placement"] == "single"
    assert info["is_fallback"] is True
    assert "running on CPUExecutionProvider" in info["fallback_reason"]


def test_placement_is_recorded_once_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = OnnxEngine(linear_detector(), CPU1)

    def not_again() -> None:
        raise AssertionError("placement asked of the session after load")

    monkeypatch.setattr(engine._session, "get_provider_graph_assignment_info", not_again)
    info = engine.info()
    assert info["placement"] == "single"
    assert set(info["nodes_per_provider"]) == {"CPUExecutionProvider"}


def test_mixed_and_unknown_placements_are_reported() -> None:
    registered = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    mixed = placement_of(
        registered,
        {"CPUExecutionProvider": 3, "CUDAExecutionProvider": 10},
        "CUDAExecutionProvider",
    )
    assert (mixed.kind, mixed.active, mixed.idle_reason) == ("mixed", tuple(registered), None)
    idle = placement_of(registered, {"CPUExecutionProvider": 13}, "CUDAExecutionProvider")
    assert (idle.kind, idle.active) == ("single", ("CPUExecutionProvider",))
    assert idle.idle_reason is not None
    assert "none of the graph's 13 nodes" in idle.idle_reason
    unknown = placement_of(registered, None, "CUDAExecutionProvider")
    assert (unknown.kind, unknown.active) == ("unknown", tuple(registered))


# -- a fallback switches for engine failures only ------------------------------------------


def _label_only_pair() -> tuple[OnnxEngine, FallbackEngine]:
    primary = OnnxEngine(linear_detector(outputs=("label",)), CPU1)
    return primary, FallbackEngine(
        primary, SklearnEngine(LocalOutlierFactor(novelty=True).fit(ROWS))
    )


def test_a_method_neither_engine_answers_switches_nothing() -> None:
    primary = OnnxEngine(linear_detector(outputs=("label",)), CPU1)  # predict only
    density = SklearnEngine(GaussianMixture(1, random_state=0).fit(ROWS))  # score_samples only
    engine = FallbackEngine(primary, density)
    with pytest.raises(MethodUnavailableError, match="neither engine answers decision_function"):
        engine.decision_function(ROWS)
    assert engine.info()["is_fallback"] is False
    np.testing.assert_array_equal(engine.predict(ROWS), primary.predict(ROWS))


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 3), np.float32), np.zeros(4, np.float32), [["a", "b", "c", "d"]]],
    ids=["wrong-width", "one-dimensional", "strings"],
)
def test_bad_input_behind_a_fallback_switches_nothing(bad: Any) -> None:
    primary, engine = _label_only_pair()
    with pytest.raises(InputError):
        engine.predict(bad)
    assert engine.info()["is_fallback"] is False
    assert engine.active is primary


def test_a_genuine_run_failure_still_switches() -> None:
    reference = SklearnEngine(IsolationForest(n_estimators=3, random_state=0).fit(ROWS))
    engine = FallbackEngine(OnnxEngine(fails_above_one_row(), CPU1), reference)
    with pytest.warns(FallbackWarning, match="failed on decision_function"):
        engine.decision_function(ROWS)
    assert engine.info()["is_fallback"] is True


# -- bounds on settings ----------------------------------------------------------------------


def test_huge_thread_counts_are_refused_at_once_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert max(16, 4 * (os.cpu_count() or 1)) == MAX_THREADS
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"ONNX_THREADS=100000 is too many threads: at most"):
        EngineConfig.from_env({"ONNX_THREADS": "100000"})
    with pytest.raises(ValueError, match="intra_op_threads=100000 is too many"):
        EngineConfig(intra_op_threads=100_000)
    with pytest.raises(ValueError, match="inter_op_threads=100000 is too many"):
        EngineConfig(inter_op_threads=100_000)
    monkeypatch.setenv("ONNX_THREADS", "100000")
    with pytest.raises(ValueError, match="ONNX_THREADS") as error:
        create_engine(linear_detector())
    assert "IR version" not in str(error.value)
    assert time.perf_counter() - start < 1
    assert EngineConfig(intra_op_threads=MAX_THREADS).intra_op_threads == MAX_THREADS


def test_a_load_failure_unrelated_to_versions_does_not_blame_them() -> None:
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("decision_function", TensorProto.FLOAT, ["N"])
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["X"], ["decision_function"], domain="example.custom")],
        "unknown_op",
        [x],
        [y],
    )
    model = helper.make_model(
        graph,
        ir_version=IR_VERSION,
        opset_imports=[
            helper.make_opsetid("", ONNX_OPSET),
            helper.make_opsetid("example.custom", 1),
        ],
    )
    with pytest.raises(ModelLoadError, match="cannot load") as error:
        OnnxEngine(model, CPU1)
    assert "ir_version" not in str(error.value)


# -- smaller input faults ----------------------------------------------------------------------


def _float64_scores(n_features: int = 4) -> onnx.ModelProto:
    """float32 input, float64 score_samples: -mean(|x|) cast to double."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", n_features])
    y = helper.make_tensor_value_info("score_samples", TensorProto.DOUBLE, ["N"])
    nodes = [
        helper.make_node("Abs", ["X"], ["abs"]),
        helper.make_node("ReduceMean", ["abs"], ["mean"], axes=[1], keepdims=0),
        helper.make_node("Neg", ["mean"], ["neg"]),
        helper.make_node("Cast", ["neg"], ["score_samples"], to=TensorProto.DOUBLE),
    ]
    graph = helper.make_graph(nodes, "float64_scores", [x], [y])
    return helper.make_model(
        graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", ONNX_OPSET)]
    )


def test_empty_batches_answer_in_the_dtype_of_other_calls() -> None:
    engines: list[Any] = [
        OnnxEngine(_float64_scores(), CPU1, offset=-0.5),
        SklearnEngine(LocalOutlierFactor(novelty=True).fit(ROWS)),  # float32 in, float32 out
        SklearnEngine(IsolationForest(n_estimators=3, random_state=0).fit(ROWS)),
    ]
    for engine in engines:
        for method in sorted(engine.methods):
            full = getattr(engine, method)(ROWS[:3])
            empty = getattr(engine, method)(ROWS[:0])
            assert (empty.shape, empty.dtype) == ((0,), full.dtype), (engine, method)


def test_dataframe_columns_are_matched_by_name_whatever_their_type() -> None:
    names: dict[str, object] = {"feature_names": ["0", "1", "2", "3"]}
    engine = OnnxEngine(linear_detector(offset=-1.5, metadata=names), CPU1)
    order = [3, 1, 0, 2]
    shuffled = pd.DataFrame(ROWS[:, order], columns=order)  # int labels, another order
    np.testing.assert_array_equal(engine.score_samples(shuffled), engine.score_samples(ROWS))
    for columns, message in [
        ([0, 1, 2, 9], r"missing \['3'\], unexpected \['9'\]"),
        ([0, 0, 1, 2], r"duplicated \['0'\]"),
    ]:
        with pytest.raises(InputError, match=message):
            engine.score_samples(pd.DataFrame(ROWS, columns=columns))
    fitted = IsolationForest(n_estimators=3, random_state=0)
    fitted.fit(pd.DataFrame(ROWS, columns=list("abcd")))
    reference = SklearnEngine(fitted)
    reordered = pd.DataFrame(ROWS[:, order], columns=[list("abcd")[i] for i in order])
    np.testing.assert_array_equal(
        reference.score_samples(reordered),
        fitted.score_samples(pd.DataFrame(ROWS, columns=list("abcd"))),
    )


def test_values_beyond_float32_are_refused_as_such_or_cast_like_scikit_learn() -> None:
    huge = np.array([[1e39, 0.0, 0.0, 0.0]])
    refusing = OnnxEngine(linear_detector(metadata={"accepts_inf": False}), CPU1)
    with pytest.raises(InputError, match="beyond float32's range") as error:
        refusing.score_samples(huge)
    assert "infinity, which" in str(error.value)
    assert "contains infinity" not in str(error.value)
    with pytest.raises(InputError, match="beyond float32's range"):
        refusing.score_samples(pd.DataFrame(huge))
    with pytest.raises(InputError, match="input contains infinity"):
        refusing.score_samples(np.array([[np.inf, 0.0, 0.0, 0.0]]))
    # Where the estimator accepts infinity: cast to +-inf, as scikit-learn's float32 cast does.
    accepting = OnnxEngine(linear_detector(metadata={"accepts_inf": True}), CPU1)
    as_inf = np.array([[np.inf, 0.0, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(accepting.score_samples(huge), accepting.score_samples(as_inf))
    forest = IsolationForest(n_estimators=3, random_state=0).fit(ROWS)  # casts to float32
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(forest.score_samples(huge), forest.score_samples(as_inf))


# -- graphs that are not anomaly detectors -------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda X: KMeans(3, n_init=1, random_state=0).fit(X),
        lambda X: LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)),
    ],
    ids=["kmeans", "logistic-regression"],
)
def test_non_detector_graphs_are_refused_at_load(make: Callable[[np.ndarray], Any]) -> None:
    graph = to_onnx(make(ROWS), ROWS[:1], target_opset=ONNX_OPSET)
    with pytest.raises(UnsupportedModelError, match="is not an anomaly detector"):
        OnnxEngine(graph, CPU1)
