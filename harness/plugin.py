"""The harness pytest plugin: options, fixtures, and one session object in ``config.stash``.

Registered for every pytest run in an environment where the harness is installed, so it is
dormant until used: loading it imports nothing heavy, and the session object reads git, makes
temporary folders or writes JSON only once a harness suite, option or fixture asks for it.

Fixtures for a user's own test suite:

- ``harness_check(model, reference, data=...)``: every applicable parity check of the pair,
  with the bounds and evidence of ``harness check``; declared known gaps are strict.
- ``harness_benchmark(model, reference=..., data=..., batch_size=...)``: pytest-benchmark
  timing of the ONNX engine with provider truth, and the reference timed in the same test;
  stored in the harness store with ``--harness-store DIR``, each ONNX row with the verdict of
  the session's ``harness_check`` of the same model (its ``parity``). Where pytest-benchmark
  times nothing (under pytest-xdist, ``--benchmark-disable``) one line says nothing was stored.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.console import Progress, format_seconds, item_label
from harness.options import (
    OptionError,
    add_cold_start_option,
    add_selection_options,
    selection_from_options,
)
from harness.timing.points import Selection

if TYPE_CHECKING:
    from harness.testing import BenchmarkOutcome, PairVerdict
    from harness.timing.coldstart import ColdStartTarget
    from harness.timing.prepare import BenchPoint, Runner

__all__ = ["SESSION_KEY", "HarnessSession", "PytestProgress"]


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
        #: model sha256 -> "pass" or "fail": the verdicts of this session's ``harness_check``
        #: calls, written into the stored rows of the same model (a failure sticks).
        self.parity: dict[str, str] = {}
        self.active = False
        self.pytest_session: pytest.Session | None = None
        self._cold_start: dict[tuple[str, str], ColdStartTarget] = {}
        self._cold_start_entries: list[dict[str, Any]] | None = None
        self.cold_start_interrupted = False
        #: Where the session's own lines go (the cold start, storage): ``harness run`` sets
        #: its console; by default pytest's terminal, or stdout where pytest has none.
        self.say: Callable[[str], None] | None = None

    def sayer(self) -> Callable[[str], None]:
        """``say``, or pytest's terminal reporter, or plain stdout."""
        if self.say is not None:
            return self.say
        reporter = self._config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return lambda line: print(line, flush=True)
        writer = self._config.get_terminal_writer()

        def line(text: str) -> None:  # on a line of its own, not after `-q`'s "[100%]"
            if writer.width_of_current_line:
                writer.line()
            reporter.write_line(text)

        return line

    @property
    def selection(self) -> Selection:
        if self._selection is None:
            self.active = True
            self._selection = selection_from_options(
                lambda name: self._config.getoption(f"harness_{name}"), flag=_flag
            )
            self.git  # noqa: B018 - what is measured is the tree at the start
        return self._selection

    @property
    def git(self) -> dict[str, Any]:
        if self._git is None:
            from harness.results.machine import git_info

            user = self._selection.user_model if self._selection is not None else None
            watched = [] if user is None else [user.model, user.reference, user.data]
            self._git = git_info(watched=[p for p in watched if p is not None])
        return self._git

    def git_for_store(self) -> dict[str, Any]:
        """``git`` of the session's start, dirty too where a model the stored rows timed (or
        its reference) is changed or untracked: results must not name a commit that does
        not hold what they measured."""
        if self.git.get("dirty") is not False:
            return self.git
        from harness.results.machine import git_info

        timed = {str((row.get("extra_info") or {}).get("model")) for row in self.stored_rows}
        timed.discard("None")
        if timed and git_info(watched=sorted(timed)).get("dirty"):
            return {**self.git, "dirty": True}
        return self.git

    @property
    def workdir(self) -> Path:
        if self._tmp is None:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="harness-")
        return Path(self._tmp.name)

    def runner(self, point: BenchPoint) -> Runner:
        """The prepared runner of ``point`` (prepared once per point, whatever the batch)."""
        from harness.timing.prepare import prepare

        key = dataclasses.replace(point, batch_size=0)
        if key not in self._runners:
            self._runners[key] = prepare(point, self.selection, self.workdir)
            self._note_cold_start(self._runners[key])
        return dataclasses.replace(self._runners[key], point=point)

    @property
    def cold_start_enabled(self) -> bool:
        return not self._config.getoption("harness_no_cold_start", False)

    def _note_cold_start(self, runner: Runner) -> None:
        """One cold-start target per model (sha256) and provider, at the selection's fewest
        threads: creating a session creates its thread pool, and a cold serverless function
        usually gets one core. Other thread counts of the same model are not measured again."""
        if runner.model_path is None or runner.rows is None or not self.cold_start_enabled:
            return
        point = runner.point
        sha = runner.info.get("model_sha256")
        key = (str(sha or runner.model_path), point.provider)
        if key in self._cold_start:
            return
        from harness.timing.coldstart import ColdStartTarget, session_settings
        from harness.timing.prepare import _config

        threads = min(self.selection.effective_threads)
        self._cold_start[key] = ColdStartTarget(
            case=point.case,
            engine=point.engine,
            exporter=point.exporter,
            provider=point.provider,
            threads=threads,
            model_path=runner.model_path,
            model_sha256=sha,
            export_seconds=runner.info.get("export_seconds"),
            row=tuple(float(x) for x in runner.rows[0]),
            settings=session_settings(_config(dataclasses.replace(point, threads=threads))),
        )

    def cold_start(self, say: Callable[[str], None]) -> list[dict[str, Any]]:
        """The ``cold_start`` entries, measured once, each in a fresh process (see
        ``harness.timing.coldstart``); none after an interrupted session."""
        if self._cold_start_entries is None:
            interrupted = (
                self.pytest_session is not None
                and self.pytest_session.exitstatus == pytest.ExitCode.INTERRUPTED
            )
            self._cold_start_entries = []
            if self._cold_start and not interrupted:
                from harness.timing.coldstart import measure_all

                entries, stopped = measure_all(self._cold_start.values(), say)
                self._cold_start_entries, self.cold_start_interrupted = entries, stopped
        return self._cold_start_entries

    def note_parity(self, model: str | Path, verdict: str) -> None:
        """Record a ``harness_check`` verdict ("pass" or "fail") of ``model`` (keyed by its
        bytes' sha256, as the benchmark rows are); a model that cannot be read is not recorded."""
        import hashlib

        try:
            sha = hashlib.sha256(Path(model).read_bytes()).hexdigest()
        except OSError:
            return
        if self.parity.get(sha) != "fail":
            self.parity[sha] = verdict

    def rows_to_store(self) -> list[dict[str, Any]]:
        """The stored rows, each ONNX row of a model that ``harness_check`` checked in this
        session carrying its verdict as ``parity`` (the report's parity of the model)."""
        for row in self.stored_rows:
            extra = row.get("extra_info") or {}
            verdict = self.parity.get(str(extra.get("model_sha256")))
            if verdict is not None and extra.get("engine") != "sklearn":
                extra["parity"] = verdict
        return self.stored_rows

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


