"""``harness run``: the main job. Parity, benchmarks, results, reports.

The suites ship inside the installed package (``harness.suites``) and run in a pytest session
of their own, isolated from the configuration of whatever folder the user runs in.

Console: each long phase (parity suite, benchmarks, cold start) says its progress, the case
being worked on and an estimate of the time left (``harness.console``; plain lines where
stdout is not a terminal), and the run closes with where the results and reports are and
the verdict counts. pytest's own progress and pytest-benchmark's tables show with
``verbose`` only.

Faults: output locations are proved writable before any work; a store that fails after the
work (a full disk) leaves the measurements in a temporary file, named in the message. Ctrl-C
or SIGTERM (turned into the same KeyboardInterrupt while a run is active) stops the run, its
temporary folders removed: nothing is stored as a complete run; benchmarks already measured
are stored marked ``interrupted``, which readers leave out unless asked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness._signals import on_sigterm
from harness.console import Progress, format_seconds, live_terminal
from harness.options import OptionError, project_settings, stale_gaps_advice, to_pytest_args
from harness.plugin import SESSION_KEY, PytestProgress
from harness.results.schema import extra_of
from harness.timing.points import Selection
from harness.timing.prepare import build_points

if TYPE_CHECKING:
    import pytest

__all__ = ["RunError", "RunOutcome", "run"]

BENCH_SUITE = "harness.suites.bench"
PARITY_SUITE = "harness.suites.parity"
#: The configuration of the nested pytest sessions: nothing of the user's pytest settings.
_INI = "[pytest]\npython_files = test_*.py\n"


class RunError(Exception):
    """The run cannot start as asked (unwritable output, bad model or data): exit 2."""


class _Collector:
    """pytest plugin object: counts outcomes and keeps skip reasons; the harness session's
    own lines (the cold start) go to ``say``."""

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        self.skipped: list[dict[str, str]] = []
        self.failed: list[str] = []
        self.passed = 0
        self.say = say

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        harness = session.config.stash.get(SESSION_KEY, None)
        if harness is not None and self.say is not None:
            harness.say = self.say

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test_id = report.nodeid.split("[", 1)[-1].rstrip("]")
        if report.skipped:
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.skipped.append({"id": test_id, "reason": reason.removeprefix("Skipped: ")})
        elif report.failed:
            self.failed.append(test_id)
        elif report.when == "call":
            self.passed += 1


def _run_line(line: str) -> str:
    """A line of the plugin's session (the cold start) as ``harness run`` says its own: the
    plugin's "harness:" is "harness run:" here."""
    return (
        f"harness run: {line.removeprefix('harness: ')}" if line.startswith("harness: ") else line
    )


class RunOutcome:
    """What a run produced; ``exit_code`` follows the CLI's policy (see ``harness --help``)."""

    def __init__(
        self,
        exit_code: int,
        result_paths: list[Path],
        reports: tuple[Path, Path] | None,
        collector: _Collector,
    ) -> None:
        self.exit_code = exit_code
        self.result_paths = result_paths
        self.reports = reports
        self.collector = collector


@contextlib.contextmanager
def _outside_xdist() -> Iterator[None]:
    """Hide an enclosing pytest-xdist worker (pytest-benchmark reads its environment variable
    and would disable timing): the benchmark run is a serial session of its own."""
    names = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@contextlib.contextmanager
def _phase(progress: PytestProgress, waiting: str) -> Iterator[None]:
    """A phase's progress from start to close; its closing line unless an exception stops
    it (a session pytest itself stopped on Ctrl-C closes with 'interrupted after ...')."""
    progress.progress.open(waiting)
    try:
        yield
        progress.progress.finish(progress.summary())
    finally:
        progress.progress.close()


