"""``harness history``: each benchmark across runs, with change points and slow creep.

A series is one benchmark (see :func:`harness.results.store.benchmark_key`) on one machine and
provider; runs whose model differs (a user model's sha256, input width, estimator) start a new
series. The pages are drawn by :mod:`harness.reports.history`.
"""

from __future__ import annotations

import dataclasses
import itertools
import string
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from harness.results.store import (
    ResultFile,
    RowGroup,
    benchmark_key,
    group_rows,
    identity_labels,
    result_order,
)

__all__ = ["Series", "build_series"]


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
    creep_runs: tuple[int, int] | None = None  # the runs it spans: [first, end)

    @property
    def flags(self) -> str:
        latest = len(self.medians) - 1  # a step there is one run's word: gate judges it
        out = [
            f"step at run {i + 1} ({self.commits[i]}{'; the latest run alone' * (i == latest)})"
            for i in self.change_points
        ]
        if self.creep is not None:
            first, end = self.creep_runs or (0, len(self.medians))
            whole = (first, end) == (0, len(self.medians))
            span = f"{end} runs" if whole else f"runs {first + 1}-{end}"
            out.append(f"creep {self.creep:+.0%} over {span}")
        return "; ".join(out) or "-"


def _change_points(
    values: npt.NDArray[np.float64], min_size: int = 2, threshold: float = 0.0
) -> list[int]:
    """Indices where the level of log(median) steps, by ruptures' PELT with a BIC-like penalty:
    steps larger than 3 noise sigmas and than ``threshold`` (relative), so a 0.1% wobble on a
    quiet series is no step. PELT's levels are at least ``min_size`` runs long, so a step in
    the latest run alone came out one run early, on the wrong commit: the latest run may be
    a level of its own (one run's word: ``Series.flags`` says so)."""
    if len(values) < 2 * min_size + 1:
        return []
    import ruptures

    signal = np.log(values)
    noise = np.median(np.abs(np.diff(signal))) / 0.6745 / np.sqrt(2) or 1e-3
    penalty = 3.0 * np.log(len(values)) * noise**2
    pelt = ruptures.Pelt(model="l2", min_size=min_size, jump=1).fit(signal.reshape(-1, 1))
    steps = pelt.predict(pen=penalty)[:-1]
    tail = [len(signal) - 1]
    if steps and steps[-1] == len(signal) - min_size:  # the last level: those runs or one
        tail.insert(0, steps.pop())
    start = steps[-1] if steps else 0

    def two_levels(cut: int) -> float:  # the squared error of the last two levels cut here
        before, after = signal[start:cut], signal[cut:]
        return float(np.var(before) * len(before) + np.var(after) * len(after))

    steps.append(min(tail, key=two_levels))
    # keep only steps bigger than 3 noise sigmas (a level change, not jitter) and the
    # threshold, between the levels on either side (up to the neighbouring steps)
    floor = max(3 * noise, np.log1p(threshold))
    kept: list[int] = []
    for i, s in enumerate(steps):
        before = signal[(kept[-1] if kept else 0) : s]
        after = signal[s : steps[i + 1] if i + 1 < len(steps) else len(signal)]
        if abs(np.mean(after) - np.mean(before)) > floor:
            kept.append(s)
    return kept


def _explain(
    values: npt.NDArray[np.float64], threshold: float, steps: Sequence[int] = ()
) -> tuple[list[int], float | None, tuple[int, int] | None]:
    """(steps, creep, the runs it spans) that explain the series. PELT cuts a slow trend into
    steps; two neighbouring levels are one trend where a line over both fits log(median)
    better (by BIC, a step costing one parameter more) and they merge, until none does.
    Creep is then a monotone trend (Kendall's tau, p < 0.05) whose total change exceeds the
    threshold within the runs between two remaining steps (the largest)."""
    y = np.log(values)
    kept = list(steps)

    def mergeable() -> int | None:  # a step between two levels that one line fits better
        edges = [0, *kept, len(y)]
        bounds = zip(edges[:-2], kept, edges[2:], strict=True)
        return next((s for a, s, b in bounds if _line_fits_better(y[a:b], s - a)), None)

    while (merge := mergeable()) is not None:
        kept.remove(merge)
    found = [
        (total, (start, end))
        for start, end in itertools.pairwise([0, *kept, len(values)])
        if (total := _trend(values[start:end], threshold)) is not None
    ]
    if not found:
        return kept, None, None
    total, span = max(found, key=lambda f: abs(f[0]))
    return kept, total, span


def _line_fits_better(y: npt.NDArray[np.float64], cut: int) -> bool:
    """Whether one line over ``y`` explains it better than two levels split at ``cut``."""
    x = np.arange(len(y))
    rss_levels = float(np.sum((y[:cut] - y[:cut].mean()) ** 2))
    rss_levels += float(np.sum((y[cut:] - y[cut:].mean()) ** 2))
    rss_line = float(np.sum((y - np.polyval(np.polyfit(x, y, 1), x)) ** 2))

    def bic(rss: float, params: int) -> float:
        return float(len(y) * np.log(max(rss, 1e-300) / len(y)) + params * np.log(len(y)))

    return bic(rss_line, 2) <= bic(rss_levels, 3)


def _trend(values: npt.NDArray[np.float64], threshold: float) -> float | None:
    if len(values) < 4:
        return None
    tau = stats.kendalltau(np.arange(len(values)), values)
    fit = np.polyfit(np.arange(len(values)), np.log(values), 1)
    total = float(np.expm1(fit[0] * (len(values) - 1)))
    if tau.pvalue < 0.05 and abs(total) > threshold:
        return total
    return None


def build_series(results: Sequence[ResultFile], *, threshold: float = 0.05) -> list[Series]:
    """Series per (machine, provider, benchmark), runs in run order (see result_order)."""
    ordered = sorted(results, key=result_order)
    by_place: dict[tuple[str, str], list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
    for result in ordered:
        h = result.harness
        commit = str((h.get("git") or {}).get("commit") or "nogit")
        commit = commit[:8] if all(c in string.hexdigits for c in commit) else commit
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
            steps = _change_points(values, threshold=threshold)
            s.change_points, s.creep, s.creep_runs = _explain(values, threshold, steps)
            series.append(s)
    return sorted(series, key=lambda s: (s.machine, s.provider, s.name))