SESSION_KEY = pytest.StashKey[HarnessSession]()


#: dest -> default of the --harness-* selection options (pytest_configure checks set ones).
_SELECTION_DEFAULTS: dict[str, Any] = {}


def _flag(name: str) -> str:
    """An option as this plugin spells it, in messages."""
    return f"--harness-{name}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "anomaly-detection ONNX harness")

    def add(name: str, **kwargs: Any) -> None:
        group.addoption(name, dest=name.lstrip("-").replace("-", "_"), **kwargs)

    def add_selection(name: str, **kwargs: Any) -> None:
        _SELECTION_DEFAULTS[name.lstrip("-").replace("-", "_")] = kwargs.get("default")
        add(name, **kwargs)

    add_selection_options(add_selection, prefix="harness-")
    add_cold_start_option(add, prefix="harness-")
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
    given = [d for d, default in _SELECTION_DEFAULTS.items() if config.getoption(d) != default]
    if given:  # set (command line, addopts): refused now if bad, not ignored by a fixture
        try:  # parsed only: the session stays dormant (plain pytest-benchmark JSON stays plain)
            selection_from_options(lambda name: config.getoption(f"harness_{name}"), flag=_flag)
        except OptionError as exc:
            raise pytest.UsageError(str(exc)) from None
    store = config.getoption("harness_store", None)
    target = config.getoption("harness_conformance", None)
    if store or target:  # output locations asked for: proved writable before any test runs
        from harness.results.store import OutputError, check_output_folder

        try:
            if store:
                check_output_folder(store, "--harness-store")
            if target:
                check_output_folder(Path(target).parent, "--harness-conformance")
        except OutputError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_sessionstart(session: pytest.Session) -> None:
    harness = session.config.stash.get(SESSION_KEY, None)
    if harness is not None:  # its exit status says whether the session was interrupted
        harness.pytest_session = session


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    harness = session.config.stash.get(SESSION_KEY, None)
    if harness is None:
        return
    if harness.cold_start_interrupted:  # Ctrl-C during the cold start: the run was cut short
        session.exitstatus = exitstatus = pytest.ExitCode.INTERRUPTED
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    say = harness.sayer()
    target = session.config.getoption("harness_conformance", None)
    if target:
        _write_conformance(harness, Path(target), interrupted)
    store = session.config.getoption("harness_store", None)
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # the controller speaks for its workers
    if store and not harness.stored_rows and not interrupted and not worker:
        why = _untimed(session.config)
        say(f"harness: nothing stored in {store} (--harness-store): {why}")
    if store and harness.stored_rows:
        if interrupted:  # an interrupted session is never stored as a complete run
            say(f"harness: interrupted; {len(harness.stored_rows)} benchmark row(s) not stored")
            return
        from harness.testing import store_rows

        try:
            paths = store_rows(harness.rows_to_store(), Path(store), harness.git_for_store())
        except OSError as exc:  # after the work (a full disk): keep the measurements
            from harness.results.store import keep_somewhere

            payload = json.dumps({"benchmarks": harness.stored_rows}, default=str).encode()
            kept = keep_somewhere(payload, "harness-benchmarks")
            where = f"the rows are kept in {kept}" if kept else "nowhere could keep the rows"
            say(f"harness: could not store in {store} ({exc.strerror or exc}); {where}")
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        for path in paths:
            say(f"harness: benchmarks stored in {path}")


