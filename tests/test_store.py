from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.results.store import (
    SCHEMA_VERSION,
    ResultsError,
    SkippedResultWarning,
    load_result,
    load_results,
    write_result,
)
from tests._results import result_payload, sample_rows


def _write(root: Path, **kwargs: object) -> Path:
    return write_result(
        root,
        result_payload(sample_rows()),
        machine_id="test-cpu-2c",
        provider="cpu",
        commit="abcdef1234567890",
        **kwargs,
    )  # type: ignore[arg-type]


def test_layout_and_naming(tmp_path: Path) -> None:
    first, second = _write(tmp_path), _write(tmp_path)
    assert first.parent == tmp_path / "test-cpu-2c" / "cpu"
    assert first.name.startswith("0001_abcdef123456_")
    assert second.name.startswith("0002_abcdef123456_")
    assert first.name.endswith("Z.json")
    assert load_result(first).harness["schema_version"] == SCHEMA_VERSION
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name, second.name]


def test_no_git_commit_is_named(tmp_path: Path) -> None:
    path = write_result(
        tmp_path, result_payload(sample_rows()), machine_id="m", provider="cpu", commit=None
    )
    assert "_nogit_" in path.name


def test_written_file_is_pytest_benchmark_compatible(tmp_path: Path) -> None:
    path = _write(tmp_path)
    data = json.loads(path.read_text())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(data)
    assert all("stats" in row and "data" in row["stats"] for row in data["benchmarks"])


def test_refuses_to_write_without_schema(tmp_path: Path) -> None:
    payload = result_payload(sample_rows())
    del payload["harness"]["schema_version"]
    with pytest.raises(ResultsError, match="schema_version"):
        write_result(tmp_path, payload, machine_id="m", provider="cpu", commit=None)


def _writer(args: tuple[str, int]) -> list[str]:
    root, n = args
    return [_write(Path(root)).name for _ in range(n)]


def test_concurrent_writers_never_overwrite(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        names = [n for batch in pool.map(_writer, [(str(tmp_path), 5)] * 4) for n in batch]
    files = list((tmp_path / "test-cpu-2c" / "cpu").glob("*.json"))
    assert len(names) == len(set(names)) == len(files) == 20
    numbers = sorted(int(name.split("_")[0]) for name in names)
    assert numbers == list(range(1, 21))  # no two runs share a number
    assert not list(files[0].parent.glob(".*.reserved"))
    for path in files:
        load_result(path)  # every file whole


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    """A writer killed mid-write (Ctrl-C) leaves no partial file and earlier results intact."""
    earlier = _write(tmp_path)
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path.cwd())!r})
        import harness.results.store as store
        from tests._results import result_payload, sample_rows
        real_fsync = os.fsync
        def interrupted(fd):
            os.kill(os.getpid(), signal.SIGINT)
            real_fsync(fd)
        os.fsync = interrupted
        store.write_result({str(tmp_path)!r}, result_payload(sample_rows()),
                           machine_id="test-cpu-2c", provider="cpu", commit="abcdef1234567890")
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "KeyboardInterrupt" in done.stderr
    folder = tmp_path / "test-cpu-2c" / "cpu"
    assert sorted(p.name for p in folder.iterdir()) == [earlier.name]
    load_result(earlier)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"benchmarks": [', "not valid JSON.*truncated or was edited by hand"),
        ("[]", "no 'harness' block and not pytest-benchmark JSON"),
        ('{"benchmarks": []}', "no 'harness' block and not pytest-benchmark JSON.*machine_info"),
        (
            '{"harness": {"schema_version": 99}, "benchmarks": []}',
            "schema_version 99 is not known.*upgrade",
        ),
        (
            '{"harness": {"schema_version": 1}, "benchmarks": [{"name": "x"}]}',
            r"benchmarks\[0\]\.stats is missing",
        ),
        (
            '{"harness": {"schema_version": 1}, "benchmarks": [{"name": "x", "stats": {}}]}',
            r"benchmarks\[0\]\.stats\.median is missing \(it must be a finite number > 0\)",
        ),
    ],
)
def test_bad_files_are_refused_with_what_to_do(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsError, match=message):
        load_result(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="cannot read"):
        load_result(tmp_path / "nope.json")


def test_folders_skip_bad_files_with_a_warning(tmp_path: Path) -> None:
    good = _write(tmp_path)
    truncated = good.parent / "0009_deadbeef_20260101T000000Z.json"
    truncated.write_text(good.read_text()[:100])
    edited = good.parent / "0010_deadbeef_20260101T000000Z.json"
    edited.write_text(json.dumps({"harness": {"schema_version": 7}, "benchmarks": []}))
    with pytest.warns(SkippedResultWarning) as caught:
        results = load_results([tmp_path])
    assert [r.path for r in results] == [good]
    assert len(caught) == 2
    with pytest.raises(ResultsError):
        load_results([tmp_path], strict=True)


def test_every_extra_info_key_the_store_checks_is_in_the_schema() -> None:
    from harness.results import store
    from harness.results.schema import ExtraInfo

    checked = {*store._EXTRA_OPTIONAL, *store._EXTRA_REQUIRED, *store.IDENTITY_FIELDS}
    assert checked <= set(ExtraInfo.__annotations__)


def test_git_is_dirty_where_a_timed_model_is_not_in_the_commit(tmp_path: Path) -> None:
    # an untracked model timed in a clean tree was stored as "dirty: false" on that commit
    import subprocess

    from harness.results.machine import git_info

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "train.py").write_text("print('train')\n")
    git("add", "train.py")
    git("-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "init")
    (tmp_path / "model.onnx").write_bytes(b"graph")  # untracked
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text("{}")  # untracked, not watched
    assert git_info(tmp_path)["dirty"] is False
    assert git_info(tmp_path, watched=[tmp_path / "results" / "run.json"])["dirty"] is True
    assert git_info(tmp_path, watched=[tmp_path / "model.onnx"])["dirty"] is True
    assert (
        git_info(tmp_path, watched=[tmp_path / "train.py", "/elsewhere/x.onnx"])["dirty"] is False
    )
