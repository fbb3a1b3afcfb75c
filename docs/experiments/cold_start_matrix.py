"""Cold start across onnxruntime releases: IsolationForest(300) on 25 features (W1), two forms.

The skl2onnx graph (one TreeEnsembleRegressor per tree and their sum: ~8,000 nodes) and this
project's native graph (one tree-ensemble node), both exported once here for the oldest target
of the runtime matrix (1.20) so every release loads the same file, then loaded in a fresh
process of each given interpreter (a tox runtime env: ``.tox/ort120/bin/python`` ...) by
``harness.timing.coldstart``: session creation (first, and the median of later ones), the
first call, peak RSS. onnxruntime once had quadratic load time on big tree graphs (fixed in
PR 27391); this measures what each release pays.

    python docs/experiments/cold_start_matrix.py --python .tox/ort120/bin/python \\
        --python .tox/ort122/bin/python --python .tox/ort132/bin/python [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from skl2onnx import to_onnx
from sklearn.ensemble import IsolationForest

from engines import EngineConfig, export
from harness.timing.coldstart import measure, model_facts, session_settings

SKL2ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}


def build(folder: Path) -> list[tuple[str, Path, float]]:
    """(name, file, export seconds) of both forms of W1's IsolationForest(300)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10_000, 25)).astype(np.float32)
    model = IsolationForest(n_estimators=300, random_state=0).fit(X)
    out = []
    start = time.perf_counter()
    graph = to_onnx(model, X[:1], target_opset=SKL2ONNX_OPSET)
    seconds = time.perf_counter() - start
    path = folder / "w1-skl2onnx.onnx"
    onnx.save_model(graph, path)
    out.append(("skl2onnx", path, seconds))
    start = time.perf_counter()
    report = export(model, 25, target_runtime="1.20", validation_data=X[:500])
    seconds = time.perf_counter() - start
    path = folder / "w1-native.onnx"
    onnx.save_model(report.model, path)
    out.append(("native (target 1.20)", path, seconds))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", required=True, help="an interpreter")
    parser.add_argument("--out", type=Path, default=None, help="keep the models here")
    args = parser.parse_args(argv)
    folder = args.out or Path(tempfile.mkdtemp(prefix="cold-start-matrix-"))
    folder.mkdir(parents=True, exist_ok=True)
    settings = session_settings(EngineConfig(intra_op_threads=1, allow_spinning=False))
    row = [0.0] * 25
    lines = [
        "| graph | nodes | size | export s | onnxruntime | session s, first | session s, "
        "median | first call ms | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, path, seconds in build(folder):
        facts = model_facts(path)
        for python in args.python:
            got: dict[str, Any] = measure(path, settings, row, python=python, timeout=900)
            if "error" in got:
                print(f"{name} with {python}: {got['error']}")
                continue
            median = got.get("session_seconds_median")
            lines.append(
                f"| {name} | {facts['nodes']:,} | {facts['bytes'] / 1e6:.2f} MB | {seconds:.2f} "
                f"| {got['onnxruntime']} | {got['session_seconds_first']:.3f} | "
                + ("-" if median is None else f"{median:.3f}")
                + f" | {got['first_call_seconds'] * 1e3:.2f} | "
                f"{got['peak_rss_bytes'] / 2**20:.0f} |"
            )
            print(lines[-1], flush=True)
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
