"""Bounds derived from the reference's own numerical noise, and the rows the strategies draw."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from engines.tolerance import (
    SAFETY_FACTOR,
    SHIFT_ALPHA,
    Tolerance,
    check_within,
    derive_bound,
    fixed_bound,
    on_the_steps,
    shift_test,
)
from harness.checks.strategies import boundary_rows, input_box, input_rows

EPS32 = float(np.finfo(np.float32).eps)


def mean_abs(X: Any) -> Any:
    return -np.abs(np.asarray(X, dtype=np.float64)).mean(axis=1)


def test_bound_is_float32_noise_times_the_safety_factor() -> None:
    X = np.array([[1.0, -2.0, 3.0], [0.5, 0.5, 0.5]], dtype=np.float32)
    bound = derive_bound(mean_abs, X, offset=0.5)
    magnitude = np.abs(mean_abs(X)) + 0.5
    assert np.allclose(bound.magnitude, magnitude)
    # one ulp of the inputs moves -mean|x| by about eps * |x| / 3: the sensitivity term
    assert np.all(bound.sensitivity > 0)
    assert np.all(bound.sensitivity < 2 * EPS32 * magnitude)
    assert np.allclose(bound.bound, SAFETY_FACTOR * (EPS32 * magnitude + bound.sensitivity))
    assert not bound.undefined.any()
    text = bound.describe(0)
    assert text.startswith(f"bound {bound.bound[0]:.2g} = 16 x float32 noise of the reference")
    assert "magnitude" in text
    assert "sensitivity" in text


def test_a_float32_answer_passes_and_a_shift_of_1e4_fails() -> None:
    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    bound = derive_bound(mean_abs, X)
    float32_answer = mean_abs(X).astype(np.float32)
    assert check_within("score_samples", float32_answer, bound).passed
    shifted = check_within("score_samples", float32_answer + 1e-4, bound)
    assert not shifted.passed
    assert shifted.failing_rows == 50
    assert shifted.error == pytest.approx(1e-4, rel=1e-2)
    assert shifted.ratio > 10


def test_a_jump_within_one_ulp_widens_that_row_only() -> None:
    """A tree split at the row: the reference's answer jumps between float32 neighbours."""
    threshold = np.float32(0.3)

    def step(X: Any) -> Any:
        return np.where(np.asarray(X)[:, 0] <= threshold, -0.4, -0.6)

    X = np.array([[threshold, 0.0], [0.1, 0.0]], dtype=np.float32)
    bound = derive_bound(step, X)
    assert bound.sensitivity[0] == pytest.approx(0.2)
    assert bound.sensitivity[1] == 0
    # either side of the split is within the bound on that row; not on the other row
    assert check_within("decision_function", np.array([-0.6, -0.4]), bound).passed
    assert not check_within("decision_function", np.array([-0.6, -0.6]), bound).passed


def test_float32_overflow_of_the_reference_is_undefined_not_a_failure() -> None:
    """The reference computes in the input's dtype: float32 overflows where float64 does not."""

    def scaled(X: Any) -> Any:
        X = np.asarray(X)
        with np.errstate(over="ignore"):
            return (X * X.dtype.type(1e10)).sum(axis=1)

    X = np.array([[3e38, 1.0], [1.0, 2.0]], dtype=np.float32)
    bound = derive_bound(scaled, X)
    assert bound.undefined.tolist() == [True, False]
    assert np.isinf(bound.expected[0])
    assert np.isfinite(bound.truth[0])
    answer = np.array([123.0, scaled(X.astype(np.float64))[1]])
    result = check_within("score_samples", answer, bound)
    assert result.passed
    assert result.undefined_rows == 1


def test_rows_beyond_float32_range_excuse_only_disagreement() -> None:
    X = np.array([[1e30, 0.0], [1.0, 0.0]], dtype=np.float32)
    bound = derive_bound(mean_abs, X)
    assert bound.beyond_range.tolist() == [True, False]
    agree = check_within("score_samples", mean_abs(X), bound)
    assert agree.passed
    assert agree.undefined_rows == 0
    overflowed = check_within("score_samples", np.array([-np.inf, mean_abs(X)[1]]), bound)
    assert overflowed.passed
    assert overflowed.undefined_rows == 1


def test_nan_must_match_nan_and_infinities_exactly() -> None:
    bound = fixed_bound(np.array([np.nan, np.inf, 1.0]), Tolerance(rtol=0.0, atol=1e-6))
    assert check_within("score_samples", np.array([np.nan, np.inf, 1.0]), bound).passed
    assert not check_within("score_samples", np.array([0.0, np.inf, 1.0]), bound).passed
    assert not check_within("score_samples", np.array([np.nan, -np.inf, 1.0]), bound).passed
    assert "atol 1e-06 + rtol 0" in bound.describe(2)


