"""Reports from stored results: report.md (PR-comment ready) and a self-contained report.html.

Harness results open with a verdict (what was covered, parity, faster or slower than
scikit-learn per batch band, which providers ran and why others did not), then speed-ups with
bootstrap confidence intervals, latency, parity, conformance and environment tables, and plots;
plain pytest-benchmark JSON gets a table of its benchmarks (median, IQR, ops) and a bar chart.
Rows of different benchmarks (machines, providers, user models that differ) never share a cell.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.results.schema import PROVIDERS, short_provider, yardstick_of
from harness.results.store import (
    Matches,
    ModelChange,
    ResultFile,
    benchmark_key,
    identity_labels,
    keyed_rows,
    match,
    pooled_median,
    run_order,
)

__all__ = [
    "REPORT_STYLE",
    "compare_markdown",
    "compare_rows",
    "render_html",
    "render_markdown",
    "write_reports",
]


REPORT_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;line-height:1.4}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}td.slow{background:#fde4e1}span.nb{white-space:nowrap}"
    "nav.contents{margin:.5em 0 1em;color:#555}nav.contents a{color:#1a5fb4}"
    "h2{margin-top:1.8em;border-bottom:1px solid #ddd}h3{margin-top:1.4em}"
    "code{font-size:12px;background:#f6f6f6;padding:0 2px}"
    "li{margin:.2em 0}ul.verdict li{margin:.45em 0}"
    "figure{margin:1.5em 0}img{max-width:100%}figcaption{color:#555}"
)

#: The providers the harness knows, as it spells them.
_PROVIDERS = tuple(PROVIDERS)
#: Fewest raw samples a percentile is shown from (the median: any; p90: 10; p99: 100).
_ROUNDS_FOR = {"p90": 10, "p99": 100}
#: Fewest raw samples on each side for a speed-up's interval (as the gate's ``min_samples``).
_MIN_SAMPLES = 5
#: Batch bands of the verdict: (smallest, largest or None, label).
_BANDS = ((1, 99, "batch < 100"), (100, 999, "batch 100-999"), (1000, None, "batch ≥ 1,000"))


def _extra(row: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = row.get("extra_info") or {}
    return extra


def _number(value: Any, default: float) -> float:
    """A field the loader checked to be a number or null; null reads as ``default``."""
    return default if value is None else float(value)


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


def _speedup_cell(row: dict[str, Any] | None, speedups: _Speedups) -> str:
    if row is None:
        return "-"
    found = speedups.get(id(row))
    median = _fmt_ms(row["stats"]["median"])
    return f"{'-' if found is None else found.text()} ({median})"


def _environment(results: Sequence[ResultFile]) -> list[tuple[str, str]]:
    out = []
    for result in results:
        h = result.harness
        m, v, g = h.get("machine") or {}, h.get("versions") or {}, h.get("git") or {}
        memory = m.get("memory_bytes")
        out.append(
            (
                result.label,
                f"{m.get('cpu_model')}, {m.get('cores')} cores"
                + (
                    f" (cgroup quota {m['cgroup_cpu_quota']:g})"
                    if m.get("cgroup_cpu_quota")
                    else ""
                )
                + (f", {memory / 2**30:.0f} GiB" if memory else "")
                + f"; provider {h.get('provider')}"
                + (f"; profile {h['profile']}" if h.get("profile") else "")
                + "; "
                + ", ".join(f"{k} {val}" for k, val in v.items() if val)
                + f"; commit {str(g.get('commit'))[:12]}{' (dirty)' if g.get('dirty') else ''}"
                + f"; {result.data.get('datetime', '')}",
            )
        )
    return out


def runtime_of(result: ResultFile) -> str:
    """The onnxruntime version a result was measured with ("?" when it does not say)."""
    versions = result.harness.get("versions") or {}
    return str(versions.get("onnxruntime") or "?")


def latest_runs(results: Sequence[ResultFile]) -> tuple[list[ResultFile], list[ResultFile]]:
    """(latest run per machine, provider and onnxruntime version, the older ones), in run
    order (NNNN_): a runtime matrix (tox -m runtimes) shows one run per release."""
    latest: dict[tuple[Any, ...], ResultFile] = {}
    older: list[ResultFile] = []
    for result in sorted(results, key=lambda r: run_order(r.path)):
        key: tuple[Any, ...] = (
            result.harness.get("machine_id"),
            result.harness.get("provider"),
            runtime_of(result),
        )
        if result.plain:  # pytest-benchmark storage: one folder per interpreter and project
            key = (*key, result.path.parent.as_posix())
        if key in latest:
            older.append(latest[key])
        latest[key] = result
    return list(latest.values()), older


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


def _harness_sections(results: Sequence[ResultFile], speedups: _Speedups) -> list[str]:
    """Speed-up (with scaling and onnxruntime releases), latency, parity, conformance, cold
    start and skips of harness results."""
    by_series, engines = _series(results)
    rows = [row for cells in by_series.values() for row in cells.values()]
    batches = sorted({_extra(r).get("batch_size", 0) for r in rows})
    lines = ["## Speed-up against scikit-learn (same run; median latency in brackets)", ""]
    lines += ["Each engine against scikit-learn on the same number of threads.", ""]
    lines += [
        "Speed-up: scikit-learn's median / the engine's median, with its 95% bootstrap "
        "interval in square brackets (raw samples of both rows, as `harness gate` computes "
        "it). **Bold with ▼**: slower than scikit-learn.",
        "",
    ]
    body = []
    for (case, series), cells in sorted(by_series.items()):
        if series.startswith("sklearn"):
            continue
        body.append([case, series] + [_speedup_cell(cells.get(b), speedups) for b in batches])
    lines += _table(["case", "engine", *[f"batch {b:,}" for b in batches]], body)
    lines += _threads_section(by_series)
    lines += _runtime_sections(results)
    lines += _latency_section(by_series)
    lines += _parity_section(by_series, engines)
    conformance = [row for result in results for row in result.harness.get("conformance", [])]
    if conformance:
        from harness.reports.conformance import conformance_markdown
        from harness.results.schema import ConformanceRow

        rows_c = [ConformanceRow(**row) for row in conformance]
        lines += ["", *conformance_markdown(rows_c).rstrip().splitlines()]
    lines += _cold_start_section(results)
    skipped = [s for result in results for s in result.harness.get("skipped", [])]
    if skipped:
        unique = list(dict.fromkeys((str(s["id"]), str(s["reason"])) for s in skipped))
        lines += ["", "## Skipped", ""]
        lines += _table(["benchmark", "reason"], [list(s) for s in unique])
    return lines


def _percentile(row: dict[str, Any], name: str) -> str:
    """p90 / p99 in ms where the row has the rounds to place it, else "-"."""
    if int(row["stats"].get("rounds") or len(_samples(row))) < _ROUNDS_FOR[name]:
        return "-"
    value = _real(_extra(row).get(f"{name}_ms"))
    return "-" if value is None else _fmt_ms4(value / 1e3)


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


def _latency_section(by_series: _Series) -> list[str]:
    body = []
    for (case, series), cells in sorted(by_series.items()):
        for batch, row in sorted(cells.items()):
            quartiles = _quartiles(row)
            iqr = "-" if quartiles is None else " to ".join(_fmt_ms4(q) for q in quartiles)
            throughput = _real(_extra(row).get("samples_per_s"))
            if throughput is None and batch:
                throughput = batch / float(row["stats"]["median"])
            body.append(
                [
                    case,
                    series,
                    f"{batch:,}",
                    str(row["stats"].get("rounds", "-")),
                    _fmt_ms4(float(row["stats"]["median"])),
                    iqr,
                    _percentile(row, "p90"),
                    _percentile(row, "p99"),
                    "-" if throughput is None else f"{throughput:,.0f}",
                ]
            )
    header = ["case", "engine", "batch", "rounds", "median ms", "IQR ms (q1 to q3)", "p90 ms"]
    lines = ["", "## Latency percentiles and throughput", ""]
    lines += [
        f"One call on a batch, in ms. p90 is shown from {_ROUNDS_FOR['p90']} rounds on and p99 "
        f"from {_ROUNDS_FOR['p99']} ('-': too few rounds to place it).",
        "",
    ]
    return lines + _table([*header, "p99 ms", "samples/s"], body)


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


def _fmt_err(value: float | None) -> str:
    return "-" if value is None else (f"{value:.2g}" if math.isfinite(value) else str(value))


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


def _parity_section(by_series: _Series, engines: dict[tuple[str, str], str]) -> list[str]:
    body = []
    for case, engine, e in _parity_rows(by_series, engines):
        agreement = _real(e.get("parity_label_agreement"))
        least = _real(e.get("parity_label_min"))
        labels = "-" if agreement is None else f"{agreement:.4f}"
        labels += "" if agreement is None or least is None else f" (≥ {least:g})"
        if e.get("parity") == "quantized":  # int8 against its own fp32 export
            q = e.get("quantized_parity") or {}
            rel = _real(q.get("max_rel_err"))
            agreement = _real(q.get("label_agreement"))
            cells = ["-", "-" if rel is None else f"{rel:.2g} (vs fp32)", "-"]
            labels = "-" if agreement is None else f"{agreement:.4f} (vs fp32)"
        else:
            ratio = _error_over_bound(e)
            rtol, atol = _real(e.get("parity_rtol")), _real(e.get("parity_atol"))
            bound = "" if rtol is None or atol is None else f" (atol {atol:g}, rtol {rtol:g})"
            cells = [
                _fmt_err(_real(e.get("parity_max_abs_err"))),
                _fmt_err(_real(e.get("parity_max_rel_err"))),
                "-" if ratio is None else f"≤ {_fmt_err(ratio)}{bound}",
            ]
        body.append([case, engine, str(e.get("parity")), *cells, labels])
    header = ["case", "engine", "status", "worst abs error", "worst rel error (-: not stored)"]
    header += ["error / bound, at most (-: bound not stored)", "label agreement (≥ bound)"]
    lines = ["", "## Parity (ONNX against scikit-learn on each case's test rows)", ""]
    lines += [
        "Each export against its scikit-learn original when it was exported. The bound is "
        "|err| ≤ atol + rtol x |reference| per row; error / bound is at most min(abs error / "
        "atol, rel error / rtol), below 1 within the bound. Results written before the relative "
        "error and bound were stored show '-' there. int8 models are compared with their fp32 "
        "export.",
        "",
    ]
    return lines + _table(header, body)


_THREADS = re.compile(r" t(\d+)")  # in a series name: engine@provider tN


def _threads_section(by_series: _Series) -> list[str]:
    """Multi-core scaling: each series on k > 1 threads against itself on 1 thread, and its
    speed-up against scikit-learn at scikit-learn's fastest thread setting; [] when the rows
    hold one thread setting only."""
    rows = [row for cells in by_series.values() for row in cells.values()]
    if len({_extra(r).get("threads") for r in rows}) < 2:
        return []
    body = []
    for (case, series), cells in sorted(by_series.items()):
        found = _THREADS.search(series)
        if found is None or int(found[1]) < 2:
            continue
        k, head, tail = int(found[1]), series[: found.start()], series[found.end() :]
        single = by_series.get((case, f"{head} t1{tail}"), {})
        for batch, row in sorted(cells.items()):
            e, tk = _extra(row), float(row["stats"]["median"])
            t1 = single[batch]["stats"]["median"] if batch in single else None
            efficiency = e.get("scaling_efficiency")
            if efficiency is None and t1 is not None:  # results older than the field
                efficiency = t1 / (k * tk)
            best = e.get("sklearn_best_threads")
            reference = by_series.get((case, f"sklearn t{best}{tail}"), {}).get(batch)
            n_jobs = None if reference is None else _extra(reference).get("n_jobs")
            setting = "-" if best is None else f"sklearn t{best}"
            setting += "" if n_jobs is None else f" (n_jobs={n_jobs})"
            body.append(
                [
                    case,
                    head + tail,
                    f"{batch:,}",
                    str(k),
                    _fmt_ms(t1),
                    _fmt_ms(tk),
                    "-" if efficiency is None else f"{efficiency:.2f}",
                    _fmt_x(e.get("speedup_vs_sklearn_best")),
                    setting,
                ]
            )
    header = ["case", "engine", "batch", "threads k", "t1 median", "tk median"]
    header += ["efficiency t1 / (k x tk)", "tk vs scikit-learn at its best", "its best setting"]
    lines = ["", "## Multi-core scaling", ""]
    lines += ["Efficiency 1.0: k threads are k times as fast as one (same run).", ""]
    return lines + _table(header, body)


def _version_order(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3]) or (0,)


def _runtime_sections(results: Sequence[ResultFile]) -> list[str]:
    """Where the shown runs hold several onnxruntime releases on one machine (the runtime
    matrix, ``tox -m runtimes``): each ONNX benchmark's median per release with the newest
    against the oldest, and each export's worst parity error per release."""
    by_machine: dict[str, list[ResultFile]] = defaultdict(list)
    for result in results:
        if not result.plain:
            by_machine[str(result.harness.get("machine_id"))].append(result)
    lines: list[str] = []
    for machine, runs in sorted(by_machine.items()):
        releases = sorted({runtime_of(r) for r in runs}, key=_version_order)
        if len(releases) < 2:
            continue
        medians: dict[tuple[Any, ...], dict[str, float]] = defaultdict(dict)
        forms: dict[tuple[Any, ...], dict[str, str]] = defaultdict(dict)
        errors: dict[tuple[str, str], dict[str, float | None]] = defaultdict(dict)
        for result in runs:
            release = runtime_of(result)
            for row in result.benchmarks:
                key = benchmark_key(row, provider=result.harness.get("provider"))
                if not str(key.engine).startswith("onnx"):
                    continue  # scikit-learn and torch rows do not run on onnxruntime
                cell = (key.case, key.engine, key.provider, key.batch_size, key.threads)
                medians[cell][release] = float(row["stats"]["median"])
                forms[cell][release] = str(_extra(row).get("model_sha256") or "")
                error = _extra(row).get("parity_max_abs_err")
                errors[(str(key.case), str(key.engine))][release] = error
        oldest, newest = releases[0], releases[-1]
        lines += [
            "",
            f"## Across onnxruntime releases ({machine})",
            "",
            f"Median latency per release; the last column is {newest} against {oldest} "
            "(below 1: faster on the newer release). † marks an export that differs from the "
            f"newest release's (a form that release loads, see the README's runtime matrix).",
            "",
        ]
        body = []
        for cell, per in sorted(medians.items(), key=lambda kv: tuple(map(str, kv[0]))):
            case, engine, provider, batch, threads = cell
            newest_form = forms[cell].get(newest)
            cells = [
                "-"
                if release not in per
                else _fmt_ms(per[release])
                + (" †" if newest_form and forms[cell][release] != newest_form else "")
                for release in releases
            ]
            ratio = f"{per[newest] / per[oldest]:.2f}" if oldest in per and newest in per else "-"
            where = f"{batch:,}" if isinstance(batch, int) else str(batch)
            body.append([str(case), str(engine), provider, where, str(threads), *cells, ratio])
        header = ["case", "engine", "provider", "batch", "threads", *releases]
        lines += _table([*header, f"{newest} / {oldest}"], body)
        lines += ["", "Worst parity error against scikit-learn on the case's test rows:", ""]
        body = [
            [case, engine]
            + [
                "-" if per.get(release) is None else f"{float(per[release]):.3g}"  # type: ignore[arg-type]
                for release in releases
            ]
            for (case, engine), per in sorted(errors.items())
        ]
        lines += _table(["case", "engine", *releases], body)
    return lines


