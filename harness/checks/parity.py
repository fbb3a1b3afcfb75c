"""Parity checks: does an engine answer like its scikit-learn reference? Hypothesis finds out.

Each check is a property over batches drawn by ``harness.checks.strategies.input_rows``. An engine's
answers are held, row by row, either to a bound derived from the reference's own numerical
noise on those rows (``engines.tolerance.derive_bound``; the default for a user's pair) or to
a given rtol / atol (the zoo's cases). A check reports pass, fail, skip (with the reason),
or, for a declared known gap, xfail / xpass; the measured value and the bound with how it was
derived; how many examples it tried; rows where the reference itself is undefined; and on
failure the minimal input Hypothesis shrank to. No exception escapes ``run_check``. The
pytest suite (suites/parity) and ``harness check`` both run these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from hypothesis import HealthCheck, Phase, example, given, reject, settings
from hypothesis.errors import Unsatisfiable
from scipy import stats

from engines import Engine, EngineError, InputError, OnnxEngine, SklearnEngine, Tolerance
from engines.tolerance import (
    RowBound,
    beyond_range,
    check_within,
    derive_bound,
    fixed_bound,
    float32_answer,
    float32_twin,
    neighbour_ties,
    on_the_steps,
    shift_test,
)
from harness.checks.strategies import input_rows

__all__ = [
    "CHECKS",
    "PROFILES",
    "STATUSES",
    "CheckOutcome",
    "ParityTarget",
    "applicable_checks",
    "check_plan",
    "profile_name",
    "profile_settings",
    "run_check",
]

#: Hypothesis settings per profile (HYPOTHESIS_PROFILE): ci is derandomized so CI never flakes.
PROFILES: dict[str, dict[str, Any]] = {
    "dev": {"max_examples": 25, "derandomize": False},
    "ci": {"max_examples": 40, "derandomize": True},
    "nightly": {"max_examples": 500, "derandomize": False},
}

Status = Literal["pass", "fail", "skip", "xfail", "xpass"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "skip", "xfail", "xpass")


def profile_name(profile: str | None) -> str:
    """``profile``, else $HYPOTHESIS_PROFILE, else ci; ValueError for an unknown name."""
    name = profile or os.environ.get("HYPOTHESIS_PROFILE", "ci")
    if name not in PROFILES:
        raise ValueError(f"unknown hypothesis profile {name!r}; known: {sorted(PROFILES)}")
    return name


def profile_settings(profile: str | None = None) -> settings:
    """Settings for ``profile`` (default: $HYPOTHESIS_PROFILE, else ci)."""
    return settings(
        deadline=None,
        database=None,
        print_blob=False,
        report_multiple_bugs=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        # No shrink phase: a failing batch is reduced to its failing row instead (run_check),
        # which costs one call, not hundreds of reference calls.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        **PROFILES[profile_name(profile)],
    )


@dataclasses.dataclass
class ParityTarget:
    """An engine under test, its reference, and what the inputs may hold.

    ``tolerance`` None holds the engine to bounds derived from the reference's own numerical
    noise on each batch (``engines.tolerance.derive_bound``); a Tolerance holds it to
    ``atol + rtol * |reference|``. ``boundary_rows`` are drawn as rows on either side of the
    decision boundary; ``input_bound`` keeps finite values within the base rows' range widened
    that many times; ``isolate_non_finite`` draws NaN / inf in errors_match only (one cause, one
    failing check) instead of in every check the estimator accepts them in.
    ``refusals_declared`` False (a graph without accepts_nan / accepts_inf metadata, e.g. a
    plain skl2onnx conversion) leaves batches the reference refuses out of errors_match: the
    engine cannot know to refuse them. ``max_examples`` caps the profile's Hypothesis
    examples and ``boundary_examples`` the boundary rows run as explicit examples (a
    reference too slow for them: ``harness.checks.pair.scale_for``).
    """

    reference: Engine
    candidate: Engine
    base_rows: npt.NDArray[Any]
    tolerance: Tolerance | None = None
    thresholds: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    accepts_nan: bool = False
    accepts_inf: bool = False
    exact_labels: bool = True
    eager: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None  # torch reference
    rank_bounds: tuple[float, float] | None = None  # quantized: (label agreement, Spearman)
    boundary_rows: npt.NDArray[Any] | None = None
    input_bound: float | None = None
    isolate_non_finite: bool = False
    refusals_declared: bool = True
    max_examples: int | None = None  # fewer Hypothesis examples than the profile's
    boundary_examples: int = 128  # boundary rows run as explicit examples
    split_rows: npt.NDArray[Any] | None = None  # rows on a tree's split (strategies.split_rows)
    _memo: dict[Any, Any] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def derived(self) -> bool:
        return self.tolerance is None

    def answer(self, role: str, method: str, X: npt.NDArray[Any]) -> npt.NDArray[Any] | EngineError:
        """The reference's or candidate's answer (memoized per batch: engines are deterministic)."""
        key = (role, method, _digest(X))
        if key not in self._memo:
            engine = self.reference if role == "reference" else self.candidate
            try:
                self._memo[key] = np.asarray(getattr(engine, method)(X))
            except EngineError as exc:
                self._memo[key] = exc
        out: npt.NDArray[Any] | EngineError = self._memo[key]
        return out

    def expect(self, method: str, X: npt.NDArray[Any]) -> RowBound | EngineError:
        """The reference's answer on X with its per-row bound (derived or from the tolerance)."""
        key = ("bound", method, _digest(X))
        if key in self._memo:
            cached: RowBound | EngineError = self._memo[key]
            return cached
        bound: RowBound | EngineError
        if self.tolerance is not None:
            ref = self.answer("reference", method, X)
            bound = ref if isinstance(ref, EngineError) else fixed_bound(ref, self.tolerance, X)
        elif method == "decision_function" and self._decision_is_shifted_score():
            score = self.expect("score_samples", X)  # one set of reference calls for both
            shift = float(getattr(self.reference, "offset", 0.0))
            bound = (
                score
                if isinstance(score, EngineError)
                else dataclasses.replace(
                    score,
                    expected=score.expected - shift,
                    truth=score.truth - shift,
                    neighbours=None if score.neighbours is None else score.neighbours - shift,
                )
            )
        else:
            work, seen = self.precision()
            try:
                bound = derive_bound(
                    getattr(self.reference, method),
                    X,
                    input_dtype=seen,
                    precision=work,
                    offset=getattr(self.reference, "offset", None),
                    typical=self.typical(method),
                    condition=self.conditioning(method) if work == np.float32 else 1.0,
                )
            except EngineError as exc:
                bound = exc
            else:
                bound = self._undefined_at_ties(bound, X, work)
        self._memo[key] = bound
        return bound

    def _undefined_at_ties(
        self, bound: RowBound, X: npt.NDArray[Any], work: np.dtype[Any]
    ) -> RowBound:
        """Rows where the reference's answer hangs on a neighbour tie below ``work``'s
        resolution (``engines.tolerance.neighbour_ties``) are undefined there: not judged."""
        estimator = getattr(self.reference, "estimator", None)
        if estimator is None or work != np.float32:
            return bound
        try:
            ties = neighbour_ties(estimator, X, precision=work)
        except (ValueError, TypeError, AttributeError):
            return bound
        if ties is None or not ties.any():
            return bound
        return dataclasses.replace(bound, undefined=bound.undefined | ties)

    def _decision_is_shifted_score(self) -> bool:
        """The reference's decision_function is its score_samples - offset (scikit-learn's
        detectors), checked on the base rows to float64 rounding."""
        if "shifted" not in self._memo:
            offset = getattr(self.reference, "offset", None)
            ok = False
            if (
                offset is not None
                and {"score_samples", "decision_function"} <= self.reference.methods
            ):
                X = np.asarray(self.base_rows)
                s = self.answer("reference", "score_samples", X)
                d = self.answer("reference", "decision_function", X)
                if not isinstance(s, EngineError) and not isinstance(d, EngineError):
                    s64, d64 = s.astype(np.float64), d.astype(np.float64)
                    eps = float(np.finfo(np.float64).eps)
                    with np.errstate(invalid="ignore", over="ignore"):
                        gap = np.abs(d64 - (s64 - offset))
                        ok = bool(np.all(gap <= 8 * eps * (np.abs(s64) + abs(offset))))
            self._memo["shifted"] = ok
        shifted: bool = self._memo["shifted"]
        return shifted

    def precision(self) -> tuple[np.dtype[Any], np.dtype[Any]]:
        """(the precision the candidate computes in, the dtype it takes): float32 if its input or
        its output is float32."""
        if "precision" not in self._memo:
            seen = np.dtype(getattr(self.candidate, "input_dtype", np.float64))
            work = seen
            method = sorted(self.candidate.methods - {"predict"} or self.candidate.methods)[0]
            try:
                out = np.asarray(getattr(self.candidate, method)(self.base_rows[:1]))
                if out.dtype == np.float32:
                    work = np.dtype(np.float32)
            except EngineError:
                pass
            if np.dtype(np.float32) in (seen, work):
                work = np.dtype(np.float32)
            self._memo["precision"] = (work, seen)
        cached: tuple[np.dtype[Any], np.dtype[Any]] = self._memo["precision"]
        return cached

    def typical(self, method: str) -> float:
        """Median |answer| of the reference on the base rows (0 if unknown): the scale below
        which no row's bound is taken."""
        key = ("typical", method)
        if key not in self._memo:
            ref = self.answer("reference", method, np.asarray(self.base_rows))
            value = 0.0
            if not isinstance(ref, EngineError):
                finite = np.abs(ref[np.isfinite(ref)].astype(np.float64))
                if len(finite):
                    value = float(np.median(finite))
            self._memo[key] = value
        typical: float = self._memo[key]
        return typical

    def conditioning(self, method: str) -> float:
        """How many float32 eps of the answer the reference's own float32 arithmetic strays on
        the base rows (at least 1): the reference computing in float32 (its float32 twin,
        ``engines.tolerance.float32_twin``, or itself where it was fitted on float32 data)
        against the reference in float64, both on the rows as float32 holds them, so input
        rounding is not counted. 1 where it cannot be measured (a torch or row-by-row
        reference) or where the reference upcasts to float64 whatever it is given."""
        return self._own_float32(method)[0]

    def own_bias(self, method: str) -> float:
        """The median signed error of the reference's own float32 arithmetic on the base rows,
        in float32 eps of the answer (0 where it cannot be measured): how far a float32
        computation of the same formula sits, as a whole, to one side of the float64 one."""
        return self._own_float32(method)[1]

    def _own_float32(self, method: str) -> tuple[float, float]:
        key = ("own float32", method)
        if key not in self._memo:
            ratio = self._float32_errors(method)
            if ratio is None or not len(ratio):
                self._memo[key] = (1.0, 0.0)
            else:
                self._memo[key] = (
                    max(1.0, float(np.abs(ratio).max())),
                    float(np.median(ratio)),
                )
        measured: tuple[float, float] = self._memo[key]
        return measured

    def _float32_errors(self, method: str) -> npt.NDArray[np.float64] | None:
        """(reference in float32 - reference in float64) / (eps x magnitude) on the base rows;
        None where it cannot be measured."""
        reference = self.reference
        if not isinstance(reference, SklearnEngine):
            return None
        if reference.info().get("scoring") == "row by row":
            return None
        formula = float32_answer(reference.estimator, method)
        twin = None if formula is not None else float32_twin(reference.estimator)
        in_float32 = reference if twin is None else SklearnEngine(twin, collect_metrics=False)
        rows32 = np.asarray(self.base_rows).astype(np.float32)
        try:
            with np.errstate(all="ignore"):
                answer = formula or getattr(in_float32, method)
                got = np.asarray(answer(rows32), dtype=np.float64)
                truth = np.asarray(getattr(reference, method)(rows32.astype(np.float64)))
        except (EngineError, ArithmeticError, ValueError, TypeError):
            return None
        got, truth = got.reshape(-1), truth.astype(np.float64).reshape(-1)
        if got.shape != truth.shape:
            return None
        offset = abs(float(getattr(reference, "offset", None) or 0.0))
        eps = float(np.finfo(np.float32).eps)
        with np.errstate(all="ignore"):
            magnitude = np.maximum(np.abs(truth) + offset, self.typical(method))
            ratio = (got - truth) / (eps * magnitude)
        finite: npt.NDArray[np.float64] = ratio[np.isfinite(ratio)]
        return finite


