"""Fault injection on result files, their readers, output locations and interrupted runs.

Every reader of result files (gate, report, history, compare) goes through one loader: a
malformed file makes ``gate`` exit 2 naming the file and the field, and is skipped with one
line by the others; never a traceback, never exit 1 or 4. Output locations are refused
before any work; a write that fails after the work keeps what was made and says where. An
interrupted ``harness run`` exits 130, is never stored as a complete run and leaves no
temporary folder.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import harness.results.store
from harness.cli import main
from harness.reports.rows import latest_runs
from harness.results.store import (
    ResultFile,
    keep_somewhere,
    load_result,
    run_order,
    scan_results,
    write_result,
)
from tests._results import bench_row, plain_payload, plain_row, result_payload, sample_rows

ROOT = Path(__file__).resolve().parents[1]


def _good() -> dict[str, Any]:
    """A small valid harness result: one case, scikit-learn and native ONNX at batch 1."""
    return result_payload([r for r in sample_rows() if r["extra_info"]["batch_size"] == 1][:2])


def _cli(*argv: str) -> tuple[int, str, str]:
    """``harness ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _no_crash(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    assert code != 4, err


# -- malformed files: every named fault -------------------------------------------------


def _mutated(change: Any) -> bytes:
    data = _good()
    change(data)
    return json.dumps(data).encode()


def _set(path: str, value: Any) -> Any:
    """A change that sets a dotted path (``benchmarks.0.stats.median``) to ``value``."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


_DELETE = object()


def _mutated_plain(change: Any) -> bytes:
    """A plain pytest-benchmark file, changed."""
    data = plain_payload([plain_row("tests/test_speed.py::test_sum", [1e-3] * 5)])
    change(data)
    return json.dumps(data).encode()


#: name: (file content, the field or reason the gate must name)
FAULTS: dict[str, tuple[bytes, str]] = {
    "not UTF-8": (b'{"harness": "\xff\xfe"}', "not UTF-8"),
    "nested 5000 deep": (b"[" * 5000 + b"]" * 5000, "nested"),
    "nested objects 200 deep": (b'{"a":' * 200 + b"1" + b"}" * 200, "nested more than 64 levels"),
    "integer of 5000 digits": (b"1" * 5000, "not a result file"),
    "empty file": (b"", "not valid JSON"),
    "a string at the top": (b'"results"', "top level is a JSON string"),
    "a list at the top": (b"[1, 2]", "top level is a JSON array"),
    "harness block a string": (_mutated(_set("harness", "x")), "'harness' block must be"),
    "unknown schema": (_mutated(_set("harness.schema_version", 2)), "schema_version 2"),
    "benchmarks an object": (_mutated(_set("benchmarks", {})), "benchmarks must be an array"),
    "row a list": (_mutated(_set("benchmarks.0", [])), "benchmarks[0] must be an object"),
    "stats missing": (_mutated(_set("benchmarks.0.stats", _DELETE)), "benchmarks[0].stats is"),
    "median missing": (
        _mutated(_set("benchmarks.0.stats.median", _DELETE)),
        "benchmarks[0].stats.median is missing",
    ),
    "median zero": (_mutated(_set("benchmarks.1.stats.median", 0)), "stats.median must be"),
    "median negative": (_mutated(_set("benchmarks.1.stats.median", -1e-3)), "stats.median"),
    "median NaN": (_mutated(_set("benchmarks.1.stats.median", float("nan"))), "got NaN"),
    "median a string": (_mutated(_set("benchmarks.1.stats.median", "1ms")), "stats.median"),
    "sample zero": (_mutated(_set("benchmarks.0.stats.data.3", 0.0)), "stats.data[3]"),
    "sample negative": (_mutated(_set("benchmarks.0.stats.data.0", -2.0)), "stats.data[0]"),
    "sample infinite": (_mutated(_set("benchmarks.0.stats.data.0", float("inf"))), "Infinity"),
    "sample beyond float": (_mutated(_set("benchmarks.0.stats.data.0", 10**400)), "data[0]"),
    "samples a string": (_mutated(_set("benchmarks.0.stats.data", "x")), "stats.data must be"),
    "batch size a string": (
        _mutated(_set("benchmarks.1.extra_info.batch_size", "1")),
        "extra_info.batch_size must be an integer >= 1",
    ),
    "batch size zero": (_mutated(_set("benchmarks.1.extra_info.batch_size", 0)), "batch_size"),
    "engine missing": (
        _mutated(_set("benchmarks.1.extra_info.engine", _DELETE)),
        "extra_info.engine is missing",
    ),
    "case a list": (_mutated(_set("benchmarks.1.extra_info.case", ["x"])), "extra_info.case"),
    "provider a list": (
        _mutated(_set("benchmarks.1.extra_info.provider_active", ["CPU"])),
        "extra_info.provider_active must be a string",
    ),
    "p50 a string": (_mutated(_set("benchmarks.1.extra_info.p50_ms", "1")), "p50_ms"),
    "extra_info null": (_mutated(_set("benchmarks.1.extra_info", None)), "extra_info must be"),
    "machine_id a list": (_mutated(_set("harness.machine_id", [1])), "harness.machine_id"),
    "git a string": (_mutated(_set("harness.git", "abc")), "harness.git must be an object"),
    "skipped reasons numbers": (
        _mutated(_set("harness.skipped", [{"id": 1, "reason": 2}])),
        "harness.skipped[0].id",
    ),
    "conformance row of another kind": (
        _mutated(_set("harness.conformance", [{"case": "x", "verdict": "ok"}])),
        "harness.conformance[0]",
    ),
    "paired a string": (_mutated(_set("harness.paired", "yes")), "harness.paired"),
    # accepted silently and placed anywhere in the run order before
    "datetime not a time": (
        _mutated(_set("datetime", "yesterday")),
        'datetime must be an ISO 8601 time such as 2026-11-25T09:00:00+00:00, got "yesterday"',
    ),
    "plain file without datetime": (
        _mutated_plain(_set("datetime", _DELETE)),
        "datetime is missing: pytest-benchmark writes when the run was made",
    ),
}


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.json"
    path.write_text(json.dumps(_good()))
    return path


def _twin(path: Path, folder: Path) -> Path:
    """A copy of a result file in ``folder``: a gate's other side (the gate refuses a file
    gated against itself)."""
    twin = folder / f"twin-{path.name}"
    shutil.copyfile(path, twin)
    return twin


@pytest.mark.parametrize("fault", FAULTS)
def test_gate_exits_2_naming_the_file_and_the_field(
    fault: str, good_file: Path, tmp_path: Path
) -> None:
    content, field = FAULTS[fault]
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    for baseline, candidate in ((good_file, bad), (bad, good_file)):
        code, _, err = _cli("gate", str(baseline), str(candidate))
        _no_crash(code, err)
        assert code == 2, err
        assert f"harness gate: {bad}: " in err
        assert field in err


def test_report_history_compare_skip_each_malformed_file(tmp_path: Path) -> None:
    """One folder holds a good run and every fault: each fault is one line naming the file,
    the good run is reported."""
    store = tmp_path / "results" / "test-cpu-2c" / "cpu"
    store.mkdir(parents=True)
    good = store / "0001_aaaaaaa_20260101T000000Z.json"
    good.write_text(json.dumps(_good()))
    bad = {}
    for i, (fault, (content, _)) in enumerate(FAULTS.items()):
        bad[fault] = store / f"{i + 2:04d}_bbbbbbb_20260101T000000Z.json"
        bad[fault].write_bytes(content)
    results = str(tmp_path / "results")
    for command in ("report", "history"):
        code, out, err = _cli(command, results, "--out", str(tmp_path / command))
        _no_crash(code, err)
        assert code == 0, err
        lines = err.strip().splitlines()
        assert len(lines) == len(FAULTS)
        for path in bad.values():
            assert sum(line.startswith(f"harness {command}: skipped {path}: ") for line in lines)
    assert "| iforest-100 | onnx-native@cpu t1 |" in (tmp_path / "report" / "report.md").read_text()
    assert "iforest-100[onnx-native]-b1-t1" in (tmp_path / "history" / "history.md").read_text()
    code, out, err = _cli("compare", str(good), results)
    _no_crash(code, err)
    assert code == 0, err
    assert len(err.strip().splitlines()) == len(FAULTS)
    assert "| iforest-100 | onnx-native | 1 | 1 | cpu |" in out


# -- malformed files: generated ----------------------------------------------------------

_KEYS = st.sampled_from(
    ["harness", "benchmarks", "machine_info", "schema_version", "stats", "median", "data", "name"]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.just(1)  # schema_version 1: lets generated files reach the field checks
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_KEYS | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)
_GARBAGE = st.one_of(
    st.binary(max_size=64),
    _JSON.map(lambda value: json.dumps(value).encode()),
    st.integers(65, 20_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(65, 2_000).map(lambda n: b'{"benchmarks":' * n + b"[]" + b"}" * n),
)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path (keys and indices) inside a JSON value."""
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in children:
        yield (*here, key)
        yield from _paths(child, (*here, key))


