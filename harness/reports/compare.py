"""``harness compare``: two runs side by side, each matched benchmark's medians and B / A."""

from __future__ import annotations

from collections.abc import Sequence

from harness.reports.rows import _fmt_ms, _fmt_time, _table, runtime_of
from harness.results.store import (
    Matches,
    ModelChange,
    ResultFile,
    keyed_rows,
    match,
    pooled_median,
)

__all__ = ["compare_markdown", "compare_rows"]


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
    found = compare_rows(a, b, model_change=model_change)
    matched, only_a, only_b = found.matched, found.only_a, found.only_b
    not_comparable = found.not_comparable
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
