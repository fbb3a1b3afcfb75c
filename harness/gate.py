"""Regression gating that can be trusted on noisy machines.

Per matched benchmark: the ratio candidate / baseline of a metric (median, p90, p99 of raw
samples, or the in-run speed-up against scikit-learn), a bootstrap confidence interval for
it (scipy.stats.bootstrap), a Mann-Whitney U test on the raw samples (scipy.stats), and Holm's
correction across benchmarks. A benchmark regressed only when its whole interval lies beyond
the threshold AND the corrected test is significant.

Paired mode (results of an interleaved A/B run, ``harness.paired`` on both sides): sample i of
A and of B were measured moments apart, so the ratio is exp(median of log(B_i / A_i)), its
interval a bootstrap of that median, and the test Wilcoxon's signed-rank test: the machine's
bursts, common to both samples of a pair, cancel.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from harness.report import row_key
from harness.store import ResultFile

__all__ = ["GateReport", "GateRow", "Metric", "gate", "holm"]

Metric = Literal["median", "p90", "p99", "speedup"]
Verdict = Literal["regressed", "improved", "unchanged", "inconclusive"]
_QUANTILE = {"median": 50.0, "p90": 90.0, "p99": 99.0}


@dataclasses.dataclass(frozen=True)
class GateRow:
    """One matched benchmark: ratio > 1 means the candidate is slower (worse)."""

    name: str
    n_baseline: int
    n_candidate: int
    baseline: float
    candidate: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    verdict: Verdict
    note: str = ""


@dataclasses.dataclass(frozen=True)
class GateReport:
    """All rows, what matched nothing, and the settings."""

    rows: tuple[GateRow, ...]
    only_baseline: tuple[str, ...]
    only_candidate: tuple[str, ...]
    metric: str
    threshold: float
    alpha: float
    confidence: float
    paired: bool = False

    @property
    def regressed(self) -> list[GateRow]:
        return [r for r in self.rows if r.verdict == "regressed"]

    @property
    def inconclusive(self) -> list[GateRow]:
        return [r for r in self.rows if r.verdict == "inconclusive"]

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        verdicts = ("regressed", "improved", "unchanged", "inconclusive")
        out["summary"] = {v: sum(r.verdict == v for r in self.rows) for v in verdicts}
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=float)

    def to_markdown(self) -> str:
        counts = self.as_dict()["summary"]
        test = "paired Wilcoxon" if self.paired else "Mann-Whitney U"
        head = (
            f"**Gate** ({self.metric}, threshold {self.threshold:.0%}, {test}, alpha "
            f"{self.alpha:g} with Holm correction, {self.confidence:.0%} bootstrap CI): "
            + ", ".join(f"{n} {v}" for v, n in counts.items())
        )
        lines = [
            head,
            "",
            "| benchmark | baseline | candidate | ratio | CI | p (Holm) | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        order = {"regressed": 0, "inconclusive": 1, "improved": 2, "unchanged": 3}
        for r in sorted(self.rows, key=lambda r: (order[r.verdict], r.name)):
            mark = {"regressed": "**regressed**", "improved": "improved"}.get(r.verdict, r.verdict)
            value = _fmt_value(self.metric)
            lines.append(
                f"| {r.name} | {value(r.baseline)} | {value(r.candidate)} | {r.ratio:.3f} | "
                f"[{r.ci_low:.3f}, {r.ci_high:.3f}] | {r.p_adjusted:.2g} | {mark}"
                + (f" ({r.note})" if r.note else "")
                + " |"
            )
        for side, names in (("baseline", self.only_baseline), ("candidate", self.only_candidate)):
            if names:
                lines += ["", f"Only in the {side} ({len(names)}, not gated): " + "; ".join(names)]
        return "\n".join(lines) + "\n"


def _fmt_value(metric: str) -> Any:
    if metric == "speedup":
        return lambda v: f"{v:.2f}x"
    return lambda v: f"{v * 1e3:.4g} ms"


def holm(p_values: Sequence[float]) -> npt.NDArray[np.float64]:
    """Holm-Bonferroni step-down adjusted p-values (scipy.stats has no Holm; this is it)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def _name(key: tuple[Any, ...]) -> str:
    case, engine, batch, threads, *provider = key
    where = f"{engine}-{provider[0]}" if provider and provider[0] not in (None, "-") else engine
    return f"{case}[{where}]-b{batch}-t{threads}"


def _samples(row: dict[str, Any]) -> npt.NDArray[np.float64]:
    return np.asarray(row["stats"].get("data") or [], dtype=np.float64)


def _sklearn_rows(results: Sequence[ResultFile]) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for result in results:
        for row in result.benchmarks:
            e = row.get("extra_info", {})
            if e.get("engine") == "sklearn":
                out[(e.get("case"), e.get("batch_size"), e.get("threads"))] = row
    return out


def _rows_by_key(
    results: Sequence[ResultFile], with_provider: bool
) -> dict[tuple[Any, ...], dict[str, Any]]:
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for result in results:
        for row in result.benchmarks:
            key = row_key(row, with_provider)
            if key in merged:  # several runs of the same benchmark: pool their raw samples
                data = [*merged[key]["stats"].get("data", []), *row["stats"].get("data", [])]
                merged[key] = {**merged[key], "stats": {**merged[key]["stats"], "data": data}}
            else:
                merged[key] = row
    return merged


