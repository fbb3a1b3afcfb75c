"""Cold start: what loading an ONNX model costs before the first answer.

Serving stacks and serverless functions pay for the import, the session and the first call,
not only for scoring. For each benchmarked model this records, in a FRESH Python process
(``python -m harness.timing.coldstart``, a JSON spec on stdin, a JSON answer on stdout), since a
clean process is what a cold start is and resident memory is counted per process:

- ``import_seconds``: ``import onnxruntime`` (numpy is imported first: every caller of
  onnxruntime's Python API has it, so this is onnxruntime's own cost);
- ``session_seconds_first``: the first ``InferenceSession`` of the process, from the model's
  path (reading the file is part of loading it);
- ``session_seconds_median``: the median of up to ``repeats`` more creations in the same
  process (the first pays one-time costs such as kernel registration; later ones do not);
- ``first_call_seconds``: the first ``run`` of the first session, on one row of the model's
  input in the input's dtype (a graph with a fixed batch size: that many copies of it; the
  call every warm-up hides: ~4x a warm call);
- ``rss_after_import_bytes`` and ``peak_rss_bytes``: the process's peak resident memory
  after the import and after the first call (``VmHWM`` on Linux, see ``_peak_rss``): their
  difference is what the model itself costs;
- ``onnxruntime``: the version that measured it.

The child uses plain onnxruntime with the benchmark's session settings (provider chain,
intra- and inter-op threads, spinning, graph optimisation, execution mode: from the
benchmark's ``EngineConfig``) rather than ``OnnxEngine``: the engine imports onnx and the
harness's own modules (which would inflate the import and the memory baseline), parses the
model with onnx before the session, and warms the session up in its constructor, which
would hide the very first call. What is timed is therefore what any onnxruntime caller pays.

Measured in the calling process (cheap, no session): the file size (with any external data),
the node count (top-level graph; nodes of local functions counted apart) and, from the
export, its seconds. A child that fails, crashes or runs past its timeout becomes an entry
with an ``error``: a cold start never stops a run.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engines.config import EngineConfig

__all__ = [
    "REPEATS",
    "TIMEOUT_SECONDS",
    "ColdStartTarget",
    "cold_start_entry",
    "describe",
    "measure",
    "measure_all",
    "model_facts",
    "session_settings",
]

#: More session creations after the first, for the median (fewer if they run past the budget).
REPEATS = 5
#: Seconds of repeated creations after which no more are started (at least one always runs):
#: skl2onnx's IsolationForest(300) graph takes ~30 s per session on onnxruntime 1.20-1.22.
REPEAT_BUDGET_SECONDS = 10.0
#: Seconds one child may take: a hung load is recorded as an error, not waited for.
TIMEOUT_SECONDS = 300.0

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
}
_GRAPH_OPT = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


@dataclasses.dataclass(frozen=True)
class ColdStartTarget:
    """One model to measure: where it is, how the benchmark opens it, and what to call it."""

    case: str
    engine: str
    exporter: str | None
    provider: str
    threads: int
    model_path: Path
    model_sha256: str | None
    export_seconds: float | None
    row: tuple[float, ...]  # one input row (the benchmark's first)
    settings: Mapping[str, Any]  # session_settings() of the benchmark's EngineConfig


def session_settings(config: EngineConfig) -> dict[str, Any]:
    """The session options of ``config`` as the child applies them (JSON-friendly)."""
    return {
        "providers": list(config.requested_providers),
        "intra_op_threads": config.intra_op_threads,
        "inter_op_threads": config.inter_op_threads,
        "execution_mode": config.execution_mode,
        "graph_optimization": config.graph_optimization,
        "allow_spinning": config.allow_spinning,
    }


def model_facts(path: Path) -> dict[str, int]:
    """bytes (the file plus its external data), nodes (top-level graph) and function_nodes."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    size = path.stat().st_size
    locations = {
        entry.value
        for tensor in model.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    for location in sorted(locations):
        data = path.parent / location
        if data.is_file():
            size += data.stat().st_size
    return {
        "bytes": size,
        "nodes": len(model.graph.node),
        "function_nodes": sum(len(f.node) for f in model.functions),
    }


def measure(
    path: Path,
    settings: Mapping[str, Any],
    row: Sequence[float],
    *,
    repeats: int = REPEATS,
    timeout: float = TIMEOUT_SECONDS,
    python: str = sys.executable,
) -> dict[str, Any]:
    """Load and call ``path`` in a fresh process; the child's figures, or ``{"error": ...}``.

    ``python``: the interpreter of the child (another environment's, e.g. a tox runtime env
    with another onnxruntime and this harness installed: docs/experiments/cold_start_matrix.py).

    Example::

        measure(Path("model.onnx"), session_settings(EngineConfig(intra_op_threads=1)), X[0])
    """
    spec = {
        "model": str(Path(path).resolve()),
        "row": [float(x) for x in row],
        "repeats": repeats,
        "budget_seconds": REPEAT_BUDGET_SECONDS,
        **settings,
    }
    try:
        done = subprocess.run(
            [python, "-m", "harness.timing.coldstart"],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    except OSError as exc:
        return {"error": f"could not start a Python process ({exc.strerror or exc})"}
    answer = _last_json(done.stdout)
    if answer is None:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])[-300:]
        return {"error": f"the measuring process exited {done.returncode}: {tail or 'no output'}"}
    return answer


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