def test_a_given_tolerance_excuses_disagreement_beyond_float32_range_only() -> None:
    # A float32 reference overflowed (inf) where a float64 graph answered 3.9e76 (PyOD GMM on
    # a row near float32's largest value): neither is wrong, the row is counted, not judged.
    X = np.array([[3e38, 0.0], [1.0, 0.0]], dtype=np.float32)
    bound = fixed_bound(np.array([np.inf, 1.0]), Tolerance(rtol=1e-3, atol=1e-5), X)
    assert bound.beyond_range.tolist() == [True, False]
    result = check_within("decision_function", np.array([3.9e76, 1.0]), bound)
    assert result.passed
    assert result.undefined_rows == 1
    assert not check_within("decision_function", np.array([3.9e76, 2.0]), bound).passed
    # float64 rows (a float64 reference) and no rows at all: every row is judged.
    for rows in (X.astype(np.float64), None):
        judged = fixed_bound(np.array([np.inf, 1.0]), Tolerance(rtol=1e-3, atol=1e-5), rows)
        assert not check_within("decision_function", np.array([3.9e76, 1.0]), judged).passed


def test_float64_engines_are_held_to_float64_noise() -> None:
    X = np.random.default_rng(1).normal(size=(10, 3))
    bound = derive_bound(mean_abs, X, input_dtype=np.float64, precision=np.float64)
    assert bound.eps == np.finfo(np.float64).eps
    assert not check_within("score_samples", mean_abs(X).astype(np.float32), bound).passed


def test_factor_must_be_positive() -> None:
    with pytest.raises(ValueError, match="factor"):
        derive_bound(mean_abs, np.ones((1, 2)), factor=0)


@settings(max_examples=30, deadline=None, database=None)
@given(data=st.data())
def test_input_bound_keeps_finite_values_in_the_box(data: st.DataObject) -> None:
    base = np.array([[0.0, 10.0, 5.0], [1.0, 20.0, 5.0]], dtype=np.float32)
    X = data.draw(input_rows(base=base, input_bound=2.0, allow_nan=True))
    low, high = input_box(base, 2.0)
    assert low.tolist() == [-2.0, -10.0, -5.0]
    assert high.tolist() == [3.0, 40.0, 15.0]
    finite = np.isfinite(X)
    assert np.all((low <= X) | ~finite)
    assert np.all((high >= X) | ~finite)


def test_input_bound_is_validated() -> None:
    with pytest.raises(ValueError, match="input_bound"):
        input_box(np.ones((2, 2)), -1.0)


def test_boundary_rows_straddle_the_decision() -> None:
    X = np.random.default_rng(2).normal(size=(100, 2)).astype(np.float32)

    def decision(Z: Any) -> Any:
        return 1.5 - np.abs(np.asarray(Z, dtype=np.float64)).max(axis=1)

    rows = boundary_rows(decision, X, pairs=10, steps=24)
    d = decision(rows)
    assert rows.dtype == np.float32
    assert np.all(np.diff(np.abs(d)) >= 0)  # the nearest the boundary first
    assert (d[:20] >= 0).any()  # segments' last pairs: rows on either side
    assert (d[:20] < 0).any()
    assert np.abs(d[:20]).max() < 1e-5  # bisected down to the boundary
    # the probes kept cover the decades from 1e-7 to 1e-2 of the decision's scale (~1)
    probes = np.abs(d[20:])
    assert np.histogram(np.log10(probes), [-5, -4, -3, -2])[0].min() > 0
    assert probes.max() < 0.02


def test_boundary_rows_push_outwards_when_no_row_is_anomalous() -> None:
    X = np.random.default_rng(3).normal(size=(50, 2)).astype(np.float32) * 0.1

    def decision(Z: Any) -> Any:
        return 1.0 - np.abs(np.asarray(Z, dtype=np.float64)).max(axis=1)

    rows = boundary_rows(decision, X, pairs=4)
    assert len(rows) > 8
    assert np.abs(decision(rows[:8])).max() < 1e-3
    assert len(boundary_rows(lambda Z: np.ones(len(Z)), X)) == 0  # never turns: none