def _digest(X: npt.NDArray[Any]) -> tuple[str, tuple[int, ...], bytes]:
    a = np.ascontiguousarray(X)
    return a.dtype.str, a.shape, hashlib.blake2b(a.tobytes(), digest_size=16).digest()


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """What a check found.

    ``status``: pass, fail, skip (``message`` says why), xfail (a declared known gap that still
    fails) or xpass (a known gap that no longer reproduces: a failure of the run). ``measured``
    is the error on the row closest to its bound (failing: the first failing row), ``bound_value``
    that row's bound and ``bound`` how it was derived. ``undefined_rows``: rows where the
    reference itself has no answer to hold the engine to (counted, not judged);
    ``rows``: rows compared; ``rejected``: generated batches that did not apply; ``note``:
    what was left out and why (a sample of the data, for a reference too slow for it).
    """

    check: str
    status: Status
    examples: int
    measured: float | None
    bound: str
    message: str
    minimal_input: list[list[float]] | None
    bound_value: float | None = None
    undefined_rows: int = 0
    rows: int = 0
    rejected: int = 0
    known_gap: str | None = None
    note: str | None = None

    @property
    def passed(self) -> bool:
        """True unless this outcome fails the run (fail, xpass)."""
        return self.status not in ("fail", "xpass")

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}