_GOOD = _good()
_GOOD_PATHS = sorted(_paths(_GOOD), key=repr)


@st.composite
def _mutants(draw: st.DrawFn) -> tuple[bytes, tuple[Any, ...]]:
    """A valid result with one value replaced by generated JSON, or deleted."""
    data = copy.deepcopy(_GOOD)
    path = draw(st.sampled_from(_GOOD_PATHS))
    *parents, last = path
    node: Any = data
    for key in parents:
        node = node[key]
    if isinstance(node, dict) and draw(st.booleans()):
        del node[last]
    else:
        node[last] = draw(_JSON)
    return json.dumps(data).encode(), path


@contextlib.contextmanager
def _files(content: bytes) -> Iterator[tuple[Path, Path]]:
    """(a good result file, a file holding ``content``) in a fresh folder."""
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = Path(tmp) / "good.json", Path(tmp) / "bad.json"
        good.write_text(json.dumps(_GOOD))
        bad.write_bytes(content)
        yield good, bad


_FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@_FAST
@given(content=_GARBAGE)
def test_gate_refuses_generated_garbage(content: bytes) -> None:
    """Bytes, arbitrary JSON and deep nesting: the gate exits 2 naming the file."""
    with _files(content) as (good, bad):
        code, _, err = _cli("gate", str(good), str(bad))
    _no_crash(code, err)
    assert code == 2, err
    assert f"harness gate: {bad}: " in err


