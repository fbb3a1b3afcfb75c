"""What a result file holds beyond pytest-benchmark's own fields, spelled in one place.

A harness result is pytest-benchmark's JSON plus a versioned ``harness`` block
(:func:`harness_block`); each benchmark row's ``extra_info`` holds the keys of
:class:`ExtraInfo`: what was timed (the row's key, :func:`point_extra`), the model and how it
ran, the export's parity, and the speed-ups derived within the run (:func:`add_speedups`).
Plain data and arithmetic on it; nothing of the cases, checks or timing that produce it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypedDict, cast

import numpy as np

from harness.results.machine import machine_id, machine_info

__all__ = [
    "PROVIDERS",
    "SCHEMA_VERSION",
    "YARDSTICK",
    "ConformanceRow",
    "ExtraInfo",
    "add_speedups",
    "benchmark_id",
    "harness_block",
    "percentiles",
    "point_extra",
    "short_provider",
    "yardstick_of",
]

#: Version of the ``harness`` block. Bump it when its meaning changes; the loader refuses
#: versions it does not know.
SCHEMA_VERSION = 1


#: onnxruntime's execution providers the harness knows, by the short name rows carry
#: (``provider_requested``; ``provider_active`` holds onnxruntime's own names).
PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_SHORT = {full: short for short, full in PROVIDERS.items()}


def short_provider(name: str) -> str:
    """``CPUExecutionProvider`` -> ``cpu``; a name without a short form as it is."""
    return _SHORT.get(name, name)


#: What a speed-up is measured against: the scikit-learn row of the same run with the same
#: case, batch size and threads (``extra_info`` fields; BenchmarkKey has the same names).
YARDSTICK = ("case", "batch_size", "threads")


def yardstick_of(extra: Mapping[str, Any]) -> tuple[Any, ...]:
    """Where a row's yardstick is: rows with the same value are compared with each other."""
    return tuple(extra.get(name) for name in YARDSTICK)


def benchmark_id(case: Any, engine: Any, provider: str, batch_size: Any, threads: Any) -> str:
    """``iforest-100[onnx-native-cpu]-b100-t1``: a harness benchmark's id (no ``-provider``
    for engines without one, provider ``-``), as in pytest's test ids and result rows."""
    where = engine if provider == "-" else f"{engine}-{provider}"
    return f"{case}[{where}]-b{batch_size}-t{threads}"


class ExtraInfo(TypedDict, total=False):
    """The ``extra_info`` of a harness benchmark row (every key optional but the row's key)."""

    # What was timed: the row's key (harness.results.store.benchmark_key)
    case: str
    engine: str  # "sklearn", "onnx-<exporter>", "onnx-<exporter>-int8", "torch-eager", ...
    provider_requested: str  # "cpu", "cuda", "tensorrt"; "-" for engines without providers
    batch_size: int
    threads: int
    exporter: str | None
    # The model and how it ran
    origin: str  # "zoo" (default) or "user"
    dataset: str
    model: str
    model_sha256: str | None
    n_features: int
    estimator: str | None
    method: str
    scoring: str
    n_jobs: int | None
    provider_active: str | None
    placement: Any
    nodes_per_provider: Any
    export_seconds: float
    calls_per_sample: int  # gate --ab: calls averaged in one sample
    distinct_rows: int  # a user model's batch of fewer different rows than its size (tiled)
    # The export's parity against its reference
    # "pass", "fail", "reference", "reference-eager", "quantized"; a user's .onnx: "paired"
    # (its pair's verdict is harness.parity), "unchecked" (no reference), or the verdict of the
    # pytest session's harness_check, "pass" / "fail" (none where no harness_check ran)
    parity: str
    parity_max_abs_err: float | None
    parity_max_rel_err: float | None
    parity_rtol: float
    parity_atol: float
    parity_label_min: float
    parity_label_agreement: float | None
    quantized_parity: Any
    # Measured
    p50_ms: float
    p90_ms: float
    p99_ms: float
    samples_per_s: float | None
    reference_median_s: float | None
    # Derived within the run (add_speedups)
    speedup_vs_sklearn: float | None
    speedup_vs_sklearn_best: float | None
    sklearn_best_threads: int | None
    scaling_efficiency: float | None


