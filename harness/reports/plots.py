"""The report's figures as base64 PNGs: the speed-up heat map, latency with its interquartile
band, parity as error / bound, and plain pytest-benchmark medians. matplotlib is imported
when a figure is drawn, never with this module."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from harness.reports.rows import (
    _error_over_bound,
    _fmt_ratio,
    _parity_rows,
    _quartiles,
    _Series,
    _series,
    _Speedups,
)
from harness.results.store import ResultFile

__all__: list[str] = []


def _figure_png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _finish(plt: Any, fig: Any, heading: str, caption: str) -> _Plot:
    """The figure as a plot of the section ``heading``, its memory given back."""
    png = _figure_png(fig)
    plt.close(fig)
    return heading, caption, png


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
    return _finish(plt, fig, "Speed-up against scikit-learn", caption)


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
    return _finish(plt, fig, "Latency percentiles", caption)


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
    return _finish(plt, fig, "Parity (ONNX against scikit-learn", caption)


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
    figure = _finish(plt, fig, "pytest-benchmark results", "pytest-benchmark medians")
    return [figure]
