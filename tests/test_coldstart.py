"""Cold start: the fresh-process measurement, its failures, storage, report and options."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from engines import EngineConfig
from harness.cli import build_parser, main
from harness.reports.report import _cold_start_section, render_markdown
from harness.results.store import ResultsError, load_result
from harness.run import _bench_args, _split_by_provider
from harness.timing import coldstart
from harness.timing.coldstart import (
    REPEATS,
    ColdStartTarget,
    cold_start_entry,
    measure,
    measure_all,
    model_facts,
    session_settings,
)
from harness.timing.points import Selection
from tests._models import IR_VERSION, ONNX_OPSET, linear_detector
from tests._results import bench_row, result_payload

_SETTINGS = session_settings(EngineConfig(intra_op_threads=1, allow_spinning=False))


def _target(path: Path, *, n_features: int = 4, case: str = "linear") -> ColdStartTarget:
    return ColdStartTarget(
        case=case,
        engine="onnx-user",
        exporter=None,
        provider="cpu",
        threads=1,
        model_path=path,
        model_sha256="ab" * 32,
        export_seconds=None,
        row=tuple(0.25 * i for i in range(n_features)),
        settings=_SETTINGS,
    )


# -- the measurement ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_fresh_process_measures_import_sessions_first_call_and_memory(
    tmp_path: Path, dtype: type[np.floating]
) -> None:
    model = linear_detector(dtype=dtype)
    path = tmp_path / "linear.onnx"
    onnx.save_model(model, path)
    ballast = b"\x01" * (128 * 2**20)  # resident in this process, never in the child's figures
    entry = cold_start_entry(_target(path))
    assert "error" not in entry, entry
    assert entry["bytes"] == path.stat().st_size
    assert entry["nodes"] == len(model.graph.node)
    assert entry["function_nodes"] == 0
    assert entry["onnxruntime"] == ort.__version__
    assert entry["session_creations"] == REPEATS  # a tiny model stays within the budget
    for key in ("import_seconds", "session_seconds_first", "session_seconds_median"):
        assert 0 < entry[key] < 30, (key, entry[key])
    assert 0 < entry["first_call_seconds"] < 30
    assert 0 < entry["rss_after_import_bytes"] <= entry["peak_rss_bytes"]
    if sys.platform.startswith("linux"):  # the child's own memory, not this process's peak
        assert entry["peak_rss_bytes"] < len(ballast)
    assert (entry["case"], entry["engine"], entry["provider"], entry["threads"]) == (
        "linear",
        "onnx-user",
        "cpu",
        1,
    )


def test_facts_count_function_nodes_and_external_data(tmp_path: Path) -> None:
    double = helper.make_function(
        "local", "Double", ["x"], ["y"], [helper.make_node("Add", ["x", "x"], ["y"])], []
    )
    weights = onnx.numpy_helper.from_array(np.arange(4096, dtype=np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Double", ["X"], ["d"], domain="local"),
            helper.make_node("Add", ["d", "w"], ["Y"]),
        ],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [4096])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4096])],
        initializer=[weights],
    )
    model = helper.make_model(
        graph,
        ir_version=IR_VERSION,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid("local", 1)],
        functions=[double],
    )
    path = tmp_path / "f.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="f.onnx.data")
    data = tmp_path / "f.onnx.data"
    assert data.stat().st_size >= 4096 * 4
    facts = model_facts(path)
    assert facts == {
        "bytes": path.stat().st_size + data.stat().st_size,
        "nodes": 2,
        "function_nodes": 1,
    }


def test_a_model_that_cannot_load_is_an_error_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not a protobuf at all")
    entry = cold_start_entry(_target(path))
    assert "cannot read the model" in entry["error"]
    assert "INVALID_PROTOBUF" in entry["error"] or "Protobuf" in entry["error"]
    assert entry["session_seconds_first"] is None
    assert entry["session_seconds_median"] is None
    assert entry["import_seconds"] > 0  # measured up to the failure
    assert entry["onnxruntime"] == ort.__version__
    assert coldstart.describe(entry).startswith("failed: ")


def test_a_child_past_its_timeout_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "linear.onnx"
    onnx.save_model(linear_detector(), path)
    assert measure(path, _SETTINGS, [0.0] * 4, timeout=0.001) == {
        "error": "timed out after 0.001 s"
    }


def test_interrupt_keeps_what_was_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake(target: ColdStartTarget, *, timeout: float) -> dict[str, Any]:
        calls.append(target.case)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {"case": target.case, "session_seconds_median": 0.001}

    monkeypatch.setattr(coldstart, "cold_start_entry", fake)
    lines: list[str] = []
    targets = [_target(Path("x.onnx"), case=c) for c in ("a", "b", "c")]
    entries, interrupted = measure_all(targets, lines.append)
    assert interrupted
    assert entries == [{"case": "a", "session_seconds_median": 0.001}]
    assert calls == ["a", "b"]
    assert lines[0].startswith("harness: cold start 1/3 a onnx-user cpu t1: session 1 ms")
    assert lines[1] == "harness: cold start interrupted at 2/3 b onnx-user cpu t1"


# -- stored and reported ----------------------------------------------------------------------


def _entry(version: str, median: float | None, **changes: Any) -> dict[str, Any]:
    entry = {
        "case": "iforest-300",
        "engine": "onnx-skl2onnx",
        "exporter": "skl2onnx",
        "model_sha256": "c0" * 32,
        "provider": "cpu",
        "threads": 1,
        "bytes": 2_400_000,
        "nodes": 8113,
        "function_nodes": 0,
        "export_seconds": 27.0,
        "import_seconds": 0.2,
        "session_seconds_first": None if median is None else median * 1.1,
        "session_seconds_median": median,
        "session_creations": 5,
        "first_call_seconds": 0.0004,
        "rss_after_import_bytes": 50 * 2**20,
        "peak_rss_bytes": 90 * 2**20,
        "onnxruntime": version,
    }
    return {**entry, **changes}


def _stored(tmp_path: Path, name: str, cold: Any, version: str = "1.32.0") -> Path:
    data = result_payload([bench_row("iforest-300", "onnx-skl2onnx", 1, [1e-3] * 5)])
    data["harness"]["versions"]["onnxruntime"] = version
    data["harness"]["cold_start"] = cold
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_store_reads_cold_start_entries_also_failed_ones(tmp_path: Path) -> None:
    failed = {"case": "x", "engine": "onnx-user", "provider": "cpu", "error": "timed out"}
    failed |= dict.fromkeys(["bytes", "nodes", "session_seconds_median", "peak_rss_bytes"])
    result = load_result(_stored(tmp_path, "0001_a.json", [_entry("1.32.0", 0.2), failed]))
    assert len(result.harness["cold_start"]) == 2


@pytest.mark.parametrize(
    ("cold", "field"),
    [
        ({"case": "x"}, "harness.cold_start must be an array"),
        (["x"], "harness.cold_start[0] must be an object"),
        ([{"engine": "onnx-native"}], "harness.cold_start[0].case is missing"),
        ([_entry("1.32.0", 0.2, bytes="2.4 MB")], "harness.cold_start[0].bytes must be"),
        ([_entry("1.32.0", 0.2, nodes=1.5)], "harness.cold_start[0].nodes must be"),
        ([_entry("1.32.0", -0.2)], "harness.cold_start[0].session_seconds_first must be"),
        (
            [_entry("1.32.0", 0.2, first_call_seconds=float("nan"))],
            "harness.cold_start[0].first_call_seconds must be",
        ),
        ([_entry("1.32.0", 0.2, peak_rss_bytes=True)], "cold_start[0].peak_rss_bytes must be"),
        ([_entry("1.32.0", 0.2, onnxruntime=1.32)], "cold_start[0].onnxruntime must be"),
    ],
)
def test_store_refuses_a_malformed_cold_start_block(tmp_path: Path, cold: Any, field: str) -> None:
    with pytest.raises(ResultsError, match=re.escape(field)):
        load_result(_stored(tmp_path, "0001_a.json", cold))


def test_report_puts_a_models_runtimes_side_by_side(tmp_path: Path) -> None:
    native = {"case": "iforest-300", "engine": "onnx-native", "exporter": "native"}
    new = load_result(
        _stored(
            tmp_path,
            "0002_b.json",
            [
                _entry("1.32.0", 0.213),
                _entry("1.32.0", 0.007, **native, bytes=600_000, nodes=8, export_seconds=0.05),
            ],
        )
    )
    old = load_result(
        _stored(
            tmp_path,
            "0001_a.json",
            [
                _entry("1.22.1", 28.0),
                _entry("1.22.1", None, **native, error="NOT_IMPLEMENTED: TreeEnsemble"),
            ],
            version="1.22.1",
        )
    )
    lines = _cold_start_section([new, old])
    assert lines[1] == "## Cold start"
    rows = [line for line in lines if line.startswith("| iforest-300")]
    assert [(r.split(" | ")[1], r.split(" | ")[2]) for r in rows] == [
        ("onnx-native@cpu t1", "1.22.1"),
        ("onnx-native@cpu t1", "1.32.0"),
        ("onnx-skl2onnx@cpu t1", "1.22.1"),
        ("onnx-skl2onnx@cpu t1", "1.32.0"),
    ]
    assert rows[0].split(" | ")[6] == "failed"
    assert rows[1] == (
        "| iforest-300 | onnx-native@cpu t1 | 1.32.0 | 600 kB | 8 | 0.05 | 7 (7.7) | 0.4 "
        "| 90 | +40 |"
    )
    assert "| 2.4 MB | 8,113 | 27 | 28,000 (30,800) |" in rows[2]
    assert lines[-1] == (
        "Cold start of iforest-300 onnx-native@cpu t1 on onnxruntime 1.22.1: "
        "NOT_IMPLEMENTED: TreeEnsemble"
    )
    md = render_markdown([new])
    assert md.index("## Parity") < md.index("## Cold start") < md.index("## Skipped")
    assert "| 1.22.1 |" not in md  # the report shows what it is given, nothing more


def test_each_provider_file_keeps_its_own_cold_starts() -> None:
    rows = [
        bench_row("a", "onnx-native", 1, [1e-3] * 5, provider="cpu"),
        bench_row("a", "onnx-native", 1, [1e-3] * 5, provider="cuda"),
    ]
    data = result_payload(rows)
    data["harness"]["cold_start"] = [
        _entry("1.32.0", 0.1, provider="cpu"),
        _entry("1.32.0", 0.1, provider="cuda"),
    ]
    parts = _split_by_provider(data, ("cpu", "cuda", "tensorrt"))
    assert sorted(parts) == ["cpu", "cuda"]
    for provider, part in parts.items():
        assert [e["provider"] for e in part["harness"]["cold_start"]] == [provider]


# -- options --------------------------------------------------------------------------------


def test_no_cold_start_reaches_the_benchmark_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = build_parser()
    assert parser.parse_args(["run"]).no_cold_start is False
    assert parser.parse_args(["run", "--no-cold-start"]).no_cold_start is True
    json_path = tmp_path / "b.json"
    assert "--harness-no-cold-start" not in _bench_args(Selection(), json_path, False)
    assert "--harness-no-cold-start" in _bench_args(Selection(), json_path, False, False)
    seen: dict[str, Any] = {}

    def fake_run(selection: Selection, **kwargs: Any) -> Any:
        seen.update(kwargs)  # no work: only the arguments matter here
        return SimpleNamespace(exit_code=0)

    monkeypatch.setattr("harness.run.run", fake_run)
    assert main(["run", "--no-cold-start", "--no-store", "--out", str(tmp_path / "o")]) == 0
    assert seen["cold_start"] is False
    assert main(["run", "--no-store", "--out", str(tmp_path / "o")]) == 0
    assert seen["cold_start"] is True


_SESSION_TEST = """
def test_time(benchmark, harness_session):
    from harness.timing.prepare import build_points

    (point,) = build_points(harness_session.selection)
    runner = harness_session.runner(point)
    benchmark.extra_info.update(
        runner.info, engine=point.engine, provider_requested=point.provider, batch_size=1, threads=1
    )
    benchmark.pedantic(runner.fn, args=(runner.batch(1),), rounds=2, iterations=1)
