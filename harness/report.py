"""Reports from stored results: report.md (PR-comment ready) and a self-contained report.html.

Harness results get speed-up, latency, parity and environment tables and plots; plain
pytest-benchmark JSON gets a table of its benchmarks (median, IQR, ops) and a bar chart.
Rows of different benchmarks (machines, providers, user models that differ) never share a cell.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.store import (
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
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}"
    "figure{margin:1.5em 0}img{max-width:100%}figcaption{color:#555}"
)


def _extra(row: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = row.get("extra_info") or {}
    return extra


def _number(value: Any, default: float) -> float:
    """A field the loader checked to be a number or null; null reads as ``default``."""
    return default if value is None else float(value)


def series_name(row: dict[str, Any]) -> str:
    """engine@provider/threads: one line in a plot, one row in a table."""
    e = _extra(row)
    provider = e.get("provider_active") or e.get("provider_requested") or "-"
    provider = {
        "CPUExecutionProvider": "cpu",
        "CUDAExecutionProvider": "cuda",
        "TensorrtExecutionProvider": "tensorrt",
    }.get(provider, provider)
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


def _speedup_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    speedup = _extra(row).get("speedup_vs_sklearn")
    return f"{_fmt_x(speedup)} ({_fmt_ms(row['stats']['median'])})"


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in body]
    return lines


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


def _harness_sections(results: Sequence[ResultFile]) -> list[str]:
    """Speed-up, latency, parity, conformance and skips of harness results."""
    by_series, engines = _series(results)
    rows = [row for cells in by_series.values() for row in cells.values()]
    batches = sorted({_extra(r).get("batch_size", 0) for r in rows})
    lines = ["## Speed-up against scikit-learn (same run; median latency in brackets)", ""]
    lines += ["Each engine against scikit-learn on the same number of threads.", ""]
    body = []
    for (case, series), cells in sorted(by_series.items()):
        if series.startswith("sklearn"):
            continue
        body.append([case, series] + [_speedup_cell(cells.get(b)) for b in batches])
    lines += _table(["case", "engine", *[f"batch {b:,}" for b in batches]], body)
    lines += _threads_section(by_series)
    lines += ["", "## Latency percentiles and throughput", ""]
    body = []
    for (case, series), cells in sorted(by_series.items()):
        for b in batches:
            if b in cells:
                e = _extra(cells[b])
                quantiles = [
                    f"{_number(e.get(k), math.nan):.3f}" for k in ("p50_ms", "p90_ms", "p99_ms")
                ]
                throughput = f"{_number(e.get('samples_per_s'), 0):,.0f}"
                rounds = str(cells[b]["stats"].get("rounds"))
                body.append([case, series, f"{b:,}", *quantiles, throughput, rounds])
    lines += _table(
        ["case", "engine", "batch", "p50 ms", "p90 ms", "p99 ms", "samples/s", "rounds"], body
    )
    lines += ["", "## Parity (ONNX against scikit-learn on each case's test rows)", ""]
    parity: dict[tuple[str, str], dict[str, Any]] = {}
    for (case, series), cells in by_series.items():
        for row in cells.values():
            e = _extra(row)
            if e.get("parity") not in (None, "reference", "reference-eager"):
                parity[(case, engines[(case, series)])] = e
    body = [
        [
            case,
            engine,
            str(e.get("parity")),
            "-" if e.get("parity_max_abs_err") is None else f"{e['parity_max_abs_err']:.2g}",
            "-"
            if e.get("parity_label_agreement") is None
            else f"{e['parity_label_agreement']:.4f}",
        ]
        for (case, engine), e in sorted(parity.items())
    ]
    lines += _table(["case", "engine", "status", "worst abs error", "label agreement"], body)
    conformance = [row for result in results for row in result.harness.get("conformance", [])]
    if conformance:
        from harness.conformance import ConformanceRow, conformance_markdown

        rows_c = [ConformanceRow(**row) for row in conformance]
        lines += ["", *conformance_markdown(rows_c).rstrip().splitlines()]
    lines += _cold_start_section(results)
    skipped = [s for result in results for s in result.harness.get("skipped", [])]
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += _table(["benchmark", "reason"], [[s["id"], s["reason"]] for s in skipped])
    return lines


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
    """Cold start per model (``harness.coldstart``): one row per model, provider and
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
    """Speed-up per case and batch size, latency percentiles, parity, skips, environment;
    for plain pytest-benchmark files, a table of their benchmarks.

    Only the latest run per machine and provider is shown; older runs are listed.
    """
    results, older = latest_runs(results)
    ours = [r for r in results if not r.plain]
    plain = [r for r in results if r.plain]
    lines = [f"# {title}", ""]
    if older:
        lines += [
            f"Latest run per machine and provider; {len(older)} older run(s) not shown "
            "(compare runs with `harness compare`).",
            "",
        ]
    lines += _pair_parity(ours)
    if not _rows(results):
        return "\n".join([*lines, "No benchmark rows in these results.", ""])
    if _rows(ours):
        lines += _harness_sections(ours)
        lines += _runtime_sections(ours)
    if _rows(plain):
        lines += ["", *_plain_sections(plain)] if _rows(ours) else _plain_sections(plain)
    lines += ["", "## Environment", ""]
    lines += _table(["result", "machine and versions"], _environment(results))
    return "\n".join(lines) + "\n"


def _pair_parity(results: Sequence[ResultFile]) -> list[str]:
    """The verdict of ``harness run --model --reference``'s parity checks, first."""
    lines: list[str] = []
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
        lines += [f"## Parity of {parity.get('model')}: {verdict}", "", f"{summary}.", ""]
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


# -- HTML ---------------------------------------------------------------------------------


def _figure_png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, max(1, n))
    return math.ceil(n / cols), cols


