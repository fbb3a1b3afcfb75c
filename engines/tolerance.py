"""How close an exported model must answer to its original."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "SAFETY_FACTOR",
    "SHIFT_ALPHA",
    "SHIFT_FACTOR",
    "BoundCheck",
    "Comparison",
    "RowBound",
    "ShiftCheck",
    "Tolerance",
    "check_within",
    "compare_outputs",
    "derive_bound",
    "fixed_bound",
    "float32_twin",
    "neighbour_ties",
    "on_the_steps",
    "shift_test",
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
        if not (0 <= self.rtol < np.inf and 0 <= self.atol < np.inf):  # NaN too
            raise ValueError(f"rtol and atol must be finite and >= 0, got {self.rtol}, {self.atol}")


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
    neighbours: npt.NDArray[np.float64] | None = None
    stepped: npt.NDArray[np.bool_] | None = None

    @property
    def rounding(self) -> npt.NDArray[np.float64]:
        """Per row, the rounding part of the noise: ``eps * condition * magnitude`` (no
        sensitivity); 0 under a given tolerance."""
        if self.tolerance is not None:
            return np.zeros(len(self.expected))
        with np.errstate(invalid="ignore", over="ignore"):
            size = np.where(np.isfinite(self.magnitude), self.magnitude, 0.0)
            return np.asarray(self.eps * self.condition * size, dtype=np.float64)

    @property
    def steps(self) -> npt.NDArray[np.bool_]:
        """Rows where the reference steps: one ulp of input moves its answer by more than
        sqrt(eps) of the answer's magnitude, and not the way a smooth function moves (up and
        down by about as much in opposite directions). A histogram's or an empirical CDF's
        answer on a row that sits on one of its edges, a tree's on a split threshold."""
        if self.neighbours is None or self.tolerance is not None or not len(self.neighbours):
            return np.zeros(len(self.expected), dtype=bool)
        with np.errstate(invalid="ignore", over="ignore"):
            up, down = self.neighbours[0] - self.expected, self.neighbours[1] - self.expected
            jump = np.nan_to_num(np.abs(self.neighbours - self.expected), nan=np.inf).max(axis=0)
            steep = jump > np.sqrt(self.eps) * np.nan_to_num(self.magnitude, posinf=np.inf)
            smooth = np.abs(up + down) <= 0.1 * jump + 2 * self.rounding
        return np.asarray(steep & ~smooth & np.isfinite(jump) & ~self.undefined, dtype=bool)

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
        if self.stepped is not None and self.stepped[row]:
            return (
                f"on a step of the reference: its answer on the row or on a one-ulp neighbour, "
                f"within {self.bound[row]:.2g} = {self.factor:g} x {self.precision} rounding "
                f"(eps {self.eps:.2g} x magnitude {self.magnitude[row]:.3g}"
                + (f" x conditioning {self.condition:.3g}" if self.condition > 1 else "")
                + ")"
            )
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
        neighbours=moved,
    )


def on_the_steps(bound: RowBound, actual: npt.ArrayLike) -> RowBound:
    """``bound`` with its step rows (``RowBound.steps``) held tighter: there the engine must
    give the reference's answer on the row or on one of its one-ulp neighbours (whichever is
    nearest to ``actual``) within ``factor`` x rounding, not within ``factor`` x the jump.
    On a step the reference has only those answers; a value between them is no rounding of
    either (a histogram bin's density moved by 1%, two columns swapped). Other rows unchanged.

    Example:
        >>> import numpy as np
        >>> X = np.zeros((1, 2), np.float32)
        >>> b = derive_bound(lambda X: np.where(X[:, 0] > 0, 10.0, 1.0), X)
        >>> bool(b.steps[0]), float(b.bound[0]) > 100  # 16 x a jump of 9
        (True, True)
        >>> tight = on_the_steps(b, [10.0])  # the answer one ulp up: a step, not a fault
        >>> float(tight.expected[0]), float(tight.bound[0]) < 1e-4
        (10.0, True)
    """
    steps = bound.steps
    if bound.neighbours is None or not steps.any():
        return dataclasses.replace(bound, stepped=steps)
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    answers = np.vstack([bound.expected, bound.neighbours])
    with np.errstate(invalid="ignore", over="ignore"):
        distance = np.nan_to_num(np.abs(answers - a), nan=np.inf)
    nearest = answers[np.argmin(distance, axis=0), np.arange(len(a))]
    return dataclasses.replace(
        bound,
        expected=np.where(steps, nearest, bound.expected),
        truth=np.where(steps, nearest, bound.truth),
        bound=np.where(steps, bound.factor * bound.rounding, bound.bound),
        stepped=steps,
    )