"""


def _bench_session(tmp_path: Path, name: str, *extra: str) -> tuple[int, Path, Path]:
    """A pytest-benchmark session timing a tiny user model: (exit code, its JSON, the model).

    Run inside an xdist worker (``make test``), the nested session must not read as one:
    pytest-benchmark disables itself when it sees PYTEST_XDIST_WORKER."""
    with pytest.MonkeyPatch.context() as patch:
        for name_ in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
            patch.delenv(name_, raising=False)
        return _nested_bench_session(tmp_path, name, *extra)


def _nested_bench_session(tmp_path: Path, name: str, *extra: str) -> tuple[int, Path, Path]:
    model = tmp_path / "linear.onnx"
    onnx.save_model(linear_detector(), model)
    test_file = tmp_path / f"test_tiny_{name}.py"  # a module name of its own
    test_file.write_text(_SESSION_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out = tmp_path / "bench.json"
    args = [str(test_file), "-c", str(tmp_path / "pytest.ini"), "--import-mode=importlib"]
    args += ["--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-p", "no:xdist", "-q"]
    args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    args += ["--benchmark-enable", "--benchmark-json", str(out)]
    args += ["--harness-model", str(model), "--harness-batch-sizes", "1", "--harness-threads", "1"]
    return int(pytest.main([*args, *extra])), out, model


@pytest.mark.parametrize("cold_start", [True, False])
def test_a_benchmark_session_records_cold_start_unless_told_not_to(
    tmp_path: Path, cold_start: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = () if cold_start else ("--harness-no-cold-start",)
    code, out, model = _bench_session(tmp_path, str(cold_start), *extra)
    assert code == 0
    printed = capsys.readouterr().out
    block = load_result(out).harness  # what a benchmark session writes, the store reads
    if not cold_start:
        assert "cold_start" not in block
        assert "harness: cold start" not in printed
        return
    (entry,) = block["cold_start"]
    assert "error" not in entry, entry
    assert (entry["case"], entry["engine"], entry["provider"]) == ("linear", "onnx-user", "cpu")
    assert entry["model_sha256"] == load_result(out).benchmarks[0]["extra_info"]["model_sha256"]
    assert entry["bytes"] == model.stat().st_size
    assert entry["export_seconds"] is None  # the user's file: not exported here
    assert entry["onnxruntime"] == block["versions"]["onnxruntime"]
    assert "harness: cold start 1/1 linear onnx-user cpu t1: session " in printed


def test_ctrl_c_during_the_cold_start_interrupts_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmarks are kept, marked interrupted, and pytest exits as interrupted: what
    ``harness run`` stores as an interrupted run, never as a complete one."""
    monkeypatch.setattr(coldstart, "measure_all", lambda targets, say: ([], True))
    code, out, _ = _bench_session(tmp_path, "interrupted")
    assert code == int(pytest.ExitCode.INTERRUPTED)
    result = load_result(out)
    assert result.interrupted
    assert len(result.benchmarks) == 1
    assert "cold_start" not in result.harness
