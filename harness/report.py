"""Reports from stored results: report.md (PR-comment ready) and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.store import ResultFile

__all__ = [
    "REPORT_STYLE",
    "compare_markdown",
    "compare_rows",
    "render_html",
    "render_markdown",
    "row_key",
    "write_reports",
]


REPORT_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}"
    "figure{margin:1.5em 0}img{max-width:100%}figcaption{color:#555}"
)


def _extra(row: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = row.get("extra_info", {})
    return extra


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


def _fmt_x(value: float | None) -> str:
    return "-" if value is None else (f"{value:.1f}x" if value < 100 else f"{value:.0f}x")


def _speedup_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    speedup = _extra(row).get("speedup_vs_sklearn")
    return f"{_fmt_x(speedup)} ({_fmt_ms(row['stats']['median'])})"


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def _environment(results: Sequence[ResultFile]) -> list[tuple[str, str]]:
    out = []
    for result in results:
        h = result.harness
        m, v, g = h.get("machine", {}), h.get("versions", {}), h.get("git", {})
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
                + f"; provider {h.get('provider')}; profile {h.get('profile')}; "
                + ", ".join(f"{k} {val}" for k, val in v.items() if val)
                + f"; commit {str(g.get('commit'))[:12]}{' (dirty)' if g.get('dirty') else ''}"
                + f"; {result.data.get('datetime', '')}",
            )
        )
    return out


def latest_runs(results: Sequence[ResultFile]) -> tuple[list[ResultFile], list[ResultFile]]:
    """(latest run per machine and provider, the older ones). Files sort by their NNNN name."""
    latest: dict[tuple[Any, Any], ResultFile] = {}
    older: list[ResultFile] = []
    for result in sorted(results, key=lambda r: (r.path.parent.as_posix(), r.path.name)):
        key = (result.harness.get("machine_id"), result.harness.get("provider"))
        if key in latest:
            older.append(latest[key])
        latest[key] = result
    return list(latest.values()), older


def render_markdown(results: Sequence[ResultFile], title: str = "Harness report") -> str:
    """Speed-up per case and batch size, latency percentiles, parity, skips, environment.

    Only the latest run per machine and provider is shown; older runs are listed.
    """
    results, older = latest_runs(results)
    rows = _rows(results)
    lines = [f"# {title}", ""]
    if older:
        lines += [
            f"Latest run per machine and provider; {len(older)} older run(s) not shown "
            "(compare runs with `harness compare`).",
            "",
        ]
    if not rows:
        return "\n".join([*lines, "No benchmark rows in these results.", ""])
    batches = sorted({_extra(r).get("batch_size", 0) for r in rows})
    by_series: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        e = _extra(row)
        by_series[(e.get("case", "?"), series_name(row))][e.get("batch_size", 0)] = row
    lines += ["## Speed-up against scikit-learn (same run; median latency in brackets)", ""]
    body = []
    for (case, series), cells in sorted(by_series.items()):
        if series.startswith("sklearn"):
            continue
        body.append([case, series] + [_speedup_cell(cells.get(b)) for b in batches])
    lines += _table(["case", "engine", *[f"batch {b:,}" for b in batches]], body)
    lines += ["", "## Latency percentiles and throughput", ""]
    body = []
    for (case, series), cells in sorted(by_series.items()):
        for b in batches:
            if b in cells:
                e = _extra(cells[b])
                quantiles = [
                    f"{e.get(k, float('nan')):.3f}" for k in ("p50_ms", "p90_ms", "p99_ms")
                ]
                throughput = f"{e.get('samples_per_s', 0):,.0f}"
                rounds = str(cells[b]["stats"].get("rounds"))
                body.append([case, series, f"{b:,}", *quantiles, throughput, rounds])
    lines += _table(
        ["case", "engine", "batch", "p50 ms", "p90 ms", "p99 ms", "samples/s", "rounds"], body
    )
    lines += ["", "## Parity (ONNX against scikit-learn on each case's test rows)", ""]
    parity: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        e = _extra(row)
        if e.get("parity") not in (None, "reference", "reference-eager"):
            parity[(e.get("case", "?"), e.get("engine", "?"))] = e
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
    skipped = [s for result in results for s in result.harness.get("skipped", [])]
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += _table(["benchmark", "reason"], [[s["id"], s["reason"]] for s in skipped])
    lines += ["", "## Environment", ""]
    lines += _table(["result", "machine and versions"], _environment(results))
    return "\n".join(lines) + "\n"


# -- HTML ---------------------------------------------------------------------------------


def _figure_png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, max(1, n))
    return math.ceil(n / cols), cols


def _plots(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({_extra(r).get("case", "?") for r in rows})
    series: dict[str, dict[str, list[tuple[int, dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in rows:
        series[_extra(row).get("case", "?")][series_name(row)].append(
            (_extra(row).get("batch_size", 0), row)
        )
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
                    ys = [_extra(r).get("p50_ms", r["stats"]["median"] * 1e3) for _, r in points]
                    lo = [r["stats"]["min"] * 1e3 for _, r in points]
                    hi = [_extra(r).get("p99_ms", r["stats"]["max"] * 1e3) for _, r in points]
                    (line,) = ax.plot(xs, ys, marker="o", label=name)
                    ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
                elif key == "speedup_vs_sklearn" and name.startswith("sklearn"):
                    continue
                else:
                    ys = [_extra(r).get(key) for _, r in points]
                    if any(y is None for y in ys):
                        continue
                    ax.plot(xs, ys, marker="o", label=name)
            if key == "speedup_vs_sklearn":
                ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(case, fontsize=10)
            ax.set_xlabel("batch size")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(cases) :]:
            ax.set_visible(False)
        fig.suptitle(title)
        figures.append((title, _figure_png(fig)))
        plt.close(fig)
    worst: dict[str, float] = {}
    for row in rows:
        e = _extra(row)
        if e.get("parity_max_abs_err") is not None:
            worst[f"{e.get('case')}\n{e.get('engine')}"] = e["parity_max_abs_err"]
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


def _markdown_tables_to_html(markdown: str) -> str:
    """The report's markdown (headings and pipe tables only) as HTML."""
    out: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if not table:
            return
        header, *body = [
            [html.escape(c.strip()) for c in line.strip("|").split("|")]
            for line in table
            if not line.startswith("|---")
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
    rows = _rows(latest_runs(results)[0])
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{png}"/>'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, png in (_plots(rows) if rows else [])
    )
    body = _markdown_tables_to_html(markdown)
    # The speed-up table first, then the plots, then the detail tables.
    marker = "<h2>Latency percentiles"
    head, found, rest = body.partition(marker)
    rest = found + rest
    style = REPORT_STYLE
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{head}<h2>Plots</h2>{figures}{rest}</body></html>"
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


