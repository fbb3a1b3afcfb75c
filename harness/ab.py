"""Interleaved A/B timing in two live worker processes: ``gate --ab`` and ``calibrate``.

Each side is a worker process running its own code tree (``harness.worker``); the
coordinator asks them for timed blocks alternately, in ABBA order per benchmark, so machine
drift hits both sides alike. Measured on the project's shared 2-core machine: fresh processes
run one after the other differed by up to 35% (ONNX) and 75% (scikit-learn) in median latency,
which no stored-baseline comparison at a 5% threshold survives; interleaving is what works.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from harness.bench import BenchPoint, Selection, build_points
from harness.gate import GateReport, gate
from harness.machine import git_info, library_versions, machine_id, machine_info
from harness.plugin import add_speedups
from harness.store import SCHEMA_VERSION, ResultFile

__all__ = ["ABError", "Worker", "ab_gate", "calibrate", "interleave"]

ROOT = Path(__file__).resolve().parent.parent


def _shared_cpu() -> int | None:
    """The core both workers are pinned to (the last one this process may use)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


class ABError(Exception):
    """The A/B run could not be set up (not a git checkout, unknown ref, old ref, crash)."""


class Worker:
    """A ``harness.worker`` process on the code of ``tree``, prepared for ``points``."""

    def __init__(
        self, tree: Path, points: Sequence[BenchPoint], workdir: Path, log: IO[str]
    ) -> None:
        self.tree = tree
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "harness.worker"],
            cwd=tree,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        payload = {
            "points": [dataclasses.asdict(p) for p in points],
            "workdir": str(workdir),
            "cpu": _shared_cpu(),
        }
        self.git = git_info(tree)  # now: a temporary worktree is gone by the time we report
        try:
            ready = self._ask(payload)
        except ABError:
            self.close()
            raise
        self.points: dict[str, dict[str, Any]] = ready["points"]

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        try:
            self._process.stdin.write(json.dumps(message) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise ABError(
                f"the benchmark worker in {self.tree} stopped (exit {self._process.poll()}); a ref "
                "older than `harness.worker` cannot be A/B tested. See the log for its error."
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def time(self, point_id: str) -> float:
        """Per-call seconds of one timed block."""
        return float(self._ask({"time": point_id})["seconds"])

    def close(self) -> None:
        """Ask the worker to quit (kill it if it does not) and close the pipes."""
        if self._process.poll() is None:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write(json.dumps({"quit": True}) + "\n")
                self._process.stdin.flush()
                self._process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a dead worker: flushing stdin breaks
                    pipe.close()


def interleave(
    a: Worker, b: Worker, points: Sequence[BenchPoint], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[dict[str, str]]]:
    """ABBA (then BAAB) blocks per benchmark; returns per-call samples per side and skips."""
    samples: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    skipped = []
    live = []
    for point in points:
        reasons = [w.points[point.id]["skip"] for w in (a, b) if w.points[point.id]["skip"]]
        if reasons:
            skipped.append({"id": point.id, "reason": reasons[0]})
        else:
            live.append(point)
    workers = {"A": a, "B": b}
    for r in range(rounds):
        order = "ABBA" if r % 2 == 0 else "BAAB"
        for point in live:
            for side in order:
                samples[side].setdefault(point.id, []).append(workers[side].time(point.id))
    return samples["A"], samples["B"], skipped


def _result(
    samples: dict[str, list[float]],
    points: Sequence[BenchPoint],
    worker: Worker,
    label: str,
    skipped: list[dict[str, str]],
) -> ResultFile:
    rows = []
    for point in points:
        data = samples.get(point.id)
        if not data:
            continue
        arr = np.asarray(data)
        extra = {
            **worker.points[point.id].get("info", {}),
            "engine": point.engine,
            "case": point.case,
            "exporter": point.exporter,
            "provider_requested": point.provider,
            "batch_size": point.batch_size,
            "threads": point.threads,
            "calls_per_sample": worker.points[point.id]["calls"],
        }
        stats = {
            "median": float(np.median(arr)),
            "min": float(arr.min()),
            "max": float(arr.max()),
            "mean": float(arr.mean()),
            "rounds": len(arr),
            "iterations": 1,
            "data": data,
        }
        rows.append(
            {
                "name": f"test_score_samples[{point.id}]",
                "group": None,
                "stats": stats,
                "extra_info": extra,
            }
        )
    add_speedups(rows)
    harness = {
        "schema_version": SCHEMA_VERSION,
        "machine_id": machine_id(),
        "machine": machine_info(),
        "versions": library_versions(),
        "git": worker.git,
        "provider": "cpu",
        "profile": "ab",
        "skipped": skipped,
        "paired": True,
    }
    return ResultFile(Path(f"{label}.json"), {"benchmarks": rows, "harness": harness})


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ABError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def ab_gate(
    ref: str, selection: Selection, *, rounds: int = 60, **gate_options: Any
) -> tuple[GateReport, float, tuple[ResultFile, ResultFile]]:
    """Time ``ref`` (A) and the working tree (B) interleaved, then gate B against A."""
    if rounds < 2:
        raise ValueError(f"rounds must be >= 2, got {rounds}")
    start = time.perf_counter()
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    points = build_points(selection)
    with tempfile.TemporaryDirectory(prefix="harness-ab-") as tmp:
        base = Path(tmp)
        tree_a = base / "ref"
        _git("worktree", "add", "--detach", str(tree_a), sha)
        workers: list[Worker] = []
        try:
            with open(base / "workers.log", "w") as log:
                what = f"{len(points)} benchmarks on {sha[:12]} and the working tree"
                print(f"harness gate --ab: preparing {what}", flush=True)
                try:
                    workers = [Worker(tree_a, points, base, log), Worker(ROOT, points, base, log)]
                except ABError as exc:
                    log.flush()
                    raise ABError(f"{exc}\n{(base / 'workers.log').read_text()[-2000:]}") from None
                print(f"harness gate --ab: timing {rounds} ABBA rounds", flush=True)
                a, b, skipped = interleave(workers[0], workers[1], points, rounds)
        finally:
            for worker in workers:
                worker.close()
            _git("worktree", "remove", "--force", str(tree_a))
        results = (
            _result(a, points, workers[0], "A", skipped),
            _result(b, points, workers[1], "B", skipped),
        )
    report = gate([results[0]], [results[1]], **gate_options)
    return report, time.perf_counter() - start, results


def calibrate(
    selection: Selection,
    *,
    runs: int = 3,
    rounds: int = 60,
    alpha: float = 0.01,
    results_dir: Path | None = None,
) -> dict[str, Any]:
    """A/A: two workers on the same code, interleaved like ``--ab``, ``runs`` times.

    Returns the noise per benchmark and the recommended threshold: the smallest (in 1% steps,
    plus one step of margin) at which no A/A comparison is called regressed or improved.
    """
    if runs < 1:
        raise ValueError(f"calibration needs at least 1 run, got {runs}")
    points = build_points(selection)
    noise: dict[str, list[float]] = {}
    recommended = 0.01
    with (
        tempfile.TemporaryDirectory(prefix="harness-calibrate-") as tmp,
        open(Path(tmp) / "log", "w") as log,
    ):
        for i in range(runs):
            print(f"harness calibrate: A/A run {i + 1}/{runs}", flush=True)
            a, b = Worker(ROOT, points, Path(tmp), log), Worker(ROOT, points, Path(tmp), log)
            try:
                sa, sb, skipped = interleave(a, b, points, rounds)
            finally:
                a.close()
                b.close()
            report = gate(
                [_result(sa, points, a, "A", skipped)],
                [_result(sb, points, b, "B", skipped)],
                threshold=0.01,
                alpha=alpha,
            )
            for row in report.rows:
                if np.isfinite(row.ratio):
                    noise.setdefault(row.name, []).append(abs(float(np.log(row.ratio))))
                if row.p_adjusted < alpha and np.isfinite(row.ci_low):
                    needed = max(row.ci_low - 1.0, 1.0 / row.ci_high - 1.0, 0.0)
                    recommended = max(recommended, float(np.ceil(needed * 100) / 100) + 0.01)
    machine = machine_id()
    summary: dict[str, Any] = {
        "machine_id": machine,
        "runs": runs,
        "rounds": rounds,
        "alpha": alpha,
        "recommended_threshold": round(recommended, 2),
        "noise": {
            name: {"median_abs_log_ratio": float(np.median(v)), "max_abs_log_ratio": float(max(v))}
            for name, v in sorted(noise.items())
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if results_dir is not None:
        from engines._io import atomic_write_bytes

        path = Path(results_dir) / machine / "calibration.json"
        atomic_write_bytes(path, json.dumps(summary, indent=2).encode())
        summary["path"] = str(path)
    return summary