_FIELDS = (
    "bytes",
    "nodes",
    "function_nodes",
    "export_seconds",
    "import_seconds",
    "session_seconds_first",
    "session_seconds_median",
    "session_creations",
    "first_call_seconds",
    "rss_after_import_bytes",
    "peak_rss_bytes",
    "onnxruntime",
)


def cold_start_entry(
    target: ColdStartTarget, *, timeout: float = TIMEOUT_SECONDS
) -> dict[str, Any]:
    """The harness block's ``cold_start`` entry of ``target``; failures become ``error``."""
    entry: dict[str, Any] = {
        "case": target.case,
        "engine": target.engine,
        "exporter": target.exporter,
        "model_sha256": target.model_sha256,
        "provider": target.provider,
        "threads": target.threads,
        **dict.fromkeys(_FIELDS),
        "export_seconds": target.export_seconds,
    }
    errors = []
    try:
        entry.update(model_facts(target.model_path))
    except Exception as exc:  # onnx raises several types for a damaged file; say which
        errors.append(f"cannot read the model: {_one_line(exc)}")
    measured = measure(target.model_path, target.settings, target.row, timeout=timeout)
    entry.update({k: v for k, v in measured.items() if k in _FIELDS})
    if measured.get("error"):
        errors.append(str(measured["error"]))
    if entry["onnxruntime"] is None:  # the child never got that far: same interpreter, same one
        from importlib.metadata import PackageNotFoundError, version

        for dist in ("onnxruntime", "onnxruntime-gpu"):
            try:
                entry["onnxruntime"] = version(dist)
                break
            except PackageNotFoundError:
                continue
    if errors:
        entry["error"] = "; ".join(errors)
    return entry


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def describe(entry: Mapping[str, Any]) -> str:
    """One line: session, first call and memory, or the error."""
    if entry.get("error") and entry.get("session_seconds_median") is None:
        return f"failed: {entry['error']}"
    parts = []
    for label, key in (("session", "session_seconds_median"), ("first call", "first_call_seconds")):
        if entry.get(key) is not None:
            parts.append(f"{label} {entry[key] * 1e3:.3g} ms")
    peak, base = entry.get("peak_rss_bytes"), entry.get("rss_after_import_bytes")
    if peak is not None:
        parts.append(f"peak RSS {peak / 2**20:.0f} MiB")
        if base is not None:
            parts[-1] += f" (+{(peak - base) / 2**20:.1f} over the import)"
    if entry.get("error"):
        parts.append(f"error: {entry['error']}")
    return ", ".join(parts)