def _plots(results: Sequence[ResultFile]) -> list[tuple[str, str]]:
    """Speed-up, latency, throughput and parity plots of harness results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_series, _ = _series(results)
    rows = [row for cells in by_series.values() for row in cells.values()]
    if not rows:
        return []
    cases = sorted({case for case, _ in by_series})
    series: dict[str, dict[str, list[tuple[int, dict[str, Any]]]]] = defaultdict(dict)
    for (case, name), cells in by_series.items():
        series[case][name] = list(cells.items())
    figures = []
    specs = [
        (
            "Speed-up against scikit-learn vs batch size (log-log)",
            "speedup_vs_sklearn",
            "speed-up (x)",
        ),
        ("Median latency vs batch size, p50-p99 band", "latency", "latency (ms)"),
        ("Throughput vs batch size", "samples_per_s", "samples/s"),
    ]
    for title, key, ylabel in specs:
        nrows, ncols = _grid(len(cases))
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), squeeze=False, layout="constrained"
        )
        for ax, case in zip(axes.flat, cases, strict=False):
            for name, points in sorted(series[case].items()):
                points.sort(key=lambda p: p[0])
                xs = [b for b, _ in points]
                if key == "latency":
                    ys = [_latency(r, "p50_ms", "median") for _, r in points]
                    lo = [_latency(r, "", "min") for _, r in points]
                    hi = [_latency(r, "p99_ms", "max") for _, r in points]
                    (line,) = ax.plot(xs, ys, marker="o", label=name)
                    ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
                elif key == "speedup_vs_sklearn" and name.startswith("sklearn"):
                    continue
                else:
                    values = [_extra(r).get(key) for _, r in points]
                    if any(v is None for v in values):
                        continue
                    ax.plot(xs, values, marker="o", label=name)
            if key == "speedup_vs_sklearn":
                ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(case, fontsize=10)
            ax.set_xlabel("batch size")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            if ax.get_legend_handles_labels()[0]:  # a case with scikit-learn rows only has none
                ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(cases) :]:
            ax.set_visible(False)
        fig.suptitle(title)
        figures.append((title, _figure_png(fig)))
        plt.close(fig)
    worst: dict[str, float] = {}
    for row in rows:
        e = _extra(row)
        error = e.get("parity_max_abs_err")
        if error is not None and math.isfinite(error):  # a bar cannot show NaN or infinity
            worst[f"{e.get('case')}\n{e.get('engine')}"] = error
    parity = sorted(worst.items())
    if parity:
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(parity)), 3.5), layout="constrained")
        ax.bar(range(len(parity)), [max(v, 1e-17) for _, v in parity], color="tab:purple")
        ax.set_xticks(range(len(parity)), [k for k, _ in parity], rotation=70, fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("worst |ONNX - scikit-learn|")
        ax.set_title("Parity: worst absolute error per case and exporter")
        ax.grid(True, axis="y", alpha=0.3)
        figures.append(("Parity worst errors", _figure_png(fig)))
        plt.close(fig)
    return figures


def _latency(row: dict[str, Any], key: str, stat: str) -> float:
    """A latency in ms for the plots: ``extra_info[key]``, else ``stats[stat]``, else the
    median (the loader guarantees the median)."""
    stats = row["stats"]
    seconds = _number(stats.get(stat), float(stats["median"]))
    return _number(_extra(row).get(key), seconds * 1e3) if key else seconds * 1e3


def _plain_plot(results: Sequence[ResultFile], max_bars: int = 60) -> list[tuple[str, str]]:
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
    title = "pytest-benchmark medians"
    figure = (title, _figure_png(fig))
    plt.close(fig)
    return [figure]


def _cells(line: str) -> list[str]:
    """The cells of one markdown table line; ``\\|`` is a pipe inside a cell."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def _markdown_tables_to_html(markdown: str) -> str:
    """The report's markdown (headings and pipe tables only) as HTML."""
    out: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if not table:
            return
        header, *body = [
            [html.escape(c) for c in _cells(line)] for line in table if not line.startswith("|---")
        ]
        out.append(
            "<table><thead><tr>" + "".join(f"<th>{c}</th>" for c in header) + "</tr></thead><tbody>"
        )
        out.extend("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
        out.append("</tbody></table>")
        table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)


def render_html(results: Sequence[ResultFile], title: str = "Harness report") -> str:
    """A self-contained page: the markdown report's tables plus embedded PNG plots."""
    markdown = render_markdown(results, title)
    latest = latest_runs(results)[0]
    plots = _plots([r for r in latest if not r.plain]) + _plain_plot([r for r in latest if r.plain])
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{png}"/>'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, png in plots
    )
    body = _markdown_tables_to_html(markdown)
    # The speed-up table first, then the plots, then the detail tables.
    marker = "<h2>Latency percentiles" if "<h2>Latency percentiles" in body else "<h2>Environment"
    head, found, rest = body.partition(marker)
    rest = found + rest
    plots_html = f"<h2>Plots</h2>{figures}" if figures else ""
    style = REPORT_STYLE
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{head}{plots_html}{rest}</body></html>"
    )


def write_reports(
    results: Sequence[ResultFile], out: Path, title: str = "Harness report"
) -> tuple[Path, Path]:
    """Write report.md and report.html into ``out``."""
    from engines._io import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    md = atomic_write_bytes(out / "report.md", render_markdown(results, title).encode())
    page = atomic_write_bytes(out / "report.html", render_html(results, title).encode())
    return md, page


# -- compare ------------------------------------------------------------------------------


def compare_rows(
    a: Sequence[ResultFile], b: Sequence[ResultFile], *, model_change: ModelChange = "refuse"
) -> Matches:
    """The benchmarks of A and B paired as :func:`harness.store.match` pairs them."""
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
