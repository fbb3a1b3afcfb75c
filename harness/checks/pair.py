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

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from engines import (
    EngineConfig,
    EngineError,
    OnnxEngine,
    SklearnEngine,
    Tolerance,
    load_model,
)
from engines.export import input_policy, stored_rows, validation_rows
from engines.metadata import ACCEPTS_INF_KEY, ACCEPTS_NAN_KEY, QUANTIZED_KEY
from engines.onnx_engine import ModelSource
from harness.checks.parity import (
    CHECKS,
    QUANTIZED_RANK_BOUNDS,
    CheckOutcome,
    ParityTarget,
    check_plan,
    profile_name,
    profile_settings,
    run_check,
)
from harness.checks.strategies import boundary_rows, split_rows, split_thresholds

__all__ = [
    "CheckSetupError",
    "Scale",
    "check_pair",
    "decision_boundary",
    "outcomes_table",
    "scale_for",
]

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
#: Segments bisected to the decision boundary: a step function (a histogram, an empirical
#: CDF, a tree ensemble) jumps over its cut, and the more crossings, the nearer one lands.
BOUNDARY_PAIRS = 96
#: Single-feature moves tried from a row where the decision jumps over the cut
#: (``recombined_rows``); a quarter for a reference that scores row by row.
RECOMBINED_MOVES = 1024
#: Seconds of reference calls a check plans for, per profile (nightly: no limit). A reference
#: that is slow per row (PyOD's ECOD and COPOD refit on every training row for each row they
#: score; a neighbour search over millions of rows) is checked on a sample of the data rows,
#: a smaller boundary search and fewer examples, and the output says so.
REFERENCE_BUDGET_S = {"dev": 15.0, "ci": 25.0}
#: Reference rows evaluated per data row and per boundary segment, at full scale (counted on
#: PyOD's ECOD, scored row by row: 7,320 rows for 200 data rows and 96 segments).
CALLS_PER_ROW, CALLS_PER_SEGMENT = 24, 26
#: Boundary rows every label check runs as explicit examples, at full scale.
BOUNDARY_EXAMPLES = 128


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


def _candidate(model: ModelSource, ref: SklearnEngine) -> tuple[OnnxEngine, list[str]]:
    """The ONNX engine, and what the outcomes must say of how it was read; where the graph
    gives one score but not the other (plain skl2onnx: label and scores) it is given the
    reference's offset_ so it answers both, and the note says which answers are borrowed."""
    try:
        engine = OnnxEngine(model, CPU1)
    except (EngineError, ValueError) as exc:
        raise CheckSetupError(str(exc)) from exc
    width = ref.n_features
    if width is None or engine.n_features not in (None, width):
        raise CheckSetupError(
            f"the ONNX model takes {engine.n_features} features, the reference {width}"
        )
    if engine.convention != ref.convention:
        raise CheckSetupError(
            f"the ONNX model answers in {engine.convention}'s convention, the reference in "
            f"{ref.convention}'s (engines.base.Engine: PyOD's decision_function is higher for "
            "more abnormal rows, scikit-learn's lower): they are not the same detector"
        )
    notes = []
    info = engine.info()
    if info["role_source"].startswith("assumed"):
        (output,) = info["outputs"]
        notes.append(
            f"the graph's one output {output!r} is read as an anomaly score, higher = more "
            "abnormal (its name says nothing); if it is higher = more normal, set the graph's "
            "score_kind metadata to score_samples"
        )
    lacks = (ref.methods - engine.methods) & {"score_samples", "decision_function"}
    if lacks and ref.offset is not None:
        own = engine.methods
        try:
            engine = OnnxEngine(model, CPU1, offset=ref.offset)
        except (EngineError, ValueError) as exc:
            raise CheckSetupError(str(exc)) from exc
        borrowed = sorted(engine.methods - own)
        if "predict" in borrowed:
            notes.append(
                f"the graph has no threshold of its own: its {' and '.join(borrowed)} use the "
                f"reference's offset_ ({ref.offset:.6g}), so the cut checked is the "
                "reference's; to check the one you deploy, give the graph an offset in its "
                "metadata (engines.metadata)"
            )
        elif borrowed:
            notes.append(
                f"the graph answers {' and '.join(borrowed)} through the reference's offset_ "
                f"({ref.offset:.6g}): it has no output for it"
            )
    return engine, notes


#: Ops only a quantized graph holds (onnxruntime's int8 quantizers write them).
_QUANTIZED_OPS = frozenset(
    {"DynamicQuantizeLinear", "QuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul"}
)


