"""What a stored row holds beyond pytest-benchmark's own fields: conformance rows, speed-ups.

Plain data and arithmetic on it; no imports of the cases, checks or timing that produce it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["ConformanceRow", "add_speedups"]


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
            sklearn[at, threads] = median
            if at not in best or median < best[at][0]:
                best[at] = (median, threads)
        if threads == 1:
            one_thread[_fields(extra, _SERIES)] = median
    for extra, median in timed:
        at, threads = _fields(extra, _CASE_BATCH), extra.get("threads")
        ref = sklearn.get((at, threads))
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
