"""The conformance summary of the parity suite: counts, failures, known gaps (JSON + markdown)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from harness.results.schema import ConformanceRow

__all__ = [
    "conformance_counts",
    "conformance_markdown",
    "input_rows",
    "plain_text",
    "write_conformance",
]


#: Statuses in the order the summary names them, with the words it uses.
_STATUS_WORDS = {
    "pass": "pass",
    "fail": "fail",
    "xpass": "gap fixed (xpass)",
    "xfail": "known gap",
    "skip": "skip",
}
_NUMPY_SCALAR = re.compile(r"np\.[a-z_]+\d*\(([^()]*)\)")
_LONG_DECIMAL = re.compile(r"-?\d+\.\d{8,}(?:e[+-]?\d+)?")


def conformance_counts(rows: Sequence[ConformanceRow]) -> dict[str, int]:
    """Checks per status (pass, fail, xpass, xfail, skip), every status present."""
    return {s: sum(r.status == s for r in rows) for s in _STATUS_WORDS}


def conformance_markdown(rows: Sequence[ConformanceRow]) -> str:
    """Counts per case x engine, then every failure, known gap and skip in full: the checks,
    what they measured, the finding, the gap's declared reason and the minimal input."""
    counts = conformance_counts(rows)
    gap_words = "known gap (xfail)" if counts["xfail"] == 1 else "known gaps (xfail)"
    words = {**_STATUS_WORDS, "xfail": gap_words, "skip": "skipped"}
    summary = f"{len(rows)} checks: " + ", ".join(
        f"{n} {words[s]}" for s, n in counts.items() if n or s in ("pass", "fail")
    )
    lines = ["## Conformance (parity suite)", "", summary + ".", ""]
    shown = [s for s, n in counts.items() if n or s in ("pass", "fail", "xfail", "skip")]
    per: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for r in rows:
        per[(r.case, r.engine)][r.status] += 1
    lines += [
        "| case | engine | " + " | ".join(_STATUS_WORDS[s] for s in shown) + " |",
        "|---|---|" + "---|" * len(shown),
    ]
    for (case, engine), n in sorted(per.items()):
        cells = [str(n[s]) if n[s] else "-" for s in shown]
        if n["fail"] or n["xpass"]:
            cells = [
                f"**{c}**" if s in ("fail", "xpass") and c != "-" else c
                for s, c in zip(shown, cells, strict=True)
            ]
        lines.append(f"| {case} | {engine} | " + " | ".join(cells) + " |")
    failing = [r for r in rows if r.status in ("fail", "xpass")]
    if failing:
        lines += ["", f"### Failures ({len(failing)})", ""]
        lines += _findings(failing)
    gaps = [r for r in rows if r.status == "xfail"]
    if gaps:
        lines += ["", f"### Known gaps ({len(gaps)}: declared in the zoo, expected to fail)", ""]
        lines += _findings(gaps)
    skipped = [r for r in rows if r.status == "skip"]
    if skipped:
        lines += ["", f"### Skipped checks ({len(skipped)})", ""]
        grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for r in skipped:
            grouped[(r.case, r.engine, plain_text(r.message))].append(r.check)
        lines += ["| case | engine | checks | reason |", "|---|---|---|---|"]
        for (case, engine, reason), checks in sorted(grouped.items()):
            lines.append(f"| {case} | {engine} | {', '.join(checks)} | {_cell(reason)} |")
    return "\n".join(lines) + "\n"


def _findings(rows: Sequence[ConformanceRow]) -> list[str]:
    """Per case x engine: the declared reasons (known gaps), a table of the checks and each
    distinct minimal input once, naming the checks that found it."""
    gapped = any(r.status in ("xfail", "xpass") for r in rows)
    declared = _declared_gaps() if gapped else {}
    groups: dict[tuple[str, str], list[ConformanceRow]] = defaultdict(list)
    for r in rows:
        groups[(r.case, r.engine)].append(r)
    lines: list[str] = []
    for (case, engine), found in sorted(groups.items()):
        noun = "check" if len(found) == 1 else "checks"
        lines += [f"**{case} · {engine}** ({len(found)} {noun})", ""]
        reasons: dict[str, list[str]] = defaultdict(list)
        for r in found:
            if r.status in ("xfail", "xpass"):
                reason = declared.get((case, f"{engine}:{r.check}")) or (
                    "the reason is not stored in these results, and the current zoo no longer "
                    "declares this gap"
                )
                reasons[reason].append(r.check)
        for reason, checks in reasons.items():
            lines += [f"Known gap ({', '.join(checks)}): {reason}", ""]
        lines += ["| check | status | measured | examples | finding |", "|---|---|---|---|---|"]
        for r in found:
            measured = "-" if r.measured is None else f"{r.measured:.4g}"
            cells = [r.check, r.status, measured, str(r.examples), _cell(plain_text(r.message))]
            lines.append("| " + " | ".join(cells) + " |")
        inputs: dict[str, list[str]] = {}
        examples: dict[str, list[list[float]]] = {}
        for r in found:
            if r.minimal_input:
                key = repr(r.minimal_input)
                inputs.setdefault(key, []).append(r.check)
                examples[key] = r.minimal_input
        for key, checks in inputs.items():
            X = examples[key]
            shape = f"{len(X)} {'row' if len(X) == 1 else 'rows'} x {max(map(len, X))} features"
            lines += ["", f"Minimal input of {', '.join(checks)} ({shape}):", ""]
            lines += [f"- {label}: `{values}`" for label, values in input_rows(X)]
        lines.append("")
    return lines


def input_rows(rows: Sequence[Sequence[float]]) -> list[tuple[str, str]]:
    """(label, values at 7 significant digits) per run of identical consecutive rows:
    ``("rows 0-7 (identical)", "[0, 1, 13, ...]")``."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and _same(rows[j + 1], rows[i]):
            j += 1
        label = f"row {i}" if i == j else f"rows {i}-{j} (identical)"
        out.append((label, "[" + ", ".join(f"{float(v):.7g}" for v in rows[i]) + "]"))
        i = j + 1
    return out


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(
        x == y or (math.isnan(float(x)) and math.isnan(float(y))) for x, y in zip(a, b, strict=True)
    )


def plain_text(message: str) -> str:
    """A finding without numpy reprs or 17-digit floats: ``np.float32(-0.4975039)`` reads
    ``-0.4975039``, ``-0.48765611119305835`` reads ``-0.4876561``; one line."""

    def number(text: str) -> str:
        try:
            return f"{float(text):.7g}"
        except ValueError:
            return text

    text = _NUMPY_SCALAR.sub(lambda m: number(m[1]), message)
    text = _LONG_DECIMAL.sub(lambda m: number(m[0]), text)
    return " ".join(text.split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _declared_gaps() -> dict[tuple[str, str], str]:
    """(case, "engine:check") -> the reason the zoo declares for that known gap (results hold
    no reasons; the zoo is imported here only, when a known gap is shown)."""
    from harness.cases.zoo import cases

    return {(c.name, key): why for c in cases("large") for key, why in c.known_gaps.items()}


def write_conformance(rows: Sequence[ConformanceRow], path: Path) -> tuple[Path, Path]:
    """conformance.json and conformance.md side by side."""
    from engines._io import atomic_write_bytes

    payload = json.dumps([dataclasses.asdict(r) for r in rows], indent=1, default=float).encode()
    json_path = atomic_write_bytes(path.with_suffix(".json"), payload)
    md_path = atomic_write_bytes(path.with_suffix(".md"), conformance_markdown(rows).encode())
    return json_path, md_path
