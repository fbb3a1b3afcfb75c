"""Does the gate cry wolf, and does it catch a 10% slowdown? Measured with real timings.

1. Collect raw timings on this machine in several separate processes, one after the other
   (so between-run drift, allocation and frequency changes are in the data): IsolationForest
   (100 trees) as native ONNX and in scikit-learn, at batch 1 and 100, interleaved call by call.
2. A/A trials: two processes, a random subsample from each -> ``harness.results.gate.gate``; a trial
   cries wolf if any ONNX benchmark is called regressed. Injected trials: the same with the
   candidate's ONNX samples multiplied by 1.10 (scikit-learn, the yardstick, is unchanged).
3. Three modes: a stored baseline gated on absolute time (any two processes), a stored
   baseline gated on the in-run speed-up against scikit-learn, and adjacent processes gated
   on time (A and B measured moments apart, but each in a fresh process).

4. And the mode ``harness gate --ab`` uses: two live worker processes (``harness.worker``)
   pinned to one core, timed alternately in ABBA blocks. ``--pairs`` fresh A/A worker pairs
   are collected (``--rounds`` each, the side started first alternating); a trial spreads
   ``--window`` rounds over ``--per-trial`` distinct pairs and pools them, like
   ``harness gate --ab --rounds W --pairs K``.

    python docs/experiments/gate_experiment.py [--processes 16] [--samples 300] [--trials 400]
        [--pairs 24] [--rounds 60] [--window 100] [--per-trial 1 4 10]
        [--json out.json] [--runs-from out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.results.gate import Metric, gate
from harness.results.store import SCHEMA_VERSION, ResultFile

Runs = list[dict[str, list[float]]]

COLLECT = r"""
import json, sys, time
import numpy as np
from sklearn.ensemble import IsolationForest
from engines import EngineConfig, OnnxEngine, export
rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 12)).astype(np.float32)
forest = IsolationForest(n_estimators=100, random_state=0).fit(X)
engine = OnnxEngine(export(forest, validate=False).model, EngineConfig(intra_op_threads=1))
paths = {
    "native-b1": (engine.score_samples, X[:1]),
    "native-b100": (engine.score_samples, X[:100]),
    "sklearn-b1": (forest.score_samples, X[:1]),
    "sklearn-b100": (forest.score_samples, X[:100]),
}
samples = {k: [] for k in paths}
for fn, x in paths.values():
    fn(x)
for i in range(int(sys.argv[1])):
    for name, (fn, x) in paths.items():
        t = time.perf_counter()
        fn(x)
        samples[name].append(time.perf_counter() - t)