#: How many float32 eps of the answer's magnitude an engine's answers may sit, as a whole, to
#: one side of the reference's (measured on correct graphs: the median error of skl2onnx's
#: 300-tree IsolationForest is -2.4 eps, of every other zoo export within +-0.6;
#: docs/experiments/conformance_power.py).
SHIFT_FACTOR = 8.0
#: The sign test's false-alarm rate for ``shift_test``, all its subsets and both sides together.
SHIFT_ALPHA = 1e-6


@dataclasses.dataclass(frozen=True)
class ShiftCheck:
    """An engine's answers against the reference's as a whole: shifted to one side or not.

    ``rows`` judged (defined, finite); ``subset`` the rows (those with the smallest answers)
    the finding is about; ``beyond`` how many of them sit past the floor on the ``side``
    (+1 above, -1 below); ``p`` the sign test's p-value with its multiple-test correction;
    ``shift`` the median signed error on the subset, ``shift_eps`` it in eps of the answers'
    magnitude; ``floor`` the median floor on the subset.
    """

    output: str
    rows: int
    passed: bool
    applicable: bool
    subset: int
    beyond: int
    side: int
    p: float
    shift: float
    shift_eps: float
    floor: float
    factor: float
    alpha: float
    allowance: float = 0.0

    @property
    def how(self) -> str:
        own = (
            f" + {self.allowance:.2g} (the reference's own float32 bias)" if self.allowance else ""
        )
        return (
            f"a sign test (p < {self.alpha:g}, Bonferroni over the subsets and sides) that the "
            f"errors' median is beyond ({self.factor:g}{own}) x eps of the answer's magnitude"
        )