def test_boundary_rows_are_drawn() -> None:
    base = np.zeros((3, 2), dtype=np.float32)
    boundary = np.full((4, 2), 7.0, dtype=np.float32)
    drawn = find(
        input_rows(base=base, boundary=boundary),
        lambda X: bool((X == 7).all(axis=1).any()),
        settings=settings(database=None, derandomize=True),
    )
    assert (drawn == 7).all(axis=1).any()
    with pytest.raises(ValueError, match="columns"):
        find(input_rows(base=base, boundary=np.zeros((2, 3))), lambda X: True)


def test_the_typical_answer_is_a_floor_for_answers_near_zero() -> None:
    X = np.array([[1e-3, 0.0], [5.0, 5.0]], dtype=np.float32)
    bound = derive_bound(mean_abs, X, typical=2.0)
    assert bound.magnitude.tolist() == pytest.approx([2.0, 5.0])


def test_conditioning_widens_the_noise_and_is_described() -> None:
    X = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    plain, widened = derive_bound(mean_abs, X), derive_bound(mean_abs, X, condition=30.0)
    assert np.allclose(
        widened.noise - widened.sensitivity, 30.0 * (plain.noise - plain.sensitivity)
    )
    assert "x conditioning 30" in widened.describe(0)
    assert "conditioning" not in plain.describe(0)
    with pytest.raises(ValueError, match="condition must be >= 1"):
        derive_bound(mean_abs, X, condition=0.5)


def test_float32_twin_casts_fitted_arrays_of_nested_estimators_only() -> None:
    from sklearn.mixture import GaussianMixture
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from engines.tolerance import float32_twin

    X = np.random.default_rng(2).normal(size=(80, 3))
    pipe = make_pipeline(StandardScaler(), GaussianMixture(2, random_state=0)).fit(X)
    twin = float32_twin(pipe)
    assert twin is not None
    assert twin[-1].means_.dtype == np.float32
    assert twin[0].scale_.dtype == np.float32
    assert pipe[-1].means_.dtype == np.float64  # the original is untouched
    assert float32_twin(GaussianMixture(2).fit(X.astype(np.float32))) is None  # nothing to cast


def test_the_reference_float32_noise_sets_the_conditioning() -> None:
    """A mixture fitted on float32 data scores float32 rows in float32 (its log-likelihood
    terms cancel): the bound grows by what that costs on the base rows, so a correct float32
    graph passes, while a tree ensemble, which compares and does not compute, keeps 1."""
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import GaussianMixture

    from engines import SklearnEngine
    from harness.checks.parity import ParityTarget

    rng = np.random.default_rng(3)
    X = (rng.integers(0, 17, size=(300, 16)) * rng.uniform(0.5, 1, size=16)).astype(np.float32)
    mixture = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    reference = SklearnEngine(mixture, collect_metrics=False)
    target = ParityTarget(reference=reference, candidate=reference, base_rows=X[:100])
    condition = target.conditioning("score_samples")
    rows32 = X[:100]
    own = np.abs(mixture.score_samples(rows32) - mixture.score_samples(rows32.astype(np.float64)))
    scale = EPS32 * np.maximum(
        np.abs(mixture.score_samples(rows32.astype(np.float64))),
        target.typical("score_samples"),
    )
    assert condition == pytest.approx(max(1.0, float((own / scale).max())))
    assert condition > 1
    forest = IsolationForest(n_estimators=10, random_state=0).fit(X)
    trees = ParityTarget(
        reference=SklearnEngine(forest, collect_metrics=False),
        candidate=reference,
        base_rows=X[:100],
    )
    assert trees.conditioning("score_samples") == 1.0


def steps_of(X: Any) -> Any:
    """A histogram-like answer: 1 below 0.5 in column 0, 10 from it on (a step at 0.5)."""
    return np.where(np.asarray(X)[:, 0] >= 0.5, 10.0, 1.0)


def test_a_step_row_is_held_to_one_of_the_references_answers() -> None:
    X = np.array([[0.5, 0.0], [0.2, 0.0]], dtype=np.float32)  # row 0 on the edge
    bound = derive_bound(steps_of, X)
    assert bound.steps.tolist() == [True, False]
    assert bound.bound[0] > 100  # 16 x the jump of 9: a value between the steps would pass
    below = on_the_steps(bound, [1.0, 1.0])  # the answer one ulp down: the other step
    assert below.expected.tolist() == [1.0, 1.0]
    assert below.bound[0] < 1e-4
    assert check_within("score_samples", [1.0, 1.0], below).passed
    between = on_the_steps(bound, [9.5, 1.0])  # no rounding of either answer
    result = check_within("score_samples", [9.5, 1.0], between)
    assert not result.passed
    assert result.row == 0
    assert "on a step of the reference" in result.how
    assert on_the_steps(bound, [1.0, 1.0]).bound[1] == bound.bound[1]  # other rows unchanged


