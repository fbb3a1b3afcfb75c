"""Interleaved A/B timing in live worker processes: ``gate --ab`` and ``calibrate``.

Each side is a worker process running its own code tree (``harness.worker``); the
coordinator asks them for timed blocks alternately, in ABBA order per benchmark, so machine
drift hits both sides alike. Measured on the project's shared 2-core machine: fresh processes
run one after the other differed by up to 35% (ONNX) and 75% (scikit-learn) in median latency,
which no stored-baseline comparison at a 5% threshold survives; interleaving is what works.

Two live processes of the SAME code, interleaved, still differ by a bias of their own (sd ~3%
at batch 1, once 12%), fixed for the process's life: rebuilding sessions and inputs inside it
does not move it, a new process draws a new one (its memory layout). So the rounds are spread
over several fresh worker pairs, the side started first alternating, and the pairs' samples
pooled: the biases average out instead of deciding the verdict.
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
from typing import IO, Any, Literal

import numpy as np

from harness.bench import BenchPoint, Selection, build_points
from harness.gate import GateReport, gate
from harness.machine import git_info, library_versions, machine_id, machine_info
from harness.plugin import add_speedups
from harness.store import SCHEMA_VERSION, ResultFile

__all__ = ["ABError", "ABSamples", "Worker", "ab_gate", "calibrate", "interleave", "run_pairs"]

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

    def time(self, point_id: str, calls: int | None = None) -> float:
        """Per-call seconds of one timed block (of ``calls`` calls; default: the worker's)."""
        message: dict[str, Any] = {"time": point_id}
        if calls is not None:
            message["calls"] = calls
        return float(self._ask(message)["seconds"])

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
    a: Worker,
    b: Worker,
    points: Sequence[BenchPoint],
    rounds: int,
    calls: dict[str, int] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[dict[str, str]]]:
    """ABBA (then BAAB) blocks per benchmark; returns per-call samples per side and skips.

    ``calls`` fixes the calls per block of each benchmark on both sides (default: A's).
    """
    samples: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    skipped = []
    live = []
    for point in points:
        reasons = [w.points[point.id]["skip"] for w in (a, b) if w.points[point.id]["skip"]]
        if reasons:
            skipped.append({"id": point.id, "reason": reasons[0]})
        else:
            live.append(point)
    per_block = {p.id: (calls or {}).get(p.id) or int(a.points[p.id]["calls"]) for p in live}
    workers = {"A": a, "B": b}
    for r in range(rounds):
        order = "ABBA" if r % 2 == 0 else "BAAB"
        for point in live:
            for side in order:
                seconds = workers[side].time(point.id, per_block[point.id])
                samples[side].setdefault(point.id, []).append(seconds)
    return samples["A"], samples["B"], skipped


@dataclasses.dataclass
class ABSamples:
    """Pooled samples of both sides over all worker pairs (sample i of A pairs with B's)."""

    a: dict[str, list[float]]
    b: dict[str, list[float]]
    skipped: list[dict[str, str]]
    workers: tuple[Worker, Worker]  # the first pair (closed): what the points reported
    pairs: int
    rounds_per_pair: int