def shift_test(
    output: str,
    actual: npt.ArrayLike,
    bound: RowBound,
    *,
    factor: float = SHIFT_FACTOR,
    alpha: float = SHIFT_ALPHA,
    min_rows: int = 24,
    allowance: float = 0.0,
) -> ShiftCheck:
    """Whether ``actual`` sits, as a whole, to one side of the reference: a constant shift far
    below each row's bound (16 x the row's noise, which must hold the worst row of a noisy
    computation) is still plain when most rows agree on it.

    Each defined row's error (against the reference's float64 answer; on a step, against its
    nearest one-ulp answer, ``on_the_steps``) is compared with ``factor`` x eps x the row's
    magnitude, plus ``allowance`` eps (the reference's own float32 arithmetic's median
    error, where it sits to one side: an engine may be as biased as the reference computing
    in float32 is). Where no shift beyond that floor exists, at most half the rows lie past
    it on either side, whatever the errors' spread; a one-sided binomial sign test
    (``scipy.stats.binomtest``) asks whether more do. A constant shift shows on the rows whose
    floor it exceeds, the ones with the smallest answers: the test runs on the smallest
    eighth, quarter, half and all of the rows (at least ``min_rows`` each), both sides,
    Bonferroni-corrected. Not applicable under a given tolerance or with fewer than
    ``min_rows`` defined rows.
    """
    from scipy.stats import binomtest

    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    held = on_the_steps(bound, a)
    steps = held.stepped if held.stepped is not None else np.zeros(len(a), dtype=bool)
    reference = np.where(steps, held.expected, bound.truth)
    with np.errstate(invalid="ignore", over="ignore"):
        error = a - reference
        floor = (factor + abs(allowance)) * bound.eps * bound.magnitude
        usable = np.isfinite(error) & np.isfinite(floor) & ~bound.undefined & ~bound.beyond_range
    n = int(usable.sum())
    none = ShiftCheck(
        output, n, True, False, 0, 0, 0, 1.0, 0.0, 0.0, 0.0, factor, alpha, abs(allowance)
    )
    if bound.tolerance is not None or n < min_rows:
        return none
    order = np.argsort(bound.magnitude[usable], kind="stable")
    error, floor, size = error[usable][order], floor[usable][order], bound.magnitude[usable][order]
    sizes = sorted({k for k in (n // 8, n // 4, n // 2, n) if k >= min_rows})
    tests = 2 * len(sizes)
    best = none
    for k in sizes:
        for side in (1, -1):
            beyond = int((side * error[:k] > floor[:k]).sum())
            p = min(1.0, tests * binomtest(beyond, k, 0.5, alternative="greater").pvalue)
            if p < best.p or best.subset == 0:
                shift = float(np.median(error[:k]))
                best = ShiftCheck(
                    output,
                    n,
                    p >= alpha,
                    True,
                    k,
                    beyond,
                    side,
                    p,
                    shift,
                    _median_eps(error[:k], bound.eps * size[:k]),
                    float(np.median(floor[:k])),
                    factor,
                    alpha,
                    abs(allowance),
                )
    return best


def _median_eps(error: npt.NDArray[np.float64], ulp: npt.NDArray[np.float64]) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = error / ulp
    ratio = ratio[np.isfinite(ratio)]
    return float(np.median(ratio)) if len(ratio) else 0.0


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


def neighbour_ties(
    estimator: Any, X: npt.ArrayLike, *, precision: Any = np.float32, slack: float = 4.0
) -> npt.NDArray[np.bool_] | None:
    """Rows where a LocalOutlierFactor's answer is not defined in ``precision``: its k-th and
    (k+1)-th nearest neighbours lie within ``slack`` eps of the k-th distance of each other,
    so a graph computing distances in that precision may take either, and LOF's score
    depends on which (each neighbour's own density enters it; a k-th distance, as KNN
    scores, does not jump at a tie). None for other estimators (a pipeline's last step, or a
    PyOD detector's inner one, is looked at; the steps before it transform the rows).

    Example:
        >>> from sklearn.neighbors import LocalOutlierFactor
        >>> lof = LocalOutlierFactor(n_neighbors=1, novelty=True).fit([[0.0], [2.0], [9.0]])
        >>> neighbour_ties(lof, [[1.0], [1.5]]).tolist()  # 1.0 is as far from 0 as from 2
        [True, False]
    """
    steps = list(getattr(estimator, "steps", []))
    final, rows = (steps[-1][1] if steps else estimator), np.asarray(X, dtype=np.float64)
    for _, step in steps[:-1]:
        if not hasattr(step, "transform"):
            return None
        rows = np.asarray(step.transform(rows), dtype=np.float64)
    lof = next(
        (
            h
            for h in (final, getattr(final, "detector_", None))
            if type(h).__name__ == "LocalOutlierFactor" and hasattr(h, "n_neighbors_")
        ),
        None,
    )
    if lof is None or not len(rows):
        return None
    k = int(lof.n_neighbors_)
    if k + 1 > int(lof.n_samples_fit_):
        return np.zeros(len(rows), dtype=bool)
    finite = np.isfinite(rows).all(axis=1)
    ties = np.zeros(len(rows), dtype=bool)
    if finite.any():
        # the k-th neighbour's rivals: up to 8 more, those within the slack of its distance;
        # where the last one fetched is still a rival, others may lie past it: a tie
        wider = min(k + 8, int(lof.n_samples_fit_))
        with np.errstate(all="ignore"):
            distance, index = lof.kneighbors(rows[finite], n_neighbors=wider)
            window = slack * float(np.finfo(precision).eps) * distance[:, k : k + 1]
            rivals = np.abs(distance - distance[:, k - 1 : k]) <= window
        unseen = rivals[:, -1] & (wider < int(lof.n_samples_fit_))
        ties[finite] = rivals[:, k] & (unseen | ~_interchangeable(lof, index, rivals))
    return ties


def _interchangeable(
    lof: Any, index: npt.NDArray[Any], rivals: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Rows whose rival neighbours (``index`` where ``rivals``) give the same score whichever
    of them is the k-th: the same local reachability density and the same k-distance (copies
    of one training row, as in data with many duplicates). None where scikit-learn's fitted
    attributes are not there to tell."""
    density = getattr(lof, "_lrd", None)
    fitted = getattr(lof, "_distances_fit_X_", None)
    if density is None or fitted is None:
        return np.zeros(len(index), dtype=bool)
    same = np.ones(len(index), dtype=bool)
    for values in (np.asarray(density)[index], np.asarray(fitted)[:, -1][index]):
        high = np.where(rivals, values, -np.inf).max(axis=1)
        low = np.where(rivals, values, np.inf).min(axis=1)
        same &= high == low
    return same


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


def float32_answer(estimator: Any, method: str) -> Callable[[npt.NDArray[Any]], Any] | None:
    """``method`` of an estimator whose own code computes in float64 whatever it is given,
    computed in float32 from its formula; None for other estimators (their float32 twin,
    :func:`float32_twin`, shows their float32 noise).

    libsvm's OneClassSVM casts a float32 twin's arrays back to float64, so the twin showed no
    noise at all, while its decision (a sum of kernel terms that cancel down to far less than
    each) loses hundreds of eps of the answer in float32: a correct float32 graph failed.
    The decision is ``dual_coef_ @ K(support_vectors_, x) + intercept_``, score_samples that
    plus ``offset_``; a pipeline's steps before it are its float32 twin's.

    Example:
        >>> from sklearn.svm import OneClassSVM
        >>> X = np.random.default_rng(0).normal(size=(100, 3))
        >>> svm = OneClassSVM(kernel="poly").fit(X)
        >>> answer = float32_answer(svm, "decision_function")
        >>> got = answer(X[:5].astype(np.float32))
        >>> got.dtype, bool(np.allclose(got, svm.decision_function(X[:5]), atol=1e-4))
        (dtype('float32'), True)
    """
    from sklearn.svm import OneClassSVM

    steps = list(getattr(estimator, "steps", []))
    final = steps[-1][1] if steps else estimator
    if type(final) is not OneClassSVM or method not in ("decision_function", "score_samples"):
        return None
    if not isinstance(final.kernel, str) or final.kernel == "precomputed":
        return None
    before = None
    if len(steps) > 1:
        from sklearn.pipeline import Pipeline

        before = float32_twin(Pipeline(steps[:-1]))
        if before is None:
            return None
    f32 = np.float32
    support = np.asarray(final.support_vectors_, dtype=f32)
    dual = np.asarray(final.dual_coef_, dtype=f32).reshape(-1)
    intercept = f32(np.asarray(final.intercept_).reshape(-1)[0])
    shift = f32(final.offset_) if method == "score_samples" else f32(0.0)
    gamma, coef0, degree = f32(final._gamma), f32(final.coef0), int(final.degree)

    def answer(X: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        rows = np.asarray(X, dtype=f32)
        if before is not None:
            rows = np.asarray(before.transform(rows), dtype=f32)
        if final.kernel == "rbf":  # x - v first, as libsvm and onnxruntime's SVM kernel do
            squared = np.concatenate(
                [
                    np.square(chunk[:, None, :] - support[None, :, :]).sum(axis=2, dtype=f32)
                    for chunk in np.array_split(rows, max(1, len(rows) // 256))
                ]
            )
            kernel = np.exp(-gamma * squared)
        elif final.kernel == "linear":
            kernel = rows @ support.T
        elif final.kernel == "poly":
            kernel = (gamma * (rows @ support.T) + coef0) ** degree
        else:  # sigmoid
            kernel = np.tanh(gamma * (rows @ support.T) + coef0)
        decision: npt.NDArray[np.float32] = (kernel @ dual + intercept + shift).astype(f32)
        return decision

    return answer


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
