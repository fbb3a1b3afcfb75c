"""``harness run``: the main job. Parity, benchmarks, results, reports.

The suites ship inside the installed package (``harness.suites``) and run in a pytest session
of their own, isolated from the configuration of whatever folder the user runs in.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.bench import build_points
from harness.options import to_pytest_args
from harness.selection import Selection

__all__ = ["RunError", "RunOutcome", "run"]

BENCH_SUITE = "harness.suites.bench"
PARITY_SUITE = "harness.suites.parity"
#: The configuration of the nested pytest sessions: nothing of the user's pytest settings.
_INI = "[pytest]\npython_files = test_*.py\n"


class RunError(Exception):
    """The run cannot start as asked (unwritable output, bad model or data): exit 2."""


class _Collector:
    """pytest plugin object: counts outcomes and keeps skip reasons."""

    def __init__(self) -> None:
        self.skipped: list[dict[str, str]] = []
        self.failed: list[str] = []
        self.passed = 0

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


def _suites_root() -> Path:
    import harness.suites

    return Path(harness.suites.__file__).resolve().parent


def _pytest(suite: str, args: list[str], workdir: Path, plugins: list[Any]) -> int:
    """Run an installed suite in a pytest session isolated from the caller's configuration."""
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
        "--no-header",
        # this process already imported the harness plugin: pytest cannot rewrite it again
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    ]
    code = int(pytest.main(base + args, plugins=plugins))
    if code == int(pytest.ExitCode.INTERRUPTED):
        raise KeyboardInterrupt  # pytest caught Ctrl-C; it is not the run's to swallow
    return code


def run_parity(
    out: Path, selection: Selection, workdir: Path, profile: str = "ci"
) -> tuple[int, list[dict[str, Any]]]:
    """The zoo parity suite (Hypothesis profile ``profile``, two workers); its conformance."""
    target = out / "conformance"
    saved = os.environ.get("HYPOTHESIS_PROFILE")
    os.environ["HYPOTHESIS_PROFILE"] = profile  # read by the xdist workers too
    try:
        args = ["-q", "-n", "2", "--harness-conformance", str(target)]
        if selection.cases:
            args += ["--harness-cases", ",".join(selection.cases)]
        code = _pytest(PARITY_SUITE, args, workdir, [])
    finally:
        if saved is None:
            os.environ.pop("HYPOTHESIS_PROFILE", None)
        else:
            os.environ["HYPOTHESIS_PROFILE"] = saved
    path = target.with_suffix(".json")
    rows: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    return code, rows


def _bench_args(selection: Selection, json_path: Path, verbose: bool) -> list[str]:
    return [
        "-p",
        "no:xdist",  # timing runs serially; also when harness run itself runs inside xdist
        "-v" if verbose else "-q",
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
            if row.get("extra_info", {}).get("provider_requested") in (provider, "-")
        ]
        if any(r["extra_info"].get("provider_requested") == provider for r in rows) or (
            rows and provider == providers[0]  # a scikit-learn-only run (--model x.skops)
        ):
            block = dict(data["harness"], provider=provider)
            out[provider] = {**data, "benchmarks": rows, "harness": block}
    return out


def _writable(folder: Path, what: str) -> None:
    """Create ``folder`` and prove it writable now, before any work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".harness-probe-"):
            pass
    except OSError as exc:
        raise RunError(f"{what} {folder} is not writable: {exc.strerror or exc}") from None


def preflight(selection: Selection, out: Path, results_dir: Path | None) -> None:
    """Everything that can be checked before the work: outputs, model, reference, data."""
    _writable(out, "--out")
    if results_dir is not None:
        _writable(results_dir, "--results")
    if selection.user_model is not None:
        from harness.usermodel import UserModelError, load_user_model

        try:
            load_user_model(selection.user_model)
        except UserModelError as exc:
            raise RunError(str(exc)) from None


def _user_parity(selection: Selection, out: Path) -> dict[str, Any] | None:
    """``harness check`` on the user's pair; its verdict for the results and the report."""
    user = selection.user_model
    if user is None or user.reference is None or not user.is_onnx:
        return None
    from harness.check import CheckSetupError, check_pair, outcomes_table
    from harness.usermodel import load_user_model

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
        )
    except CheckSetupError as exc:
        raise RunError(str(exc)) from None
    table = outcomes_table(outcomes)
    (out / "parity.md").write_text(f"# Parity of {user.label}\n\n{table}\n")
    print(table, flush=True)
    failed = [o.check for o in outcomes if o.status in ("fail", "xpass", "error")]
    return {
        "model": user.label,
        "verdict": "fail" if failed else "pass",
        "failed": failed,
        "outcomes": [o.as_dict() for o in outcomes],
    }