def _quantized(engine: OnnxEngine) -> str | None:
    """How ``engines.quantize`` made the graph, where its metadata says so and the graph
    bears it out (float16 tensors for fp16, quantization ops for int8): a metadata key alone
    does not buy a graph the looser rank bounds."""
    mode = engine.metadata.get(QUANTIZED_KEY)
    if mode not in ("fp16", "dynamic-int8", "static-int8"):
        return None
    graph = onnx.load_model_from_string(engine.model_bytes()).graph
    if mode == "fp16":
        half = onnx.TensorProto.FLOAT16
        held = any(t.data_type == half for t in graph.initializer) or any(
            a.name == "to" and a.i == half for n in graph.node for a in n.attribute
        )
    else:
        held = any(n.op_type in _QUANTIZED_OPS for n in graph.node)
    return str(mode) if held else None


def _rows(data: Any, ref: SklearnEngine, width: int, dtype: Any) -> npt.NDArray[Any]:
    """The data's rows as the candidate takes them (``dtype``: float32, or float64 for a
    graph that takes double); generated rows where there is no data."""
    from harness.cases.userdata import DataError, as_model_rows, load_rows

    if data is None:
        rows = validation_rows(ref.estimator, width, n=256)
    elif not isinstance(data, str | os.PathLike):
        rows = np.asarray(data)
        if rows.ndim != 2 or rows.shape[1] != width or not len(rows):
            raise CheckSetupError(
                f"data must hold rows of {width} features, got shape {rows.shape}"
            )
        if not np.issubdtype(rows.dtype, np.number):
            raise CheckSetupError(f"data must be numeric, got dtype {rows.dtype}")
    try:
        if isinstance(data, str | os.PathLike):
            return load_rows(
                Path(data), n_features=width, feature_names=ref.feature_names, dtype=dtype
            )
        return as_model_rows(rows, dtype)
    except DataError as exc:
        raise CheckSetupError(str(exc)) from exc


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much of a full check a pair gets: data rows (``rows``, indices into the data, None:
    all), boundary segments, single-feature moves, Hypothesis examples (None: the profile's),
    boundary rows run as explicit examples, and the note that says why (None: full scale)."""

    rows: npt.NDArray[np.intp] | None
    pairs: int
    moves: int
    examples: int | None
    boundary_examples: int
    note: str | None


def _seconds_per_row(ref: SklearnEngine, base: npt.NDArray[Any]) -> float:
    """What one more row costs the reference, the least of three measurements after a
    warm-up call: a call on k rows against a call on 1 (k = 256 for a batch scorer, whose
    per-call overhead is not per row; 4 for a row-by-row scorer, which pays per row)."""
    call = getattr(ref, sorted(ref.methods - {"predict"} or ref.methods)[0])
    k = min(4 if ref.row_by_row else 256, len(base))
    if k < 2:
        return 0.0

    def least(rows: npt.NDArray[Any]) -> float:
        took = []
        for _ in range(3):
            start = time.perf_counter()
            call(rows)
            took.append(time.perf_counter() - start)
        return min(took)

    try:
        call(base[:1])
        one, many = least(base[:1]), least(base[:k])
    except EngineError:
        return 0.0
    return max(0.0, (many - one) / (k - 1))


def _moves(ref: SklearnEngine) -> int:
    """Single-feature moves at full scale: RECOMBINED_MOVES, a quarter row by row."""
    return RECOMBINED_MOVES // 4 if ref.row_by_row else RECOMBINED_MOVES


def scale_for(ref: SklearnEngine, base: npt.NDArray[Any], profile: str | None) -> Scale:
    """The full check, unless the reference's calls it plans would take more than twice the
    profile's budget (``REFERENCE_BUDGET_S``): then data rows, boundary segments, moves and
    examples shrink by the same power of two until they fit (data rows no fewer than 24, the
    score-bias test's minimum), and the note says what was sampled and why. The scale hangs
    on a timing: a pair whose reference costs near a cut-off (twice the budget, then each
    power of two) may be checked at either scale from run to run; the rows kept are the first
    of one seeded order, so a smaller sample is part of a larger one. A batch scorer's rows
    cost microseconds: only a reference slow per row (PyOD's ECOD / COPOD on thousands of
    training rows) or one scoring hundreds of thousands of data rows comes near."""
    moves = _moves(ref)
    full = Scale(None, BOUNDARY_PAIRS, moves, None, BOUNDARY_EXAMPLES, None)
    name = profile_name(profile)
    budget = REFERENCE_BUDGET_S.get(name)
    n = len(base)
    if budget is None or n == 0:
        return full
    per_row = _seconds_per_row(ref, base)
    planned = CALLS_PER_ROW * n + CALLS_PER_SEGMENT * BOUNDARY_PAIRS + moves
    if per_row * planned <= 2 * budget:
        return full
    shrink = 2.0 ** -math.ceil(math.log2(per_row * planned / budget))
    keep = min(n, max(24, math.ceil(shrink * n)))
    # the first rows of one seeded order: a smaller sample is part of a larger one
    rows = np.sort(np.random.default_rng(0).permutation(n)[:keep])
    pairs = max(4, math.ceil(shrink * BOUNDARY_PAIRS))
    examples = max(4, math.ceil(shrink * profile_settings(name).max_examples))
    boundary_examples = max(16, math.ceil(shrink * BOUNDARY_EXAMPLES))
    note = (
        f"the reference takes {per_row * 1e3:.3g} ms a row, so the {name} profile's "
        f"{budget:g} s budget checks {keep} of {n} data rows, {pairs} of "
        f"{BOUNDARY_PAIRS} boundary segments, {boundary_examples} boundary rows and "
        f"{examples} generated examples a check (the nightly profile checks them all)"
    )
    return Scale(
        None if keep == n else rows,
        pairs,
        max(16, math.ceil(shrink * moves)),
        examples,
        boundary_examples,
        note,
    )


def _accepted(
    rows: npt.NDArray[np.float32], policy: Mapping[str, bool]
) -> tuple[npt.NDArray[np.float32], str | None]:
    """The data rows the reference accepts, and a note on the ones left out: rows holding NaN
    (or an infinity) where it refuses NaN (or infinities). They would make every batch of the
    data checks a refusal, and skip them; errors_match checks refusals on rows of its own."""
    refused = np.zeros(len(rows), dtype=bool)
    if not policy["accepts_nan"]:
        refused |= np.isnan(rows).any(axis=1)
    if not policy["accepts_inf"]:
        refused |= np.isinf(rows).any(axis=1)
    if not refused.any():
        return rows, None
    if refused.all():
        raise CheckSetupError(
            f"every one of the {len(rows)} data rows holds NaN or an infinity, which the "
            "reference refuses: give rows it can answer"
        )
    note = (
        f"{int(refused.sum())} of {len(rows)} data rows hold NaN or an infinity, which the "
        "reference refuses: left out of the data checks (errors_match checks refusals where "
        "the graph declares what its estimator refuses)"
    )
    return rows[~refused], note


def decision_boundary(
    ref: SklearnEngine,
    base: npt.NDArray[Any],
    *,
    dtype: Any = np.float32,
    pairs: int = BOUNDARY_PAIRS,
    moves: int | None = None,
) -> npt.NDArray[Any] | None:
    """Rows at the reference's decision boundary (``boundary_rows``), found from the data's
    rows, or, where they all lie on one side, from them and the rows the model keeps
    (``engines.export.stored_rows``: support vectors, fitted rows, a mixture's means), else
    from a walk of the nearest row's features to the other side (``walked_rows``); the
    nearest the cut first. None when the reference has no decision or no cut. ``pairs``
    segments are bisected; ``moves`` (default: RECOMBINED_MOVES, a quarter for a reference
    that scores row by row) bounds the search where the decision steps."""
    if "decision_function" not in ref.methods:
        return None
    if ref.convention == "pyod" and ref.threshold is None:
        return None
    cut = ref.threshold if ref.convention == "pyod" else None

    def margin(X: npt.NDArray[Any]) -> npt.NDArray[Any]:  # >= 0: normal
        d = np.asarray(ref.decision_function(X), dtype=np.float64)
        return d if cut is None else cut - d

    moves = _moves(ref) if moves is None else moves
    boundary = boundary_rows(margin, base, pairs=pairs, dtype=dtype, moves=moves)
    stored = None if len(boundary) else stored_rows(ref.estimator)
    if stored is not None and stored.shape[1] == base.shape[1]:
        rows = np.concatenate([base, stored])
        boundary = boundary_rows(margin, rows, pairs=pairs, dtype=dtype, moves=moves)
    if not len(boundary):  # still one side only: walk the nearest row's features to the other
        boundary = boundary_rows(margin, base, pairs=pairs, dtype=dtype, moves=moves, walk=True)
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
    progress: Callable[[str], None] | None = None,
) -> list[CheckOutcome]:
    """Every parity check of ``model`` (.onnx) against ``reference`` (.skops), one outcome each.

    Scores are held, row by row, to a bound derived from the reference's own float noise on
    those rows (``engines.tolerance.derive_bound``), or to ``atol + rtol * |reference|`` when
    either is given (the other defaults to 0). ``data``: representative rows (a .npy / .csv /
    .parquet path or an array; default: rows sampled around the reference's fitted state).
    ``input_bound``: keep generated values within the data's min / max widened that many
    times its range. ``known_gaps``: check -> reason, run as strict expected failures.
    ``reference`` may also be a fitted estimator; ``trusted`` / ``trust_pickle`` go to
    ``engines.load_model``. Data rows holding NaN or infinities the reference refuses are
    left out, and a reference too slow for the profile's budget is checked on a sample
    (``scale_for``); each outcome's ``note`` says so. ``progress`` is told that, and each
    check's outcome as it ends. Raises CheckSetupError when the pair cannot be
    checked at all; every finding, skip and crash inside a check is an outcome.

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
    candidate, read_as = _candidate(model, ref)
    quantized = _quantized(candidate)
    if quantized:
        agreement, rank = QUANTIZED_RANK_BOUNDS
        read_as.insert(
            0,
            f"a quantized graph ({quantized}, engines.quantize) is held to rank bounds, label "
            f"agreement >= {agreement} and Spearman >= {rank} against the reference, not to "
            "float32's rounding",
        )
    width = ref.n_features
    assert width is not None  # _candidate refuses a reference of unknown width
    tolerance = None
    if rtol is not None or atol is not None:
        try:
            tolerance = Tolerance(label_agreement=0.0, rtol=rtol or 0.0, atol=atol or 0.0)
        except ValueError as exc:
            raise CheckSetupError(str(exc)) from exc
    base = _rows(data, ref, width, getattr(candidate, "input_dtype", np.float32))
    policy = input_policy(ref.estimator, width)
    say = progress or (lambda line: None)
    base, refused = _accepted(base, policy)
    scale = scale_for(ref, base, profile)
    notes = [note for note in (*read_as, refused, scale.note) if note]
    for note in notes:
        say(note)
    if scale.rows is not None:
        base = base[scale.rows]
    start = time.perf_counter()
    boundary = decision_boundary(
        ref, base, dtype=candidate.input_dtype, pairs=scale.pairs, moves=scale.moves
    )
    if boundary is not None:
        say(f"{len(boundary)} rows at the decision boundary ({time.perf_counter() - start:.1f} s)")
    target = ParityTarget(
        reference=ref,
        candidate=candidate,
        base_rows=base,
        tolerance=tolerance,
        thresholds=split_thresholds(ref.estimator),
        split_rows=split_rows(ref.estimator, base),
        accepts_nan=policy["accepts_nan"],
        accepts_inf=policy["accepts_inf"],
        exact_labels=False,
        boundary_rows=boundary,
        input_bound=input_bound,
        isolate_non_finite=True,
        refusals_declared=bool({ACCEPTS_NAN_KEY, ACCEPTS_INF_KEY} & set(candidate.metadata)),
        max_examples=scale.examples,
        boundary_examples=scale.boundary_examples,
        rank_bounds=QUANTIZED_RANK_BOUNDS if quantized else None,
    )
    outcomes = []
    planned = [name for name, _ in check_plan(target)]
    for name in sorted(set(gaps) - set(planned)):  # said, not silently never failing
        outcomes.append(
            CheckOutcome(
                name,
                "skip",
                0,
                None,
                "",
                f"{name} does not apply to this pair, so its declared known gap ({gaps[name]}) "
                "can never fail: remove it",
                None,
                known_gap=gaps[name],
            )
        )
    for name in planned:
        start = time.perf_counter()
        outcome = run_check(name, target, profile=profile, known_gap=gaps.get(name))
        if notes and outcome.status != "skip":
            outcome = dataclasses.replace(outcome, note="; ".join(notes))
        say(f"{name}: {outcome.status} ({time.perf_counter() - start:.1f} s)")
        outcomes.append(outcome)
    return outcomes


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
    lines += [f"Note: {note}." for note in dict.fromkeys(o.note for o in outcomes if o.note)]
    return "\n".join(lines)