def _plain_sections(results: Sequence[ResultFile]) -> list[str]:
    """Plain pytest-benchmark results: one table row per benchmark."""
    several = len(results) > 1
    body = []
    for result in results:
        for row in result.benchmarks:
            stats = row["stats"]
            ops = stats.get("ops")
            cells = [
                benchmark_key(row, plain=True).id,
                _fmt_time(stats["median"]),
                _fmt_time(stats.get("iqr")),
                "-" if not isinstance(ops, int | float) else f"{ops:,.1f}",
                str(stats.get("rounds", "-")),
                "yes" if stats.get("data") else "no",
            ]
            body.append([result.label, *cells] if several else cells)
    header = ["benchmark", "median", "IQR", "ops/s", "rounds", "raw samples"]
    lines = ["## pytest-benchmark results", ""]
    lines += _table(["run", *header] if several else header, body)
    if any(cells[-1] == "no" for cells in body):
        lines += [
            "",
            "Without raw samples (pytest-benchmark's --benchmark-save-data) `harness gate` "
            "shows medians but cannot test a change.",
        ]
    return lines


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    """'1.22.1' sorts before '1.32.0' (and '1.9' before '1.10')."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.+-]", version))


def _fmt_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def _fmt_g(value: float | None, scale: float = 1.0) -> str:
    """Three significant digits; whole numbers from 1,000 on (never an exponent)."""
    if value is None:
        return "-"
    scaled = value * scale
    return f"{scaled:,.0f}" if abs(scaled) >= 1000 else f"{scaled:.3g}"


def _cold_start_section(results: Sequence[ResultFile]) -> list[str]:
    """Cold start per model (``harness.timing.coldstart``): one row per model, provider and
    onnxruntime version, a model's versions next to each other, oldest first; [] when no
    result holds a ``cold_start`` block."""
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for result in sorted(results, key=lambda r: run_order(r.path)):
        machine = str(result.harness.get("machine_id"))
        versions = result.harness.get("versions") or {}
        for entry in result.harness.get("cold_start", []):
            version = entry.get("onnxruntime") or versions.get("onnxruntime") or "?"
            model = (entry["case"], entry["engine"], entry.get("provider") or "-")
            sha = entry.get("model_sha256") or ""
            key: tuple[str, ...] = (*model, sha, machine, str(version))
            found[key] = entry  # a later run of the same model and version replaces it
    if not found:
        return []
    machines = {key[4] for key in found}
    shas: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for key in found:
        shas[key[:3]].add(key[3])
    body, failures = [], []
    for key in sorted(found, key=lambda k: (*k[:5], _version_key(k[5]))):
        case, engine, provider, sha, machine, version = key
        e = found[key]
        label = f"{engine}@{provider}" + (f" t{e['threads']}" if e.get("threads") else "")
        label += f" on {machine}" if len(machines) > 1 else ""
        label += f" ({sha[:8]})" if len(shas[key[:3]]) > 1 else ""
        nodes = "-" if e.get("nodes") is None else f"{e['nodes']:,}"
        if e.get("function_nodes"):
            nodes += f" (+{e['function_nodes']:,} in functions)"
        median, first = e.get("session_seconds_median"), e.get("session_seconds_first")
        session = _fmt_g(median, 1e3) + ("" if first is None else f" ({_fmt_g(first, 1e3)})")
        if e.get("error"):
            failures.append(f"Cold start of {case} {label} on onnxruntime {version}: {e['error']}")
            if median is None:
                session = "failed"
        peak, base = e.get("peak_rss_bytes"), e.get("rss_after_import_bytes")
        export = e.get("export_seconds")
        body.append(
            [
                case,
                label,
                version,
                _fmt_bytes(e.get("bytes")),
                nodes,
                "-" if export is None else (f"{export:.2f}" if export < 10 else f"{export:.0f}"),
                session,
                _fmt_g(e.get("first_call_seconds"), 1e3),
                _fmt_g(peak, 2**-20),
                "-" if peak is None or base is None else f"+{(peak - base) / 2**20:.3g}",
            ]
        )
    header = ["case", "engine", "onnxruntime", "size", "nodes", "export s"]
    header += ["session ms, median (first)", "first call ms", "peak RSS MiB", "over import MiB"]
    lines = ["", "## Cold start", ""]
    lines += [
        "Each model loaded in a fresh Python process with the benchmark's session settings: "
        "session creation (the median of up to 5 after the process's first; the first in "
        "brackets), the first call on one row, the process's peak resident memory and its "
        "rise over the memory right after `import onnxruntime`.",
        "",
    ]
    lines += _table(header, body)
    return lines + (["", *failures] if failures else [])


def render_markdown(results: Sequence[ResultFile], title: str = "Harness report") -> str:
    """A verdict first, then speed-up per case and batch size (with intervals), latency
    percentiles, parity, conformance, skips and environment; for plain pytest-benchmark
    files, a table of their benchmarks.

    Only the latest run per machine and provider is shown; older runs are listed.
    """
    latest = latest_runs(results)[0]
    return _markdown(results, title, _speedups(latest))


def _markdown(results: Sequence[ResultFile], title: str, speedups: _Speedups) -> str:
    results, older = latest_runs(results)
    ours = [r for r in results if not r.plain]
    plain = [r for r in results if r.plain]
    lines = [f"# {title}", ""]
    if older:
        lines += [
            "Latest run per machine, provider and onnxruntime release; "
            f"{len(older)} older run(s) not shown (compare runs with `harness compare`).",
            "",
        ]
    verdict = _verdict(ours, speedups)
    lines += [*verdict, ""] if verdict else []
    lines += _pair_parity(ours)
    if not _rows(results):
        return "\n".join([*lines, "No benchmark rows in these results.", ""])
    if _rows(ours):
        lines += _harness_sections(ours, speedups)
    if _rows(plain):
        lines += ["", *_plain_sections(plain)] if _rows(ours) else _plain_sections(plain)
    lines += ["", "## Environment", ""]
    lines += _table(["result", "machine and versions"], _environment(results))
    return "\n".join(lines) + "\n"


def _pair_verdicts(
    results: Sequence[ResultFile],
) -> list[tuple[Any, str, str, list[dict[str, Any]]]]:
    """(model, PASS / **FAIL**, counts per status, outcomes) of each ``harness run --model
    --reference`` parity block, once per model."""
    out = []
    seen = set()
    for result in results:
        parity = result.harness.get("parity")
        if not isinstance(parity, dict) or parity.get("model") in seen:
            continue
        seen.add(parity.get("model"))
        outcomes = [o for o in parity.get("outcomes", []) if isinstance(o, dict)]
        verdict = "PASS" if parity.get("verdict") == "pass" else "**FAIL**"
        counts = Counter(str(o.get("status")) for o in outcomes)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        out.append((parity.get("model"), verdict, summary, outcomes))
    return out


def _pair_parity(results: Sequence[ResultFile]) -> list[str]:
    """The verdict of ``harness run --model --reference``'s parity checks, first."""
    lines: list[str] = []
    for model, verdict, summary, outcomes in _pair_verdicts(results):
        lines += [f"## Parity of {model}: {verdict}", "", f"{summary}.", ""]
        body = [
            [
                str(o.get("check")),
                str(o.get("status")),
                "-" if o.get("measured") is None else f"{float(o['measured']):.3g}",
                str(o.get("bound", "")).replace("|", "/"),
            ]
            for o in outcomes
            if o.get("status") != "pass"
        ]
        if body:
            lines += [*_table(["check", "status", "measured", "bound"], body), ""]
    return lines


