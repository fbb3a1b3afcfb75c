"""report.html: the markdown report as a self-contained page, each plot (embedded PNG) at
the end of the section it illustrates, and ``write_reports`` for report.md and report.html."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from pathlib import Path

from harness.reports.plots import _plain_plot, _plots
from harness.reports.report import _markdown
from harness.reports.rows import _Speedups, _speedups, latest_runs
from harness.results.store import ResultFile

__all__ = ["REPORT_STYLE", "render_html", "write_reports"]


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


def _cells(line: str) -> list[str]:
    """The cells of one markdown table line; ``\\|`` is a pipe inside a cell."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def _inline(text: str) -> str:
    """Escaped text with the report's inline markdown: `code` and **bold**."""
    out = escape(text)
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
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{REPORT_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def _figure(caption: str, png: str) -> str:
    return (
        f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{png}"/>'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
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