def run(
    selection: Selection,
    *,
    out: Path,
    results_dir: Path | None,
    json_out: Path | None = None,
    parity: bool = True,
    verbose: bool = False,
) -> RunOutcome:
    """Check parity, run the benchmarks for ``selection``, store results, write the reports.

    Raises RunError before any work when an output folder, the model or the data is unusable.
    """
    from harness.machine import git_info, machine_id
    from harness.report import write_reports
    from harness.store import ResultFile, load_result, write_result

    preflight(selection, out, results_dir)
    points = build_points(selection)
    n_cases = len({p.case for p in points})
    print(
        f"harness run: profile {selection.profile}, {len(points)} benchmarks ({n_cases} cases, "
        f"batches {list(selection.effective_batch_sizes)}, threads "
        f"{list(selection.effective_threads)}, providers {list(selection.providers)})",
        flush=True,
    )
    collector = _Collector()
    start = time.perf_counter()
    parity_code, conformance = 0, list[dict[str, Any]]()
    user_parity = None
    with tempfile.TemporaryDirectory(prefix="harness-run-") as tmp:
        workdir = Path(tmp)
        if parity and selection.user_model is None:
            print("harness run: parity suite (Hypothesis ci profile)", flush=True)
            parity_code, conformance = run_parity(out, selection, workdir)
        elif parity:
            user_parity = _user_parity(selection, out)
        json_path = workdir / "bench.json"
        with _outside_xdist():
            code = _pytest(
                BENCH_SUITE, _bench_args(selection, json_path, verbose), workdir, [collector]
            )
        if not json_path.exists():
            print(f"harness run: no benchmark ran (pytest exit {code})", file=sys.stderr)
            return RunOutcome(4, [], None, collector)
        data = json.loads(json_path.read_text())
    data["harness"]["skipped"] = collector.skipped
    data["harness"]["conformance"] = conformance
    if user_parity is not None:
        data["harness"]["parity"] = user_parity
    data["harness"]["seconds"] = time.perf_counter() - start
    if json_out is not None:  # the whole run, every provider, for --ab and calibrate
        from engines._io import atomic_write_bytes

        atomic_write_bytes(json_out, json.dumps(data, default=str).encode())
    per_provider = _split_by_provider(data, selection.providers)
    results: list[ResultFile] = []
    paths: list[Path] = []
    commit = git_info().get("commit")
    for provider, payload in per_provider.items():
        if results_dir is None:
            results.append(ResultFile(out / f"{provider}.json", payload))
            continue
        machine = data["harness"].get("machine_id") or machine_id()
        path = write_result(
            results_dir, payload, machine_id=machine, provider=provider, commit=commit
        )
        paths.append(path)
        results.append(load_result(path))
    user = selection.user_model
    title = "Harness report" + (f" - {user.label}" if user else "")
    reports = write_reports(results, out, title) if results else None
    print(
        f"\nharness run: {collector.passed} benchmarks, {len(collector.skipped)} skipped, "
        f"{len(collector.failed)} failed in {time.perf_counter() - start:.0f} s"
    )
    for path in paths:
        print(f"  results: {path}")
    if reports:
        print(f"  report:  {reports[0]}\n  report:  {reports[1]}")
    export_failures = sorted(
        {
            f"{row['extra_info']['case']}/{row['extra_info']['engine']}"
            for row in data.get("benchmarks", [])
            if row["extra_info"].get("parity") == "fail"
        }
    )
    if export_failures:
        print(f"  export validation FAILED for {export_failures}", file=sys.stderr)
    parity_failed = (
        parity_code == 1
        or bool(export_failures)
        or (user_parity is not None and bool(user_parity["failed"]))
    )
    if parity_code == 1:
        print(f"  parity suite FAILED: see {out / 'conformance.md'}", file=sys.stderr)
    elif parity_code not in (0, 5):
        print(f"  parity suite did not run (pytest exit {parity_code})", file=sys.stderr)
    if user_parity is not None and user_parity["failed"]:
        print(
            f"  parity FAILED for {user_parity['model']}: {', '.join(user_parity['failed'])} "
            f"(see {out / 'parity.md'})",
            file=sys.stderr,
        )
    if collector.failed:
        print(f"  benchmarks that crashed: {', '.join(collector.failed)}", file=sys.stderr)
    if parity_failed:
        exit_code = 1
    elif code != 0 or parity_code not in (0, 5):
        exit_code = 4  # a benchmark or the parity suite crashed: not a finding about the model
    else:
        exit_code = 0
    return RunOutcome(exit_code, paths, reports, collector)