class Discrepancy(AssertionError):
    """A property failed: carries the measured value and the bound it broke."""

    def __init__(
        self,
        message: str,
        measured: float | None = None,
        bound: float | None = None,
        how: str = "",
        row: int | None = None,
    ) -> None:
        super().__init__(message)
        self.measured = measured
        self.bound = bound
        self.how = how
        self.row = row


class _NotApplicable(Exception):
    """This batch does not apply to the check (the reason is recorded, then hypothesis rejects)."""


@dataclasses.dataclass
class _Tally:
    """What one example measured: the row closest to its bound."""

    ratio: float = 0.0
    measured: float | None = None
    bound: float | None = None
    how: str = ""
    undefined: int = 0
    rows: int = 0
    note: str = ""  # what a deterministic check found, for its pass message


def _bounded(
    what: str, ours: npt.NDArray[Any], bound: RowBound, reference_label: str = "reference"
) -> _Tally:
    """Hold ``ours`` to ``bound``; raise Discrepancy with the evidence if any row breaks it."""
    result = check_within(what, ours, bound)
    if not result.passed:
        row = result.row if result.row is not None else 0
        raise Discrepancy(
            f"{what}: {result.failing_rows} of {result.n_rows} rows beyond their bound; row "
            f"{row}: engine {float(np.asarray(ours).reshape(-1)[row])!r} vs {reference_label} "
            f"{float(bound.expected[row])!r}, off by {result.error:.3g} > {result.how}",
            result.error,
            result.bound,
            result.how,
            row,
        )
    return _Tally(
        result.ratio, result.error, result.bound, result.how, result.undefined_rows, result.n_rows
    )


def _pair(
    target: ParityTarget, method: str, X: npt.NDArray[Any]
) -> tuple[RowBound, npt.NDArray[Any]]:
    """The reference's bounded answer and the engine's on X; batches both refuse do not apply."""
    expected = target.expect(method, X)
    ours = target.answer("candidate", method, X)
    if isinstance(expected, EngineError):
        if isinstance(ours, InputError):
            raise _NotApplicable(f"both refuse the batch ({type(expected).__name__})")
        raise _NotApplicable(f"the reference refuses the batch: {expected}")
    if isinstance(ours, EngineError):
        raise Discrepancy(f"{method}: the reference answered, the engine raised {ours!r}")
    return expected, ours


def _scores(target: ParityTarget, X: npt.NDArray[Any], method: str) -> _Tally:
    expected, ours = _pair(target, method, X)
    return _bounded(method, ours, expected)


def _margin(engine: Engine, decision: npt.NDArray[Any]) -> npt.NDArray[Any] | None:
    """How far inside the normal side each decision is (< 0: anomaly): the decision itself in
    scikit-learn's convention, ``threshold - decision`` in PyOD's (None: no threshold known)."""
    if getattr(engine, "convention", "sklearn") != "pyod":
        return decision
    threshold = getattr(engine, "threshold", None)
    return None if threshold is None else float(threshold) - decision


def _anomaly_label(engine: Engine) -> int:
    return 1 if getattr(engine, "convention", "sklearn") == "pyod" else -1