def _suites_root() -> Path:
    import harness.suites

    return Path(harness.suites.__file__).resolve().parent


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup short
    raise KeyboardInterrupt(f"terminated (signal {signum})")


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside: pytest stops the session as on Ctrl-C and every
    ``finally`` (temporary folders, sessions) runs; the previous handler is restored after."""
    with on_sigterm(_on_sigterm):
        yield


def _interrupted(code: int) -> bool:
    """Whether pytest stopped the session on Ctrl-C (``pytest.ExitCode.INTERRUPTED``)."""
    import pytest

    return code == int(pytest.ExitCode.INTERRUPTED)


def _pytest(
    suite: str, args: list[str], workdir: Path, plugins: Sequence[Any], verbose: bool = False
) -> int:
    """Run an installed suite in a pytest session isolated from the caller's configuration;
    ``pytest.ExitCode.INTERRUPTED`` when it was interrupted (the caller decides what to keep).

    pytest's own output (progress, tracebacks, summary) with ``verbose`` only: otherwise its
    terminal reporter is not loaded and the ``plugins`` say what matters."""
    import pytest

    ini = workdir / "pytest.ini"
    ini.write_text(_INI)
    base = [
        "--pyargs",
        suite,
        "-c",
        str(ini),
        "--rootdir",
        str(_suites_root()),  # readable ids: bench/test_inference.py::...
        "-p",
        "no:cacheprovider",
        *(["-v", "--no-header"] if verbose else ["-p", "no:terminal"]),
        # this process already imported the harness plugin: pytest cannot rewrite it again
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    ]
    return int(pytest.main(base + args, plugins=list(plugins)))


def run_parity(
    out: Path,
    selection: Selection,
    workdir: Path,
    profile: str = "ci",
    *,
    verbose: bool = False,
    plugins: Sequence[Any] = (),
) -> tuple[int, list[dict[str, Any]]]:
    """The zoo parity suite (Hypothesis profile ``profile``, two workers); its conformance.

    ``plugins`` see the session's hooks (``harness.plugin.PytestProgress`` says progress)."""
    target = out / "conformance"
    for stale in (target.with_suffix(".json"), target.with_suffix(".md")):
        stale.unlink(missing_ok=True)  # an earlier run's verdict must not pass for this one's
    saved = os.environ.get("HYPOTHESIS_PROFILE")
    os.environ["HYPOTHESIS_PROFILE"] = profile  # read by the xdist workers too
    try:
        args = ["-n", "2", "--harness-conformance", str(target)]
        if selection.cases:
            args += ["--harness-cases", ",".join(selection.cases)]
        code = _pytest(PARITY_SUITE, args, workdir, plugins, verbose)
        if _interrupted(code):
            raise KeyboardInterrupt  # pytest caught Ctrl-C; it is not the run's to swallow
    finally:
        if saved is None:
            os.environ.pop("HYPOTHESIS_PROFILE", None)
        else:
            os.environ["HYPOTHESIS_PROFILE"] = saved
    path = target.with_suffix(".json")
    rows: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    return code, rows


def _bench_args(
    selection: Selection, json_path: Path, verbose: bool, cold_start: bool = True
) -> list[str]:
    return [
        "-p",
        "no:xdist",  # timing runs serially; also when harness run itself runs inside xdist
        # pytest-benchmark's tables (the report holds the same numbers) with verbose only
        *([] if verbose else ["--benchmark-quiet"]),
        "-W",
        "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
        "--benchmark-enable",
        "--benchmark-json",
        str(json_path),
        "--benchmark-columns",
        "median,ops,rounds",
        "--benchmark-sort",
        "name",
        *to_pytest_args(selection),
        *([] if cold_start else ["--harness-no-cold-start"]),
    ]