@_FAST
@given(mutant=_mutants())
def test_gate_on_a_generated_mutant_refuses_or_decides(
    mutant: tuple[bytes, tuple[Any, ...]],
) -> None:
    """One value of a valid file replaced or deleted: the loader refuses it naming the file
    and where it broke (exit 2), or it is sound and the gate decides (0, 1, 3, or 2 when
    nothing is comparable). Never a traceback or exit 4."""
    content, path = mutant
    with _files(content) as (good, bad):
        refused = scan_results([bad]).skipped
        code, _, err = _cli("gate", str(good), str(bad))
    event("refused" if refused else f"decided, exit {code}")
    _no_crash(code, err)
    if refused:
        ((_, reason),) = refused
        assert code == 2, err
        assert f"harness gate: {bad}: {reason}" in err
        assert str(path[0]) in reason or "nested" in reason  # names where it broke
    else:
        assert code in (0, 1, 2, 3), err
        assert code != 2 or "comparable" in err or "interrupted" in err, err


@settings(max_examples=25, deadline=None, database=None)
@given(content=_GARBAGE | _mutants().map(lambda m: m[0]))
def test_report_history_compare_skip_generated_malformed_files(content: bytes) -> None:
    """Whatever the file holds, the readers skip it with a line naming it, or read it."""
    with _files(content) as (good, bad):
        refused = bool(scan_results([bad]).skipped)
        code, _, err = _cli("compare", str(good), str(bad))
        _no_crash(code, err)
        assert (f"harness compare: skipped {bad}: " in err) == refused
        if not refused:
            return  # a sound file: rendering it is test_report's business, not this fuzz's
        for command in ("report", "history"):
            out = str(bad.parent / "out")
            code, _, err = _cli(command, str(bad), "--out", out)
            _no_crash(code, err)
            assert code == 2
            assert f"harness {command}: skipped {bad}: " in err
            assert err.strip().splitlines()[-1] == f"harness {command}: no readable result files"