# -- verdict ------------------------------------------------------------------------------


def _verdict(results: Sequence[ResultFile], speedups: _Speedups) -> list[str]:
    """What a reader needs first: coverage, parity, speed against scikit-learn per batch band,
    providers; one bullet each, the detail in the sections below."""
    rows = _rows(results)
    if not rows and not any(isinstance(r.harness.get("parity"), dict) for r in results):
        return []
    lines = ["## Verdict", ""]
    bullets = [_coverage(results)] if rows else []
    bullets += _parity_verdict(results)
    bullets += _speed_verdict(results, speedups)
    bullets += _provider_verdict(results)
    return lines + [f"- {b}" for b in bullets if b]


def _coverage(results: Sequence[ResultFile]) -> str:
    rows = _rows(results)
    zoo = sorted({str(_extra(r).get("case")) for r in rows if _extra(r).get("origin") != "user"})
    users = sorted({str(_extra(r).get("case")) for r in rows if _extra(r).get("origin") == "user"})
    engines = sorted({str(_extra(r).get("engine")) for r in rows} - {"sklearn"})
    batches = sorted({b for r in rows if isinstance(b := _extra(r).get("batch_size"), int)})
    threads = sorted({t for r in rows if isinstance(t := _extra(r).get("threads"), int)})
    what = []
    if zoo:
        what.append(f"{len(zoo)} zoo case{'s' if len(zoo) > 1 else ''} ({', '.join(zoo)})")
    if users:
        what.append(f"your model{'s' if len(users) > 1 else ''} {', '.join(users)}")
    runs = len(results)
    return (
        f"**Covered:** {' and '.join(what)}; engines {', '.join(engines) or 'none'} against "
        f"scikit-learn; batch sizes {', '.join(f'{b:,}' for b in batches)}; threads "
        f"{', '.join(map(str, threads))}; {len(rows)} benchmarks from {runs} "
        f"run{'s' if runs > 1 else ''}."
    )