def _untimed(config: pytest.Config) -> str:
    """Why a session timed no ``harness_benchmark`` row, and the way out.

    pytest-benchmark turns its own timing off under pytest-xdist (in the controller and in
    every worker, ``--benchmark-enable`` or not: timings of parallel tests are not reliable),
    and with ``--benchmark-disable``; ``harness_benchmark`` then runs untimed and nothing can be
    stored. Workers' rows are therefore never merged: there are none."""
    reasons = []
    if config.getoption("dist", "no") != "no" or os.environ.get("PYTEST_XDIST_WORKER"):
        reasons.append(
            "pytest-benchmark times nothing under pytest-xdist (it turns itself off, even with "
            "--benchmark-enable): run the timed tests without it (-p no:xdist, or -n 0)"
        )
    if config.getoption("benchmark_disable", False) and not config.getoption(
        "benchmark_enable", False
    ):
        reasons.append(
            "--benchmark-disable turns pytest-benchmark's timing off (here or in addopts): "
            "--benchmark-enable turns it back on"
        )
    if config.getoption("benchmark_skip", False):
        reasons.append("--benchmark-skip skips every test that times: leave it out")
    if not reasons:
        return (
            "no harness_benchmark test was timed in this session (--harness-store stores "
            "harness_benchmark timings only)"
        )
    return "; and ".join(reasons)


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
        from harness.reports.conformance import write_conformance
        from harness.results.schema import ConformanceRow

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
    from harness.results.schema import add_speedups, harness_block

    output_json["harness"] = harness_block(git=session.git, profile=session.selection.profile)
    cold_start = session.cold_start(session.sayer())
    if cold_start:
        output_json["harness"]["cold_start"] = cold_start
    if session.cold_start_interrupted:
        output_json["harness"]["interrupted"] = True
    add_speedups(output_json.get("benchmarks", []))


@pytest.fixture
def harness_session(request: pytest.FixtureRequest) -> HarnessSession:
    """The harness session of this pytest run."""
    session = request.config.stash[SESSION_KEY]
    session.active = True
    return session


@pytest.fixture
def harness_check(
    request: pytest.FixtureRequest, harness_session: HarnessSession
) -> Callable[..., PairVerdict]:
    """Check a model pair like ``harness check`` (``[tool.harness]`` of the project's
    pyproject.toml included); fails the test with the evidence.

    ``harness_check(model, reference, *, data=None, known_gaps=None, input_bound=None,
    profile=None, trusted=(), trust_pickle=False, project=<rootdir>)``; ``help()`` on it
    says what each is, and a keyword it does not take is a TypeError listing them.

    Example::

        def test_parity(harness_check):
            harness_check("model.onnx", "model.skops", data="rows.csv")
    """
    from harness.testing import check_fixture, fixture_callable

    def check(bound: inspect.BoundArguments) -> PairVerdict:
        bound.arguments.setdefault("project", Path(request.config.rootpath))
        model = bound.arguments["model"]
        try:
            verdict = check_fixture(*bound.args, **bound.kwargs)
        except pytest.fail.Exception:  # a discrepancy, or a pair it could not check
            harness_session.note_parity(model, "fail")
            raise
        harness_session.note_parity(model, "pass")
        return verdict

    return fixture_callable("harness_check", check_fixture, 0, check)