def _split_by_provider(
    data: dict[str, Any], providers: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """One result per provider; rows without a provider (scikit-learn, torch) go in each."""
    out = {}
    for provider in providers:
        rows = [
            row
            for row in data.get("benchmarks", [])
            if extra_of(row).get("provider_requested") in (provider, "-")
        ]
        if any(extra_of(r).get("provider_requested") == provider for r in rows) or (
            rows and provider == providers[0]  # a scikit-learn-only run (--model x.skops)
        ):
            block = dict(data["harness"], provider=provider)
            cold = [e for e in block.pop("cold_start", []) if e.get("provider") == provider]
            if cold:  # each provider's file holds the cold starts of its own models
                block["cold_start"] = cold
            out[provider] = {**data, "benchmarks": rows, "harness": block}
    return out


def preflight(
    selection: Selection, out: Path, results_dir: Path | None, json_out: Path | None = None
) -> None:
    """Everything that can be checked before the work: outputs, model, reference, data."""
    from harness.results.store import OutputError, check_output_file, check_output_folder

    try:
        check_output_folder(out, "--out")
        if results_dir is not None:
            check_output_folder(results_dir, "--results")
        if json_out is not None:
            check_output_file(json_out, "--json", atomic=True)
    except OutputError as exc:
        raise RunError(str(exc)) from None
    if selection.user_model is not None:
        from harness.cases.usermodel import UserModelError, load_user_model

        try:
            load_user_model(selection.user_model)
        except UserModelError as exc:
            raise RunError(str(exc)) from None


def _user_parity(selection: Selection, out: Path) -> dict[str, Any] | None:
    """``harness check`` on the user's pair; its verdict for the results and the report."""
    user = selection.user_model
    if user is None or user.reference is None or not user.is_onnx:
        return None
    from harness.cases.usermodel import load_user_model
    from harness.checks.pair import CheckSetupError, check_pair, outcomes_table

    loaded = load_user_model(user)
    print(f"harness run: parity of {user.model} against {user.reference}", flush=True)
    try:
        outcomes = check_pair(
            user.model,
            user.reference,
            data=loaded.rows if user.data is not None else None,
            known_gaps=user.gaps,
            input_bound=user.input_bound,
            trusted=user.trusted,
            trust_pickle=user.trust_pickle,
            progress=lambda line: print(f"harness run: parity: {line}", flush=True),
        )
    except CheckSetupError as exc:
        raise RunError(str(exc)) from None
    table = outcomes_table(outcomes)
    (out / "parity.md").write_text(f"# Parity of {user.label}\n\n{table}\n")
    print(table, flush=True)
    try:
        settings = project_settings()  # where the known gaps were declared, to say so
    except OptionError:
        settings = {}
    stale = stale_gaps_advice(outcomes, settings, given="--known-gap")
    if stale is not None:
        print(f"harness run: {stale}", flush=True)
    failed = [o.check for o in outcomes if o.status in ("fail", "xpass", "error")]
    return {
        "model": user.label,
        "verdict": "fail" if failed else "pass",
        "failed": failed,
        "outcomes": [o.as_dict() for o in outcomes],
    }


def _say_left_out(profile: Any) -> None:
    """One line for the zoo cases an uninstalled extra leaves out of a run of the whole zoo."""
    from harness.cases.zoo import available, cases
    from harness.options import EXTRAS

    left_out = available(cases(profile))[1]
    if left_out:
        installs = sorted(
            {EXTRAS.get(m, f"pip install {m}") for c in left_out for m in c.missing()}
        )
        print(
            f"harness run: note: {len(left_out)} zoo case(s) left out, their extra not installed "
            f"({', '.join(c.name for c in left_out)}): {'; '.join(installs)}",
            flush=True,
        )


def run(
    selection: Selection,
    *,
    out: Path,
    results_dir: Path | None,
    json_out: Path | None = None,
    parity: bool = True,
    verbose: bool = False,
    cold_start: bool = True,
) -> RunOutcome:
    """Check parity, run the benchmarks for ``selection``, store results, write the reports.

    Raises RunError before any work when an output location, the model or the data is
    unusable, and KeyboardInterrupt on Ctrl-C or SIGTERM (after removing its temporary
    folders and storing what was measured marked ``interrupted``).

    Example::

        outcome = run(Selection(cases=("iforest-100",)), out=Path("out"), results_dir=None)
        outcome.exit_code, outcome.reports
    """
    with _terminate_as_interrupt():
        return _run(selection, out, results_dir, json_out, parity, verbose, cold_start)


@dataclasses.dataclass
class _Parity:
    """What the parity phase found: the suite's exit code and conformance rows (zoo), or the
    user pair's outcomes, and the summary line."""

    code: int = 0
    conformance: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    summary: str = "not run (--no-parity)"
    user: dict[str, Any] | None = None


def _run(
    selection: Selection,
    out: Path,
    results_dir: Path | None,
    json_out: Path | None,
    parity: bool,
    verbose: bool,
    cold_start: bool = True,
) -> RunOutcome:
    """Preflight -> parity -> benchmarks -> store -> reports -> summary and exit code."""
    preflight(selection, out, results_dir, json_out)
    points = build_points(selection)
    n_cases = len({p.case for p in points})
    print(
        f"harness run: profile {selection.profile}, {len(points)} benchmarks ({n_cases} cases, "
        f"batches {list(selection.effective_batch_sizes)}, threads "
        f"{list(selection.effective_threads)}, providers {list(selection.providers)})",
        flush=True,
    )
    if selection.user_model is not None:  # loaded once by the preflight (cached)
        from harness.cases.usermodel import load_user_model

        loaded = load_user_model(selection.user_model)
        if loaded.scoring is not None:
            print(
                f"harness run: note: {selection.user_model.model} scores {loaded.scoring}",
                flush=True,
            )
        repeated = loaded.repeated_rows(selection.effective_batch_sizes)
        if repeated is not None:
            print(f"harness run: note: {repeated}", flush=True)
    elif not selection.cases:
        _say_left_out(selection.spec.zoo_profile)
    live = not verbose and live_terminal(sys.stdout)  # pytest writes there too with verbose
    bench = PytestProgress(
        Progress("benchmarks", live=live, statuses=not verbose), say_failures=not verbose
    )
    collector = _Collector(say=lambda line: bench.progress.note(f"  {_run_line(line)}"))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="harness-run-") as tmp:
        workdir = Path(tmp)
        found = _parity_phase(selection, out, workdir, parity, verbose=verbose, live=live)
        json_path = workdir / "bench.json"
        print(
            "harness run: benchmarks"
            + (", then the cold start of each ONNX model" if cold_start else ""),
            flush=True,
        )
        with _outside_xdist(), _phase(bench, "collecting"):
            code = _pytest(
                BENCH_SUITE,
                _bench_args(selection, json_path, verbose, cold_start),
                workdir,
                [collector, bench],
                verbose,
            )
        if _interrupted(code):
            _keep_interrupted(json_path, selection, results_dir)
            raise KeyboardInterrupt  # pytest caught Ctrl-C; it is not the run's to swallow
        if not json_path.exists():
            print(f"harness run: no benchmark ran (pytest exit {code})", file=sys.stderr)
            return RunOutcome(4, [], None, collector)
        data = json.loads(json_path.read_text())
    data["harness"]["skipped"] = collector.skipped
    data["harness"]["conformance"] = found.conformance
    if found.user is not None:
        data["harness"]["parity"] = found.user
    data["harness"]["seconds"] = time.perf_counter() - start
    paths, unwritten = _deliver(data, selection, results_dir, json_out)
    reports, unwritten = _reports(data, selection, out, results_dir, paths, unwritten)
    print(
        f"\nharness run: {collector.passed} benchmarks, {len(collector.skipped)} skipped, "
        f"{len(collector.failed)} failed in {format_seconds(time.perf_counter() - start)}"
    )
    print(f"  parity:  {found.summary}")
    for path in paths:
        print(f"  results: {path}")
    if not paths:
        print(
            "  results: not stored ("
            + ("--no-store" if results_dir is None else "see the message above")
            + ")"
        )
    if json_out is not None and not unwritten:
        print(f"  json:    {json_out}")
    if reports:
        print(f"  report:  {reports[0]}\n  report:  {reports[1]}")
    exit_code = _exit_code(data, found, collector, out, bench_code=code, unwritten=unwritten)
    return RunOutcome(exit_code, paths, reports, collector)