def _parity_verdict(results: Sequence[ResultFile]) -> list[str]:
    out = []
    exports: dict[tuple[str, str], str] = {}
    for row in _rows(results):
        e = _extra(row)
        if e.get("parity") in ("pass", "fail"):
            exports[(str(e.get("case")), str(e.get("engine")))] = str(e.get("parity"))
    conformance = [row for result in results for row in result.harness.get("conformance", [])]
    zoo = any(_extra(r).get("origin") != "user" for r in _rows(results))
    if exports or conformance or zoo:
        parts = []
        if exports:
            counts = Counter(exports.values())
            failed = sorted(f"{c} {e}" for (c, e), s in exports.items() if s == "fail")
            parts.append(
                f"exports checked on each case's test rows: {counts['pass']} pass, "
                + (f"**{counts['fail']} fail** ({', '.join(failed)})" if failed else "0 fail")
            )
        if conformance:
            from harness.reports.conformance import conformance_counts
            from harness.results.schema import ConformanceRow

            n = conformance_counts([ConformanceRow(**c) for c in conformance])
            bad = n["fail"] + n["xpass"]
            parts.append(
                f"conformance suite {len(conformance)} checks: {n['pass']} pass, "
                + (f"**{bad} fail**" if bad else "0 fail")
                + f", {n['xfail']} known gap{'' if n['xfail'] == 1 else 's'} (declared, "
                f"expected to fail), {n['skip']} skipped"
            )
        elif zoo:
            parts.append(
                "the conformance suite is not in these results (`harness run` runs it unless "
                "--no-parity)"
            )
        out.append("**Parity:** " + "; ".join(parts) + ".")
    seen = set()
    for model, verdict, summary, _ in _pair_verdicts(results):
        seen.add(model)
        out.append(f"**Parity of {model} against its reference:** {verdict} ({summary}).")
    for row in _rows(results):
        if _extra(row).get("parity") == "unchecked" and _extra(row).get("case") not in seen:
            seen.add(_extra(row).get("case"))
            out.append(
                f"**Parity of {_extra(row).get('case')}:** not checked (no reference model; "
                "`harness run --model M --reference R.skops` checks it)."
            )
    return out