print(json.dumps(samples))
"""


def collect(processes: int, samples: int) -> Runs:
    """Raw timings from ``processes`` fresh processes, run one after the other."""
    runs = []
    for i in range(processes):
        print(f"collecting: process {i + 1}/{processes}", flush=True)
        done = subprocess.run(
            [sys.executable, "-c", COLLECT, str(samples)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def as_result(samples: dict[str, np.ndarray], paired: bool = False) -> ResultFile:
    rows = []
    for name, data in samples.items():
        engine, batch = name.split("-b")
        extra = {
            "case": "iforest-100",
            "engine": engine,
            "batch_size": int(batch),
            "threads": 1,
            "provider_requested": "cpu",
        }
        rows.append(
            {
                "name": name,
                "stats": {"median": float(np.median(data)), "data": data.tolist()},
                "extra_info": extra,
            }
        )
    harness = {"schema_version": SCHEMA_VERSION, "provider": "cpu", "paired": paired}
    return ResultFile(Path("experiment.json"), {"benchmarks": rows, "harness": harness})


class Tally:
    """Gates trial after trial and counts the ONNX benchmarks called regressed."""

    def __init__(self, *, threshold: float, alpha: float, metric: Metric) -> None:
        self.options: dict[str, Any] = {"threshold": threshold, "alpha": alpha, "metric": metric}
        self.trials = self.flagged_trials = self.flagged_rows = self.rows = 0
        self.seconds: list[float] = []

    def add(self, a: dict[str, np.ndarray], b: dict[str, np.ndarray], *, paired: bool) -> None:
        start = time.perf_counter()
        report = gate([as_result(a, paired)], [as_result(b, paired)], **self.options)
        self.seconds.append(time.perf_counter() - start)
        gated = [r for r in report.rows if "sklearn" not in r.name]
        regressed = sum(r.verdict == "regressed" for r in gated)
        self.trials += 1
        self.flagged_trials += regressed > 0
        self.flagged_rows += regressed
        self.rows += len(gated)

    def summary(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "trials_with_a_regression": self.flagged_trials,
            "trial_rate": self.flagged_trials / self.trials,
            "benchmark_rate": self.flagged_rows / self.rows,
            "gate_seconds_median": float(np.median(self.seconds)),
        }


def trials(
    runs: Runs,
    *,
    n_trials: int,
    n: int,
    slowdown: float,
    threshold: float,
    alpha: float,
    metric: Metric,
    adjacent: bool,
    seed: int,
) -> dict[str, Any]:
    """Gate many random pairs of runs; count the ONNX benchmarks called regressed."""
    rng = np.random.default_rng(seed)
    tally = Tally(threshold=threshold, alpha=alpha, metric=metric)
    for _ in range(n_trials):
        if adjacent:
            i = int(rng.integers(len(runs) - 1))
            i, j = (i, i + 1) if rng.random() < 0.5 else (i + 1, i)
        else:
            i, j = (int(k) for k in rng.choice(len(runs), size=2, replace=False))
        a = {k: rng.choice(np.asarray(v), size=n, replace=False) for k, v in runs[i].items()}
        b = {
            k: rng.choice(np.asarray(v), size=n, replace=False)
            * (1.0 if k.startswith("sklearn") else slowdown)
            for k, v in runs[j].items()
        }
        tally.add(a, b, paired=False)
    return tally.summary()


MODES: dict[str, tuple[Metric, bool]] = {
    "stored baseline, time": ("median", False),
    "stored baseline, speed-up vs scikit-learn": ("speedup", False),
    "separate processes, adjacent in time": ("median", True),
}


WorkerRuns = list[tuple[dict[str, list[float]], dict[str, list[float]]]]


def collect_workers(pairs: int, rounds: int) -> WorkerRuns:
    """Interleaved samples from ``pairs`` fresh A/A worker pairs (same code on both sides).

    Like ``harness gate --ab``, the side started first alternates from pair to pair.
    """
    import tempfile

    from harness.timing.ab import Worker, interleave

    ROOT = Path(__file__).resolve().parents[2]
    from harness.timing.prepare import BenchPoint

    points = [
        BenchPoint("iforest-100", engine, "cpu" if engine != "sklearn" else "-", batch, 1)
        for engine in ("onnx-native", "sklearn")
        for batch in (1, 100)
    ]
    rename = {
        p.id: f"{'native' if p.engine != 'sklearn' else 'sklearn'}-b{p.batch_size}" for p in points
    }
    out = []
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "log", "w") as log:
        for i in range(pairs):
            print(f"collecting: worker pair {i + 1}/{pairs}", flush=True)
            first = Worker(ROOT, points, Path(tmp), log)
            second = Worker(ROOT, points, Path(tmp), log)
            a, b = (first, second) if i % 2 == 0 else (second, first)
            try:
                sa, sb, _ = interleave(a, b, points, rounds)
            finally:
                a.close()
                b.close()
            out.append(
                ({rename[k]: v for k, v in sa.items()}, {rename[k]: v for k, v in sb.items()})
            )
    return out


def worker_trials(
    pairs: WorkerRuns,
    *,
    n_trials: int,
    window: int,
    per_trial: int,
    slowdown: float,
    threshold: float,
    alpha: float,
    metric: Metric,
    seed: int,
) -> dict[str, Any]:
    """Gate trials of ``window`` ABBA rounds (2 samples a side per round) spread over
    ``per_trial`` distinct worker pairs (``harness gate --ab --pairs``), pooled."""
    rng = np.random.default_rng(seed)
    tally = Tally(threshold=threshold, alpha=alpha, metric=metric)
    rounds_each = -(-window // per_trial)
    for _ in range(n_trials):
        a: dict[str, list[float]] = {}
        b: dict[str, list[float]] = {}
        for i in rng.choice(len(pairs), size=per_trial, replace=False):
            sa, sb = pairs[int(i)]
            total = len(next(iter(sa.values())))
            start = int(rng.integers(0, total - 2 * rounds_each + 1)) // 2 * 2
            cut = slice(start, start + 2 * rounds_each)
            for k in sa:
                a.setdefault(k, []).extend(sa[k][cut])
                b.setdefault(k, []).extend(sb[k][cut])
        tally.add(
            {k: np.asarray(v) for k, v in a.items()},
            {
                k: np.asarray(v) * (1.0 if k.startswith("sklearn") else slowdown)
                for k, v in b.items()
            },
            paired=True,
        )
    return tally.summary()


def _print_row(mode: str, aa: dict[str, Any], injected: dict[str, Any]) -> None:
    print(
        f"| {mode} | {1 - aa['trial_rate']:.1%} | {injected['benchmark_rate']:.1%} | "
        f"{aa['gate_seconds_median'] * 1e3:.0f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument(
        "--samples", type=int, default=300, help="timed calls per benchmark and process"
    )
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--n", type=int, default=60, help="samples per side in each trial")
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--pairs", type=int, default=24, help="fresh A/A worker pairs")
    parser.add_argument("--rounds", type=int, default=60, help="ABBA rounds per worker pair")
    parser.add_argument(
        "--window", type=int, default=100, help="rounds per trial (the --ab default)"
    )
    parser.add_argument(
        "--per-trial",
        type=int,
        nargs="+",
        default=[1, 4, 10],
        help="worker pairs a trial's rounds are spread over (--ab --pairs)",
    )
    parser.add_argument("--runs-from", help="reuse the timings saved by an earlier --json")
    parser.add_argument("--json", help="write the timings and the numbers here")
    args = parser.parse_args()
    runs: Runs = (
        json.loads(Path(args.runs_from).read_text())["runs"]
        if args.runs_from
        else collect(args.processes, args.samples)
    )
    spread = {k: [float(np.median(r[k])) for r in runs] for k in runs[0]}
    for name, medians in spread.items():
        print(
            f"{name}: per-process medians {min(medians) * 1e3:.4f}..{max(medians) * 1e3:.4f} ms "
            f"({max(medians) / min(medians) - 1:+.1%})"
        )
    table = {}
    print(
        "\n| mode | A/A: trials with no false alarm | +10%: ONNX benchmarks flagged | gate time |"
    )
    print("|---|---|---|---|")
    for mode, (metric, adjacent) in MODES.items():
        common = {
            "n_trials": args.trials,
            "n": args.n,
            "threshold": args.threshold,
            "alpha": args.alpha,
            "metric": metric,
            "adjacent": adjacent,
        }
        aa = trials(runs, slowdown=1.0, seed=1, **common)
        injected = trials(runs, slowdown=1.10, seed=2, **common)
        table[mode] = {"aa": aa, "injected": injected}
        _print_row(mode, aa, injected)
    print(
        f"\n({args.trials} trials per cell, {args.n} samples a side, threshold "
        f"{args.threshold:.0%}, alpha {args.alpha} with Holm, 2000 bootstrap resamples; "
        f"{len(runs)} processes)"
    )
    saved = json.loads(Path(args.runs_from).read_text()) if args.runs_from else {}
    worker_runs: WorkerRuns = saved.get("worker_runs") or collect_workers(args.pairs, args.rounds)
    collected = len(next(iter(worker_runs[0][0].values()))) // 2
    for per_trial in args.per_trial:
        if -(-args.window // per_trial) > collected or per_trial > len(worker_runs):
            print(
                f"(skipped {per_trial} pair(s): {len(worker_runs)} pairs of {collected} rounds "
                f"cannot give {args.window} rounds)"
            )
            continue
        for metric in ("median", "speedup"):
            what = "time" if metric == "median" else "speed-up"
            mode = (
                f"--ab, {per_trial} worker pair(s) x {-(-args.window // per_trial)} rounds, {what}"
            )
            common = {
                "n_trials": args.trials,
                "window": args.window,
                "per_trial": per_trial,
                "threshold": args.threshold,
                "alpha": args.alpha,
                "metric": metric,
            }
            aa = worker_trials(worker_runs, slowdown=1.0, seed=3, **common)
            injected = worker_trials(worker_runs, slowdown=1.10, seed=4, **common)
            table[mode] = {"aa": aa, "injected": injected}
            _print_row(mode, aa, injected)
    if args.json:
        payload = {
            "modes": table,
            "spread": spread,
            "runs": runs,
            "worker_runs": worker_runs,
            "settings": vars(args),
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