def run_pairs(
    tree_a: Path,
    tree_b: Path,
    points: Sequence[BenchPoint],
    *,
    rounds: int,
    pairs: int,
    workdir: Path,
    log: IO[str],
    what: str = "harness gate --ab",
) -> ABSamples:
    """``rounds`` ABBA rounds spread over ``pairs`` fresh worker pairs, samples pooled.

    The side started first alternates from pair to pair; every pair times the same number
    of calls per block (the first pair's A side decides), so blocks are alike on both sides.
    """
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    per_pair = max(2, -(-rounds // pairs))
    a_all: dict[str, list[float]] = {}
    b_all: dict[str, list[float]] = {}
    first: tuple[Worker, Worker] | None = None
    skipped: list[dict[str, str]] = []
    calls: dict[str, int] = {}
    for i in range(pairs):
        print(f"{what}: worker pair {i + 1}/{pairs}, {per_pair} ABBA rounds", flush=True)
        order = (tree_a, tree_b) if i % 2 == 0 else (tree_b, tree_a)
        started: list[Worker] = []
        try:
            for tree in order:
                started.append(Worker(tree, points, workdir, log))
            a, b = started if i % 2 == 0 else started[::-1]
            if first is None:
                first = (a, b)
                calls = {
                    p.id: int(a.points[p.id]["calls"]) for p in points if a.points[p.id]["calls"]
                }
            sa, sb, skipped = interleave(a, b, points, per_pair, calls)
        finally:
            for worker in started:
                worker.close()
        for pooled, got in ((a_all, sa), (b_all, sb)):
            for key, values in got.items():
                pooled.setdefault(key, []).extend(values)
    assert first is not None
    return ABSamples(a_all, b_all, skipped, first, pairs, per_pair)


def _result(ab: ABSamples, side: Literal["A", "B"], points: Sequence[BenchPoint]) -> ResultFile:
    """One side of an A/B run as a result file (paired with the other side's)."""
    samples = ab.a if side == "A" else ab.b
    worker = ab.workers[0] if side == "A" else ab.workers[1]
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
            "calls_per_sample": ab.workers[0].points[point.id]["calls"],
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
        "skipped": ab.skipped,
        "paired": True,
        "worker_pairs": ab.pairs,
        "rounds_per_pair": ab.rounds_per_pair,
    }
    return ResultFile(Path(f"{side}.json"), {"benchmarks": rows, "harness": harness})


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ABError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def ab_gate(
    ref: str, selection: Selection, *, rounds: int = 100, pairs: int = 10, **gate_options: Any
) -> tuple[GateReport, float, tuple[ResultFile, ResultFile]]:
    """Time ``ref`` (A) and the working tree (B) interleaved, then gate B against A.

    ``rounds`` ABBA rounds in all, spread over ``pairs`` fresh worker pairs (see the module).
    """
    if rounds < 2:
        raise ValueError(f"rounds must be >= 2, got {rounds}")
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    start = time.perf_counter()
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    points = build_points(selection)
    with tempfile.TemporaryDirectory(prefix="harness-ab-") as tmp:
        base = Path(tmp)
        tree_a = base / "ref"
        _git("worktree", "add", "--detach", str(tree_a), sha)
        try:
            with open(base / "workers.log", "w") as log:
                what = f"{len(points)} benchmarks on {sha[:12]} and the working tree"
                print(f"harness gate --ab: {what}, {rounds} ABBA rounds", flush=True)
                try:
                    ab = run_pairs(
                        tree_a, ROOT, points, rounds=rounds, pairs=pairs, workdir=base, log=log
                    )
                except ABError as exc:
                    log.flush()
                    raise ABError(f"{exc}\n{(base / 'workers.log').read_text()[-2000:]}") from None
        finally:
            _git("worktree", "remove", "--force", str(tree_a))
        results = (
            _result(ab, "A", points),
            _result(ab, "B", points),
        )
    report = gate([results[0]], [results[1]], **gate_options)
    return report, time.perf_counter() - start, results


def calibrate(
    selection: Selection,
    *,
    runs: int = 3,
    rounds: int = 100,
    pairs: int = 10,
    alpha: float = 0.01,
    results_dir: Path | None = None,
) -> dict[str, Any]:
    """A/A: the same code on both sides, interleaved exactly like ``--ab``, ``runs`` times.

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
            ab = run_pairs(
                ROOT,
                ROOT,
                points,
                rounds=rounds,
                pairs=pairs,
                workdir=Path(tmp),
                log=log,
                what=f"harness calibrate: A/A run {i + 1}/{runs}",
            )
            report = gate(
                [_result(ab, "A", points)],
                [_result(ab, "B", points)],
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
        "pairs": pairs,
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
