"""``harness check``: parity checks on a user's model pair, no zoo needed.

The ONNX model is held, row by row, to a bound derived from the reference's own numerical
noise on the same rows (``engines.tolerance.derive_bound``: 16 x (float32 eps x the answer's
magnitude + how far the reference moves when the row moves by one float32 ulp)); labels may
differ only where the reference's decision is within that bound of its cut. Rows where the
reference's float32 answer is an artefact of its own arithmetic (overflow, a jump within one
ulp) are counted as undefined, not judged. Each check reports pass / fail / skip (with the
reason) / xfail / xpass, the measured error, the bound and how it was derived.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines import (
    EngineConfig,
    EngineError,
    OnnxEngine,
    SklearnEngine,
    Tolerance,
    load_model,
)
from engines.export import input_policy, stored_rows, validation_rows
from engines.metadata import ACCEPTS_INF_KEY, ACCEPTS_NAN_KEY
from engines.onnx_engine import ModelSource
from harness.checks.parity import CHECKS, CheckOutcome, ParityTarget, check_plan, run_check
from harness.checks.strategies import boundary_rows, split_thresholds

__all__ = ["CheckSetupError", "check_pair", "decision_boundary", "outcomes_table"]

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
#: Segments bisected to the decision boundary: a step function (a histogram, an empirical
#: CDF, a tree ensemble) jumps over its cut, and the more crossings, the nearer one lands.
BOUNDARY_PAIRS = 96
#: Single-feature moves tried from a row where the decision jumps over the cut
#: (``recombined_rows``); a quarter for a reference that scores row by row.
RECOMBINED_MOVES = 1024


class CheckSetupError(Exception):
    """The pair cannot be checked (unreadable files, different widths, bad data)."""


def _reference(reference: Any, trusted: Sequence[str], trust_pickle: bool) -> SklearnEngine:
    try:
        if isinstance(reference, str | os.PathLike):
            estimator = load_model(
                Path(reference), trusted=list(trusted), trust_pickle=trust_pickle
            )
            return SklearnEngine(estimator, model_path=str(reference))
        return SklearnEngine(reference)
    except EngineError as exc:
        raise CheckSetupError(str(exc)) from exc


def _candidate(model: ModelSource, ref: SklearnEngine) -> OnnxEngine:
    """The ONNX engine; where the graph gives one score but not the other (plain skl2onnx:
    label and scores) it is given the reference's offset_ so it answers both."""
    try:
        engine = OnnxEngine(model, CPU1)
        lacks = (ref.methods - engine.methods) & {"score_samples", "decision_function"}
        if lacks and ref.offset is not None:
            engine = OnnxEngine(model, CPU1, offset=ref.offset)
    except (EngineError, ValueError) as exc:
        raise CheckSetupError(str(exc)) from exc
    return engine


def _rows(data: Any, ref: SklearnEngine, width: int) -> npt.NDArray[np.float32]:
    if data is None:
        rows = validation_rows(ref.estimator, width, n=256)
    elif isinstance(data, str | os.PathLike):
        from harness.cases.userdata import DataError, load_rows

        try:
            return load_rows(Path(data), n_features=width, feature_names=ref.feature_names)
        except DataError as exc:
            raise CheckSetupError(str(exc)) from exc
    else:
        rows = np.asarray(data)
        if rows.ndim != 2 or rows.shape[1] != width or not len(rows):
            raise CheckSetupError(
                f"data must hold rows of {width} features, got shape {rows.shape}"
            )
        if not np.issubdtype(rows.dtype, np.number):
            raise CheckSetupError(f"data must be numeric, got dtype {rows.dtype}")
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(rows, dtype=np.float32)


def decision_boundary(
    ref: SklearnEngine, base: npt.NDArray[Any], *, dtype: Any = np.float32
) -> npt.NDArray[Any] | None:
    """Rows at the reference's decision boundary (``boundary_rows``), found from the data's
    rows, or, where they all lie on one side, from them and the rows the model keeps
    (``engines.export.stored_rows``: support vectors, fitted rows, a mixture's means), else
    from a walk of the nearest row's features to the other side (``walked_rows``); the
    nearest the cut first. None when the reference has no decision or no cut."""
    if "decision_function" not in ref.methods:
        return None
    if ref.convention == "pyod" and ref.threshold is None:
        return None
    cut = ref.threshold if ref.convention == "pyod" else None

    def margin(X: npt.NDArray[Any]) -> npt.NDArray[Any]:  # >= 0: normal
        d = np.asarray(ref.decision_function(X), dtype=np.float64)
        return d if cut is None else cut - d

    moves = RECOMBINED_MOVES // 4 if ref.row_by_row else RECOMBINED_MOVES
    boundary = boundary_rows(margin, base, pairs=BOUNDARY_PAIRS, dtype=dtype, moves=moves)
    stored = None if len(boundary) else stored_rows(ref.estimator)
    if stored is not None and stored.shape[1] == base.shape[1]:
        rows = np.concatenate([base, stored])
        boundary = boundary_rows(margin, rows, pairs=BOUNDARY_PAIRS, dtype=dtype, moves=moves)
    if not len(boundary):  # still one side only: walk the nearest row's features to the other
        boundary = boundary_rows(
            margin, base, pairs=BOUNDARY_PAIRS, dtype=dtype, moves=moves, walk=True
        )
    return boundary