class _Point(Protocol):
    """A timed point (``harness.timing.prepare.BenchPoint``)."""

    @property
    def case(self) -> str: ...
    @property
    def engine(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def exporter(self) -> str | None: ...


def extra_of(row: Mapping[str, Any]) -> ExtraInfo:
    """A stored row's ``extra_info``, typed: readers spell its keys through ExtraInfo, so a
    key this module does not own fails the type check (the store validated the values)."""
    extra = row.get("extra_info") or {}
    return cast(ExtraInfo, extra)


def point_extra(point: _Point) -> ExtraInfo:
    """What a row says of the point it timed: the fields of its key, and the exporter."""
    return {
        "case": point.case,
        "engine": point.engine,
        "exporter": point.exporter,
        "provider_requested": point.provider,
        "batch_size": point.batch_size,
        "threads": point.threads,
    }


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99 of raw seconds, in milliseconds."""
    data = np.asarray(samples, dtype=np.float64) * 1e3
    return {f"p{q}_ms": float(np.percentile(data, q)) for q in (50, 90, 99)}


def harness_block(
    *,
    git: Mapping[str, Any],
    profile: str,
    machine: dict[str, Any] | None = None,
    **more: Any,
) -> dict[str, Any]:
    """The ``harness`` block of a result file: schema version, machine (``machine_info()``
    unless given), library versions, git, profile, then ``more`` (provider, skips, ...)."""
    from engines.metadata import library_versions  # what was measured: engines is loaded

    info = machine_info() if machine is None else machine
    return {
        "schema_version": SCHEMA_VERSION,
        "machine_id": machine_id(info),
        "machine": info,
        "versions": library_versions(),
        "git": git,
        "profile": profile,
        **more,
    }


@dataclasses.dataclass(frozen=True)
class ConformanceRow:
    """One case x engine x check result."""

    case: str
    engine: str
    check: str
    status: str  # pass / fail / xfail / xpass / skip
    examples: int
    measured: float | None
    message: str
    minimal_input: list[list[float]] | None = None


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """Ratios of medians of the same run, written into each row's ``extra_info``.

    - ``speedup_vs_sklearn``: scikit-learn median / row median, same case, batch and threads;
    - ``speedup_vs_sklearn_best``: the fastest scikit-learn median of the case and batch over
      every thread setting / row median, and ``sklearn_best_threads``, that row's threads;
    - ``scaling_efficiency`` (rows on k > 1 threads): t1 / (k x tk), t1 the median on 1 thread
      of the same case, engine, provider and batch (1.0: k threads are k times faster).
    """
    timed = [(row.setdefault("extra_info", {}), row["stats"]["median"]) for row in rows]
    sklearn: dict[tuple[Any, ...], float] = {}  # ((case, batch), threads) -> median
    best: dict[tuple[Any, ...], tuple[float, Any]] = {}  # (case, batch) -> (median, threads)
    one_thread: dict[tuple[Any, ...], float] = {}  # series -> median on 1 thread
    for extra, median in timed:
        at, threads = _fields(extra, _CASE_BATCH), extra.get("threads")
        if extra.get("engine") == "sklearn":
            sklearn[yardstick_of(extra)] = median
            if at not in best or median < best[at][0]:
                best[at] = (median, threads)
        if threads == 1:
            one_thread[_fields(extra, _SERIES)] = median
    for extra, median in timed:
        at, threads = _fields(extra, _CASE_BATCH), extra.get("threads")
        ref = sklearn.get(yardstick_of(extra))
        extra["speedup_vs_sklearn"] = ref / median if ref and median else None
        fastest, fastest_threads = best.get(at, (None, None))
        extra["speedup_vs_sklearn_best"] = fastest / median if fastest and median else None
        extra["sklearn_best_threads"] = fastest_threads
        if isinstance(threads, int) and threads > 1:
            t1 = one_thread.get(_fields(extra, _SERIES))
            extra["scaling_efficiency"] = t1 / (threads * median) if t1 and median else None


_CASE_BATCH = ("case", "batch_size")
_SERIES = ("case", "engine", "provider_requested", "batch_size")  # what threads vary within


def _fields(extra: dict[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(extra.get(name) for name in names)