def test_a_fifo_or_a_device_is_refused_unread(tmp_path: Path, good_file: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    for path in (fifo, Path("/dev/zero")):
        code, _, err = _cli("gate", str(good_file), str(path))
        _no_crash(code, err)
        assert code == 2
        assert f"{path}: not a regular file" in err


# -- what is in a results tree but is no result ---------------------------------------------


def _store(root: Path, data: dict[str, Any], provider: str = "cpu") -> Path:
    return write_result(root, data, machine_id="test-cpu-2c", provider=provider, commit=None)


def test_calibration_json_and_other_side_files_are_ignored(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _store(results, _good())
    calibration = {"machine_id": "test-cpu-2c", "runs": 3, "recommended_threshold": 0.05}
    (results / "test-cpu-2c" / "calibration.json").write_text(json.dumps(calibration))
    (results / "notes.json").write_text("[1, 2, 3]")
    code, _, err = _cli(
        "gate", str(results), str(_twin(next(results.rglob("0001_*.json")), tmp_path))
    )
    assert code == 0, err
    assert "calibration" not in err
    code, _, err = _cli("report", str(results), "--out", str(tmp_path / "out"))
    assert (code, err) == (0, "")
    # named directly, or named like a stored run, it is no longer a side file: refused
    code, _, err = _cli("gate", str(results / "test-cpu-2c" / "calibration.json"), str(results))
    assert code == 2
    assert "calibration.json: no 'harness' block" in err
    (results / "test-cpu-2c" / "cpu" / "0002_abc_20260101T000000Z.json").write_text("{}")
    code, _, err = _cli("gate", str(results), str(results))
    assert code == 2
    assert "0002_abc_20260101T000000Z.json: no 'harness' block" in err


@pytest.mark.slow
def test_interrupted_runs_are_left_out_unless_asked(tmp_path: Path) -> None:
    results = tmp_path / "results"
    complete = _store(results, _good())
    partial = result_payload(sample_rows(scale=3.0)[:2])
    partial["harness"]["interrupted"] = True
    marked = _store(results, partial)
    assert run_order(marked) > run_order(complete)  # the newest run, yet not the latest
    for command in ("report", "history"):
        code, _, err = _cli(command, str(results), "--out", str(tmp_path / command))
        assert code == 0
        assert f"left out 1 interrupted run(s) ({marked.name})" in err
    assert "(interrupted)" not in (tmp_path / "report" / "report.md").read_text()
    code, _, err = _cli("gate", str(_twin(complete, tmp_path)), str(results))
    assert code == 0, err  # the interrupted 3x slower rows are not the candidate
    code, _, err = _cli("gate", str(complete), str(marked))
    assert code == 2
    assert "an interrupted run (--include-interrupted reads it)" in err
    code, _, err = _cli(
        "report", str(results), "--out", str(tmp_path / "all"), "--include-interrupted"
    )
    assert (code, err) == (0, "")
    assert f"{marked.name} (interrupted)" in (tmp_path / "all" / "report.md").read_text()
    assert load_result(marked).interrupted


# -- numbering ---------------------------------------------------------------------------


def test_run_numbers_past_9999_sort_in_run_order_and_never_collide(tmp_path: Path) -> None:
    folder = tmp_path / "test-cpu-2c" / "cpu"
    folder.mkdir(parents=True)
    payload = json.dumps(result_payload(sample_rows()))
    for number in (9998, 9999):
        (folder / f"{number:04d}_aaaaaaa_20260101T000000Z.json").write_text(payload)
    (folder / ".10001.reserved").touch()  # a writer killed while holding 10001
    paths = [_store(tmp_path, result_payload(sample_rows())) for _ in range(3)]
    assert [p.name.split("_")[0] for p in paths] == ["10000", "10002", "10003"]
    assert not list(folder.glob(".1000[023].reserved"))  # markers go with their writer
    found = [p.name.split("_")[0] for p in harness.results.store.find_results([tmp_path])]
    assert found == ["9998", "9999", "10000", "10002", "10003"]
    latest, older = latest_runs(scan_results([tmp_path]).results)
    assert [r.path for r in latest] == [paths[-1]]
    assert len(older) == 4


# -- the gate never pools providers or engines -----------------------------------------------


def test_gate_never_pools_providers_whatever_each_side_holds(tmp_path: Path) -> None:
    """Baseline: a CPU and a CUDA run (CUDA 9x faster); candidate: the CPU run only. The CUDA
    rows are listed as baseline-only, never pooled into the CPU rows (no false regression)."""
    cpu = result_payload(sample_rows(seed=1), provider="cpu")
    cuda_rows = [
        bench_row(
            r["extra_info"]["case"],
            r["extra_info"]["engine"],
            r["extra_info"]["batch_size"],
            [x / 9 for x in r["stats"]["data"]],
            provider="cuda",
        )
        for r in sample_rows(seed=2)
        if r["extra_info"]["engine"] != "sklearn"
    ]
    cuda = result_payload(cuda_rows, provider="cuda")
    baseline, candidate = tmp_path / "base", tmp_path / "cand"
    _store(baseline, cpu, "cpu")
    _store(baseline, cuda, "cuda")
    _store(candidate, result_payload(sample_rows(seed=3), provider="cpu"), "cpu")
    code, out, err = _cli("gate", str(baseline), str(candidate))
    assert code == 0, out + err
    assert "regressed" not in out.split("\n", 1)[1]
    assert "Only in the baseline (4, not gated): " in out
    assert "iforest-100[onnx-native-cuda]-b1-t1" in out
    # rows that do not say their provider take their file's: still never pooled
    fresh = result_payload(sample_rows(seed=3), provider="cpu")
    for data in (cpu, cuda, fresh):
        for row in data["benchmarks"]:
            if row["extra_info"]["engine"] != "sklearn":
                del row["extra_info"]["provider_requested"]
    shutil.rmtree(baseline)
    shutil.rmtree(candidate)
    _store(baseline, cpu, "cpu")
    _store(baseline, cuda, "cuda")
    _store(candidate, fresh, "cpu")
    code, out, err = _cli("gate", str(baseline), str(candidate))
    assert code == 0, out + err
    assert "Only in the baseline (4, not gated): " in out


def test_gate_lists_engines_and_providers_without_counterpart(tmp_path: Path) -> None:
    rows = sample_rows()
    other_engine = [
        bench_row("iforest-100", "onnx-skl2onnx", 1, [2e-3] * 30),
        bench_row("iforest-100", "onnx-native", 1, [1e-4] * 30, provider="tensorrt"),
    ]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(result_payload(rows)))
    b.write_text(json.dumps(result_payload(rows + other_engine)))
    code, out, err = _cli("gate", str(a), str(b), "--json", str(tmp_path / "gate.json"))
    assert code == 0, err
    verdicts = json.loads((tmp_path / "gate.json").read_text())
    assert sorted(verdicts["only_candidate"]) == [
        "iforest-100[onnx-native-tensorrt]-b1-t1",
        "iforest-100[onnx-skl2onnx-cpu]-b1-t1",
    ]
    assert len(verdicts["rows"]) == len(rows)
    assert "Only in the candidate (2, not gated)" in out


# -- output locations ---------------------------------------------------------------------


def _under_a_file(tmp_path: Path) -> Path:
    """A location no one can create, root included: its parent is a regular file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    return blocker / "sub"


def _read_only(tmp_path: Path) -> Path:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "sub"


def _permissions_ignored() -> bool:
    """True where this process writes into read-only folders (root with CAP_DAC_OVERRIDE)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ro"
        folder.mkdir(mode=0o555)
        try:
            (folder / "probe").touch()
        except PermissionError:
            return False
        finally:
            folder.chmod(0o755)
        return True


_READ_ONLY_HOLDS = pytest.mark.skipif(
    _permissions_ignored(),
    reason="this process ignores folder permissions (root); the parent-is-a-file case covers "
    "the refusal here",
)


@pytest.mark.parametrize(
    "make_bad",
    [_under_a_file, pytest.param(_read_only, marks=_READ_ONLY_HOLDS)],
    ids=["parent-file", "read-only"],
)
@pytest.mark.parametrize(
    "argv",
    [
        ["gate", "{good}", "{good}", "--json", "{bad}/gate.json"],
        ["gate", "{good}", "{good}", "--markdown", "{bad}/gate.md"],
        ["report", "{good}", "--out", "{bad}"],
        ["history", "{good}", "--out", "{bad}"],
        ["compare", "{good}", "{good}", "--out", "{bad}/compare.md"],
        ["run", "--cases", "iforest-100", "--no-store", "--out", "{bad}"],
        ["run", "--cases", "iforest-100", "--no-parity", "--out", "{tmp}/o", "--results", "{bad}"],
        ["run", "--cases", "iforest-100", "--no-store", "--out", "{tmp}/o", "--json", "{bad}/r"],
        ["calibrate", "--cases", "iforest-100", "--results", "{bad}"],
    ],
    ids=lambda argv: " ".join(a for a in argv if a.startswith("-")),
)
def test_unwritable_output_is_refused_before_any_work(
    argv: list[str], make_bad: Any, tmp_path: Path, good_file: Path
) -> None:
    bad = make_bad(tmp_path)
    args = [a.format(good=good_file, bad=bad, tmp=tmp_path) for a in argv]
    started = time.perf_counter()
    code, out, err = _cli(*args)
    assert code == 2, err
    assert f"harness {args[0]}: {args[-2]} {bad}" in err
    assert "is not writable" in err
    assert out == ""  # nothing was done: no benchmark, no table, no report
    assert time.perf_counter() - started < 5


def test_run_json_must_be_a_regular_file(tmp_path: Path) -> None:
    out_dir = str(tmp_path / "out")
    code, out, err = _cli(
        "run", "--cases", "iforest-100", "--json", "/dev/null", "--out", out_dir, "--no-store"
    )
    assert code == 2
    assert "--json /dev/null is not a regular file" in err
    assert out == ""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a full disk)")