def _parity_phase(
    selection: Selection, out: Path, workdir: Path, parity: bool, *, verbose: bool, live: bool
) -> _Parity:
    """The zoo's parity suite (2 workers), or the user pair's checks, or nothing."""
    found = _Parity()
    if not parity:
        return found
    if selection.user_model is not None:
        found.user = _user_parity(selection, out)
        if found.user is not None:
            found.summary = _user_parity_summary(found.user, out)
        elif selection.user_model.reference is None:
            found.summary = "not checked (--model without --reference)"
        else:
            found.summary = "not checked (--model is not an ONNX model)"
        return found
    print("harness run: parity suite (Hypothesis ci profile, 2 workers)", flush=True)
    checks = PytestProgress(
        Progress("parity", "checks", live=live, statuses=not verbose), say_failures=not verbose
    )
    with _phase(checks, "starting 2 workers, each fits and exports the cases"):
        found.code, found.conformance = run_parity(
            out, selection, workdir, verbose=verbose, plugins=[checks]
        )
    found.summary = checks.summary()
    if found.conformance:
        found.summary += f" -> {out / 'conformance.md'}"
    return found


def _reports(
    data: dict[str, Any],
    selection: Selection,
    out: Path,
    results_dir: Path | None,
    paths: list[Path],
    unwritten: bool,
) -> tuple[tuple[Path, Path] | None, bool]:
    """report.md and report.html from what the readers will see: the stored files, or the
    run's own rows when nothing was stored; (the reports or None, whether an output failed)."""
    from harness.reports.html import write_reports
    from harness.results.store import ResultFile, load_result

    results: list[ResultFile]
    if results_dir is None or unwritten:
        per_provider = _split_by_provider(data, selection.providers)
        results = [ResultFile(out / f"{p}.json", payload) for p, payload in per_provider.items()]
    else:
        results = [load_result(path) for path in paths]
    if not results:
        return None, unwritten
    user = selection.user_model
    title = "Harness report" + (f" - {user.label}" if user else "")
    try:
        return write_reports(results, out, title), unwritten
    except OSError as exc:
        print(
            f"harness run: could not write the reports into {out} ({exc.strerror or exc})"
            + (
                f"; the results are stored: `harness report {results_dir}` rebuilds them"
                if paths
                else ""
            ),
            file=sys.stderr,
        )
        return None, True