def check_pair(
    model: ModelSource,
    reference: str | os.PathLike[str] | Any,
    *,
    data: str | os.PathLike[str] | npt.ArrayLike | None = None,
    profile: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    input_bound: float | None = None,
    known_gaps: Mapping[str, str] | None = None,
    trusted: Sequence[str] = (),
    trust_pickle: bool = False,
) -> list[CheckOutcome]:
    """Every parity check of ``model`` (.onnx) against ``reference`` (.skops), one outcome each.

    Scores are held, row by row, to a bound derived from the reference's own float noise on
    those rows (``engines.tolerance.derive_bound``), or to ``atol + rtol * |reference|`` when
    either is given (the other defaults to 0). ``data``: representative rows (a .npy / .csv /
    .parquet path or an array; default: rows sampled around the reference's fitted state).
    ``input_bound``: keep generated values within the data's min / max widened that many
    times its range. ``known_gaps``: check -> reason, run as strict expected failures.
    ``reference`` may also be a fitted estimator; ``trusted`` / ``trust_pickle`` go to
    ``engines.load_model``. Raises CheckSetupError when the pair cannot be checked at all;
    every finding, skip and crash inside a check is an outcome.

    Example:
        >>> outcomes = check_pair("model.onnx", "model.skops", data="rows.npy")  # doctest: +SKIP
        >>> [(o.check, o.status) for o in outcomes]  # doctest: +SKIP
        [('label_exact', 'pass'), ('decision_close', 'pass'), ...]
    """
    gaps = dict(known_gaps or {})
    if unknown := sorted(set(gaps) - set(CHECKS)):
        raise CheckSetupError(f"known gaps name unknown checks {unknown}; known: {sorted(CHECKS)}")
    if input_bound is not None and not input_bound >= 0:
        raise CheckSetupError(
            f"input_bound must be >= 0 (a multiple of the data's range), got {input_bound}"
        )
    ref = _reference(reference, trusted, trust_pickle)
    width = ref.n_features
    candidate = _candidate(model, ref)
    if width is None or candidate.n_features not in (None, width):
        raise CheckSetupError(
            f"the ONNX model takes {candidate.n_features} features, the reference {width}"
        )
    tolerance = None
    if rtol is not None or atol is not None:
        try:
            tolerance = Tolerance(label_agreement=0.0, rtol=rtol or 0.0, atol=atol or 0.0)
        except ValueError as exc:
            raise CheckSetupError(str(exc)) from exc
    base = _rows(data, ref, width)
    policy = input_policy(ref.estimator, width)
    boundary = decision_boundary(ref, base, dtype=candidate.input_dtype)
    target = ParityTarget(
        reference=ref,
        candidate=candidate,
        base_rows=base,
        tolerance=tolerance,
        thresholds=split_thresholds(ref.estimator),
        accepts_nan=policy["accepts_nan"],
        accepts_inf=policy["accepts_inf"],
        exact_labels=False,
        boundary_rows=boundary,
        input_bound=input_bound,
        isolate_non_finite=True,
        refusals_declared=bool({ACCEPTS_NAN_KEY, ACCEPTS_INF_KEY} & set(candidate.metadata)),
    )
    return [
        run_check(name, target, profile=profile, known_gap=gaps.get(name))
        for name, _ in check_plan(target)
    ]


_SHOWN = {"fail": "**FAIL**", "xpass": "**XPASS**"}


def _n_rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def input_table(rows: Sequence[Sequence[float]], max_rows: int = 5) -> list[str]:
    """Rows as a markdown table (column = feature index), 7 significant digits; at most
    ``max_rows`` rows, the rest counted."""
    width = max(len(r) for r in rows)
    lines = [
        "| row | " + " | ".join(f"x{j}" for j in range(width)) + " |",
        "|---" * (width + 1) + "|",
    ]
    for i, row in enumerate(rows[:max_rows]):
        lines.append(f"| {i} | " + " | ".join(f"{float(v):.7g}" for v in row) + " |")
    if len(rows) > max_rows:
        lines += ["", f"({_n_rows(len(rows) - max_rows)} more not shown)"]
    return lines


def outcomes_table(outcomes: Sequence[CheckOutcome]) -> str:
    """The outcomes as a markdown table, the minimal failing inputs, and a one-line tally."""
    lines = [
        "| check | status | examples | measured | bound | finding |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        measured = "-" if o.measured is None else f"{o.measured:.3g}"
        status = _SHOWN.get(o.status, o.status)
        finding = o.message.replace("|", "/").replace("\n", " ")
        bound = o.bound.replace("|", "/")
        lines.append(f"| {o.check} | {status} | {o.examples} | {measured} | {bound} | {finding} |")
    shown: dict[str, list[str]] = {}  # one table per distinct input, naming its checks
    inputs: dict[str, list[list[float]]] = {}
    for o in outcomes:
        if o.status in ("fail", "xfail") and o.minimal_input:
            key = repr(o.minimal_input)
            shown.setdefault(key, []).append(o.check)
            inputs[key] = o.minimal_input
    for key, checks in shown.items():
        rows = inputs[key]
        lines += [
            "",
            f"Minimal failing input of {', '.join(checks)} ({_n_rows(len(rows))}):",
            "",
            *input_table(rows),
        ]
    counts = {
        s: sum(o.status == s for o in outcomes) for s in ("pass", "fail", "skip", "xfail", "xpass")
    }
    words = {
        "pass": "passed",
        "fail": "failed",
        "skip": "skipped",
        "xfail": "xfailed",
        "xpass": "xpassed",
    }
    tally = ", ".join(f"{n} {words[s]}" for s, n in counts.items() if n or s in ("pass", "fail"))
    undefined = sum(o.undefined_rows for o in outcomes)
    if undefined:
        tally += f"; {undefined} rows where the reference is undefined (not judged)"
    lines += ["", tally]
    return "\n".join(lines)