def _speed_verdict(results: Sequence[ResultFile], speedups: _Speedups) -> list[str]:
    """ONNX engines against scikit-learn, per batch band: faster, slower or undecided (the
    95% interval holds 1x)."""
    by_series, _ = _series(results)
    cells: list[tuple[str, str, int, _Speedup]] = []
    for (case, series), per_batch in sorted(by_series.items()):
        for batch, row in sorted(per_batch.items()):
            found = speedups.get(id(row))
            if found is not None and str(_extra(row).get("engine", "")).startswith("onnx"):
                cells.append((case, series, batch, found))
    if not cells:
        return []
    with_ci = all(c[3].low is not None for c in cells)
    how = (
        "a cell counts as faster or slower when its 95% interval excludes 1x"
        if with_ci
        else "by the median; cells without raw samples have no interval"
    )
    parts = []
    for low, high, label in _BANDS:
        band = [c for c in cells if c[2] >= low and (high is None or c[2] <= high)]
        if not band:
            continue
        sides = Counter(c[3].side for c in band)
        values = sorted(c[3].value for c in band)
        text = f"{label}: faster in {sides['faster']} of {len(band)} cells"
        if sides["slower"]:
            text += f", **slower in {sides['slower']}**"
        if sides["undecided"]:
            text += f", too close to call in {sides['undecided']}"
        text += f" (speed-ups {_fmt_ratio(values[0])}x to {_fmt_ratio(values[-1])}x)"
        engines = sorted({c[1].split("@")[0].split(" ")[0] for c in band})
        if len(engines) > 1:  # where exporters differ, say which is which
            each = []
            for engine in engines:
                mine = [c for c in band if c[1].split("@")[0].split(" ")[0] == engine]
                faster = sum(c[3].side == "faster" for c in mine)
                each.append(f"{engine} {faster} of {len(mine)}")
            text += "; faster by engine: " + ", ".join(each)
        parts.append(f"\n  - {text}")
    out = [f"**ONNX against scikit-learn** (median latency, same run and threads; {how}):"]
    out[0] += "".join(parts)
    slower = sorted((c for c in cells if c[3].side == "slower"), key=lambda c: c[3].value)
    if slower:
        shown = [f"{case} {series} at batch {b:,}: {s.text()}" for case, series, b, s in slower]
        if len(shown) > 8:
            shown = [*shown[:7], f"and {len(shown) - 7} more (▼ in the speed-up table)"]
        where = " (the interval below 1x)" if with_ci else ""
        out.append(f"**Slower than scikit-learn**{where}:" + "".join(f"\n  - {s}" for s in shown))
    return out


def _skipped_provider(test_id: str) -> str | None:
    """The provider a skipped benchmark id asked for: ``case[onnx-native-cuda]-b1-t1``."""
    found = re.search(r"\[([^\]]*)\]", test_id)
    if found is None:
        return None
    last = found[1].rsplit("-", 1)[-1]
    return last if last in _PROVIDERS else None