def test_gate_output_failing_after_the_work_is_kept_and_said(good_file: Path) -> None:
    """/dev/full accepts the open and fails every write (ENOSPC): a full disk after the work."""
    code, out, err = _cli(
        "gate", str(good_file), str(_twin(good_file, good_file.parent)), "--json", "/dev/full"
    )
    assert code == 2
    assert "| iforest-100[onnx-native-cpu]-b1-t1 |" in out  # the verdicts, printed anyway
    line = err.strip().splitlines()[-1]
    assert line.startswith("harness gate: could not write --json /dev/full (No space left")
    kept = Path(line.rsplit("it is kept in ", 1)[1])
    assert json.loads(kept.read_text())["rows"]
    kept.unlink()


def test_run_store_failing_after_the_work_keeps_the_measurements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store fails after the benchmarks (a full disk): every measurement is kept in a
    file named in the message, readable by ``harness report``."""
    from harness.run import _deliver
    from harness.timing.points import Selection

    def full_disk(*args: Any, **kwargs: Any) -> Path:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(harness.results.store, "write_result", full_disk)
    data = result_payload(sample_rows())
    paths, failed = _deliver(data, Selection(), tmp_path / "results", tmp_path / "run.json")
    assert (paths, failed) == ([], True)
    assert json.loads((tmp_path / "run.json").read_text()) == data  # --json was written
    err = capsys.readouterr().err
    assert f"could not write --results {tmp_path / 'results'} (No space left on device)" in err
    kept = Path(err.split("the measurements are kept in ", 1)[1].split(" ", 1)[0])
    assert json.loads(kept.read_text()) == data
    assert load_result(kept).benchmarks == data["benchmarks"]
    kept.unlink()


def test_keep_somewhere_falls_back_when_the_temporary_folder_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(_under_a_file(tmp_path)))
    monkeypatch.chdir(tmp_path)
    kept = keep_somewhere(b'{"a": 1}', "harness-test")
    assert kept is not None
    assert kept.parent == tmp_path
    assert kept.read_bytes() == b'{"a": 1}'


@pytest.mark.slow
def test_plugin_store_location_is_checked_before_any_test(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    bad = _under_a_file(tmp_path)
    done = _pytest(tmp_path, "--harness-store", str(bad), "test_x.py")
    assert done.returncode == int(pytest.ExitCode.USAGE_ERROR), done.stdout + done.stderr
    assert f"--harness-store {bad} is not writable" in done.stderr
    assert "1 passed" not in done.stdout


def _pytest(folder: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """A pytest run of its own in ``folder`` (not an xdist worker of this one)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**clean, **(env or {})},
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("option", "message"),
    [("--harness-threads=abc", "threads"), ("--harness-batch-sizes=0", "batch-sizes")],
)
def test_bad_harness_options_are_refused_before_any_test(
    tmp_path: Path, option: str, message: str
) -> None:
    # a pytest run that only uses the fixtures accepted them silently
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    for done in (
        _pytest(tmp_path, option, "test_x.py"),
        _pytest(tmp_path, "test_x.py", env={"PYTEST_ADDOPTS": option}),  # addopts too
    ):
        assert done.returncode == int(pytest.ExitCode.USAGE_ERROR), done.stdout + done.stderr
        assert f"--harness-{message}" in done.stderr
        assert "1 passed" not in done.stdout


