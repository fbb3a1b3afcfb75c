"""W1: IsolationForest(300) on 10,000 x 25 standard normal float32, side by side in one run.

Times scikit-learn ``score_samples``, the skl2onnx graph and the native single-ensemble graph
(and the native layout variants) at batch 1, 10, 100, 1,000 and 10,000 with one intra-op
thread. Calls are interleaved round by round (order alternating) so machine drift hits every
path alike; each cell is the median per-call latency.

    python docs/experiments/w1_iforest.py [--variants] [--skip-skl2onnx] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

from engines import EngineConfig, OnnxEngine, export
from engines.native._graph import GraphBuilder
from engines.native.iforest import IForestVariant, _trees, iforest_to_onnx

BATCHES = (1, 10, 100, 1_000, 10_000)
ONE_THREAD = EngineConfig(provider="cpu", intra_op_threads=1, allow_spinning=False)


def gather_forest(forest: IsolationForest) -> Any:
    """The forest as perfect trees walked level by level with Gather ops (benchmark only).

    Each tree is padded to depth D (padding nodes send every row left, padding leaves repeat
    their real leaf's value); each of the D levels is Gather(feature) -> GatherElements(X) ->
    Gather(threshold) -> Greater -> next index, over an (N, trees) index matrix. NaN routing is
    not modelled: this exists to measure the formulation, not to ship it.
    """
    trees = _trees(forest)

    def depth(tree: Any, node: int = 0) -> int:
        if tree.left[node] == -1:
            return 0
        return 1 + max(depth(tree, tree.left[node]), depth(tree, tree.right[node]))

    d = max(depth(t) for t in trees)
    n_inner, n_leaf = 2**d - 1, 2**d
    feat = np.zeros((len(trees), n_inner), dtype=np.int64)
    thr = np.full((len(trees), n_inner), np.inf)
    leaf = np.zeros((len(trees), n_leaf))
    for t, tree in enumerate(trees):
        stack = [(0, 0)]  # (sklearn node, perfect-tree position)
        while stack:
            node, pos = stack.pop()
            if tree.left[node] == -1:
                level = int(np.floor(np.log2(pos + 1)))
                first = (pos + 1) * 2 ** (d - level) - 1 - n_inner
                leaf[t, first : first + 2 ** (d - level)] = tree.leaf_value[node]
                continue
            feat[t, pos], thr[t, pos] = tree.feature[node], tree.threshold[node]
            stack += [(tree.left[node], 2 * pos + 1), (tree.right[node], 2 * pos + 2)]
    b = GraphBuilder("gather_forest", np.dtype(np.float32), forest.n_features_in_)
    x = b.cast("X", np.float64)
    offsets = b.const(np.arange(len(trees)) * n_inner, np.int64, "offsets")
    feat_c, thr_c = b.const(feat.ravel(), np.int64, "feat"), b.const(thr.ravel(), np.float64, "thr")
    rows = b.op("Gather", [b.op("Shape", [x]), b.const([0], np.int64)], axis=0)
    shape = b.op("Concat", [rows, b.const([len(trees)], np.int64)], axis=0)
    idx = b.op("Expand", [b.const(0, np.int64), shape])
    one, two = b.const(1, np.int64), b.const(2, np.int64)
    for _ in range(d):
        g = b.op("Add", [idx, offsets])
        column = b.op("Gather", [feat_c, g], axis=0)
        value = b.op("GatherElements", [x, column], axis=1)
        right = b.op("Cast", [b.op("Greater", [value, b.op("Gather", [thr_c, g], axis=0)])], to=7)
        idx = b.op("Add", [b.op("Add", [b.op("Mul", [idx, two]), one]), right])
    leaf_idx = b.op(
        "Add",
        [
            b.op("Sub", [idx, b.const(n_inner, np.int64)]),
            b.const(np.arange(len(trees)) * n_leaf, np.int64),
        ],
    )
    values = b.op("Gather", [b.const(leaf.ravel(), np.float64, "leaf"), leaf_idx], axis=0)
    total = b.op("ReduceSum", [values, b.const([1], np.int64)], keepdims=0)
    denominator = len(trees) * float(_average_path_length([forest._max_samples])[0])
    exponent = b.op("Div", [total, b.const(-denominator, np.float64)])
    score = b.op("Neg", [b.op("Pow", [b.const(2.0, np.float64), exponent])])
    return b.finish(b.anomaly_outputs(score, float(forest.offset_)), np.dtype(np.float64))


def _budget_calls(batch: int) -> tuple[int, int]:
    """(rounds, calls per round) so every cell gets enough samples without taking minutes."""
    if batch >= 10_000:
        return 15, 1
    if batch >= 1_000:
        return 15, 3
    return 21, 20


def measure(
    paths: dict[str, Callable[[np.ndarray], Any]], X: np.ndarray
) -> dict[str, dict[int, float]]:
    """Median per-call milliseconds per path and batch size, interleaved."""
    results: dict[str, dict[int, float]] = {name: {} for name in paths}
    names = list(paths)
    for batch in BATCHES:
        rows = X[:batch]
        for fn in paths.values():
            fn(rows)  # warm-up, not timed
        rounds, calls = _budget_calls(batch)
        samples: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                fn = paths[name]
                fn(rows)  # untimed: the previous path may have evicted this one's caches
                start = time.perf_counter()
                for _ in range(calls):
                    fn(rows)
                samples[name].append((time.perf_counter() - start) / calls * 1e3)
        for name in names:
            results[name][batch] = float(np.median(samples[name]))
        print(
            f"  batch {batch:>6}: " + ", ".join(f"{n} {results[n][batch]:.3f} ms" for n in names),
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", action="store_true", help="also time native layout variants")
    parser.add_argument(
        "--skip-skl2onnx", action="store_true", help="skip the ~1 minute skl2onnx export"
    )
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X_train = rng.normal(size=(10_000, 25)).astype(np.float32)
    X = rng.normal(size=(10_000, 25)).astype(np.float32)
    forest = IsolationForest(n_estimators=300, random_state=0).fit(X_train)

    exports: dict[str, float] = {}
    engines: dict[str, OnnxEngine] = {}
    report = export(forest, exporter="native", validation_data=X[:2000])
    exports["native"] = report.seconds
    engines["native"] = OnnxEngine(report.model, ONE_THREAD)
    if not args.skip_skl2onnx:
        print("exporting with skl2onnx (about a minute)...", flush=True)
        report = export(forest, exporter="skl2onnx", validation_data=X[:2000])
        exports["skl2onnx"] = report.seconds
        engines["skl2onnx"] = OnnxEngine(report.model, ONE_THREAD)
    print("export seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in exports.items()), flush=True)

    paths: dict[str, Callable[[np.ndarray], Any]] = {"sklearn": forest.score_samples}
    paths.update({name: engine.score_samples for name, engine in engines.items()})
    if args.variants:
        variants = {
            "native-v5-float": (IForestVariant(5, "float"), ONE_THREAD),
            "native-v3-double": (IForestVariant(3, "double"), ONE_THREAD),
            "native-v3-float": (IForestVariant(3, "float"), ONE_THREAD),
            "native-4-parts": (IForestVariant(5, "double", 4), ONE_THREAD),
            "native-nan-by-columns": (IForestVariant(nan_routing="columns"), ONE_THREAD),
            "native-v5-float-nan-by-columns": (
                IForestVariant(5, "float", nan_routing="columns"),
                ONE_THREAD,
            ),
            "native-no-graph-opt": (
                IForestVariant(),
                ONE_THREAD.replace(graph_optimization="disable"),
            ),
            "native-spinning": (IForestVariant(), ONE_THREAD.replace(allow_spinning=True)),
            "native-2-parts-2-inter-op": (
                IForestVariant(5, "double", 2),
                ONE_THREAD.replace(execution_mode="parallel", inter_op_threads=2),
            ),
        }
        for name, (variant, config) in variants.items():
            paths[name] = OnnxEngine(iforest_to_onnx(forest, variant=variant), config).score_samples
        gathered = OnnxEngine(gather_forest(forest), ONE_THREAD)
        error = np.abs(gathered.score_samples(X[:2000]) - forest.score_samples(X[:2000])).max()
        print(f"gather formulation: max |score error| {error:.2e} vs scikit-learn", flush=True)
        paths["native-gather-perfect-trees"] = gathered.score_samples
    print("timing (median ms per call):", flush=True)
    latency = measure(paths, X)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}"
    print(
        f"\n### W1 ({machine}; onnxruntime {ort.__version__}, scikit-learn {sklearn.__version__}, "
        "1 intra-op thread)\n"
    )
    print("| path | export (s) | " + " | ".join(f"batch {b:,}" for b in BATCHES) + " |")
    print("|---|---|" + "---|" * len(BATCHES))
    for name in paths:
        cells = " | ".join(f"{latency[name][b]:.3f} ms" for b in BATCHES)
        print(f"| {name} | {f'{exports[name]:.2f}' if name in exports else '-'} | {cells} |")
    print("\n| speed-up | " + " | ".join(f"batch {b:,}" for b in BATCHES) + " |")
    print("|---|" + "---|" * len(BATCHES))
    for name in paths:
        if name == "sklearn":
            continue
        vs_sklearn = " | ".join(f"{latency['sklearn'][b] / latency[name][b]:.2f}x" for b in BATCHES)
        print(f"| {name} vs sklearn | {vs_sklearn} |")
    if "skl2onnx" in latency:
        vs = " | ".join(f"{latency['skl2onnx'][b] / latency['native'][b]:.2f}x" for b in BATCHES)
        print(f"| native vs skl2onnx | {vs} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"machine": machine, "export_s": exports, "latency_ms": latency}, handle, indent=2
            )


if __name__ == "__main__":
    main()