def _provider_verdict(results: Sequence[ResultFile]) -> list[str]:
    """Providers that ran (onnxruntime's own report of the active provider), those asked for
    that did not and why (the run's skip reasons), and those not asked for."""
    harness = [r for r in results if not r.plain]
    if not harness:
        return []
    asked: set[str] = set()
    ran: Counter[str] = Counter()
    instead: Counter[tuple[str, str]] = Counter()
    skips: dict[str, Counter[str]] = defaultdict(Counter)
    seen_skips = set()
    for result in harness:
        if result.harness.get("provider"):
            asked.add(str(result.harness["provider"]))
        for row in result.benchmarks:
            e = _extra(row)
            requested = e.get("provider_requested")
            if requested in (None, "-"):
                continue
            asked.add(str(requested))
            active = _provider(str(e.get("provider_active") or "?").split("+")[0])
            ran[active] += 1
            if active != requested:
                instead[(str(requested), active)] += 1
        for skip in result.harness.get("skipped", []):
            provider = _skipped_provider(str(skip.get("id", "")))
            if provider is None or (skip.get("id"), skip.get("reason")) in seen_skips:
                continue
            seen_skips.add((skip.get("id"), skip.get("reason")))
            asked.add(provider)
            skips[provider][str(skip.get("reason"))] += 1
    conformance = [row for result in harness for row in result.harness.get("conformance", [])]
    gpu_checks: dict[str, Counter[str]] = defaultdict(Counter)
    for row in conformance:
        if "@" in str(row.get("engine")):
            provider = str(row["engine"]).rsplit("@", 1)[1]
            status = str(row.get("status"))
            gpu_checks[provider][
                f"{status}: {row.get('message')}" if status == "skip" else status
            ] += 1
    parts = []
    if ran:
        parts += [
            f"ran {p} ({n} ONNX benchmark{'s' if n > 1 else ''})" for p, n in sorted(ran.items())
        ]
    else:
        parts.append("no ONNX benchmark ran (scikit-learn only)")
    for (requested, active), n in sorted(instead.items()):
        parts.append(f"**{requested} was asked for but {active} ran** in {n} benchmarks")
    for provider in sorted(asked - set(ran)):
        reasons = skips.get(provider)
        if reasons:
            why = "; ".join(
                f"{reason} ({n} benchmark{'s' if n > 1 else ''} skipped)"
                for reason, n in reasons.most_common()
            )
        else:
            why = "no benchmark of it is in these results"
        parts.append(f"**{provider} was asked for and did not run**: {why}")
    for provider, statuses in sorted(gpu_checks.items()):
        text = "; ".join(f"{n} {s}" for s, n in statuses.items())
        parts.append(f"parity checks on {provider}: {text}")
    missing = [p for p in _PROVIDERS if p not in asked]
    if missing:
        parts.append(
            f"not asked for: {', '.join(missing)} (`harness run --providers "
            f"{','.join(_PROVIDERS)}` asks for all; `harness providers` lists what "
            "this machine can run)"
        )
    return ["**Providers:**" + "".join(f"\n  - {p}" for p in parts)]


# -- HTML ---------------------------------------------------------------------------------


def _figure_png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, max(1, n))
    return math.ceil(n / cols), cols


_Plot = tuple[str, str, str]  # (heading of the section it belongs to, caption, base64 PNG)