@pytest.mark.slow
def test_a_good_harness_option_leaves_plain_benchmark_json_plain(tmp_path: Path) -> None:
    (tmp_path / "test_b.py").write_text("def test_b(benchmark):\n    benchmark(sum, [1, 2])\n")
    done = _pytest(tmp_path, "--benchmark-json=out.json", "--harness-threads=1", "test_b.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "harness" not in json.loads((tmp_path / "out.json").read_text())


# -- a crash is never a finding ----------------------------------------------------------


def test_a_harness_fault_exits_4_never_1(
    good_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import harness.results.gate

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug in the gate")

    monkeypatch.setattr(harness.results.gate, "gate", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the fault log goes here
    code, _, err = _cli("gate", str(good_file), str(_twin(good_file, good_file.parent)))
    assert code == 4
    assert "internal error (ZeroDivisionError: a bug in the gate)" in err
    assert "Traceback" not in err
    (log,) = tmp_path.glob("harness-fault-*.log")
    assert "ZeroDivisionError" in log.read_text()


@pytest.mark.parametrize(
    ("module", "extra"), [("onnxruntime", "[cpu]"), ("pyod.models.ecod", "[pyod]")]
)
def test_a_missing_extra_is_a_usage_error_that_names_the_install(
    good_file: Path, monkeypatch: pytest.MonkeyPatch, module: str, extra: str
) -> None:
    # installed without [cpu], every command said "internal error ... fault of the harness"
    import harness.results.gate

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    monkeypatch.setattr(harness.results.gate, "gate", missing)
    code, _, err = _cli("gate", str(good_file), str(_twin(good_file, good_file.parent)))
    assert code == 2
    assert f"{module} is not installed" in err
    assert f'pip install "onnx-anomaly-harness{extra}"' in err
    assert "internal error" not in err


# -- interrupted runs -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_is_never_stored_as_complete(sig: signal.Signals, tmp_path: Path) -> None:
    """A real ``harness run`` interrupted once its first benchmark is done: exit 130, no
    complete result file (what was measured is stored marked interrupted), no temporary
    folder left (the run's TMPDIR holds none afterwards)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp)}
    argv = ["--cases", "iforest-100", "--batch-sizes", "1,100,1000,10000", "--no-parity"]
    with subprocess.Popen(
        [sys.executable, "-m", "harness", "run", *argv, "--out", "out", "--results", "results"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env=env,
    ) as process:
        assert process.stdout is not None
        seen = b""
        try:
            # the progress line once the first benchmark is done: "  benchmarks 1/16, ..."
            while b"  benchmarks 1/" not in seen or not seen.endswith(b"\n"):
                byte = process.stdout.read(1)
                assert byte, seen.decode()
                seen += byte
            process.send_signal(sig)
            seen += process.stdout.read()
            code = process.wait(timeout=120)
        finally:
            process.kill()
    text = seen.decode()
    assert code == 130, text
    assert "harness run: interrupted" in text
    assert "Traceback" not in text
    stored = list((tmp_path / "results").rglob("*.json"))
    assert all(load_result(path).interrupted for path in stored), text
    assert scan_results([tmp_path / "results"]).results == []  # nothing a reader takes
    assert not (tmp_path / "out" / "report.md").exists()
    # every temporary folder removed (a library may leave a dot file of its own there)
    assert [p.name for p in tmp.iterdir() if p.is_dir() or "harness" in p.name] == []
    code, _, err = _cli("gate", str(tmp_path / "results"), str(tmp_path / "results"))
    assert code == 2
    if stored:
        assert "an interrupted run" in err


def test_keyboard_interrupt_exits_130(good_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.results.gate

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(harness.results.gate, "gate", interrupted)
    code, _, err = _cli("gate", str(good_file), str(_twin(good_file, good_file.parent)))
    assert code == 130
    assert err == "harness gate: interrupted\n"


def test_result_file_label_says_interrupted(tmp_path: Path) -> None:
    data = _good()
    data["harness"]["interrupted"] = True
    result = ResultFile(tmp_path / "0001_x.json", data)
    assert result.interrupted
    assert result.label.endswith("0001_x.json (interrupted)")
    assert not ResultFile(tmp_path / "0002_x.json", _good()).interrupted