def gate(
    baseline: Sequence[ResultFile],
    candidate: Sequence[ResultFile],
    *,
    metric: Metric = "median",
    threshold: float = 0.05,
    alpha: float = 0.01,
    confidence: float = 0.95,
    min_samples: int = 5,
    n_resamples: int = 2000,
    seed: int = 0,
) -> GateReport:
    """Compare every benchmark present in both; see the module docstring for the rule."""
    if metric not in ("median", "p90", "p99", "speedup"):
        raise ValueError(f"metric must be median, p90, p99 or speedup, got {metric!r}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be a fraction in (0, 1), got {threshold}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    providers_a = {r.harness.get("provider") for r in baseline}
    same_provider = providers_a == {r.harness.get("provider") for r in candidate}
    rows_a = _rows_by_key(baseline, same_provider)
    rows_b = _rows_by_key(candidate, same_provider)
    if metric == "speedup":  # the scikit-learn rows are the yardstick, not gated themselves
        rows_a = {k: v for k, v in rows_a.items() if k[1] != "sklearn"}
        rows_b = {k: v for k, v in rows_b.items() if k[1] != "sklearn"}
    keys = sorted(rows_a.keys() & rows_b.keys(), key=str)
    sk_a, sk_b = _sklearn_rows(baseline), _sklearn_rows(candidate)
    paired = (
        all(r.harness.get("paired") for r in (*baseline, *candidate))
        and len(baseline) == len(candidate) == 1
    )
    rng = np.random.default_rng(seed)
    partial: list[tuple[Any, npt.NDArray[Any], npt.NDArray[Any], Any, str]] = []
    for key in keys:
        a, b = _samples(rows_a[key]), _samples(rows_b[key])
        if metric == "speedup":
            yard = (key[0], key[2], key[3])
            if yard not in sk_a or yard not in sk_b:
                partial.append((key, a, b, None, "no scikit-learn row in both runs"))
                continue
            # Each run's samples in units of its own scikit-learn median: machine drift cancels.
            a = a / np.median(_samples(sk_a[yard]))
            b = b / np.median(_samples(sk_b[yard]))
        if paired and len(a) == len(b) and metric in ("median", "speedup"):
            result = _compare_paired(a, b, confidence, min_samples, n_resamples, rng)
        else:
            result = _compare(a, b, metric, confidence, min_samples, n_resamples, rng)
        partial.append((key, a, b, result, ""))
    p_adjusted = holm([1.0 if result is None else result[0] for _, _, _, result, _ in partial])
    rows = []
    for (key, a, b, result, note), adjusted in zip(partial, p_adjusted, strict=True):
        name = _name(key)
        if result is None:
            note = note or f"fewer than {min_samples} samples"
            nan = float("nan")
            rows.append(
                GateRow(
                    name, len(a), len(b), nan, nan, nan, nan, nan, 1.0, 1.0, "inconclusive", note
                )
            )
            continue
        p, ratio, low, high, value_a, value_b = result
        verdict = _verdict(low, high, float(adjusted), threshold, alpha)
        if metric == "speedup":  # show the speed-ups themselves; ratio > 1 still means worse
            value_a, value_b = 1.0 / value_a, 1.0 / value_b
        rows.append(
            GateRow(
                name,
                len(a),
                len(b),
                value_a,
                value_b,
                ratio,
                low,
                high,
                p,
                float(adjusted),
                verdict,
            )
        )
    only_a = tuple(sorted(_name(k) for k in rows_a.keys() - rows_b.keys()))
    only_b = tuple(sorted(_name(k) for k in rows_b.keys() - rows_a.keys()))
    return GateReport(tuple(rows), only_a, only_b, metric, threshold, alpha, confidence, paired)


def _compare(
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    metric: str,
    confidence: float,
    min_samples: int,
    n_resamples: int,
    rng: np.random.Generator,
) -> tuple[float, float, float, float, float, float] | None:
    """(p, ratio, ci_low, ci_high, baseline value, candidate value), None if too few samples."""
    if len(a) < min_samples or len(b) < min_samples:
        return None
    q = _QUANTILE.get(metric, 50.0)

    def ratio(x: Any, y: Any, axis: int = -1) -> Any:
        return np.percentile(y, q, axis=axis) / np.percentile(x, q, axis=axis)

    value_a, value_b = float(np.percentile(a, q)), float(np.percentile(b, q))
    interval = stats.bootstrap(
        (a, b),
        ratio,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        random_state=rng,
    ).confidence_interval
    p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return p, value_b / value_a, float(interval.low), float(interval.high), value_a, value_b


def _compare_paired(
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    confidence: float,
    min_samples: int,
    n_resamples: int,
    rng: np.random.Generator,
) -> tuple[float, float, float, float, float, float] | None:
    """Paired samples: exp(median log(b_i / a_i)), its bootstrap interval, Wilcoxon's test."""
    if len(a) < min_samples:
        return None
    log_ratio = np.log(b / a)
    interval = stats.bootstrap(
        (log_ratio,),
        np.median,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        random_state=rng,
    ).confidence_interval
    p = 1.0 if not np.any(log_ratio) else float(stats.wilcoxon(log_ratio).pvalue)
    ratio = float(np.exp(np.median(log_ratio)))
    return (
        p,
        ratio,
        float(np.exp(interval.low)),
        float(np.exp(interval.high)),
        float(np.median(a)),
        float(np.median(b)),
    )


def _verdict(low: float, high: float, p_adjusted: float, threshold: float, alpha: float) -> Verdict:
    significant = p_adjusted < alpha
    if significant and low > 1 + threshold:
        return "regressed"
    if significant and high < 1 / (1 + threshold):
        return "improved"
    if low >= 1 / (1 + threshold) and high <= 1 + threshold:
        return "unchanged"  # the whole interval is inside the band: any change is too small
    return "inconclusive"