def check_labels(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """Labels equal; a label may differ only where the reference's decision is within its bound
    of the threshold (0; PyOD: its threshold_) (with a given tolerance and exact labels:
    nowhere)."""
    ref, ours = target.answer("reference", "predict", X), target.answer("candidate", "predict", X)
    if isinstance(ref, EngineError):
        if isinstance(ours, InputError):
            raise _NotApplicable("both refuse the batch")
        raise _NotApplicable(f"the reference refuses the batch: {ref}")
    if isinstance(ours, EngineError):
        raise Discrepancy(f"predict: the reference answered, the engine raised {ours!r}")
    differ = np.flatnonzero(ref != ours)
    how = "labels equal"
    undefined = 0
    if "decision_function" in target.reference.methods and not (
        target.exact_labels and not target.derived
    ):
        decision = target.expect("decision_function", X)
        margin = None
        if not isinstance(decision, EngineError):
            margin = _margin(target.reference, decision.expected)
        if not isinstance(decision, EngineError) and margin is not None:
            how = (
                "labels may differ only where the reference decision is within its bound of the cut"
            )
            near = np.abs(margin) <= decision.bound
            excused = decision.undefined | decision.beyond_range
            undefined = int(excused[differ].sum())
            differ = differ[~(near[differ] | excused[differ])]
    if len(differ):
        row = int(differ[0])
        detail = ""
        if "decision_function" in target.reference.methods:
            d = target.expect("decision_function", X)
            if not isinstance(d, EngineError):
                detail = f" (reference decision {d.expected[row]:.3g}, {d.describe(row)})"
        raise Discrepancy(
            f"labels differ on {len(differ)} of {len(X)} rows beyond the decision's bound; row "
            f"{row}: engine {ours[row]} vs reference {ref[row]}{detail}",
            float(len(differ)) / len(X),
            0.0,
            how,
            row,
        )
    return _Tally(0.0, float((ref != ours).mean()), 0.0, how, undefined, len(X))


def check_decision(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    return _scores(target, X, "decision_function")


def check_score(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    return _scores(target, X, "score_samples")


def check_sign(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """The anomaly label exactly where the decision is on the anomalous side of its cut
    (decision < 0; PyOD: decision > threshold): the engine agrees with itself. At the cut
    either label (libsvm says -1 at 0, IsolationForest 1), and with derived bounds either label
    where the decision is within a few roundings of the cut (``_TIE_EPS`` eps of its
    magnitude: the label and the decision are one computation, rounded apart at most once or
    twice), so a label threshold moved by far less than the decision's bound still shows."""
    labels = target.answer("candidate", "predict", X)
    decision = target.answer("candidate", "decision_function", X)
    if isinstance(labels, EngineError) or isinstance(decision, EngineError):
        raise _NotApplicable("the engine refuses the batch")
    margin = _margin(target.candidate, decision)
    if margin is None:
        raise _NotApplicable("the engine's threshold is unknown")
    anomaly = _anomaly_label(target.candidate)
    how = f"label {anomaly} exactly past the cut (either at it)"
    tie = margin == 0
    if target.derived and "decision_function" in target.reference.methods:
        bound = target.expect("decision_function", X)
        if not isinstance(bound, EngineError):
            rounding = (
                _TIE_EPS * bound.eps * np.where(np.isfinite(bound.magnitude), bound.magnitude, 0)
            )
            how = (
                f"label {anomaly} exactly past the cut; either within {_TIE_EPS:g} eps of the "
                "decision's magnitude of the cut"
            )
            tie = tie | (np.abs(margin) <= rounding)
    # A NaN decision on a row holding a value whose square overflows the precision (|x| >
    # 1.8e19 in float32) is an overflow of the engine's intermediates: not judged there, as in
    # the score checks.
    overflow = np.isnan(np.asarray(margin, dtype=np.float64)) & _beyond(target, X)
    bad = np.flatnonzero(((labels == anomaly) != (margin < 0)) & ~tie & ~overflow)
    if len(bad):
        row = int(bad[0])
        raise Discrepancy(
            f"label {int(labels[row])} with decision {float(decision[row])!r} on row {row}",
            float(len(bad)),
            0.0,
            how,
            row,
        )
    return _Tally(0.0, 0.0, 0.0, how, 0, len(X))


_EPS32 = float(np.finfo(np.float32).eps)

#: How many eps of the decision's magnitude an engine's label and its own decision may
#: disagree by at the cut: a graph's float32 threshold against the metadata's float64 one,
#: a decision output rounded after the label's comparison.
_TIE_EPS = 4.0


def _own_method(target: ParityTarget) -> str:
    """The score the engine-only checks use: score_samples if both answer it, else decision."""
    both = target.reference.methods & target.candidate.methods
    return "score_samples" if "score_samples" in both else "decision_function"


def _held_to(
    target: ParityTarget, expected: npt.NDArray[Any], X: npt.NDArray[Any], method: str
) -> RowBound:
    """Other answers than the reference's on X (the engine's own, eager torch's) as the
    expectation, with the bound the engine is held to on X."""
    values = np.asarray(expected, dtype=np.float64).reshape(-1)
    if target.tolerance is not None:
        return fixed_bound(values, target.tolerance, X)
    bound = target.expect(method, X)
    if isinstance(bound, EngineError):
        raise _NotApplicable(f"the reference refuses the batch: {bound}")
    return dataclasses.replace(bound, expected=values)


def _self_bound(target: ParityTarget, X: npt.NDArray[Any], method: str) -> RowBound:
    """The engine's whole-batch answer as the expectation, with its bound on X."""
    whole = target.answer("candidate", method, X)
    if isinstance(whole, EngineError):
        raise _NotApplicable("the engine refuses the batch")
    return _held_to(target, whole, X, method)


def check_batch_invariance(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """The first rows one by one and the batch in chunks of 3 == the whole batch (within the
    bound: ONNX Runtime picks kernels by batch size)."""
    method = _own_method(target)
    bound = _self_bound(target, X, method)
    call = getattr(target.candidate, method)
    singles = min(len(X), _SINGLE_ROWS)
    chunks = np.concatenate([call(X[i : i + 3]) for i in range(0, len(X), 3)])
    single = np.concatenate([call(X[i : i + 1]) for i in range(singles)] + [chunks[singles:]])
    tally = _Tally()
    for name, other in (("row by row", single), ("chunks of 3", chunks)):
        tally = _bounded(f"{method} {name}", other, bound, "whole batch")
    return tally


_SINGLE_ROWS = 4  # rows run one at a time per batch: each is a session call


def check_row_order(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """Reversing the rows reverses the answers."""
    method = _own_method(target)
    bound = _self_bound(target, X, method)
    backward = getattr(target.candidate, method)(np.ascontiguousarray(X[::-1]))[::-1]
    return _bounded(f"{method} reversed rows", backward, bound, "forward order")


def _beyond(target: ParityTarget, X: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Rows holding a value whose square overflows the engine's precision (|x| > 1.8e19 in
    float32: ``engines.tolerance.beyond_range``)."""
    work, _ = target.precision()
    return beyond_range(X, work)


def _unless_overflow(
    target: ParityTarget, method: str, X: npt.NDArray[Any], expected: RowBound | EngineError
) -> None:
    """A finite batch the reference refuses only because of rows whose square overflows the
    engine's precision (its own arithmetic overflows there: a float32 scaler dividing 3e38)
    does not apply: the reference is undefined on it, as in the score checks. Only where the
    reference answers the same batch without those rows."""
    if not isinstance(expected, EngineError) or not bool(np.isfinite(X).all()):
        return
    beyond = _beyond(target, X)
    if not beyond.any():
        return
    if beyond.all() or not isinstance(target.expect(method, X[~beyond]), EngineError):
        raise _NotApplicable(
            "the reference refuses a batch only for its rows whose square overflows float32 "
            "(its own arithmetic overflows there): undefined, not judged"
        )


def _unless_refusals_declared(target: ParityTarget, expected: RowBound | EngineError) -> None:
    """A batch the reference refuses does not apply where the graph does not declare what its
    estimator refuses: the engine cannot know to refuse it."""
    if isinstance(expected, EngineError) and not target.refusals_declared:
        raise _NotApplicable(
            "the reference refuses the batch and the graph does not declare what its estimator "
            "refuses (no accepts_nan / accepts_inf metadata)"
        )


def check_dtype(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """float64 input is scored as the model's input type: like the reference on those rows.
    Batches the reference refuses are judged as in errors_match: only where the graph
    declares what its estimator refuses."""
    X64 = X.astype(np.float64)
    nudged = X64 * (1 + 1e-9)  # values float32 cannot hold exactly, but no larger than it can
    X64 = np.where(np.abs(nudged) <= float(np.finfo(np.float32).max), nudged, X64)
    model_dtype = getattr(target.candidate, "input_dtype", np.dtype(np.float64))
    with np.errstate(over="ignore"):
        seen = X64.astype(model_dtype)  # what a float32 model is documented to score
    method = _own_method(target)
    expected = target.expect(method, seen)
    ours = target.answer("candidate", method, X64)
    _unless_refusals_declared(target, expected)
    _unless_overflow(target, method, seen, expected)
    if isinstance(expected, EngineError) != isinstance(ours, EngineError):
        raise Discrepancy(
            f"float64 input: the reference {_said(expected)}, the engine {_said(ours)}"
        )
    if isinstance(expected, EngineError) or isinstance(ours, EngineError):
        raise _NotApplicable("both refuse the batch")
    return _bounded(f"float64 input: {method}", ours, expected)


def _said(answer: object) -> str:
    """What an engine did with a batch, in words: raised which error, or answered."""
    return f"raised {answer!r}" if isinstance(answer, BaseException) else "answered"


def check_errors_match(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """Where scikit-learn raises (NaN, inf), the engine raises a clear error too; where it
    answers, the engine answers the same."""
    method = _own_method(target)
    expected = target.expect(method, X)
    ours = target.answer("candidate", method, X)
    _unless_refusals_declared(target, expected)
    _unless_overflow(target, method, X, expected)
    if isinstance(expected, EngineError):
        if not isinstance(ours, InputError):
            raise Discrepancy(f"the reference {_said(expected)} but the engine {_said(ours)}")
        return _Tally(0.0, 0.0, 0.0, "the engine refuses what the reference refuses", 0, len(X))
    if isinstance(ours, EngineError):
        raise Discrepancy(f"reference answered but the engine raised {ours!r}")
    return _bounded(method, ours, expected)


def _common_scores(target: ParityTarget) -> list[str]:
    return sorted(target.reference.methods & target.candidate.methods & _SCORES)


def check_data_rows(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """Every row of the data, not a sample of them: labels as in label_exact, each score
    within its row's bound; on a step of the reference (a histogram's or an empirical CDF's
    edge: ``RowBound.steps``) the engine must give one of the reference's answers there (on
    the row or a one-ulp neighbour), ``engines.tolerance.on_the_steps``."""
    worst = _Tally(ratio=-1.0)
    if "predict" in target.reference.methods & target.candidate.methods:
        worst = check_labels(target, X)
    for method in _common_scores(target):
        expected, ours = _pair(target, method, X)
        tally = _bounded(method, ours, on_the_steps(expected, ours))
        if tally.ratio > worst.ratio:
            worst = tally
    return worst


def check_split_rows(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """On rows that reach a tree's split or a histogram's bin edge and sit on it
    (``strategies.split_rows``: the largest float32 not above the float64 threshold, and the
    next float32), the engine answers what the reference answers on that very row, within
    rounding: not a one-ulp neighbour's answer, which data_rows accepts at a step. A split
    on the input is taken exactly like the reference or not at all (thresholds rounded to
    the nearest float32 send half these rows the other way; an edge moved by a little, the
    rows on one side of it)."""
    worst = _Tally(ratio=-1.0)
    if "predict" in target.reference.methods & target.candidate.methods:
        worst = check_labels(target, X)
    for method in _common_scores(target):
        expected, ours = _pair(target, method, X)
        if target.derived:  # the row's own answer: no jump to a neighbour's is allowed for
            rounding = expected.rounding
            expected = dataclasses.replace(
                expected,
                bound=expected.factor * rounding,
                noise=rounding,
                sensitivity=np.zeros_like(rounding),
            )
        tally = _bounded(f"{method} on a split", ours, expected)
        if tally.ratio > worst.ratio:
            worst = tally
    splits = len(X) // 2
    return dataclasses.replace(
        worst,
        note=f"ok: worst row at {max(worst.ratio, 0.0):.2g} of its bound over {len(X)} rows on "
        f"{splits} splits or bin edges (either side of each)",
    )


def check_score_bias(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """No score sits, as a whole, to one side of the reference's on the data's rows
    (``engines.tolerance.shift_test``: a sign test against a floor of 8 float32 eps of the
    answer): a constant shift too small for any one row's bound is caught by all of them.
    Distinct rows only: a row repeated is one piece of evidence, not many."""
    tested: list[str] = []
    worst = _Tally(ratio=-1.0)
    distinct = np.unique(X, axis=0) if len(X) else X
    X = X if len(distinct) == len(X) else distinct  # the same batch: its bounds are memoized
    for method in _common_scores(target):
        expected, ours = _pair(target, method, X)
        own = abs(target.own_bias(method)) if expected.eps == _EPS32 else 0.0
        found = shift_test(method, ours, expected, allowance=own)
        if not found.applicable:
            continue
        tested.append(
            f"{method} median shift {found.shift:+.2g} ({found.shift_eps:+.2g} eps) over "
            f"{found.rows} rows, smallest p {found.p:.2g}"
        )
        side = "above" if found.side > 0 else "below"
        evidence = (
            f"on {found.beyond} of the {found.subset} rows with the smallest answers the engine "
            f"is {side} the reference by more than {found.factor + found.allowance:.3g} eps of "
            f"the answer; median "
            f"shift {found.shift:+.3g} ({found.shift_eps:+.3g} eps), sign test p = {found.p:.2g}"
        )
        if not found.passed:
            raise Discrepancy(
                f"{method} is shifted as a whole: {evidence} < {found.alpha:g}",
                abs(found.shift),
                found.floor,
                found.how,
            )
        ratio = abs(found.shift) / found.floor if found.floor > 0 else 0.0
        if ratio > worst.ratio:
            worst = _Tally(ratio, abs(found.shift), found.floor, found.how, 0, found.rows)
    if not tested:
        raise _NotApplicable(
            f"fewer than 24 distinct data rows where the reference is defined (the data has "
            f"{len(X)} distinct rows)"
        )
    return dataclasses.replace(worst, note="ok: " + "; ".join(tested))


def check_eager(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """The ONNX autoencoder answers like eager torch (reconstruction error = -score)."""
    assert target.eager is not None
    ours = target.answer("candidate", "score_samples", X)
    if isinstance(ours, EngineError):
        raise _NotApplicable("the engine refuses the batch")
    eager = -np.asarray(target.eager(X), dtype=np.float64)
    bound = _held_to(target, eager, X, "score_samples")
    return _bounded("ONNX vs eager torch", ours, bound, "eager")


def check_roundtrip(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """The ONNX model saved to a file and loaded again answers identically."""
    assert isinstance(target.candidate, OnnxEngine)
    if "reloaded" not in target._memo:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(target.candidate.model_bytes())
            _copy_external_data(target.candidate, Path(tmp))
            target._memo["reloaded"] = OnnxEngine(path, target.candidate.config)
    reloaded: OnnxEngine = target._memo["reloaded"]
    compared = 0
    for method in sorted(target.candidate.methods & reloaded.methods):
        a = target.answer("candidate", method, X)
        try:
            b: npt.NDArray[Any] | EngineError = np.asarray(getattr(reloaded, method)(X))
        except EngineError as exc:
            b = exc
        if isinstance(a, EngineError) or isinstance(b, EngineError):
            if type(a) is not type(b):
                raise Discrepancy(f"{method}: the model raised {a!r}, the reloaded one {b!r}")
            continue
        if not np.array_equal(a, b, equal_nan=True):
            with np.errstate(invalid="ignore"):
                diff = float(np.nanmax(np.abs(a.astype(np.float64) - b)))
            raise Discrepancy(
                f"{method}: the reloaded model answers differently", diff, 0.0, "identical"
            )
        compared += 1
    if not compared:
        raise _NotApplicable("the engine refuses the batch")
    return _Tally(0.0, 0.0, 0.0, "identical", 0, len(X))


def _copy_external_data(engine: OnnxEngine, folder: Path) -> None:
    """The external data files ``engine`` loaded, copied beside a saved copy of its model in
    ``folder`` (each as the model names it); one changed since the load is no round trip."""
    source = engine.model_path.parent if engine.model_path is not None else None
    for location, sha256 in engine.external_data_sha256.items():
        if source is None:
            raise _NotApplicable("the model's external data has no file to copy")
        data = (source / location).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise _NotApplicable(f"external data {location} changed since the model was loaded")
        copy = folder / location
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(data)


#: (label agreement, Spearman) a quantized graph is held to against its reference: its
#: answers are not float32's, so no rounding bound applies.
QUANTIZED_RANK_BOUNDS = (0.9, 0.7)


def check_quantized(target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    """Quantized: label agreement and Spearman rank correlation against the reference."""
    assert target.rank_bounds is not None
    min_agreement, min_rank = target.rank_bounds
    ref, ours = (
        target.reference.score_samples(target.base_rows),
        target.candidate.score_samples(target.base_rows),
    )
    rank = float(stats.spearmanr(ref, ours).statistic)
    agreement = float(
        (
            target.reference.predict(target.base_rows) == target.candidate.predict(target.base_rows)
        ).mean()
    )
    how = f"Spearman >= {min_rank}, label agreement >= {min_agreement}"
    if rank < min_rank or agreement < min_agreement:
        raise Discrepancy(
            f"Spearman {rank:.4f} (bound {min_rank}), label agreement {agreement:.4f} "
            f"(bound {min_agreement})",
            rank,
            min_rank,
            how,
        )
    return _Tally(
        0.0,
        rank,
        min_rank,
        how,
        0,
        len(target.base_rows),
        note=f"ok: Spearman {rank:.4f}, label agreement {agreement:.4f} over "
        f"{len(target.base_rows)} data rows",
    )


Check = Callable[[ParityTarget, npt.NDArray[Any]], _Tally]
#: check name -> (function, methods reference and engine must answer, what it needs)
CHECKS: dict[str, tuple[Check, frozenset[str], str]] = {
    "label_exact": (check_labels, frozenset({"predict"}), "labels"),
    "decision_close": (check_decision, frozenset({"decision_function"}), ""),
    "score_close": (check_score, frozenset({"score_samples"}), ""),
    "sign_consistency": (check_sign, frozenset({"predict", "decision_function"}), ""),
    "batch_invariance": (check_batch_invariance, frozenset(), "a score"),
    "row_order": (check_row_order, frozenset(), "a score"),
    "dtype_float64": (check_dtype, frozenset(), "a score"),
    "errors_match": (check_errors_match, frozenset(), "non-finite"),
    "data_rows": (check_data_rows, frozenset(), "data"),
    "split_rows": (check_split_rows, frozenset(), "splits"),
    "score_bias": (check_score_bias, frozenset(), "derived"),
    "roundtrip": (check_roundtrip, frozenset(), "onnx"),
    "torch_eager": (check_eager, frozenset({"score_samples"}), "eager"),
    "quantized_rank": (check_quantized, frozenset({"score_samples", "predict"}), "quantized"),
}
_SCORES = frozenset({"score_samples", "decision_function"})
_QUANTIZED_CHECKS = ("quantized_rank", "batch_invariance", "row_order")


def check_plan(target: ParityTarget) -> list[tuple[str, str | None]]:
    """(check, reason it is skipped or None) for every check that applies to what the
    reference answers; checks for other kinds of target (torch eager, quantized) are left out."""
    ref, ours = target.reference.methods, target.candidate.methods
    plan: list[tuple[str, str | None]] = []
    for name, (_, methods, needs) in CHECKS.items():
        if not methods <= ref:
            continue
        if needs == "eager" and target.eager is None:
            continue
        if needs == "quantized" and target.rank_bounds is None:
            continue
        if needs == "splits" and (target.split_rows is None or not len(target.split_rows)):
            continue  # no tree ensemble on the input
        if target.rank_bounds is not None and name not in _QUANTIZED_CHECKS:
            continue  # a quantized model is held to rank bounds, not to score tolerances
        if needs in ("a score", "non-finite", "derived") and not ref & _SCORES:
            continue
        if needs == "derived" and not target.derived:
            continue  # a given rtol / atol holds each row; the shift test needs derived bounds
        reason = None
        missing = sorted(methods - ours)
        if needs in ("a score", "non-finite", "onnx", "derived") and not ref & ours & _SCORES:
            missing = sorted(ref & _SCORES)
        if missing:
            reason = (
                f"the engine cannot answer {' or '.join(missing)} (it answers {sorted(ours)}): "
                + _HINTS.get(missing[0], "")
            ).rstrip(": ")
        elif needs == "onnx" and not isinstance(target.candidate, OnnxEngine):
            reason = f"the engine is not an ONNX model ({type(target.candidate).__name__})"
        plan.append((name, reason))
    return plan


_HINTS = {
    "score_samples": "give the engine the reference's offset_ (score_samples = decision + offset) "
    "or export with a score_samples output",
    "decision_function": "give the engine the reference's offset_ "
    "(decision_function = score_samples - offset)",
}


def applicable_checks(target: ParityTarget) -> list[str]:
    """Checks chosen by capability: what reference and engine answer and what the target
    carries (the ones ``check_plan`` does not skip)."""
    return [name for name, reason in check_plan(target) if reason is None]


def run_check(
    name: str,
    target: ParityTarget,
    *,
    profile: str | None = None,
    known_gap: str | None = None,
) -> CheckOutcome:
    """Run one check with Hypothesis and report what it found; never raises for a finding.

    ``known_gap`` (the reason) makes the check a strict expected failure: xfail when it fails,
    xpass (a failure of the run: "known gap no longer reproduces") when it passes.
    """
    outcome = _run(name, target, profile_name(profile))
    if known_gap is None:
        return outcome
    if outcome.status == "skip":
        message = f"{outcome.message} (declared known gap: {known_gap})"
        return dataclasses.replace(outcome, message=message, known_gap=known_gap)
    status: Status = "xfail" if outcome.status == "fail" else "xpass"
    if status == "xfail":
        message = f"known gap ({known_gap}); found: {outcome.message}"
    else:
        message = f"known gap no longer reproduces: {known_gap}"
    return dataclasses.replace(outcome, status=status, message=message, known_gap=known_gap)


def _bound_text(target: ParityTarget, how: str) -> str:
    if target.tolerance is not None:
        tol = target.tolerance
        labels = f", labels exact={target.exact_labels}"
        return f"rtol={tol.rtol:g}, atol={tol.atol:g}{labels}" + (f"; {how}" if how else "")
    return how


def _run(name: str, target: ParityTarget, profile: str) -> CheckOutcome:
    if name not in CHECKS:
        raise KeyError(f"unknown check {name!r}; known: {sorted(CHECKS)}")
    skip = dict(check_plan(target)).get(name, f"{name} does not apply to this target")
    if skip is not None:
        return CheckOutcome(name, "skip", 0, None, "", skip, None)
    fn = CHECKS[name][0]
    needs = CHECKS[name][2]
    if needs in ("quantized", "data", "derived", "splits"):  # deterministic, fixed rows
        return _once(name, fn, target, target.split_rows if needs == "splits" else None)
    non_finite = needs == "non-finite"
    in_all = not target.isolate_non_finite
    strategy = input_rows(
        base=target.base_rows,
        thresholds=target.thresholds,
        allow_nan=non_finite or (in_all and target.accepts_nan),
        allow_inf=non_finite or (in_all and target.accepts_inf),
        dtype=np.float32,
        boundary=target.boundary_rows,
        input_bound=target.input_bound,
    )
    examples = 0
    worst = _Tally(ratio=-1.0)
    undefined = rows = 0
    rejected: Counter[str] = Counter()
    failing: dict[Any, Exception] = {}
    last: list[npt.NDArray[Any]] = []

    def prop(X: npt.NDArray[Any]) -> None:
        nonlocal examples, worst, undefined, rows
        key = _digest(X)
        if key in failing:  # hypothesis replays the failing example: the same finding
            raise failing[key]
        try:
            tally = _quietly(fn, target, X)
        except _NotApplicable as exc:
            rejected[str(exc)] += 1
            reject()
        except Exception as exc:
            failing[key] = exc
            last.append(X)
            raise
        examples += 1
        undefined += tally.undefined
        rows += tally.rows
        if tally.ratio > worst.ratio:
            worst = tally

    test: Callable[[], None] = given(X=strategy)(prop)
    if name in _AT_THE_BOUNDARY and target.boundary_rows is not None:
        for batch in _boundary_batches(target.boundary_rows, target.boundary_examples):
            test = example(X=batch)(test)  # every boundary row, not only the ones drawn
    chosen = profile_settings(profile)
    if target.max_examples is not None and target.max_examples < chosen.max_examples:
        chosen = settings(chosen, max_examples=target.max_examples)
    test = chosen(test)

    def outcome(status: Status, message: str, found: Exception | None = None) -> CheckOutcome:
        measured, bound_value, how = worst.measured, worst.bound, worst.how
        minimal = None
        if found is not None:
            if last:
                X, found = _reduce(fn, target, last[-1], found)
                minimal = np.asarray(X, dtype=np.float64).tolist()
            measured = getattr(found, "measured", None)
            bound_value = getattr(found, "bound", None)
            how = getattr(found, "how", "") or how
            message = _message(found)
        return CheckOutcome(
            name,
            status,
            examples,
            measured,
            _bound_text(target, how),
            message,
            minimal,
            bound_value,
            undefined,
            rows,
            sum(rejected.values()),
        )

    try:
        test()
    except Unsatisfiable:
        return outcome("skip", _no_example(rejected))
    except Exception as exc:  # a crash inside a check is a finding, never a traceback
        return outcome("fail", _message(exc), exc)
    if not examples:
        return outcome("skip", _no_example(rejected))
    note = f"ok: worst row at {max(worst.ratio, 0.0):.2g} of its bound over {rows} rows"
    if undefined:
        note += f"; {undefined} rows where the reference is undefined (not judged)"
    if rejected:
        reason, _ = rejected.most_common(1)[0]
        note += f"; {sum(rejected.values())} batches did not apply ({reason})"
    return outcome("pass", note)


#: Checks that also run, as explicit examples, on the rows at the decision boundary: a label
#: threshold moved by a little shows only there, and where every data row is an outlier the
#: boundary rows (found from the rows the model keeps) are the only normal rows checked.
_AT_THE_BOUNDARY = ("label_exact", "sign_consistency", "decision_close", "score_close")


def _boundary_batches(
    boundary: npt.NDArray[Any], rows: int = 128, batch: int = 16
) -> list[npt.NDArray[Any]]:
    """Up to ``rows`` boundary rows in batches: the first half as given (``check_pair`` gives
    the rows nearest the cut first: they flip under a cut moved by any amount), the other half
    evenly spread over the rest (rows further out, beyond the decision's bound, which
    label_exact judges)."""
    if not len(boundary):
        return []
    near, rest = boundary[: rows // 2], boundary[rows // 2 :]
    if len(rest):
        rest = rest[np.unique(np.linspace(0, len(rest) - 1, rows - len(near)).astype(int))]
    picked = np.concatenate([near, rest])
    return [
        np.ascontiguousarray(picked[i : i + batch], dtype=np.float32)
        for i in range(0, len(picked), batch)
    ]


def _quietly(fn: Check, target: ParityTarget, X: npt.NDArray[Any]) -> _Tally:
    # Extreme rows make NumPy warn (overflow, inf - inf) inside either engine: the answers
    # are compared, the warnings are not findings.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(target, X)


def _message(found: Exception) -> str:
    if isinstance(found, Discrepancy):
        return str(found)
    where = "the engine" if isinstance(found, EngineError) else "the check"
    return f"{where} raised {type(found).__name__}: {found}"


def _reduce(
    fn: Check, target: ParityTarget, X: npt.NDArray[Any], found: Exception
) -> tuple[npt.NDArray[Any], Exception]:
    """The failing row alone, if it fails alone (else the whole batch), and its finding."""
    row = getattr(found, "row", None)
    if row is None or len(X) == 1:
        return X, found
    alone = np.ascontiguousarray(X[row : row + 1])
    try:
        _quietly(fn, target, alone)
    except _NotApplicable:
        return X, found
    except Exception as exc:
        return alone, exc
    return X, found


def _no_example(rejected: Counter[str]) -> str:
    if not rejected:
        return "no applicable example was generated"
    reason, count = rejected.most_common(1)[0]
    return f"no applicable example in {sum(rejected.values())} tries ({count}: {reason})"


def _once(
    name: str, fn: Check, target: ParityTarget, rows: npt.NDArray[Any] | None = None
) -> CheckOutcome:
    """A deterministic check on ``rows`` (default the base rows, the data): one example, no
    generation."""
    X = np.ascontiguousarray(target.base_rows if rows is None else rows)
    try:
        tally = _quietly(fn, target, X)
    except _NotApplicable as exc:
        return CheckOutcome(name, "skip", 0, None, "", str(exc), None)
    except Discrepancy as exc:
        text = _bound_text(target, exc.how)
        minimal = None
        if exc.row is not None and exc.row < len(X):
            minimal = np.asarray(X[exc.row : exc.row + 1], dtype=np.float64).tolist()
        return CheckOutcome(
            name, "fail", 1, exc.measured, text, str(exc), minimal, exc.bound, 0, len(X)
        )
    except Exception as exc:  # a crash inside a check is a finding, never a traceback
        return CheckOutcome(name, "fail", 1, None, "", _message(exc), None, 0.0, 0, len(X))
    note = tally.note or (
        f"ok: worst row at {max(tally.ratio, 0.0):.2g} of its bound over {len(X)} data rows"
    )
    if tally.undefined:
        note += f"; {tally.undefined} rows where the reference is undefined (not judged)"
    return CheckOutcome(
        name,
        "pass",
        1,
        tally.measured,
        _bound_text(target, tally.how),
        note,
        None,
        tally.bound,
        tally.undefined,
        tally.rows,
    )
