"""``harness run``: the main job. Benchmarks (and parity summaries), results, reports."""

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

from harness.bench import Selection, build_points
from harness.machine import git_info, machine_id
from harness.report import write_reports
from harness.store import ResultFile, load_result, write_result

__all__ = ["RunOutcome", "run"]

SUITE = Path(__file__).resolve().parent.parent / "suites" / "bench" / "test_inference.py"
PARITY = Path(__file__).resolve().parent.parent / "suites" / "parity"


def run_parity(out: Path, profile: str = "ci") -> tuple[int, list[dict[str, Any]]]:
    """The parity suite (Hypothesis profile ``profile``, two workers); its conformance rows."""
    target = out / "conformance"
    saved = {k: os.environ.get(k) for k in ("HARNESS_CONFORMANCE", "HYPOTHESIS_PROFILE")}
    os.environ.update(HARNESS_CONFORMANCE=str(target), HYPOTHESIS_PROFILE=profile)
    try:
        code = int(
            pytest.main(
                [
                    str(PARITY),
                    "-q",
                    "-n",
                    "2",
                    "-p",
                    "no:cacheprovider",
                    "-o",
                    "addopts=",
                    "--no-header",
                    "-W",
                    "ignore::pytest.PytestAssertRewriteWarning",
                ]
            )
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    path = target.with_suffix(".json")
    rows: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    return code, rows


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
    """What a run produced."""

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


def _pytest_args(selection: Selection, json_path: Path) -> list[str]:
    args = [
        str(SUITE),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",  # timing runs serially; also when harness run itself runs inside xdist
        "-o",
        "addopts=",  # the project's addopts disable benchmarks for unit-test runs
        "-o",
        "python_files=test_*.py",
        "-v",
        "--no-header",
        "-W",
        "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
        # this process already imported the harness plugin: pytest cannot rewrite it again
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        "--benchmark-enable",
        "--benchmark-json",
        str(json_path),
        "--benchmark-columns",
        "median,ops,rounds",
        "--benchmark-sort",
        "name",
        "--harness-profile",
        selection.profile,
        "--harness-providers",
        ",".join(selection.providers),
    ]
    if selection.cases:
        args += ["--harness-cases", ",".join(selection.cases)]
    if selection.batch_sizes:
        args += ["--harness-batch-sizes", ",".join(map(str, selection.batch_sizes))]
    if selection.threads:
        args += ["--harness-threads", ",".join(map(str, selection.threads))]
    user = selection.user_model
    if user is not None:
        args += ["--harness-model", str(user.model)]
        for flag, value in (
            ("reference", user.reference),
            ("data", user.data),
            ("n-features", user.n_features),
        ):
            if value is not None:
                args += [f"--harness-{flag}", str(value)]
    return args


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
        if any(r["extra_info"].get("provider_requested") == provider for r in rows):
            block = dict(data["harness"], provider=provider)
            out[provider] = {**data, "benchmarks": rows, "harness": block}
    return out


def run(
    selection: Selection,
    *,
    out: Path,
    results_dir: Path | None,
    json_out: Path | None = None,
    parity: bool = True,
) -> RunOutcome:
    """Run the benchmark suite for ``selection``, store results, write report.md/report.html."""
    if not SUITE.exists():
        raise FileNotFoundError(
            f"benchmark suite not found at {SUITE}: run the harness from a checkout of the project"
        )
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
    if selection.user_model is None and parity:
        print("harness run: parity suite (Hypothesis ci profile)", flush=True)
        parity_code, conformance = run_parity(out)
    with tempfile.TemporaryDirectory(prefix="harness-run-") as tmp:
        json_path = Path(tmp) / "bench.json"
        with _outside_xdist():
            code = int(pytest.main(_pytest_args(selection, json_path), plugins=[collector]))
        if not json_path.exists():
            print(f"harness run: no benchmark ran (pytest exit {code})", file=sys.stderr)
            return RunOutcome(code or 1, [], None, collector)
        data = json.loads(json_path.read_text())
    data["harness"]["skipped"] = collector.skipped
    data["harness"]["conformance"] = conformance
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
    title = "Harness report" + (" - your model" if selection.user_model else "")
    reports = write_reports(results, out, title) if results else None
    parity_failures = [
        row["extra_info"]["case"] + "/" + row["extra_info"]["engine"]
        for row in data.get("benchmarks", [])
        if row["extra_info"].get("parity") == "fail"
    ]
    print(
        f"\nharness run: {collector.passed} benchmarks, {len(collector.skipped)} skipped, "
        f"{len(collector.failed)} failed in {time.perf_counter() - start:.0f} s"
    )
    for path in paths:
        print(f"  results: {path}")
    if reports:
        print(f"  report:  {reports[0]}\n  report:  {reports[1]}")
    if parity_failures:
        print(f"  parity FAILED for {sorted(set(parity_failures))}", file=sys.stderr)
    if parity_code != 0:
        print("  parity suite FAILED: see out/conformance.md", file=sys.stderr)
    failed = code != 0 or bool(parity_failures) or parity_code != 0
    return RunOutcome(1 if failed else 0, paths, reports, collector)