def row_key(row: dict[str, Any], with_provider: bool = True) -> tuple[Any, ...]:
    """What makes two rows the same benchmark: case, engine, batch, threads (and provider)."""
    e = _extra(row)
    key = (e.get("case"), e.get("engine"), e.get("batch_size"), e.get("threads"))
    return (*key, e.get("provider_requested")) if with_provider else key


def compare_rows(
    a: Sequence[ResultFile], b: Sequence[ResultFile]
) -> tuple[list[tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]], list[str], list[str]]:
    """Matched (key, row_a, row_b) and the keys found on one side only."""
    providers_a = {r.harness.get("provider") for r in a}
    providers_b = {r.harness.get("provider") for r in b}
    same_provider = providers_a == providers_b
    rows_a = {row_key(r, same_provider): r for r in _rows(a)}
    rows_b = {row_key(r, same_provider): r for r in _rows(b)}
    matched = [(k, rows_a[k], rows_b[k]) for k in sorted(rows_a.keys() & rows_b.keys(), key=str)]
    only_a = sorted(str(k) for k in rows_a.keys() - rows_b.keys())
    only_b = sorted(str(k) for k in rows_b.keys() - rows_a.keys())
    return matched, only_a, only_b


def compare_markdown(a: Sequence[ResultFile], b: Sequence[ResultFile]) -> str:
    """Two runs side by side: medians and the ratio B / A per matched benchmark."""
    matched, only_a, only_b = compare_rows(a, b)
    label_a = ", ".join(r.label for r in a) or "A"
    label_b = ", ".join(r.label for r in b) or "B"
    lines = ["# Comparison", "", f"- A: {label_a}", f"- B: {label_b}", ""]
    body = []
    for key, ra, rb in matched:
        ma, mb = ra["stats"]["median"], rb["stats"]["median"]
        body.append(
            [
                str(key[0]),
                str(key[1]),
                f"{key[2]:,}",
                str(key[3]),
                _fmt_ms(ma),
                _fmt_ms(mb),
                f"{mb / ma:.2f}" if ma else "-",
            ]
        )
    lines += _table(["case", "engine", "batch", "threads", "A median", "B median", "B / A"], body)
    for side, keys in (("A", only_a), ("B", only_b)):
        if keys:
            lines += [
                "",
                f"Only in {side} ({len(keys)}): "
                + "; ".join(keys[:20])
                + (" ..." if len(keys) > 20 else ""),
            ]
    return "\n".join(lines) + "\n"
