"""``harness history`` pages: each benchmark's medians across runs, its change points and creep
(the series come from :mod:`harness.results.history`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.reports.html import REPORT_STYLE, _markdown_tables_to_html
from harness.reports.plots import _figure_png
from harness.results.history import Series

__all__ = ["history_html", "history_markdown", "write_history"]


def history_markdown(series: Sequence[Series]) -> str:
    lines = [
        "# Benchmark history",
        "",
        "| machine/provider | benchmark | runs | first | last | last / first | flags |",
        "|---|---|---|---|---|---|---|",
    ]
    flagged = sorted(series, key=lambda s: (s.flags == "-", s.machine, s.provider, s.name))
    for s in flagged:
        first, last = s.medians[0], s.medians[-1]
        name = s.name.replace("|", "\\|")  # a pytest id may hold a pipe
        lines.append(
            f"| {s.machine}/{s.provider} | {name} | {len(s.medians)} | {first * 1e3:.4g} ms | "
            f"{last * 1e3:.4g} ms | {last / first:.3f} | {s.flags} |"
        )
    return "\n".join(lines) + "\n"


def history_html(series: Sequence[Series], max_plots: int = 24) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = sorted(series, key=lambda s: (s.flags == "-", s.name))[:max_plots]
    cols = 3
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(5 * cols, 3 * rows), squeeze=False, layout="constrained"
    )
    for ax, s in zip(axes.flat, shown, strict=False):
        xs = np.arange(1, len(s.medians) + 1)
        ax.plot(xs, np.array(s.medians) * 1e3, marker="o")
        for cp in s.change_points:
            ax.axvline(cp + 0.5, color="tab:red", linestyle="--", linewidth=1)
        ax.set_title(f"{s.name}\n{s.machine}/{s.provider}", fontsize=8)
        ax.set_xlabel("run")
        ax.set_ylabel("median (ms)")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    png = _figure_png(fig)
    plt.close(fig)
    body = _markdown_tables_to_html(history_markdown(series))
    head, _, rest = body.partition("</h1>")
    figure = f'<img alt="history" src="data:image/png;base64,{png}"/>'
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Benchmark history</title>"
        f"<style>{REPORT_STYLE}</style></head><body>{head}</h1>"
        f"<p>Dashed red lines: detected level changes.</p>{figure}{rest}</body></html>"
    )


def write_history(series: Sequence[Series], out: Path) -> tuple[Path, Path]:
    from engines._io import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    md = atomic_write_bytes(out / "history.md", history_markdown(series).encode())
    page = atomic_write_bytes(out / "history.html", history_html(series).encode())
    return md, page