def _plots(results: Sequence[ResultFile], speedups: _Speedups) -> list[_Plot]:
    """The speed-up heat map, latency with its interquartile band, parity as error / bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_series, engines = _series(results)
    if not by_series:
        return []
    plots = [
        _speedup_heatmap(plt, by_series, speedups),
        _latency_plot(plt, by_series),
        _parity_plot(plt, by_series, engines),
    ]
    return [p for p in plots if p is not None]


#: Speed-up bins of the heat map: edges and a colour per bin, red below 1x, blues above.
_HEAT_EDGES = (0.0, 0.5, 1.0, 2.0, 10.0, 100.0, math.inf)
_HEAT_COLOURS = ("#b2182b", "#f4a582", "#d1e5f0", "#92c5de", "#4393c3", "#2166ac")


def _speedup_heatmap(plt: Any, by_series: _Series, speedups: _Speedups) -> _Plot | None:
    """Case x engine rows, batch columns, all on one colour scale: red below 1x (and ▼),
    blues above, darker the larger."""
    import numpy as np
    from matplotlib.colors import BoundaryNorm, ListedColormap

    keys = [key for key in sorted(by_series) if not key[1].startswith("sklearn")]
    batches = sorted({b for key in keys for b in by_series[key]})
    values = np.full((len(keys), len(batches)), np.nan)
    for i, key in enumerate(keys):
        for j, batch in enumerate(batches):
            row = by_series[key].get(batch)
            found = None if row is None else speedups.get(id(row))
            if found is not None and found.value > 0 and math.isfinite(found.value):
                values[i, j] = found.value
    if np.isnan(values).all():
        return None
    bins = np.digitize(values, _HEAT_EDGES[1:-1]).astype(float)
    bins[np.isnan(values)] = np.nan
    cmap = ListedColormap(list(_HEAT_COLOURS)).with_extremes(bad="#eeeeee")
    norm = BoundaryNorm(np.arange(len(_HEAT_COLOURS) + 1) - 0.5, len(_HEAT_COLOURS))
    height = 1.9 + 0.32 * len(keys)
    fig, ax = plt.subplots(figsize=(4.5 + 1.2 * len(batches), height), layout="constrained")
    image = ax.imshow(np.ma.masked_invalid(bins), cmap=cmap, norm=norm, aspect="auto")
    for i in range(len(keys)):
        for j in range(len(batches)):
            value = values[i, j]
            if np.isnan(value):
                ax.text(j, i, "-", ha="center", va="center", fontsize=9, color="#888888")
                continue
            slower = value < 1
            ax.text(
                j,
                i,
                f"{_fmt_ratio(value)}x" + (" ▼" if slower else ""),
                ha="center",
                va="center",
                fontsize=9,
                fontweight="bold" if slower else "normal",
                color="white" if bins[i, j] in (0, len(_HEAT_COLOURS) - 1) else "black",
            )
    for i in range(1, len(keys)):
        if keys[i][0] != keys[i - 1][0]:  # a line between cases
            ax.axhline(i - 0.5, color="white", linewidth=3)
    ax.set_xticks(range(len(batches)), [f"{b:,}" for b in batches])
    ax.set_xlabel("batch size")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(keys)), [f"{case}  {name}" for case, name in keys], fontsize=9)
    ax.tick_params(length=0)
    # a bar of a fixed 0.18 in below the cells, whatever the number of rows
    bar = fig.colorbar(
        image, ax=ax, location="bottom", fraction=0.18 / height, aspect=40, pad=0.1 / height
    )
    labels = ["< 0.5x", "0.5-1x", "1-2x", "2-10x", "10-100x", "≥ 100x"]
    bar.set_ticks(list(range(len(_HEAT_COLOURS))), labels=labels)
    bar.ax.tick_params(length=0, labelsize=9)
    bar.set_label("speed-up against scikit-learn (red: slower)")
    ax.set_title("Speed-up against scikit-learn (median, same run and threads; ▼ slower)")
    caption = (
        "Speed-up per case, engine and batch size: scikit-learn's median / the engine's; "
        "red cells marked ▼ are slower than scikit-learn (intervals in the table below)"
    )
    plot = ("Speed-up against scikit-learn", caption, _figure_png(fig))
    plt.close(fig)
    return plot


def _latency_plot(plt: Any, by_series: _Series) -> _Plot | None:
    """Median latency against batch size, one panel per case, one colour per engine across
    panels, the interquartile range as the band."""
    cases = sorted({case for case, _ in by_series})
    names = sorted({name for _, name in by_series})
    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colours = {name: palette(i % palette.N) for i, name in enumerate(names)}
    nrows, ncols = _grid(len(cases))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows + 0.8), squeeze=False, layout="constrained"
    )
    for ax, case in zip(axes.flat, cases, strict=False):
        for name in names:
            cells = by_series.get((case, name))
            if not cells:
                continue
            xs = sorted(cells)
            medians = [float(cells[b]["stats"]["median"]) * 1e3 for b in xs]
            ax.plot(xs, medians, marker="o", markersize=3, color=colours[name], label=name)
            quartiles = [_quartiles(cells[b]) for b in xs]
            if all(q is not None for q in quartiles):
                low = [q[0] * 1e3 for q in quartiles if q is not None]
                high = [q[1] * 1e3 for q in quartiles if q is not None]
                if len(xs) > 1:
                    ax.fill_between(xs, low, high, alpha=0.2, color=colours[name], linewidth=0)
                else:
                    ax.vlines(xs, low, high, color=colours[name], linewidth=4, alpha=0.4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(case, fontsize=10)
        ax.set_xlabel("batch size")
        ax.set_ylabel("latency per call (ms)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(cases) :]:
        ax.set_visible(False)
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=min(4, len(handles)),
        fontsize=8,
    )
    fig.suptitle("Median latency vs batch size (log-log); band: interquartile range (q1-q3)")
    caption = "Median latency per case; the band spans the middle half of the rounds"
    plot = ("Latency percentiles", caption, _figure_png(fig))
    plt.close(fig)
    return plot


def _parity_plot(plt: Any, by_series: _Series, engines: dict[tuple[str, str], str]) -> _Plot | None:
    """Each export's worst error as a fraction of its bound (log scale; 1 = at the bound)."""
    items = []
    for case, engine, e in _parity_rows(by_series, engines):
        ratio = _error_over_bound(e)
        if ratio is not None and e.get("parity") != "quantized":
            items.append((f"{case} · {engine}", ratio, e.get("parity") == "pass"))
    if not items:
        return None
    floor = 1e-12
    finite = [r for _, r, _ in items if math.isfinite(r) and r > 0]
    ceiling = max([10.0, *(r * 10 for r in finite)])
    shown = [min(max(r, floor), ceiling) for _, r, _ in items]
    colours = ["tab:green" if ok and r <= 1 else "tab:red" for (_, r, ok) in items]
    fig, ax = plt.subplots(figsize=(8.5, max(2.2, 1.2 + 0.27 * len(items))), layout="constrained")
    positions = range(len(items))
    ax.barh(positions, shown, color=colours, left=floor)
    for i, (_, ratio, _) in enumerate(items):
        if ratio == 0 or not math.isfinite(ratio):
            ax.text(
                floor * 2, i, "exact (0)" if ratio == 0 else str(ratio), va="center", fontsize=7
            )
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.text(1.15, 1.0, "the bound", fontsize=8, va="top", transform=ax.get_xaxis_transform())
    ax.set_xscale("log")
    ax.set_xlim(floor, ceiling)
    ax.set_yticks(positions, [name for name, _, _ in items], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("worst error / its bound atol + rtol x |reference| (at most; log scale)")
    ax.set_title("Parity: how close each export came to its bound (green: within)")
    ax.grid(True, axis="x", which="major", alpha=0.3)
    caption = (
        "Worst error of each export as a fraction of the bound it is held to; left of the "
        "dashed line is within it"
    )
    plot = ("Parity (ONNX against scikit-learn", caption, _figure_png(fig))
    plt.close(fig)
    return plot


def _plain_plot(results: Sequence[ResultFile], max_bars: int = 60) -> list[_Plot]:
    """Median time per benchmark of plain pytest-benchmark results, IQR as error bars."""
    bars = [
        (f"{row['name']}" + (f" ({result.label})" if len(results) > 1 else ""), row["stats"])
        for result in results
        for row in result.benchmarks
    ][:max_bars]
    if not bars:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    medians = [max(float(stats["median"]), 1e-12) for _, stats in bars]
    iqr = [float(stats.get("iqr") or 0.0) / 2 for _, stats in bars]
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.28 * len(bars)), layout="constrained")
    positions = range(len(bars))
    ax.barh(positions, medians, xerr=iqr, color="tab:blue", alpha=0.8)
    ax.set_yticks(positions, [name for name, _ in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median time per call (s), IQR bars")
    ax.set_title("pytest-benchmark results")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    figure = ("pytest-benchmark results", "pytest-benchmark medians", _figure_png(fig))
    plt.close(fig)
    return [figure]


def _cells(line: str) -> list[str]:
    """The cells of one markdown table line; ``\\|`` is a pipe inside a cell."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def _inline(text: str) -> str:
    """Escaped text with the report's inline markdown: `code` and **bold**."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def _td(cell: str) -> str:
    """A table cell, shaded where ▼ marks a speed-up below 1x. Long text wraps anywhere; a
    short cell only before a bracket (``12.3x [11.8, 12.9]`` / ``(0.108 ms)``)."""
    slow = ' class="slow"' if "▼" in cell else ""
    if len(cell) > 48:
        return f"<td{slow}>{_inline(cell)}</td>"
    pieces = [f'<span class="nb">{_inline(piece)}</span>' for piece in cell.split(" (")]
    return f"<td{slow}>{' ('.join(pieces)}</td>"


def _markdown_tables_to_html(markdown: str) -> str:
    """The report's markdown (headings, pipe tables, bullet lists one level deep, paragraphs)
    as HTML; each level-2 heading follows an anchor for the page's contents line."""
    out: list[str] = []
    table: list[str] = []
    items: list[tuple[str, list[str]]] = []

    def flush() -> None:
        if items:
            lis = []
            for item, nested in items:
                inner = "".join(f"<li>{_inline(n)}</li>" for n in nested)
                lis.append(
                    f"<li>{_inline(item)}" + (f"<ul>{inner}</ul>" if inner else "") + "</li>"
                )
            out.append("<ul>" + "".join(lis) + "</ul>")
            items.clear()
        if not table:
            return
        header, *body = [_cells(line) for line in table if not line.startswith("|---")]
        out.append(
            "<table><thead><tr>"
            + "".join(f"<th>{_inline(c)}</th>" for c in header)
            + "</tr></thead><tbody>"
        )
        out.extend("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in body)
        out.append("</tbody></table>")
        table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            if items:
                flush()
            table.append(line)
            continue
        if line.startswith("  - ") and items:
            items[-1][1].append(line[4:])
            continue
        if line.startswith("- "):
            if table:
                flush()
            items.append((line[2:], []))
            continue
        flush()
        if line.startswith("## "):
            out.append(f'<a id="{_slug(line[3:])}"></a><h2>{_inline(line[3:])}</h2>')
        elif line.startswith("### "):
            out.append(f"<h3>{_inline(line[4:])}</h3>")
        elif line.startswith("# "):
            out.append(f"<h1>{_inline(line[2:])}</h1>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    flush()
    return "\n".join(out)


def render_html(results: Sequence[ResultFile], title: str = "Harness report") -> str:
    """A self-contained page: the markdown report with each plot (embedded PNG) at the end
    of the section it illustrates."""
    speedups = _speedups(latest_runs(results)[0])
    return _html(results, title, speedups, _markdown(results, title, speedups))


def _html(results: Sequence[ResultFile], title: str, speedups: _Speedups, markdown: str) -> str:
    latest = latest_runs(results)[0]
    plots = _plots([r for r in latest if not r.plain], speedups)
    plots += _plain_plot([r for r in latest if r.plain])
    placed: set[int] = set()
    parts = []
    for section in re.split(r'(?=<a id="[^"]*"></a><h2>)', _markdown_tables_to_html(markdown)):
        figures = ""
        for i, (anchor, caption, png) in enumerate(plots):
            if i not in placed and section.startswith(f'<a id="{_slug(anchor)}'):
                figures += _figure(caption, png)
                placed.add(i)
        # the picture first, the table with every number after it
        head, table, tail = section.partition("<table>")
        parts.append(head + figures + table + tail if table else section + figures)
    rest = [_figure(caption, png) for i, (_, caption, png) in enumerate(plots) if i not in placed]
    if rest:  # a plot whose section is not shown: before the environment
        at = next(
            (i for i, p in enumerate(parts) if p.startswith('<a id="environment"')), len(parts)
        )
        parts[at:at] = ['<a id="plots"></a><h2>Plots</h2>', *rest]
    headings = re.findall(r'<a id="([^"]+)"></a><h2>(.*?)</h2>', "".join(parts))
    if len(headings) > 2 and parts:  # a contents line under the title of a long page
        links = " · ".join(
            f'<a href="#{slug}">{re.sub(r" [(].*", "", text)}</a>' for slug, text in headings
        )
        parts[0] = parts[0].replace("</h1>", f'</h1><nav class="contents">{links}</nav>', 1)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{REPORT_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def _figure(caption: str, png: str) -> str:
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png}"/>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def write_reports(
    results: Sequence[ResultFile], out: Path, title: str = "Harness report"
) -> tuple[Path, Path]:
    """Write report.md and report.html into ``out``."""
    from engines._io import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    speedups = _speedups(latest_runs(results)[0])  # bootstrap once for both pages
    markdown = _markdown(results, title, speedups)
    md = atomic_write_bytes(out / "report.md", markdown.encode())
    page = atomic_write_bytes(
        out / "report.html", _html(results, title, speedups, markdown).encode()
    )
    return md, page


# -- compare ------------------------------------------------------------------------------


def compare_rows(
    a: Sequence[ResultFile], b: Sequence[ResultFile], *, model_change: ModelChange = "refuse"
) -> Matches:
    """The benchmarks of A and B paired as :func:`harness.results.store.match` pairs them."""
    return match(keyed_rows(a), keyed_rows(b), model_change=model_change)


def _ratio(a: float, b: float) -> str:
    return f"{b / a:.2f}" if a else "-"


def _side_label(results: Sequence[ResultFile]) -> str:
    """The runs of one side, each with its onnxruntime release (a runtime upgrade is one of
    the things compared: ``harness compare`` of two tox runtime envs' results)."""
    return ", ".join(
        r.label if r.plain else f"{r.label} (onnxruntime {runtime_of(r)})" for r in results
    )


def compare_markdown(
    a: Sequence[ResultFile], b: Sequence[ResultFile], *, model_change: ModelChange = "refuse"
) -> str:
    """Two runs side by side: medians and the ratio B / A per matched benchmark, then what
    is not comparable (and why) and what is on one side only. ``model_change="compare"``
    pairs a user model across a change of its file and lists what changed."""
    matched, only_a, only_b, not_comparable = compare_rows(a, b, model_change=model_change)
    label_a, label_b = _side_label(a) or "A", _side_label(b) or "B"
    lines = ["# Comparison", "", f"- A: {label_a}", f"- B: {label_b}", ""]
    ours = [p for p in matched if not p.key.plain]
    plain = [p for p in matched if p.key.plain]
    if not matched:
        lines += ["No benchmark is comparable in both."]
    if ours:
        body = []
        for pair in ours:
            k = pair.key
            ma, mb = pooled_median(pair.rows_a), pooled_median(pair.rows_b)
            batch = f"{k.batch_size:,}" if isinstance(k.batch_size, int) else str(k.batch_size)
            cells = [str(k.case), str(k.engine), batch, str(k.threads), k.provider]
            body.append([*cells, _fmt_ms(ma), _fmt_ms(mb), _ratio(ma, mb)])
        header = ["case", "engine", "batch", "threads", "provider", "A median", "B median"]
        lines += _table([*header, "B / A"], body)
    if plain:
        body = []
        for pair in plain:
            ma, mb = pooled_median(pair.rows_a), pooled_median(pair.rows_b)
            body.append([pair.key.id, _fmt_time(ma), _fmt_time(mb), _ratio(ma, mb)])
        lines += ([""] if ours else []) + _table(
            ["benchmark", "A median", "B median", "B / A"], body
        )
    changed = [(p.key.id, p.note) for p in matched if p.note]
    if changed:
        lines += ["", f"Compared across a model change ({len(changed)}):", ""]
        lines += [f"- {name}: {note}" for name, note in changed]
    if not_comparable:
        lines += ["", f"Not comparable ({len(not_comparable)}):", ""]
        lines += [f"- {name}: {reason}" for name, reason in not_comparable]
    for side, keys in (("A", only_a), ("B", only_b)):
        if keys:
            lines += [
                "",
                f"Only in {side} ({len(keys)}): "
                + "; ".join(keys[:20])
                + (" ..." if len(keys) > 20 else ""),
            ]
    return "\n".join(lines) + "\n"