def _exit_code(
    data: dict[str, Any],
    found: _Parity,
    collector: _Collector,
    out: Path,
    *,
    bench_code: int,
    unwritten: bool,
) -> int:
    """Say what failed, then 1 a finding about the model, 2 an output not written, 4 a crash
    of a benchmark or of the parity suite, 0 otherwise."""
    export_failures = sorted(
        {
            f"{extra.get('case')}/{extra.get('engine')}"
            for extra in map(extra_of, data.get("benchmarks", []))
            if extra.get("parity") == "fail"
        }
    )
    if export_failures:
        print(f"  export validation FAILED for {export_failures}", file=sys.stderr)
    user = found.user
    user_failed = user is not None and bool(user["failed"])
    if found.code == 1:
        print(f"  parity suite FAILED: see {out / 'conformance.md'}", file=sys.stderr)
    elif found.code not in (0, 5):
        print(f"  parity suite did not run (pytest exit {found.code})", file=sys.stderr)
    if user is not None and user_failed:
        print(
            f"  parity FAILED for {user['model']}: {', '.join(user['failed'])} "
            f"(see {out / 'parity.md'})",
            file=sys.stderr,
        )
    if collector.failed:
        print(f"  benchmarks that crashed: {', '.join(collector.failed)}", file=sys.stderr)
    if found.code == 1 or export_failures or user_failed:
        return 1  # a finding about the model outranks everything else
    if unwritten:
        return 2  # an output location failed: what was measured is kept (see above)
    if bench_code != 0 or found.code not in (0, 5):
        return 4  # a benchmark or the parity suite crashed: not a finding about the model
    return 0