def measure_all(
    targets: Iterable[ColdStartTarget],
    say: Callable[[str], None] = print,
    *,
    timeout: float = TIMEOUT_SECONDS,
) -> tuple[list[dict[str, Any]], bool]:
    """Measure each target once, saying one line each with the time left; (entries, whether
    interrupted).

    Ctrl-C (or SIGTERM turned into KeyboardInterrupt) stops the loop: the entries measured
    so far are returned with ``True``, the caller decides what an interrupted run keeps.
    """
    from harness.console import format_left

    todo = list(targets)
    entries: list[dict[str, Any]] = []
    start = time.monotonic()
    for i, target in enumerate(todo, 1):
        where = f"{target.case} {target.engine} {target.provider} t{target.threads}"
        try:
            entry = cold_start_entry(target, timeout=timeout)
        except KeyboardInterrupt:
            say(f"harness: cold start interrupted at {i}/{len(todo)} {where}")
            return entries, True
        entries.append(entry)
        left = (time.monotonic() - start) / i * (len(todo) - i)
        eta = f", {format_left(left)}" if i < len(todo) else ""
        say(f"harness: cold start {i}/{len(todo)} {where}: {describe(entry)}{eta}")
    return entries, False


# -- the child process --------------------------------------------------------------------


def _peak_rss() -> int | None:
    """Peak resident memory of this process in bytes (None where neither source exists).

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this process's own memory.
    ``getrusage``'s ``ru_maxrss`` is no use there: Linux carries the parent's peak across
    fork and exec, so a child of a 500 MiB pytest reads 500 MiB before importing anything.
    Elsewhere ``ru_maxrss`` (bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in the fresh process: import, create, call, create again; figures or an error."""
    out: dict[str, Any] = {}
    import numpy as np

    start = time.perf_counter()
    import onnxruntime as ort

    out["import_seconds"] = time.perf_counter() - start
    out["onnxruntime"] = ort.__version__
    out["rss_after_import_bytes"] = _peak_rss()
    try:
        options = ort.SessionOptions()
        if spec.get("intra_op_threads") is not None:
            options.intra_op_num_threads = spec["intra_op_threads"]
        if spec.get("inter_op_threads") is not None:
            options.inter_op_num_threads = spec["inter_op_threads"]
        options.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if spec.get("execution_mode") == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        level = _GRAPH_OPT[spec.get("graph_optimization", "all")]
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        spinning = "1" if spec.get("allow_spinning", True) else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        available = ort.get_available_providers()  # what OnnxEngine requests: never a warning
        chain = [p for p in spec.get("providers", []) if p in available]
        if "CPUExecutionProvider" not in chain:
            chain.append("CPUExecutionProvider")
        model = spec["model"]

        start = time.perf_counter()
        session = ort.InferenceSession(model, options, providers=chain)
        out["session_seconds_first"] = time.perf_counter() - start
        first = session.get_inputs()[0]
        dtype = _ORT_DTYPES.get(first.type)
        if dtype is None:
            raise ValueError(f"input {first.name!r} is {first.type}, not a numeric tensor")
        lead = first.shape[0] if first.shape else None  # a fixed batch size takes no other
        x = np.asarray([spec["row"]] * (lead if isinstance(lead, int) and lead > 0 else 1), dtype)
        start = time.perf_counter()
        session.run(None, {first.name: x})
        out["first_call_seconds"] = time.perf_counter() - start
        out["peak_rss_bytes"] = _peak_rss()
        del session

        seconds: list[float] = []
        budget = float(spec.get("budget_seconds", REPEAT_BUDGET_SECONDS))
        while len(seconds) < max(1, int(spec.get("repeats", REPEATS))) and (
            not seconds or sum(seconds) < budget
        ):
            start = time.perf_counter()
            again = ort.InferenceSession(model, options, providers=chain)
            seconds.append(time.perf_counter() - start)
            del again
        out["session_seconds_median"] = statistics.median(seconds)
        out["session_creations"] = len(seconds)
    except Exception as exc:  # onnxruntime raises its own types: keep what was measured
        out["error"] = _one_line(exc)
    return out


def main() -> int:
    """``python -m harness.timing.coldstart``: a JSON spec on stdin, one JSON line on stdout."""
    spec = json.loads(sys.stdin.read())
    print(json.dumps(_child(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
