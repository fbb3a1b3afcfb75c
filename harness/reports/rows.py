"""What the markdown report, the plots and the comparison all read from stored rows: fields,
number formats, series (engine@provider tN per case and batch), the latest run per machine
and model, and each engine row's speed-up against scikit-learn with its bootstrap interval."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from harness.results.schema import short_provider, yardstick_of
from harness.results.store import ResultFile, benchmark_key, identity_labels, result_order

__all__ = ["latest_runs", "runtime_of", "series_name"]

#: Fewest raw samples on each side for a speed-up's interval (as the gate's ``min_samples``).
_MIN_SAMPLES = 5


def _extra(row: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = row.get("extra_info") or {}
    return extra


def _real(value: Any) -> float | None:
    """A number (NaN and infinities too), or None for anything else: the fields read here
    beyond those the loader checks (newer rows carry them, older ones do not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _provider(name: str) -> str:
    return short_provider(name)


def series_name(row: dict[str, Any]) -> str:
    """engine@provider/threads: one line in a plot, one row in a table."""
    e = _extra(row)
    provider = _provider(e.get("provider_active") or e.get("provider_requested") or "-")
    where = "" if provider == "-" else f"@{provider}"
    return f"{e.get('engine', row.get('name'))}{where} t{e.get('threads', '?')}"


def _rows(results: Iterable[ResultFile]) -> list[dict[str, Any]]:
    return [row for result in results for row in result.benchmarks]


def _fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3f} ms" if ms < 100 else f"{ms:.0f} ms"


def _fmt_time(seconds: float | None) -> str:
    """Any duration, from nanoseconds (plain pytest-benchmark) to seconds."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds * 1e9:.4g} ns"


def _fmt_x(value: float | None) -> str:
    return "-" if value is None else (f"{value:.1f}x" if value < 100 else f"{value:.0f}x")


def _fmt_ratio(value: float) -> str:
    """A speed-up without its x: 0.70, 3.45, 12.3, 2170."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.2f}" if value < 10 else (f"{value:.1f}" if value < 100 else f"{value:.0f}")


def _fmt_ms4(seconds: float | None) -> str:
    """Milliseconds at 4 significant digits, no unit (a column says ms)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    ms = seconds * 1e3
    return f"{ms:,.0f}" if ms >= 1000 else f"{ms:.4g}"


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in header) + " |"]
    lines += ["|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in body]
    return lines


def _samples(row: dict[str, Any] | None) -> list[float]:
    """A row's raw samples in seconds ([] where pytest-benchmark did not keep them)."""
    if row is None:
        return []
    data = row["stats"].get("data") or []
    return [float(x) for x in data]


# -- speed-ups ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Speedup:
    """scikit-learn's median / the engine's median in one run, with a 95% bootstrap interval
    where both rows kept enough raw samples."""

    value: float
    low: float | None = None
    high: float | None = None

    @property
    def side(self) -> str:
        """faster or slower than scikit-learn (the interval excludes 1x), or undecided."""
        low = self.value if self.low is None else self.low
        high = self.value if self.high is None else self.high
        return "faster" if low > 1 else ("slower" if high < 1 else "undecided")

    def text(self) -> str:
        """``12.3x [11.8, 12.9]``; below 1x bold with a ▼."""
        x = f"{_fmt_ratio(self.value)}x"
        x = f"**{x} ▼**" if self.value < 1 else x
        if self.low is None or self.high is None:
            return x
        return f"{x} [{_fmt_ratio(self.low)}, {_fmt_ratio(self.high)}]"


_Speedups = dict[int, _Speedup]  # id(row) -> its speed-up, for the rows of one rendering


def _speedups(results: Sequence[ResultFile]) -> _Speedups:
    """Each engine row's speed-up against the scikit-learn row of the same run, case, batch
    and threads: the ratio of medians of the raw samples with the gate's bootstrap interval
    (:func:`harness.results.gate.ratio_interval`); the stored ``speedup_vs_sklearn`` without an
    interval where either row has fewer than 5 raw samples."""
    from harness.results.gate import ratio_interval

    out: _Speedups = {}
    for result in results:
        if result.plain:
            continue
        yardsticks: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in result.benchmarks:
            e = _extra(row)
            if e.get("engine") == "sklearn":
                yardsticks.setdefault(yardstick_of(e), row)
        for row in result.benchmarks:
            e = _extra(row)
            if e.get("engine") == "sklearn":
                continue
            reference = yardsticks.get(yardstick_of(e))
            ours, theirs = _samples(row), _samples(reference)
            if len(ours) >= _MIN_SAMPLES and len(theirs) >= _MIN_SAMPLES:
                value, low, high = ratio_interval(ours, theirs)
                out[id(row)] = _Speedup(value, low, high)
            elif (stored := _real(e.get("speedup_vs_sklearn"))) is not None:
                out[id(row)] = _Speedup(stored)
    return out


# -- runs and series ----------------------------------------------------------------------


def runtime_of(result: ResultFile) -> str:
    """The onnxruntime version a result was measured with ("?" when it does not say)."""
    versions = result.harness.get("versions") or {}
    return str(versions.get("onnxruntime") or "?")