def _user_parity_summary(user_parity: dict[str, Any], out: Path) -> str:
    """'m PASS: 7 passed, 0 failed, 1 skipped -> out/parity.md'."""
    counts = Counter(o["status"] for o in user_parity["outcomes"])
    words = [
        f"{counts[s]} {w}"
        for s, w in (
            ("pass", "passed"),
            ("fail", "failed"),
            ("xfail", "xfailed"),
            ("xpass", "xpassed"),
            ("skip", "skipped"),
        )
        if counts[s] or s in ("pass", "fail")
    ]
    verdict = user_parity["verdict"].upper()
    return f"{user_parity['model']} {verdict}: {', '.join(words)} -> {out / 'parity.md'}"


def _deliver(
    data: dict[str, Any],
    selection: Selection,
    results_dir: Path | None,
    json_out: Path | None,
) -> tuple[list[Path], bool]:
    """Write ``--json`` and one result file per provider: (stored paths, whether anything
    failed). Where a write fails after the work (a full disk), the whole run's measurements
    are kept in a temporary file and the message says where."""
    from engines._io import atomic_write_bytes
    from harness.results.machine import git_info, machine_id
    from harness.results.store import ResultsError, keep_somewhere, write_result

    payload = json.dumps(data, default=str).encode()
    failed: list[str] = []
    if json_out is not None:  # the whole run, every provider, for --ab and calibrate
        try:
            atomic_write_bytes(json_out, payload)
        except OSError as exc:
            failed.append(f"--json {json_out} ({exc.strerror or exc})")
    paths: list[Path] = []
    if results_dir is not None:
        commit = git_info().get("commit")
        machine = data["harness"].get("machine_id") or machine_id()
        try:
            for provider, part in _split_by_provider(data, selection.providers).items():
                paths.append(
                    write_result(
                        results_dir, part, machine_id=machine, provider=provider, commit=commit
                    )
                )
        except (OSError, ResultsError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            failed.append(f"--results {results_dir} ({reason})")
    if failed:
        kept = keep_somewhere(payload, "harness-run")
        where = (
            f"the measurements are kept in {kept} (`harness report {kept}` reads it)"
            if kept
            else "nowhere could keep the measurements"
        )
        print(
            f"harness run: could not write {'; '.join(failed)}; {where}",
            file=sys.stderr,
        )
    return paths, bool(failed)


def _keep_interrupted(json_path: Path, selection: Selection, results_dir: Path | None) -> None:
    """Store what an interrupted benchmark session measured, marked ``interrupted``: never
    a complete run (readers leave it out unless asked), never lost either."""
    from harness.results.machine import git_info
    from harness.results.store import write_result

    try:
        data = json.loads(json_path.read_text()) if json_path.exists() else {}
    except (OSError, ValueError):
        data = {}
    if results_dir is None or not data.get("benchmarks") or "harness" not in data:
        print("harness run: interrupted; nothing stored", file=sys.stderr)
        return
    data["harness"]["interrupted"] = True
    machine = str(data["harness"].get("machine_id") or "unknown-machine")
    commit = git_info().get("commit")
    try:
        stored = [
            write_result(results_dir, part, machine_id=machine, provider=provider, commit=commit)
            for provider, part in _split_by_provider(data, selection.providers).items()
        ]
    except OSError as exc:
        print(f"harness run: interrupted; nothing stored ({exc.strerror or exc})", file=sys.stderr)
        return
    print(
        f"harness run: interrupted; the {len(data['benchmarks'])} benchmark(s) measured so far "
        f"are stored marked interrupted in {', '.join(map(str, stored))} (report, gate and "
        "history leave them out unless --include-interrupted)",
        file=sys.stderr,
    )
