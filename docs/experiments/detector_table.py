"""Every detector users bring, in one table: export, parity and speed-up, measured in one run.

For each zoo case (default: the PyOD detectors on every data set and the boosted scorers):

- exporter and export seconds (``ExportReport.seconds``: conversion plus its validation);
- label agreement with the library on the case's test rows, and the worst score error over
  its bound (``engines.tolerance.fixed_bound`` with the case's tolerance: <= 1 passes);
- speed-up of the ONNX engine over the library's own call (PyOD's ``decision_function``,
  scikit-learn's ``score_samples``, the scorer's ``score_samples`` over LightGBM / XGBoost), at
  each batch size and thread count. Both sides are prepared by ``harness.timing.prepare.prepare``
  exactly as ``harness run`` prepares them (threadpoolctl limits the library's pools to the
  same threads), and are timed side by side: each round times the library and then the
  engine, each for at least ``--min-time`` seconds; the speed-up is the median over rounds of
  the per-round ratio (drift between rounds cancels out), with the lowest and highest round.

    python docs/experiments/detector_table.py [--cases 'pyod-*' lgbm-scorer ...]
        [--batches 1 100 10000] [--threads 1] [--rounds 7] [--min-time 0.05] [--json out.json]

It prints a markdown table; ``--json`` keeps every measurement.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from engines import OnnxEngine, SklearnEngine
from engines.export import default_tolerance
from engines.tolerance import check_within, fixed_bound
from harness.cases.zoo import cases, exported, fitted
from harness.results.machine import machine_info
from harness.timing.points import Selection
from harness.timing.prepare import BenchPoint, Runner, prepare

DEFAULT_CASES = ("pyod-*", "lgbm-scorer", "xgb-scorer")


def _timed(runner: Runner, X: np.ndarray, min_time: float) -> float:
    """Seconds per call, over as many calls as fill ``min_time``."""
    assert runner.fn is not None
    calls, start = 0, time.perf_counter()
    while True:
        runner.fn(X)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def speedup(
    library: Runner, engine: Runner, batch: int, rounds: int, min_time: float
) -> dict[str, float]:
    """Library seconds / engine seconds per round, rounds interleaved."""
    X_lib, X_onnx = library.batch(batch), engine.batch(batch)
    ratios, lib_s, onnx_s = [], [], []
    with library.thread_limits():
        library.fn(X_lib)  # type: ignore[misc]  # warm: caches, lazy compilation
        engine.fn(X_onnx)  # type: ignore[misc]
        for _ in range(rounds):
            a = _timed(library, X_lib, min_time)
            b = _timed(engine, X_onnx, min_time)
            lib_s.append(a)
            onnx_s.append(b)
            ratios.append(a / b)
    return {
        "speedup": statistics.median(ratios),
        "low": min(ratios),
        "high": max(ratios),
        "library_ms": 1e3 * statistics.median(lib_s),
        "onnx_ms": 1e3 * statistics.median(onnx_s),
    }


def parity(name: str, exporter: str) -> dict[str, Any]:
    """Label agreement and worst error / bound on the case's test rows."""
    (case,) = cases(names=[name])
    model = fitted(name)
    X = case.data().X_test
    reference = SklearnEngine(model)
    engine = OnnxEngine(exported(name, exporter).model)
    method = "score_samples" if "score_samples" in engine.methods else "decision_function"
    tolerance = case.tolerance(exporter) or default_tolerance(model, exporter)
    X32 = X.astype(engine.input_dtype)
    bound = fixed_bound(getattr(reference, method)(X32), tolerance, X32)
    result = check_within(method, getattr(engine, method)(X32), bound)
    agreement = None
    if "predict" in reference.methods and "predict" in engine.methods:
        agreement = float(np.mean(reference.predict(X32) == engine.predict(X32)))
    return {
        "method": method,
        "rows": len(X),
        "label_agreement": agreement,
        "max_abs_err": result.max_abs_err,
        "error_over_bound": result.ratio,
        "bound": result.how,
    }


def measure(
    name: str, batches: list[int], threads: list[int], rounds: int, min_time: float, work: Path
) -> dict[str, Any]:
    (case,) = cases(names=[name])
    exporter = case.best_exporter
    fitted(name)  # fitting is not export time
    report = exported(name, exporter)
    row: dict[str, Any] = {
        "case": name,
        "dataset": case.dataset,
        "exporter": exporter,
        "export_seconds": report.seconds,
        "n_nodes": report.n_nodes,
        **parity(name, exporter),
        "speed": {},
    }
    selection = Selection(cases=(name,))
    for t in threads:
        for b in batches:
            library = prepare(BenchPoint(name, "sklearn", "-", b, t), selection, work)
            engine = prepare(BenchPoint(name, f"onnx-{exporter}", "cpu", b, t), selection, work)
            row["library_call"] = library.info.get("scoring", library.info.get("method"))
            row["speed"][f"b{b}-t{t}"] = speedup(library, engine, b, rounds, min_time)
    return row


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(rows: list[dict[str, Any]], batches: list[int], threads: list[int]) -> str:
    keys = [f"b{b}-t{t}" for t in threads for b in batches]
    head = [
        "case",
        "data set",
        "exporter",
        "export ms",
        "label agreement",
        "max error / bound",
        *(f"x at {k}" for k in keys),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["case"],
            r["dataset"],
            r["exporter"],
            _fmt(1e3 * r["export_seconds"], ".1f"),
            _fmt(r["label_agreement"], ".4f"),
            _fmt(r["error_over_bound"], ".2g"),
        ]
        for k in keys:
            s = r["speed"][k]
            mark = "**" if s["speedup"] < 1 else ""
            cells.append(f"{mark}{s['speedup']:.1f}x{mark} ({s['low']:.1f}-{s['high']:.1f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(DEFAULT_CASES), help="names or globs")
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 100, 10_000])
    parser.add_argument("--threads", nargs="*", type=int, default=[1])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per side per round")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    known = [c.name for c in cases("large")]
    names = [n for n in known if any(fnmatch.fnmatchcase(n, p) for p in args.cases)]
    if not names:
        parser.error(f"no case matches {args.cases}")
    machine = machine_info()
    print(
        f"# {len(names)} cases on {machine['cpu_model']}, "
        f"{machine['cores']} cores, onnxruntime {ort.__version__}",
        file=sys.stderr,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names, 1):
            started = time.perf_counter()
            row = measure(name, args.batches, args.threads, args.rounds, args.min_time, Path(tmp))
            rows.append(row)
            took = time.perf_counter() - started
            print(f"[{i}/{len(names)}] {name}: {took:.0f} s", file=sys.stderr)
    print(markdown(rows, args.batches, args.threads))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
