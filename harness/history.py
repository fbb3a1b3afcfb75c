"""``harness history``: each benchmark across runs, with change points and slow creep.

A series is one benchmark (see :func:`harness.store.benchmark_key`) on one machine and provider;
runs whose model differs (a user model's sha256, input width, estimator) start a new series.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from harness.report import REPORT_STYLE, _figure_png, _markdown_tables_to_html
from harness.store import (
    ResultFile,
    RowGroup,
    benchmark_key,
    group_rows,
    identity_labels,
    run_order,
)

__all__ = ["Series", "build_series", "history_html", "history_markdown", "write_history"]


@dataclasses.dataclass
class Series:
    """One benchmark on one machine and provider, run after run."""

    machine: str
    provider: str
    name: str
    commits: list[str]
    medians: list[float]
    change_points: list[int] = dataclasses.field(default_factory=list)
    creep: float | None = None  # total relative change of a significant monotone trend

    @property
    def flags(self) -> str:
        out = [f"step at run {i + 1} ({self.commits[i]})" for i in self.change_points]
        if self.creep is not None:
            out.append(f"creep {self.creep:+.0%} over {len(self.medians)} runs")
        return "; ".join(out) or "-"


def _change_points(values: npt.NDArray[np.float64], min_size: int = 2) -> list[int]:
    """Indices where the level of log(median) steps, by ruptures' PELT with a BIC-like penalty."""
    if len(values) < 2 * min_size + 1:
        return []
    import ruptures

    signal = np.log(values).reshape(-1, 1)
    noise = np.median(np.abs(np.diff(signal[:, 0]))) / 0.6745 / np.sqrt(2) or 1e-3
    penalty = 3.0 * np.log(len(values)) * noise**2
    ends = ruptures.Pelt(model="l2", min_size=min_size, jump=1).fit(signal).predict(pen=penalty)
    steps = [end for end in ends[:-1]]
    # keep only steps bigger than 3 noise sigmas (a level change, not jitter)
    return [s for s in steps if abs(np.mean(signal[s:]) - np.mean(signal[:s])) > 3 * noise]


def _creep(values: npt.NDArray[np.float64], threshold: float) -> float | None:
    """A monotone trend (Kendall's tau, p < 0.05) whose total change exceeds the threshold."""
    if len(values) < 4:
        return None
    tau = stats.kendalltau(np.arange(len(values)), values)
    fit = np.polyfit(np.arange(len(values)), np.log(values), 1)
    total = float(np.expm1(fit[0] * (len(values) - 1)))
    if tau.pvalue < 0.05 and abs(total) > threshold:
        return total
    return None


def build_series(results: Sequence[ResultFile], *, threshold: float = 0.05) -> list[Series]:
    """Series per (machine, provider, benchmark), runs in run order (NNNN_, see run_order)."""
    ordered = sorted(results, key=lambda r: run_order(r.path))
    by_place: dict[tuple[str, str], list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
    for result in ordered:
        h = result.harness
        commit = str((h.get("git") or {}).get("commit") or "nogit")[:8]
        for row in result.benchmarks:
            # the commit rides along in a copy: rows equal in all but their run stay apart
            point = {**row, "_run": (result.path.as_posix(), commit)}
            place = (str(h.get("machine_id")), str(h.get("provider")))
            key = benchmark_key(row, plain=result.plain, provider=h.get("provider"))
            by_place[place].append((key, point))
    series = []
    for (machine, provider), keyed in by_place.items():
        groups = group_rows(keyed)
        per_id: dict[tuple[bool, str, str], list[RowGroup]] = defaultdict(list)
        ids_per_name: dict[str, set[str]] = defaultdict(set)
        for group in groups:
            per_id[group.key.pairs_on].append(group)
            ids_per_name[group.key.name].add(group.key.id)
        labels: dict[int, str] = {}
        for same_id in per_id.values():
            if len(same_id) > 1:  # a model that changed: one series per model, told apart
                for group, label in zip(
                    same_id, identity_labels([g.identity for g in same_id]), strict=True
                ):
                    labels[id(group)] = f" ({label})"
        for group in groups:
            # the provider is in the place; name it only where one file holds several
            several = len(ids_per_name[group.key.name]) > 1
            name = (group.key.id if several else group.key.name) + labels.get(id(group), "")
            values = np.array([float(row["stats"]["median"]) for row in group.rows])
            commits = [row["_run"][1] for row in group.rows]
            s = Series(machine, provider, name, commits, values.tolist())
            s.change_points = _change_points(values)
            s.creep = _creep(values, threshold)
            series.append(s)
    return sorted(series, key=lambda s: (s.machine, s.provider, s.name))


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