def test_a_steep_smooth_answer_is_not_a_step() -> None:
    X = np.array([[0.3, 0.0]], dtype=np.float32)
    bound = derive_bound(lambda Z: 1e6 * (np.asarray(Z, np.float64)[:, 0] - 0.3) + 1.0, X)
    assert bound.sensitivity[0] > np.sqrt(EPS32) * bound.magnitude[0]  # steep
    assert not bound.steps.any()  # but up and down move it alike: smooth
    assert not fixed_bound([1.0], Tolerance()).steps.any()


def noisy_rows(n: int, seed: int = 0) -> tuple[Any, Any, Any]:
    """Rows, a bound with conditioning 30 (a noisy float32 computation), and the truth."""
    X = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    bound = derive_bound(mean_abs, X, condition=30.0)
    return X, bound, bound.truth


def test_a_constant_shift_below_every_rows_bound_is_found_by_the_shift_test() -> None:
    _, bound, truth = noisy_rows(200)
    ulp = EPS32 * bound.magnitude
    noise = np.random.default_rng(1).uniform(-30, 30, len(truth)) * ulp
    shifted = truth + noise + 20 * ulp  # 20 eps: far inside 16 x 30 eps per row
    assert check_within("score_samples", shifted, bound).passed
    found = shift_test("score_samples", shifted, bound)
    assert found.applicable
    assert not found.passed
    assert found.side == 1
    assert found.p < SHIFT_ALPHA
    assert found.shift_eps == pytest.approx(20, abs=6)
    assert "sign test" in found.how
    below = shift_test("score_samples", truth + noise - 20 * ulp, bound)
    assert not below.passed
    assert below.side == -1


def test_balanced_noise_and_a_small_bias_pass_the_shift_test() -> None:
    _, bound, truth = noisy_rows(200)
    ulp = EPS32 * bound.magnitude
    rng = np.random.default_rng(2)
    assert shift_test("s", truth + rng.uniform(-60, 60, len(truth)) * ulp, bound).passed
    biased = truth + (rng.uniform(-1, 1, len(truth)) - 2.4) * ulp  # skl2onnx forest: -2.4 eps
    found = shift_test("s", biased, bound)
    assert found.passed
    assert found.applicable


def test_the_shift_test_needs_rows_and_derived_bounds() -> None:
    _, bound, truth = noisy_rows(20)
    few = shift_test("s", truth + 1e-3, bound)
    assert not few.applicable
    assert few.passed
    given = fixed_bound(truth, Tolerance(rtol=1e-3))
    assert not shift_test("s", truth + 1e-4, given).applicable


def test_the_references_own_float32_bias_is_allowed() -> None:
    """A Mahalanobis distance in float32 sits ~12 eps below the float64 one (PyOD's MCD on
    breast cancer): an engine may be as biased as the reference computing in float32."""
    _, bound, truth = noisy_rows(200)
    ulp = EPS32 * bound.magnitude
    biased = truth + (np.random.default_rng(3).uniform(-4, 4, len(truth)) - 12) * ulp
    assert not shift_test("s", biased, bound).passed
    allowed = shift_test("s", biased, bound, allowance=12.0)
    assert allowed.passed
    assert "(8 + 12 (the reference's own float32 bias)) x eps" in allowed.how


def test_neighbour_ties_of_a_lof_behind_a_scaler_and_inside_pyod() -> None:
    from pyod.models.lof import LOF
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from engines.tolerance import neighbour_ties

    # (0, 0) and (2, 0) differ in their own k-distance (2 and 0.5): which one is the row's
    # neighbour changes its score
    train = np.array([[0.0, 0.0], [2.0, 0.0], [2.5, 0.0], [9.0, 5.0]])
    rows = np.array([[1.0, 0.0], [1.6, 0.0]])  # 1.0: as far from 0 as from 2 (k = 1)
    piped = make_pipeline(StandardScaler(), LocalOutlierFactor(n_neighbors=1, novelty=True))
    assert neighbour_ties(piped.fit(train), rows).tolist() == [True, False]
    pyod = LOF(n_neighbors=1).fit(train)
    assert neighbour_ties(pyod, rows).tolist() == [True, False]
    assert neighbour_ties(IsolationForest(n_estimators=3).fit(train), rows) is None
    with_nan = neighbour_ties(piped, np.array([[np.nan, 0.0], [1.0, 0.0]]))
    assert with_nan.tolist() == [False, True]  # a row with NaN is errors_match's business