@pytest.fixture
def harness_benchmark(
    request: pytest.FixtureRequest, harness_session: HarnessSession
) -> Callable[..., BenchmarkOutcome]:
    """Time an ONNX model (and its reference, in the same test) with pytest-benchmark.

    ``harness_benchmark(model, *, reference=None, data=None, batch_size=100, provider="cpu",
    threads=1, rounds=None, trusted=(), trust_pickle=False)``; ``help()`` on it says what
    each is, and a keyword it does not take is a TypeError listing them.

    Example::

        def test_speed(harness_benchmark):
            result = harness_benchmark("model.onnx", reference="model.skops", batch_size=100)
            assert result.active_provider == "CPUExecutionProvider"
    """
    from harness.testing import benchmark_fixture, fixture_callable

    benchmark = request.getfixturevalue("benchmark")

    def run(bound: inspect.BoundArguments) -> BenchmarkOutcome:
        node = request.node
        return benchmark_fixture(benchmark, harness_session, node, *bound.args, **bound.kwargs)

    return fixture_callable("harness_benchmark", benchmark_fixture, 3, run)


# -- progress of a harness run's nested sessions -------------------------------------------

#: How the counts of a finished phase are worded, in this order.
_OUTCOMES = ("passed", "failed", "xfailed", "xpassed", "skipped")


def _outcome(report: pytest.TestReport) -> str | None:
    """What a test's report says of it: passed, failed, skipped, xfailed or xpassed."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.failed:
        longrepr = report.longrepr
        strict_xpass = isinstance(longrepr, str) and longrepr.startswith("[XPASS(strict)]")
        return "xpassed" if strict_xpass else "failed"
    if report.skipped:
        return "skipped"
    return "passed" if report.when == "call" else None


def _first_line(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The error a report carries, in one line."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else report.longreprtext
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else "no message"
    return line if len(line) <= 200 else line[:197] + "..."


class PytestProgress:
    """pytest plugin object: drives a ``Progress`` from a session's hooks and counts its
    outcomes; a failure is said in one line (pytest's own report shows with ``--verbose``).
    The phase finishes with its last item, before whatever the session does after it.

    Under pytest-xdist the controller receives the workers' reports through the same hooks;
    the number of items comes from the workers' collections.
    """

    def __init__(self, progress: Progress, *, say_failures: bool = True) -> None:
        self.progress = progress
        self.say_failures = say_failures
        self.outcomes: dict[str, str] = {}
        self.interrupted = False

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.outcomes.values())

    def summary(self) -> str:
        """'233 checks done in 3 min 25 s: 221 passed, 0 failed, 9 xfailed, 3 skipped'."""
        counts = self.counts
        done = sum(counts.values())
        unit = f" {self.progress.unit}" if self.progress.unit else ""
        words = [f"{counts[o]} {o}" for o in _OUTCOMES if counts[o] or o in ("passed", "failed")]
        took = format_seconds(self.progress.elapsed)
        if self.interrupted:
            of = f" of {self.progress.total}" if self.progress.total is not None else ""
            return f"interrupted after {done}{of}{unit} in {took}: {', '.join(words)}"
        return f"{done}{unit} done in {took}: {', '.join(words)}"

    @pytest.hookimpl(trylast=True)  # after the terminal reporter is registered
    def pytest_configure(self, config: pytest.Config) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:  # pytest's own output is on (verbose): lines go through it
            self.progress.writer = reporter.write_line

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.progress.writer = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if session.items:
            self.progress.begin(len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        self.progress.begin(len(ids))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted = True

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.progress.note(f"  ERROR collecting {report.nodeid}: {_first_line(report)}")

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.progress.working_on(*item_label(nodeid))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = _outcome(report)
        if outcome is not None and self.outcomes.get(report.nodeid) not in ("failed", "xpassed"):
            self.outcomes[report.nodeid] = outcome
        if report.failed and self.say_failures:
            _, label = item_label(report.nodeid)
            what = "XPASS" if outcome == "xpassed" else "FAILED"
            phase = "" if report.when == "call" else f" (in {report.when})"
            self.progress.note(f"  {what} {label}{phase}: {_first_line(report)}")

    @pytest.hookimpl(trylast=True)  # after pytest's own line for the item, where it has one
    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.progress.advance()
        total = self.progress.total
        if total is not None and self.progress.done >= total:
            self.progress.finish(self.summary())  # before what the session does after
