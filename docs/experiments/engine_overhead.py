"""Engine overhead over a bare ``session.run`` at batch 1 (issue: runtime engines).

Interleaves blocks of raw ``InferenceSession.run`` calls and ``OnnxEngine`` calls on the same
session, so machine drift hits both alike, and reports per-call medians, their difference and a
bootstrap 95% interval (scipy.stats.bootstrap).

    python docs/experiments/engine_overhead.py [--rounds 200] [--block 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
from scipy import stats
from skl2onnx import to_onnx
from sklearn.svm import OneClassSVM

from engines import EngineConfig, OnnxEngine


def _per_call_us(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - start) / n / 1e3


def measure(engine: OnnxEngine, method: str, rounds: int, block: int) -> dict[str, float]:
    """Interleaved per-call microseconds for the bare session and the engine method."""
    session = engine._session
    X = np.random.default_rng(1).normal(size=(1, engine.n_features or 1)).astype(np.float32)
    name = engine._plans[method][0]  # type: ignore[index]
    feed = {engine.input_name: X}

    def raw() -> Any:
        return session.run([name], feed)

    def wrapped() -> Any:
        return getattr(engine, method)(X)

    raw_us, engine_us = [], []
    for i in range(rounds):
        pair = [(raw, raw_us), (wrapped, engine_us)]
        for fn, sink in pair if i % 2 == 0 else pair[::-1]:  # ABBA order
            sink.append(_per_call_us(fn, block))
    raw_a, eng_a = np.array(raw_us), np.array(engine_us)
    diff = eng_a - raw_a
    ci = stats.bootstrap(
        (diff,), np.median, confidence_level=0.95, random_state=0
    ).confidence_interval
    return {
        "raw_median_us": float(np.median(raw_a)),
        "engine_median_us": float(np.median(eng_a)),
        "overhead_median_us": float(np.median(diff)),
        "overhead_ci_low_us": float(ci.low),
        "overhead_ci_high_us": float(ci.high),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    # A tiny graph (a few microseconds a run) so the engine's own cost is what is measured.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    detector = OneClassSVM(kernel="linear", nu=0.05).fit(X)
    model = to_onnx(detector, X[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    config = EngineConfig(provider="cpu", intra_op_threads=1)
    rows = []
    for method in ("decision_function", "predict"):
        engine = OnnxEngine(model, config)
        result = measure(engine, method, args.rounds, args.block)
        rows.append(
            {"model": "skl2onnx OneClassSVM(linear, 5 features)", "method": method, **result}
        )

    print(
        f"# Engine overhead at batch 1 ({platform.processor() or platform.machine()}, "
        f"onnxruntime {ort.__version__}, 1 intra-op thread)"
    )
    print("| model | method | raw run (us) | engine (us) | overhead median (us) | 95% CI (us) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['method']} | {r['raw_median_us']:.2f} | "
            f"{r['engine_median_us']:.2f} | {r['overhead_median_us']:.2f} | "
            f"[{r['overhead_ci_low_us']:.2f}, {r['overhead_ci_high_us']:.2f}] |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