def test_a_tie_between_copies_of_one_training_row_is_no_tie() -> None:
    # data with many duplicates: a row whose k-th and (k+1)-th neighbours are copies of one
    # training row was "undefined", and a moved training value hid behind 1,661 such rows
    from sklearn.neighbors import LocalOutlierFactor

    from engines.tolerance import neighbour_ties

    train = np.array([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [2.5, 0.0], [9.0, 5.0]])
    lof = LocalOutlierFactor(n_neighbors=1, novelty=True).fit(train)
    # -0.5: its nearest two are the copies of (0, 0); 1.0: as far from them as from (2, 0)
    assert neighbour_ties(lof, np.array([[-0.5, 0.0], [1.0, 0.0]])).tolist() == [False, True]


def test_a_rival_past_the_copies_looked_at_keeps_the_tie() -> None:
    # 20 copies of A at the k-th distance and, past them, B as far: the copies alone looked
    # interchangeable, and a graph that took B was judged (4e8 off)
    from sklearn.neighbors import LocalOutlierFactor

    from engines.tolerance import neighbour_ties

    rng = np.random.default_rng(0)
    train = np.vstack(
        [[[0.0, 1.0 + 1e-9]], np.tile([[1.0, 0.0]], (20, 1)), rng.normal(9, 1, (30, 2))]
    )
    lof = LocalOutlierFactor(n_neighbors=5, novelty=True, metric="manhattan").fit(train)
    assert neighbour_ties(lof, np.array([[0.0, 0.0]])).tolist() == [True]


def test_boundary_rows_recombine_features_where_the_decision_jumps_over_the_cut() -> None:
    # a histogram-like decision: a sum of per-feature steps that jumps by >= 0.69 at every
    # edge, so bisection ends a jump away from the cut; moving features of the nearest rows
    # to the data's own values lands nearer on either side
    X = np.random.default_rng(3).uniform(size=(200, 8)).astype(np.float32)
    weights = np.log(np.arange(2, 10))

    def decision(Z: Any) -> Any:
        return 17.3 - np.floor(4 * np.asarray(Z, dtype=np.float64)) @ weights

    scale = float(np.median(np.abs(decision(X))))
    for recombine, nearer_than in ((0, None), (2, 1e-3 * scale)):
        rows = boundary_rows(decision, X, pairs=16, recombine=recombine)
        d = decision(rows)
        above, below = d[d >= 0].min(), -d[d < 0].max()
        if nearer_than is None:
            assert max(above, below) > 1e-2 * scale  # bisection alone stops at a jump
        else:
            assert max(above, below) < nearer_than
    assert (rows >= X.min(axis=0)).all()  # the data's own values: within its range
    assert (rows <= X.max(axis=0)).all()


def test_boundary_rows_of_a_smooth_decision_need_no_recombination() -> None:
    X = np.random.default_rng(4).normal(size=(100, 3)).astype(np.float32)
    calls = []

    def decision(Z: Any) -> Any:
        calls.append(len(Z))
        return 1.0 - np.linalg.norm(np.asarray(Z, dtype=np.float64), axis=1)

    plain = boundary_rows(decision, X, pairs=8, recombine=0)
    evaluated = sum(calls)
    assert np.array_equal(boundary_rows(decision, X, pairs=8), plain)
    assert sum(calls) == 2 * evaluated  # bisection reached the cut: no search ran


def test_boundary_rows_walk_to_the_normal_side_when_every_row_is_an_outlier() -> None:
    # data of outliers only (the user's rows of one rare class), and a model that keeps no
    # rows to stand in for normal ones: the nearest row walks, feature by feature, to values
    # the data takes elsewhere until it turns normal, and bisection proceeds from there
    X = np.random.default_rng(5).uniform(size=(60, 6)).astype(np.float32)
    X[np.arange(60), np.arange(60) % 6] += 2.0  # each row far out in one feature

    def decision(Z: Any) -> Any:  # >= 0 normal: no feature beyond 1
        return 0.5 - (np.asarray(Z, dtype=np.float64) > 1).sum(axis=1)

    assert (decision(X) < 0).all()
    assert len(boundary_rows(decision, X, pairs=8)) == 0  # nothing to bisect between
    rows = boundary_rows(decision, X, pairs=8, walk=True)
    d = decision(rows)
    assert (d >= 0).any()
    assert (d < 0).any()
