"""How close an exported model must answer to its original."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "SAFETY_FACTOR",
    "BoundCheck",
    "Comparison",
    "RowBound",
    "Tolerance",
    "check_within",
    "compare_outputs",
    "derive_bound",
    "fixed_bound",
    "float32_twin",
]


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Per-case bounds: label agreement (1.0 = exact) and rtol/atol for the two scores."""

    label_agreement: float = 1.0
    rtol: float = 1e-5
    atol: float = 1e-6

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_agreement <= 1.0:
            raise ValueError(f"label_agreement must be in [0, 1], got {self.label_agreement}")
        if self.rtol < 0 or self.atol < 0:
            raise ValueError(f"rtol and atol must be >= 0, got {self.rtol}, {self.atol}")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Measured agreement of one output against its reference."""

    output: str
    n_rows: int
    max_abs_err: float
    max_rel_err: float
    label_agreement: float | None
    passed: bool
    worst_row: int | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compare_outputs(
    output: str,
    actual: npt.ArrayLike,
    expected: npt.ArrayLike,
    tolerance: Tolerance,
) -> Comparison:
    """Compare one output; labels by agreement, scores by |a - e| <= atol + rtol * |e|.

    NaN must match NaN and infinities must match exactly.
    """
    a = np.asarray(actual).reshape(-1)
    e = np.asarray(expected).reshape(-1)
    n = len(e)
    if a.shape != e.shape:
        return Comparison(output, n, float("inf"), float("inf"), None, False, None)
    if n == 0:
        return Comparison(output, 0, 0.0, 0.0, 1.0 if output == "label" else None, True, None)
    if output == "label":
        agree = a == e
        ratio = float(agree.mean())
        worst = None if agree.all() else int(np.flatnonzero(~agree)[0])
        passed = ratio >= tolerance.label_agreement
        return Comparison(output, n, float((~agree).sum()), 1.0 - ratio, ratio, passed, worst)
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    same_special = (np.isnan(a64) & np.isnan(e64)) | (np.isinf(e64) & (a64 == e64))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same_special, 0.0, np.abs(a64 - e64))
        diff = np.where(np.isnan(diff), np.inf, diff)
        rel = diff / np.maximum(np.abs(e64), np.finfo(np.float64).tiny)
        excess = diff - (tolerance.atol + tolerance.rtol * np.abs(np.nan_to_num(e64)))
    worst = int(np.argmax(excess))
    return Comparison(
        output,
        n,
        float(diff.max()),
        float(np.where(diff == 0, 0.0, rel).max()),
        None,
        bool((excess <= 0).all()),
        worst if excess[worst] > 0 else None,
    )


#: How many times its own numerical noise an engine may stray from the reference (measured on
#: correct float32 graphs: skl2onnx IsolationForest, OneClassSVM, GaussianMixture, LOF and this
#: project's exports stay within 3x; docs/experiments/conformance_power.py).
SAFETY_FACTOR = 16.0


@dataclasses.dataclass(frozen=True)
class RowBound:
    """Per-row bounds on one output of the reference on a batch, and how they were derived.

    Derived (``tolerance`` None): ``noise = eps * magnitude + sensitivity`` per row, where ``eps``
    is the machine epsilon of the precision the engine computes in, ``magnitude`` is
    ``max(|answer| + |offset|, typical)`` (the size of the quantities the answer is computed
    from: the answer and its offset, and no less than the typical size of answers on
    representative rows, for answers near 0 computed from larger ones) and ``sensitivity`` is
    how far the reference's answer moves when the row moves by one ulp of that precision (all
    up, all down, alternating). ``condition`` (>= 1) multiplies ``eps * magnitude`` where the
    reference's own arithmetic in that precision strays further than one eps of the answer
    (a mixture's log-likelihood from expanded squared distances, a distance-based score):
    measured on representative rows by :func:`float32_twin`. ``bound = factor * noise``.

    ``undefined`` marks rows where the reference has no answer to hold an engine to in that
    precision: its answer there is NaN, jumps to a non-finite value within one ulp, or differs
    from its own float64 answer beyond the bound (an artefact of its float32 arithmetic, e.g.
    an overflow). ``beyond_range`` marks rows holding a value whose square overflows the
    precision: an engine that disagrees there is not judged (its intermediates overflow).
    With a fixed ``tolerance``: ``bound = atol + rtol * |answer|``, nothing is undefined, and
    rows are beyond_range as above when the rows are given (``fixed_bound``).
    """

    expected: npt.NDArray[np.float64]
    truth: npt.NDArray[np.float64]
    bound: npt.NDArray[np.float64]
    noise: npt.NDArray[np.float64]
    magnitude: npt.NDArray[np.float64]
    sensitivity: npt.NDArray[np.float64]
    undefined: npt.NDArray[np.bool_]
    beyond_range: npt.NDArray[np.bool_]
    eps: float
    factor: float
    precision: str
    tolerance: Tolerance | None = None
    condition: float = 1.0

    def describe(self, row: int | None = None) -> str:
        """How the bound on ``row`` (default: the loosest row) was derived, in one line."""
        if row is None:
            finite = np.where(np.isfinite(self.bound), self.bound, -np.inf)
            row = int(np.argmax(finite)) if len(finite) else 0
        if not len(self.bound):
            return "no rows"
        if self.tolerance is not None:
            t = self.tolerance
            return f"bound {self.bound[row]:.2g} = atol {t.atol:g} + rtol {t.rtol:g} x |reference|"
        parts = f"eps {self.eps:.2g} x magnitude {self.magnitude[row]:.3g}"
        if self.condition > 1:
            parts += f" x conditioning {self.condition:.3g}"
        if self.sensitivity[row] > 0:
            parts += f" + one-ulp sensitivity {self.sensitivity[row]:.2g}"
        return (
            f"bound {self.bound[row]:.2g} = {self.factor:g} x {self.precision} noise of the "
            f"reference on this row ({self.noise[row]:.2g} = {parts})"
        )


@dataclasses.dataclass(frozen=True)
class BoundCheck:
    """An engine's answers held to a RowBound: the row closest to (or beyond) its bound."""

    output: str
    n_rows: int
    passed: bool
    row: int | None
    error: float
    bound: float
    ratio: float
    max_abs_err: float
    undefined_rows: int
    failing_rows: int
    how: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _perturbed(X: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
    """X moved by one ulp of its dtype: all up, all down, alternating by column (finite only)."""
    up_to = np.array(np.inf, dtype=X.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        up, down = np.nextafter(X, up_to), np.nextafter(X, -up_to)
    up, down = np.where(np.isfinite(up), up, X), np.where(np.isfinite(down), down, X)
    alternating = np.where(np.arange(X.shape[1]) % 2 == 0, up, down)
    return [up, down, alternating]


def _agree(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], bound: Any) -> Any:
    """a and b agree row by row: within the bound, or the same NaN / infinity."""
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= bound
    return close | (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))


def beyond_range(X: npt.ArrayLike, precision: Any = np.float32) -> npt.NDArray[np.bool_]:
    """Rows with a finite value whose square overflows ``precision`` (|x| > sqrt(max)): a
    distance or a variance computed in that precision is infinite there, so an infinite
    answer and a finite one may both be right. float64 arithmetic has no such rows here."""
    work = np.dtype(precision)
    rows = np.asarray(X)
    n = len(rows)
    if work != np.float32 or not n:
        return np.zeros(n, dtype=bool)
    finite = np.where(np.isfinite(rows), rows, 0).reshape(n, -1)
    return np.asarray((np.abs(finite) > np.sqrt(np.finfo(np.float32).max)).any(axis=1), dtype=bool)


def derive_bound(
    answer: Callable[[npt.NDArray[Any]], npt.ArrayLike],
    X: npt.ArrayLike,
    *,
    input_dtype: Any = np.float32,
    precision: Any = np.float32,
    offset: float | None = None,
    typical: float = 0.0,
    factor: float = SAFETY_FACTOR,
    condition: float = 1.0,
) -> RowBound:
    """Bounds on ``answer(X)`` derived from the reference's own numerical noise on these rows.

    ``answer`` is the reference (e.g. ``estimator.score_samples``); ``input_dtype`` is what the
    engine under test takes (the reference answers the rows as the engine sees them) and
    ``precision`` what it computes in; ``offset`` the reference's (decision = score - offset)
    and ``typical`` the typical size of its answers (median |answer| on representative rows);
    ``condition`` how many eps of the answer the reference's own arithmetic in ``precision``
    strays on representative rows (at least 1; see :func:`float32_twin`).
    Two reference calls: the rows and their one-ulp neighbours stacked, and the rows in float64
    (skipped when the engine takes float64).

    Example:
        >>> import numpy as np
        >>> b = derive_bound(lambda X: X.sum(axis=1), np.ones((2, 3), np.float32))
        >>> b.describe(0)  # doctest: +ELLIPSIS
        'bound 1.3e-05 = 16 x float32 noise of the reference on this row (8.3e-07 = ...)'
    """
    if factor <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    if not condition >= 1:
        raise ValueError(f"condition must be >= 1, got {condition}")
    in_dtype, work = np.dtype(input_dtype), np.dtype(precision)
    with np.errstate(over="ignore"):
        seen = np.asarray(X).astype(in_dtype)
    n = len(seen)
    neighbours = [p.astype(in_dtype) for p in _perturbed(seen.astype(work))]
    out = np.asarray(answer(np.concatenate([seen, *neighbours])), dtype=np.float64).reshape(-1)
    expected, moved = out[:n], out[n:].reshape(len(neighbours), n)
    truth = (
        expected
        if in_dtype == np.float64
        else np.asarray(answer(seen.astype(np.float64)), dtype=np.float64).reshape(-1)
    )
    with np.errstate(invalid="ignore", over="ignore"):
        jump = np.where(_agree(moved, expected, 0.0), 0.0, np.abs(moved - expected))
        sensitivity = np.where(np.isnan(jump), np.inf, jump).max(axis=0)
        magnitude = np.maximum(np.abs(expected) + abs(offset or 0.0), abs(typical))
        eps = float(np.finfo(work).eps)
        noise = eps * condition * np.where(np.isfinite(magnitude), magnitude, 0.0) + sensitivity
        bound = factor * noise
    undefined = np.isnan(expected) | ~np.isfinite(sensitivity) | ~_agree(expected, truth, bound)
    beyond = beyond_range(seen, work)
    return RowBound(
        expected,
        truth,
        bound,
        noise,
        magnitude,
        sensitivity,
        undefined,
        beyond,
        eps,
        factor,
        work.name,
        condition=condition,
    )


def _cast_fitted(obj: Any, depth: int = 0) -> int:
    """Cast ``obj``'s float64 fitted arrays (attributes ending in ``_``) to float32 in place,
    recursing into nested estimators (pipeline steps, inner detectors); how many were cast."""
    if depth > 3 or not hasattr(obj, "__dict__"):
        return 0
    cast = 0
    for name, value in list(vars(obj).items()):
        if isinstance(value, np.ndarray) and value.dtype == np.float64 and name.endswith("_"):
            setattr(obj, name, value.astype(np.float32))
            cast += 1
        elif hasattr(value, "get_params") and hasattr(value, "fit"):
            cast += _cast_fitted(value, depth + 1)
        elif name == "steps" and isinstance(value, list):
            cast += sum(_cast_fitted(step, depth + 1) for _, step in value)
    return cast


def float32_twin(estimator: Any) -> Any | None:
    """A deep copy of a fitted estimator whose float64 fitted arrays are float32, or None when
    it has none: fed float32 rows, NumPy then computes in float32 what the estimator computes,
    and its distance from the original's float64 answers is the reference's own float32 noise
    (a GaussianMixture's expanded squared distances lose ~200 eps of the answer; a tree
    ensemble, whose thresholds are compared not computed, loses none).

    Example:
        >>> from sklearn.mixture import GaussianMixture
        >>> X = np.random.default_rng(0).normal(size=(50, 3))
        >>> float32_twin(GaussianMixture(2, random_state=0).fit(X)).means_.dtype
        dtype('float32')
    """
    import copy

    twin = copy.deepcopy(estimator)
    try:
        return twin if _cast_fitted(twin) else None
    except (AttributeError, TypeError, ValueError):  # a read-only or validated attribute
        return None


def fixed_bound(
    expected: npt.ArrayLike, tolerance: Tolerance, X: npt.ArrayLike | None = None
) -> RowBound:
    """``atol + rtol * |expected|`` per row: a given tolerance as a RowBound. With the rows
    ``X`` (as the reference saw them), disagreement on rows ``beyond_range`` of their dtype is
    counted, not judged, as under ``derive_bound``."""
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        bound = tolerance.atol + tolerance.rtol * np.abs(np.nan_to_num(e))
    none = np.zeros(len(e), dtype=bool)
    zeros = np.zeros(len(e))
    beyond = none
    if X is not None:
        rows = np.asarray(X)
        beyond = beyond_range(rows, rows.dtype if rows.dtype == np.float32 else np.float64)
    return RowBound(
        e, e, bound, zeros, np.abs(e), zeros, none, beyond, 0.0, 1.0, "given", tolerance
    )


def check_within(output: str, actual: npt.ArrayLike, bound: RowBound) -> BoundCheck:
    """Hold ``actual`` to ``bound``: NaN must match NaN and infinities match exactly, other
    rows must be within their bound; undefined rows (and disagreeing rows beyond the
    precision's range) are counted, not judged."""
    a = np.asarray(actual).reshape(-1).astype(np.float64)
    e = bound.expected
    n = len(e)
    if a.shape != e.shape:
        return BoundCheck(
            output, n, False, None, np.inf, 0.0, np.inf, np.inf, 0, n, "shapes differ"
        )
    if n == 0:
        return BoundCheck(output, 0, True, None, 0.0, 0.0, 0.0, 0.0, 0, 0, "no rows")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        err = np.where(_agree(a, e, 0.0), 0.0, np.abs(a - e))
        err = np.where(np.isnan(err), np.inf, err)
        beyond = bound.beyond_range & (err > bound.bound)
        undefined = bound.undefined | beyond
        ratio = np.where(undefined, 0.0, err / np.maximum(bound.bound, np.finfo(np.float64).tiny))
        ratio = np.where(undefined | (err == 0), 0.0, ratio)
    row = int(np.argmax(ratio))
    failing = int((ratio > 1).sum())
    judged = np.where(undefined, 0.0, err)
    return BoundCheck(
        output,
        n,
        failing == 0,
        row,
        float(err[row]),
        float(bound.bound[row]),
        float(ratio[row]),
        float(judged.max()),
        int(undefined.sum()),
        failing,
        bound.describe(row),
    )
