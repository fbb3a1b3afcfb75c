"""Regression gating that can be trusted on noisy machines.

Per matched benchmark: the ratio candidate / baseline of a metric (median, p90, p99 of raw
samples, or the in-run speed-up against scikit-learn), a bootstrap confidence interval for
it (scipy.stats.bootstrap), a Mann-Whitney U test on the raw samples (scipy.stats), and Holm's
correction across benchmarks. A benchmark regressed only when its whole interval lies beyond
the threshold AND the corrected test is significant.

Paired mode (results of an interleaved A/B run, ``harness.paired`` on both sides): sample i of
A and of B were measured moments apart, so the ratio is exp(median of log(B_i / A_i)), its
interval a bootstrap of that median, and the test Wilcoxon's signed-rank test: the machine's
bursts, common to both samples of a pair, cancel. That paired ratio is not the ratio of the two
medians (noise can put them on opposite sides of 1): the table names it and says so.

Benchmarks pair as :func:`harness.results.store.match` says: never across providers, and never
across user models whose sha256, input width or estimator differ (those are listed as not
comparable, unless ``model_change="compare"``; the report's ``changed_models`` name them: the
model under test was not judged). A baseline holding runs of several models under one name (a
folder that spans a model change) pools only the runs of the candidate's model. Rows without raw
samples (pytest-benchmark without ``--benchmark-save-data``) cannot be tested: they are
inconclusive, with their medians shown.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from harness.results.store import (
    BenchmarkKey,
    ModelChange,
    ResultFile,
    keyed_rows,
    match,
    pooled_median,
    pooled_samples,
)

__all__ = ["GateReport", "GateRow", "Metric", "gate", "holm", "ratio_interval"]

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
    """All rows, what matched nothing, what must not be compared (name, reason), the settings."""

    rows: tuple[GateRow, ...]
    only_baseline: tuple[str, ...]
    only_candidate: tuple[str, ...]
    metric: str
    threshold: float
    alpha: float
    confidence: float
    paired: bool = False
    not_comparable: tuple[tuple[str, str], ...] = ()
    model_change: ModelChange = "refuse"
    #: Of ``not_comparable``: the model changed between the sides (``--model-change compare``
    #: pairs them), or the baseline holds several models none of which is the candidate's.
    changed_models: tuple[str, ...] = ()
    mixed_models: tuple[str, ...] = ()

    @property
    def unjudged(self) -> tuple[str, ...]:
        """Benchmarks not gated because the model under test changed: the gate cannot pass
        them (``harness gate`` exits 2 unless something regressed)."""
        return self.changed_models + self.mixed_models

    def judge_it(self) -> str:
        """The ways to judge a model that changed, for the table and the exit line."""
        ways = []
        if self.changed_models:
            ways.append('`--model-change compare` gates them across the change ("model changed")')
        if self.mixed_models:
            ways.append("a baseline of one model (a result file, or a folder of its runs only)")
        if not self.paired:  # not already --ab
            ways.append("`harness gate --ab REF` times both models interleaved, the reliable way")
        return "; ".join(ways)

    @property
    def paired_ratio(self) -> bool:
        """Whether the ratio is the paired statistic (``--ab``'s median or speed-up), not the
        ratio of the two sides' values shown."""
        return self.paired and self.metric in ("median", "speedup")

    def ratio_note(self) -> str:
        """One line under the table: how the ratio column is computed."""
        worse = "above 1: the candidate is slower"
        if self.paired_ratio:
            speedup = self.metric == "speedup"
            unit = ", each time in units of its own side's scikit-learn median" if speedup else ""
            shown = "speed-ups" if speedup else "medians"
            return (
                "paired ratio: the median over the interleaved sample pairs of candidate / "
                f"baseline (sample i of each side timed moments apart{unit}; exp of the median "
                f"log ratio), not the ratio of the {shown} shown, which noise can make disagree "
                f"with it; the CI and the test are on it ({worse})."
            )
        if self.metric == "speedup":
            return (
                f"ratio: the baseline's speed-up / the candidate's ({worse}); CI: its bootstrap "
                "interval."
            )
        return (
            f"ratio: candidate / baseline of the {self.metric}s shown ({worse}); CI: its "
            "bootstrap interval."
        )

    @property
    def regressed(self) -> list[GateRow]:
        return [r for r in self.rows if r.verdict == "regressed"]

    @property
    def inconclusive(self) -> list[GateRow]:
        return [r for r in self.rows if r.verdict == "inconclusive"]

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["not_comparable"] = [{"name": n, "reason": r} for n, r in self.not_comparable]
        verdicts = ("regressed", "improved", "unchanged", "inconclusive")
        out["summary"] = {v: sum(r.verdict == v for r in self.rows) for v in verdicts}
        out["summary"]["not_comparable"] = len(self.not_comparable)
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=float)

    def to_markdown(self) -> str:
        counts = self.as_dict()["summary"]
        if not counts["not_comparable"]:
            del counts["not_comparable"]
        test = "paired Wilcoxon" if self.paired else "Mann-Whitney U"
        head = (
            f"**Gate** ({self.metric}, threshold {self.threshold:.0%}, {test}, alpha "
            f"{self.alpha:g} with Holm correction, {self.confidence:.0%} bootstrap CI): "
            + ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items())
        )
        lines = [head, ""]
        if self.rows:
            ratio_name = "paired ratio" if self.paired_ratio else "ratio"
            lines += [
                f"| benchmark | baseline | candidate | {ratio_name} | CI | p (Holm) | verdict |",
                "|---|---|---|---|---|---|---|",
            ]
        else:
            lines += ["No benchmark is comparable in both runs."]
        order = {"regressed": 0, "inconclusive": 1, "improved": 2, "unchanged": 3}
        for r in sorted(self.rows, key=lambda r: (order[r.verdict], r.name)):
            mark = {"regressed": "**regressed**", "improved": "improved"}.get(r.verdict, r.verdict)
            value = _fmt_value(self.metric)
            ci = "-" if np.isnan(r.ci_low) else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
            ratio = "-" if np.isnan(r.ratio) else f"{r.ratio:.3f}"
            lines.append(
                f"| {_cell(r.name)} | {value(r.baseline)} | "
                f"{value(r.candidate)} | {ratio} | {ci} | {_fmt_p(r.p_adjusted)} | {mark}"
                + (f" ({r.note})" if r.note else "")
                + " |"
            )
        if self.rows:
            lines += ["", self.ratio_note()]
        if self.not_comparable:
            lines += ["", f"Not comparable ({len(self.not_comparable)}, not gated):", ""]
            lines += [f"- {name}: {reason}" for name, reason in self.not_comparable]
        if self.unjudged:
            lines += [
                "",
                f"The model under test changed in {len(self.unjudged)} of them: not judged, so "
                f"the gate does not pass. To judge it: {self.judge_it()}.",
            ]
        for side, names in (("baseline", self.only_baseline), ("candidate", self.only_candidate)):
            if names:
                lines += ["", f"Only in the {side} ({len(names)}, not gated): " + "; ".join(names)]
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (a pytest id may hold a pipe)."""
    return text.replace("|", "\\|")


def _fmt_p(p: float) -> str:
    """A p-value for the table; one that underflowed to 0 (thousands of samples) is a bound."""
    return "< 1e-300" if p < 1e-300 else f"{p:.2g}"


def _fmt_value(metric: str) -> Any:
    if metric == "speedup":
        return lambda v: "-" if np.isnan(v) else f"{v:.2f}x"
    return lambda v: "-" if np.isnan(v) else f"{v * 1e3:.4g} ms"


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


def _samples(rows: Sequence[dict[str, Any]]) -> npt.NDArray[np.float64]:
    return np.asarray(pooled_samples(rows), dtype=np.float64)


_Keyed = list[tuple[BenchmarkKey, dict[str, Any]]]


def _sklearn_rows(keyed: _Keyed) -> dict[tuple[Any, ...], _Keyed]:
    """The scikit-learn rows of one side per (case, batch, threads): the speed-up yardstick."""
    out: dict[tuple[Any, ...], _Keyed] = {}
    for key, row in keyed:
        if key.engine == "sklearn":
            out.setdefault(key.yardstick, []).append((key, row))
    return out


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
    model_change: ModelChange = "refuse",
) -> GateReport:
    """Compare every benchmark present in both; see the module docstring for the rule.

    ``model_change="compare"`` pairs a user model with the same name across a change of its
    file (sha256, input width, estimator), each such row noted "model changed"; by default
    those are listed in ``not_comparable``. Providers are never paired with each other.

    Example::

        report = gate(load_results(["results/m/cpu"]), load_results(["new.json"]))
        report.regressed, report.inconclusive, report.not_comparable
    """
    if metric not in ("median", "p90", "p99", "speedup"):
        raise ValueError(f"metric must be median, p90, p99 or speedup, got {metric!r}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be a fraction in (0, 1), got {threshold}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if model_change not in ("refuse", "compare"):
        raise ValueError(f"model_change must be 'refuse' or 'compare', got {model_change!r}")
    keyed_a, keyed_b = keyed_rows(baseline), keyed_rows(candidate)
    sk_a, sk_b = _sklearn_rows(keyed_a), _sklearn_rows(keyed_b)
    if metric == "speedup":  # the scikit-learn rows are the yardstick, not gated themselves
        keyed_a = [(k, r) for k, r in keyed_a if k.engine != "sklearn"]
        keyed_b = [(k, r) for k, r in keyed_b if k.engine != "sklearn"]
    labels = ("baseline", "candidate")
    found = match(keyed_a, keyed_b, model_change=model_change, labels=labels, narrow_a=True)
    paired = (
        all(r.harness.get("paired") for r in (*baseline, *candidate))
        and len(baseline) == len(candidate) == 1
    )
    rng = np.random.default_rng(seed)
    partial: list[tuple[str, npt.NDArray[Any], npt.NDArray[Any], Any, str]] = []
    fallback: dict[str, tuple[float, float]] = {}  # medians where no test is possible
    for pair in found.matched:
        name, note = pair.key.id, pair.note
        a, b = _samples(pair.rows_a), _samples(pair.rows_b)
        if not len(a) or not len(b):
            sides = [s for s, x in (("baseline", a), ("candidate", b)) if not len(x)]
            why = (
                f"no raw samples in the {' and '.join(sides)} (pytest-benchmark keeps them with "
                "--benchmark-save-data): medians only, no test"
            )
            partial.append((name, a, b, None, _join(note, why)))
            if metric == "median":
                fallback[name] = (pooled_median(pair.rows_a), pooled_median(pair.rows_b))
            continue
        if metric == "speedup":
            yard = pair.key.yardstick
            if yard not in sk_a or yard not in sk_b:
                partial.append((name, a, b, None, _join(note, "no scikit-learn row in both runs")))
                continue
            refs = match(
                sk_a[yard], sk_b[yard], model_change=model_change, labels=labels, narrow_a=True
            )
            if len(refs.matched) != 1:
                reasons = "; ".join(r for _, r in refs.not_comparable) or "not one row per run"
                why = f"scikit-learn reference not comparable: {reasons}"
                partial.append((name, a, b, None, _join(note, why)))
                continue
            (ref,) = refs.matched
            # Each run's samples in units of its own scikit-learn median: machine drift cancels.
            a = a / pooled_median(ref.rows_a)
            b = b / pooled_median(ref.rows_b)
        if paired and len(a) == len(b) and metric in ("median", "speedup"):
            result = _compare_paired(a, b, confidence, min_samples, n_resamples, rng)
        elif paired and metric in ("median", "speedup"):
            why = f"not paired: {len(a)} vs {len(b)} samples, the ratio of the two medians"
            note = _join(note, why)
            result = _compare(a, b, metric, confidence, min_samples, n_resamples, rng)
        else:
            result = _compare(a, b, metric, confidence, min_samples, n_resamples, rng)
        if result is None:
            note = _join(note, f"fewer than {min_samples} samples")
        partial.append((name, a, b, result, note))
    p_adjusted = holm([1.0 if result is None else result[0] for _, _, _, result, _ in partial])
    rows = []
    nan = float("nan")
    for (name, a, b, result, note), adjusted in zip(partial, p_adjusted, strict=True):
        verdict: Verdict
        if result is None:
            value_a, value_b = fallback.get(name, (nan, nan))
            ratio = value_b / value_a if value_a else nan
            p, low, high, adjusted, verdict = 1.0, nan, nan, 1.0, "inconclusive"
        else:
            p, ratio, low, high, value_a, value_b = result
            verdict = _verdict(low, high, float(adjusted), threshold, alpha)
            if verdict == "inconclusive":
                note = _join(note, _undecided(low, high, float(adjusted), threshold, alpha))
            if metric == "speedup":  # show the speed-ups themselves; ratio > 1 still means worse
                value_a, value_b = 1.0 / value_a, 1.0 / value_b
        rows.append(
            GateRow(
                name=name,
                n_baseline=len(a),
                n_candidate=len(b),
                baseline=value_a,
                candidate=value_b,
                ratio=ratio,
                ci_low=low,
                ci_high=high,
                p_value=p,
                p_adjusted=float(adjusted),
                verdict=verdict,
                note=note,
            )
        )
    return GateReport(
        rows=tuple(rows),
        only_baseline=tuple(found.only_a),
        only_candidate=tuple(found.only_b),
        metric=metric,
        threshold=threshold,
        alpha=alpha,
        confidence=confidence,
        paired=paired,
        not_comparable=tuple(found.not_comparable),
        model_change=model_change,
        changed_models=found.changed_models,
        mixed_models=found.mixed_models,
    )


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


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
    value_a, value_b = float(np.percentile(a, q)), float(np.percentile(b, q))
    _, low, high = ratio_interval(
        a, b, quantile=q, confidence=confidence, n_resamples=n_resamples, rng=rng
    )
    p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return p, value_b / value_a, low, high, value_a, value_b


def ratio_interval(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    quantile: float = 50.0,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: np.random.Generator | int | None = 0,
) -> tuple[float, float, float]:
    """The ratio ``percentile(b) / percentile(a)`` of two independent samples and its
    percentile-bootstrap confidence interval (scipy.stats.bootstrap, each sample resampled
    on its own): the gate's interval, and the report's for speed-ups.

    Example::

        speedup, low, high = ratio_interval(onnx_seconds, sklearn_seconds)
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)

    def ratio(x: Any, y: Any, axis: int = -1) -> Any:
        return np.percentile(y, quantile, axis=axis) / np.percentile(x, quantile, axis=axis)

    interval = stats.bootstrap(
        (x, y),
        ratio,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        random_state=rng,
    ).confidence_interval
    point = float(np.percentile(y, quantile) / np.percentile(x, quantile))
    return point, float(interval.low), float(interval.high)


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


def _undecided(low: float, high: float, p_adjusted: float, threshold: float, alpha: float) -> str:
    """Why a tested row is inconclusive, in words."""
    band = f"{1 / (1 + threshold):.3f}-{1 + threshold:.3f}"
    if p_adjusted >= alpha:
        return (
            f"no significant change (p {p_adjusted:.2g} >= {alpha:g}) and the interval "
            f"reaches outside the {band} band: more rounds would decide"
        )
    return f"a significant change whose interval straddles the {band} band's edge"


def _verdict(low: float, high: float, p_adjusted: float, threshold: float, alpha: float) -> Verdict:
    significant = p_adjusted < alpha
    if significant and low > 1 + threshold:
        return "regressed"
    if significant and high < 1 / (1 + threshold):
        return "improved"
    if low >= 1 / (1 + threshold) and high <= 1 + threshold:
        return "unchanged"  # the whole interval is inside the band: any change is too small
    return "inconclusive"
