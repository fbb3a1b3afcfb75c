"""The harness pytest plugin: options, fixtures, and one session object in ``config.stash``.

Registered for every pytest run in an environment where the harness is installed, so it is
dormant until used: loading it imports nothing heavy, and the session object reads git, makes
temporary folders or writes JSON only once a harness suite, option or fixture asks for it.

Fixtures for a user's own test suite:

- ``harness_check(model, reference, data=...)``: every applicable parity check of the pair,
  with the bounds and evidence of ``harness check``; declared known gaps are strict.
- ``harness_benchmark(model, reference=..., data=..., batch_size=...)``: pytest-benchmark
  timing of the ONNX engine with provider truth, and the reference timed in the same test;
  stored in the harness store with ``--harness-store DIR``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.options import add_selection_options, selection_from_options
from harness.selection import Selection

if TYPE_CHECKING:
    from harness.bench import BenchPoint, Runner
    from harness.testing import BenchmarkOutcome, PairVerdict

__all__ = ["SESSION_KEY", "HarnessSession", "add_speedups"]


class HarnessSession:
    """Selection, prepared runners, conformance rows and stored rows of one pytest session.

    Creating it costs nothing: every part is made on first use.
    """

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._selection: Selection | None = None
        self._git: dict[str, Any] | None = None
        self._tmp: Any = None
        self._runners: dict[BenchPoint, Runner] = {}
        self.conformance: list[dict[str, Any]] = []
        self.stored_rows: list[dict[str, Any]] = []
        self.active = False

    @property
    def selection(self) -> Selection:
        if self._selection is None:
            self.active = True
            self._selection = selection_from_options(
                lambda name: self._config.getoption(f"harness_{name}")
            )
            self.git  # noqa: B018 - what is measured is the tree at the start
        return self._selection

    @property
    def git(self) -> dict[str, Any]:
        if self._git is None:
            from harness.machine import git_info

            self._git = git_info()
        return self._git

    @property
    def workdir(self) -> Path:
        if self._tmp is None:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="harness-")
        return Path(self._tmp.name)

    def runner(self, point: BenchPoint) -> Runner:
        """The prepared runner of ``point`` (prepared once per point, whatever the batch)."""
        from harness.bench import prepare

        key = dataclasses.replace(point, batch_size=0)
        if key not in self._runners:
            self._runners[key] = prepare(point, self.selection, self.workdir)
        return dataclasses.replace(self._runners[key], point=point)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


SESSION_KEY = pytest.StashKey[HarnessSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "anomaly-detection ONNX harness")

    def add(name: str, **kwargs: Any) -> None:
        group.addoption(name, dest=name.lstrip("-").replace("-", "_"), **kwargs)

    add_selection_options(add, prefix="harness-")
    add(
        "--harness-store",
        default=None,
        metavar="DIR",
        help="store harness_benchmark timings in this results folder (results/<machine>/...)",
    )
    add(
        "--harness-conformance",
        default=None,
        metavar="PATH",
        help="write the parity suite's conformance summary to PATH.json and PATH.md",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SESSION_KEY] = HarnessSession(config)
    store = config.getoption("harness_store", None)
    target = config.getoption("harness_conformance", None)
    if store or target:  # output locations asked for: proved writable before any test runs
        from harness.store import OutputError, check_output_folder

        try:
            if store:
                check_output_folder(store, "--harness-store")
            if target:
                check_output_folder(Path(target).parent, "--harness-conformance")
        except OutputError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    harness = session.config.stash.get(SESSION_KEY, None)
    if harness is None:
        return
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    target = session.config.getoption("harness_conformance", None)
    if target:
        _write_conformance(harness, Path(target), interrupted)
    store = session.config.getoption("harness_store", None)
    if store and harness.stored_rows:
        if interrupted:  # an interrupted session is never stored as a complete run
            say(f"harness: interrupted; {len(harness.stored_rows)} benchmark row(s) not stored")
            return
        from harness.testing import store_rows

        try:
            paths = store_rows(harness.stored_rows, Path(store), harness.git)
        except OSError as exc:  # after the work (a full disk): keep the measurements
            from harness.store import keep_somewhere

            payload = json.dumps({"benchmarks": harness.stored_rows}, default=str).encode()
            kept = keep_somewhere(payload, "harness-benchmarks")
            where = f"the rows are kept in {kept}" if kept else "nowhere could keep the rows"
            say(f"harness: could not store in {store} ({exc.strerror or exc}); {where}")
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        for path in paths:
            say(f"harness: benchmarks stored in {path}")


def _write_conformance(harness: HarnessSession, base: Path, interrupted: bool = False) -> None:
    """Under pytest-xdist each worker writes its part; the controller merges and writes. An
    interrupted session writes nothing: part of a verdict would read as the whole of it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        if not interrupted:
            base.parent.mkdir(parents=True, exist_ok=True)
            part = base.with_name(f"{base.name}.part-{worker}.json")
            part.write_text(json.dumps(harness.conformance))
        return
    rows = list(harness.conformance)
    for part in sorted(base.parent.glob(f"{base.name}.part-*.json")):
        if not interrupted:
            rows += json.loads(part.read_text())
        part.unlink()
    if rows and not interrupted:
        from harness.conformance import ConformanceRow, write_conformance

        write_conformance([ConformanceRow(**row) for row in rows], base)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]
) -> None:
    """Add the versioned harness block and in-run speed-ups, in harness sessions only."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.active:
        return  # a plain pytest-benchmark run: its JSON stays exactly pytest-benchmark's
    from harness.machine import library_versions, machine_id, machine_info
    from harness.store import SCHEMA_VERSION

    info = machine_info()
    output_json["harness"] = {
        "schema_version": SCHEMA_VERSION,
        "machine_id": machine_id(info),
        "machine": info,
        "versions": library_versions(),
        "git": session.git,
        "profile": session.selection.profile,
    }
    add_speedups(output_json.get("benchmarks", []))


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """speedup_vs_sklearn = sklearn median / row median, matched on case, batch and threads."""
    baseline = {}
    for row in rows:
        extra = row.get("extra_info", {})
        if extra.get("engine") == "sklearn":
            baseline[(extra.get("case"), extra.get("batch_size"), extra.get("threads"))] = row[
                "stats"
            ]["median"]
    for row in rows:
        extra = row.setdefault("extra_info", {})
        ref = baseline.get((extra.get("case"), extra.get("batch_size"), extra.get("threads")))
        median = row["stats"]["median"]
        extra["speedup_vs_sklearn"] = ref / median if ref and median else None


@pytest.fixture
def harness_session(request: pytest.FixtureRequest) -> HarnessSession:
    """The harness session of this pytest run."""
    session = request.config.stash[SESSION_KEY]
    session.active = True
    return session


@pytest.fixture
def harness_check(harness_session: HarnessSession) -> Callable[..., PairVerdict]:
    """Check a model pair like ``harness check``; fails the test with the evidence.

    Example::

        def test_parity(harness_check):
            harness_check("model.onnx", "model.skops", data="rows.csv")
    """
    from harness.testing import check_fixture

    return check_fixture


@pytest.fixture
def harness_benchmark(
    request: pytest.FixtureRequest, harness_session: HarnessSession
) -> Callable[..., BenchmarkOutcome]:
    """Time an ONNX model (and its reference, in the same test) with pytest-benchmark.

    Example::

        def test_speed(harness_benchmark):
            result = harness_benchmark("model.onnx", reference="model.skops", batch_size=100)
            assert result.active_provider == "CPUExecutionProvider"
    """
    from harness.testing import benchmark_fixture

    benchmark = request.getfixturevalue("benchmark")

    def run(model: str | Path, **kwargs: Any) -> BenchmarkOutcome:
        return benchmark_fixture(benchmark, harness_session, request.node, model, **kwargs)

    return run