def _models(result: ResultFile) -> set[str | None]:
    """The models a run measured: each user model by its name (the case; a new file under the
    same name is a newer run of it), and the zoo as one (None), whatever cases were selected."""
    return {
        str(_extra(row).get("case")) if _extra(row).get("origin") == "user" else None
        for row in result.benchmarks
    } or {None}


def latest_runs(results: Sequence[ResultFile]) -> tuple[list[ResultFile], list[ResultFile]]:
    """(latest run per machine, provider, onnxruntime version and model, the older ones), in
    run order (NNNN_): a runtime matrix (tox -m runtimes) shows one run per release, and a
    folder holding runs of two user models shows both. A run is shown while it is the latest of
    any model it measured (later runs come later, so their rows win a shared cell)."""
    ordered = sorted(results, key=result_order)
    latest: dict[tuple[Any, ...], ResultFile] = {}
    for result in ordered:
        where: tuple[Any, ...] = (
            result.harness.get("machine_id"),
            result.harness.get("provider"),
            runtime_of(result),
        )
        if result.plain:  # pytest-benchmark storage: one folder per interpreter and project
            where = (*where, result.path.parent.as_posix())
        for model in _models(result):
            key = (*where, model)
            latest[key] = result
    shown = {id(r) for r in latest.values()}
    return [r for r in ordered if id(r) in shown], [r for r in ordered if id(r) not in shown]


_Series = dict[tuple[str, str], dict[int, dict[str, Any]]]


def _series(results: Sequence[ResultFile]) -> tuple[_Series, dict[tuple[str, str], str]]:
    """Harness rows as (case, series) -> batch size -> row, and each series' engine label.

    A series is ``engine@provider tN``, followed by the machine where the results come from
    several, and by the model (estimator, width, sha256) where a case holds several models:
    rows of different benchmarks never overwrite each other.
    """
    entries = []
    for result in results:
        if result.plain:
            continue
        machine = str(result.harness.get("machine_id"))
        runtime = runtime_of(result)
        for row in result.benchmarks:
            key = benchmark_key(row)
            series = series_name(row)
            entries.append((str(key.case or "?"), series, machine, runtime, key.identity, row))
    machines: dict[tuple[str, str], set[str]] = defaultdict(set)
    runtimes: dict[tuple[str, str], set[str]] = defaultdict(set)
    identities: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for case, series, machine, runtime, identity, _ in entries:
        machines[(case, series)].add(machine)
        runtimes[(case, series)].add(runtime)
        if identity not in identities[(case, series)]:
            identities[(case, series)].append(identity)
    by_series: _Series = defaultdict(dict)
    engines: dict[tuple[str, str], str] = {}
    for case, series, machine, runtime, identity, row in entries:
        suffix = f" on {machine}" if len(machines[(case, series)]) > 1 else ""
        if len(runtimes[(case, series)]) > 1:
            suffix += f" ort {runtime}"
        known = identities[(case, series)]
        if len(known) > 1:
            suffix += f" ({identity_labels(known)[known.index(identity)]})"
        by_series[(case, series + suffix)][_extra(row).get("batch_size", 0)] = row
        engines[(case, series + suffix)] = str(_extra(row).get("engine", "?")) + suffix
    return by_series, engines


# -- latency and parity, for the tables and the plots -------------------------------------


def _quartiles(row: dict[str, Any]) -> tuple[float, float] | None:
    """(q1, q3) in seconds: pytest-benchmark's, else from the raw samples."""
    stats = row["stats"]
    q1, q3 = _real(stats.get("q1")), _real(stats.get("q3"))
    if q1 is not None and q3 is not None:
        return q1, q3
    data = sorted(_samples(row))
    if len(data) < 4:
        return None
    import numpy as np

    low, high = np.percentile(data, [25, 75])
    return float(low), float(high)


def _error_over_bound(e: dict[str, Any]) -> float | None:
    """At most how far the worst row went towards its bound ``atol + rtol * |reference|``
    (1: at the bound): min(abs error / atol, rel error / rtol) bounds every row's
    ``|err| / (atol + rtol * |ref|)`` from above. None where the row lacks a field."""
    error, rel = _real(e.get("parity_max_abs_err")), _real(e.get("parity_max_rel_err"))
    rtol, atol = _real(e.get("parity_rtol")), _real(e.get("parity_atol"))
    if error is None or rel is None or rtol is None or atol is None:
        return None
    by_abs = error / atol if atol else (0.0 if error == 0 else math.inf)
    by_rel = rel / rtol if rtol else (0.0 if rel == 0 else math.inf)
    return min(by_abs, by_rel)


def _parity_rows(
    by_series: _Series, engines: dict[tuple[str, str], str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(case, engine, extra_info) once per exported model, checked ones only."""
    parity: dict[tuple[str, str], dict[str, Any]] = {}
    for (case, series), cells in by_series.items():
        for row in cells.values():
            e = _extra(row)
            if e.get("parity") not in (None, "reference", "reference-eager"):
                parity[(case, engines[(case, series)])] = e
    return [(case, engine, e) for (case, engine), e in sorted(parity.items())]
