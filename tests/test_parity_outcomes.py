"""What run_check reports: derived bounds, skips with reasons, undefined reference rows, input
bounds, strict known gaps, and crashes as outcomes (fake engines: no exporter, fast)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from engines import Engine, InputError, OnnxEngine, Tolerance
from harness.checks.parity import CheckOutcome, ParityTarget, check_plan, run_check
from tests._models import linear_detector

Score = Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
BASE = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)


def exact(X: Any) -> Any:
    """-mean|x| in float64: the reference."""
    return -np.abs(np.asarray(X, dtype=np.float64)).mean(axis=1)


def in_float32(X: Any) -> Any:
    """-mean|x| in float32: a correct float32 engine."""
    return -np.abs(np.asarray(X, dtype=np.float32)).mean(axis=1, dtype=np.float32)


class Fake(Engine):
    """score_samples from a function; decision = score - offset; label = sign of the decision."""

    kind = "fake"

    def __init__(
        self,
        score: Score,
        *,
        offset: float = -1.0,
        methods: tuple[str, ...] = ("predict", "score_samples", "decision_function"),
        refuse_non_finite: bool = False,
        dtype: Any = np.float32,
    ) -> None:
        self._score, self.offset = score, offset
        self._methods = frozenset(methods)
        self.refuse_non_finite = refuse_non_finite
        self.input_dtype = np.dtype(dtype)

    @property
    def methods(self) -> frozenset[str]:
        return self._methods

    @property
    def n_features(self) -> int | None:
        return int(BASE.shape[1])

    def score_samples(self, X: Any) -> Any:
        X = np.asarray(X)
        if self.refuse_non_finite and not np.isfinite(X).all():
            raise InputError("input contains NaN or infinity")
        return self._score(X)

    def decision_function(self, X: Any) -> Any:
        score = self.score_samples(X)
        return score - score.dtype.type(self.offset)

    def predict(self, X: Any) -> Any:
        return np.where(self.decision_function(X) < 0, -1, 1).astype(np.int64)

    def info(self) -> dict[str, Any]:
        return {"engine": self.kind}


def target(candidate: Engine, reference: Engine | None = None, **kw: Any) -> ParityTarget:
    return ParityTarget(
        reference=reference or Fake(exact, refuse_non_finite=True, dtype=np.float64),
        candidate=candidate,
        base_rows=BASE,
        **kw,
    )


def test_a_correct_float32_engine_passes_within_the_derived_bound() -> None:
    outcome = run_check("score_close", target(Fake(in_float32)), profile="ci")
    assert outcome.status == "pass", outcome.message
    assert outcome.passed
    assert outcome.examples == 40
    assert outcome.rows > 40
    assert "16 x float32 noise of the reference on this row" in outcome.bound
    assert outcome.measured is not None
    assert outcome.bound_value is not None
    assert outcome.measured <= outcome.bound_value


def test_a_shift_of_1e4_fails_with_the_bound_and_a_one_row_minimal_input() -> None:
    outcome = run_check("decision_close", target(Fake(lambda X: in_float32(X) + 1e-4)))
    assert outcome.status == "fail"
    assert not outcome.passed
    assert "beyond their bound" in outcome.message
    assert "float32 noise" in outcome.bound
    assert outcome.measured == pytest.approx(1e-4, rel=0.05)
    assert outcome.minimal_input is not None
    assert len(outcome.minimal_input) == 1
    assert outcome.as_dict()["status"] == "fail"
    assert outcome.as_dict()["passed"] is False


def test_a_given_tolerance_replaces_the_derived_bound() -> None:
    shifted = Fake(lambda X: in_float32(X) + 1e-4)
    outcome = run_check("score_close", target(shifted, tolerance=Tolerance(rtol=0, atol=1e-3)))
    assert outcome.status == "pass"
    assert outcome.bound.startswith("rtol=0, atol=0.001")


def test_labels_may_differ_only_where_the_decision_is_within_its_bound() -> None:
    moved = Fake(in_float32)
    moved.predict = lambda X: np.where(moved.decision_function(X) < 1e-3, -1, 1)  # type: ignore[method-assign]
    boundary = BASE * (1.0 / np.abs(BASE).mean(axis=1, keepdims=True))  # decision exactly 0
    assert run_check("label_exact", target(Fake(in_float32))).status == "pass"
    caught = run_check("label_exact", target(moved, boundary_rows=boundary * 0.9995))
    assert caught.status == "fail"
    assert "labels differ" in caught.message


def test_a_method_the_engine_cannot_answer_is_skipped_with_the_reason() -> None:
    no_score = Fake(in_float32, methods=("predict", "decision_function"))
    plan = dict(check_plan(target(no_score)))
    assert "cannot answer score_samples" in str(plan["score_close"])
    assert "offset" in str(plan["score_close"])
    assert plan["decision_close"] is None
    outcome = run_check("score_close", target(no_score))
    assert outcome.status == "skip"
    assert outcome.passed
    assert outcome.examples == 0
    assert "cannot answer score_samples" in outcome.message
    roundtrip = run_check("roundtrip", target(Fake(in_float32)))
    assert roundtrip.status == "skip"
    assert "not an ONNX model" in roundtrip.message


def test_a_check_with_no_applicable_example_is_skipped() -> None:
    def refuse(X: Any) -> Any:
        raise InputError("refused")

    refusing = Fake(refuse, dtype=np.float64)
    outcome = run_check("score_close", target(Fake(refuse), reference=refusing))
    assert outcome.status == "skip"
    assert "no applicable example" in outcome.message
    assert outcome.rejected > 0


def test_a_crash_inside_a_check_is_an_outcome() -> None:
    def crash(X: Any) -> Any:
        raise RuntimeError("kernel exploded")

    outcome = run_check("score_close", target(Fake(crash)))
    assert outcome.status == "fail"
    assert "RuntimeError: kernel exploded" in outcome.message
    assert outcome.minimal_input is not None


def overflowing(X: Any) -> Any:
    """Computes in the input's dtype: float32 overflows to -inf on huge rows, float64 not."""
    X = np.asarray(X)
    with np.errstate(over="ignore"):
        return -(np.abs(X) * X.dtype.type(1e10)).sum(axis=1)


def saturating(X: Any) -> Any:
    """The same in float64, saturated at float32's limit instead of overflowing."""
    exact64 = overflowing(np.asarray(X, dtype=np.float64))
    limit = float(np.finfo(np.float32).max)
    return np.clip(exact64, -limit, limit).astype(np.float32)


def test_rows_where_the_reference_overflows_are_counted_not_failed() -> None:
    reference = Fake(overflowing, offset=-1e10, refuse_non_finite=True, dtype=np.float64)
    derived = run_check("score_close", target(Fake(saturating), reference))
    assert derived.status == "pass", derived.message
    assert derived.undefined_rows > 0
    assert "reference is undefined" in derived.message
    given = run_check(
        "score_close", target(Fake(saturating), reference, tolerance=Tolerance(rtol=1e-6))
    )
    # A given tolerance excuses them too: they lie beyond float32's range (|x| > 1.8e19).
    assert given.status == "pass", given.message
    assert given.undefined_rows > 0


def test_input_bound_keeps_generated_values_near_the_data() -> None:
    def wrong_far_out(X: Any) -> Any:
        return np.where(np.abs(X).max(axis=1) > 1e3, np.float32(0), in_float32(X))

    assert run_check("score_close", target(Fake(wrong_far_out))).status == "fail"
    bounded = run_check("score_close", target(Fake(wrong_far_out), input_bound=10.0))
    assert bounded.status == "pass", bounded.message


def test_known_gaps_are_strict_expected_failures() -> None:
    shifted = target(Fake(lambda X: in_float32(X) + 1e-3))
    xfail = run_check("score_close", shifted, known_gap="upstream bug #1")
    assert xfail.status == "xfail"
    assert xfail.passed
    assert xfail.known_gap == "upstream bug #1"
    assert xfail.message.startswith("known gap (upstream bug #1); found: ")
    xpass = run_check("score_close", target(Fake(in_float32)), known_gap="upstream bug #1")
    assert xpass.status == "xpass"
    assert not xpass.passed
    assert xpass.message == "known gap no longer reproduces: upstream bug #1"


def test_refusals_are_judged_only_where_the_graph_declares_them() -> None:
    answers_nan = Fake(in_float32)  # no input policy: answers NaN rows with NaN
    strict = run_check("errors_match", target(answers_nan))
    assert strict.status == "fail"
    assert "the reference raised" in strict.message
    assert strict.message.endswith("but the engine answered")  # not its answers' repr
    lenient = run_check("errors_match", target(answers_nan, refusals_declared=False))
    assert lenient.status == "pass", lenient.message
    assert lenient.rejected > 0
    assert "does not declare" in lenient.message
    refusing = Fake(in_float32, refuse_non_finite=True)
    assert run_check("errors_match", target(refusing)).status == "pass"


def test_isolate_non_finite_keeps_nan_out_of_the_value_checks() -> None:
    reference = Fake(lambda X: np.nan_to_num(exact(X), nan=-2.0), dtype=np.float64)
    nan_differs = Fake(lambda X: np.nan_to_num(in_float32(X), nan=-1.0))
    kw: dict[str, Any] = {"accepts_nan": True}
    assert run_check("score_close", target(nan_differs, reference, **kw)).status == "fail"
    isolated = target(nan_differs, reference, isolate_non_finite=True, **kw)
    assert run_check("score_close", isolated).status == "pass"
    assert run_check("errors_match", isolated).status == "fail"


def test_roundtrip_and_engine_only_checks_on_an_onnx_engine() -> None:
    candidate = OnnxEngine(linear_detector(offset=-1.0))
    tgt = target(candidate)
    outcomes: list[CheckOutcome] = [
        run_check(name, tgt) for name in ("roundtrip", "batch_invariance", "row_order")
    ]
    assert [o.status for o in outcomes] == ["pass", "pass", "pass"], outcomes
    assert run_check("dtype_float64", tgt).status == "pass"


def test_roundtrip_of_a_model_with_external_data(tmp_path: Path) -> None:
    # the copy was saved without its .onnx.data: a correct model failed to load again
    import onnx

    proto = linear_detector(offset=-1.0)
    (tmp_path / "weights").mkdir()
    onnx.save_model(
        proto,
        tmp_path / "m.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights/m.onnx.data",
        size_threshold=0,
    )
    candidate = OnnxEngine(tmp_path / "m.onnx")
    assert candidate.external_data_sha256
    assert run_check("roundtrip", target(candidate)).status == "pass"
    (tmp_path / "weights" / "m.onnx.data").write_bytes(b"changed")
    changed = run_check("roundtrip", target(candidate))
    assert changed.status == "skip"
    assert "changed since the model was loaded" in changed.message


def test_data_rows_judges_every_row_of_the_data() -> None:
    def wrong_on_row_17(X: Any) -> Any:
        out = in_float32(X)
        return np.where((BASE[17] == X).all(axis=1), out + np.float32(1e-3), out)

    good = run_check("data_rows", target(Fake(in_float32)))
    assert good.status == "pass", good.message
    assert good.examples == 1
    assert good.rows == len(BASE)
    assert f"over {len(BASE)} data rows" in good.message
    bad = run_check("data_rows", target(Fake(wrong_on_row_17)))
    assert bad.status == "fail"
    assert "row 17" in bad.message
    assert bad.minimal_input == [BASE[17].astype(np.float64).tolist()]


def test_score_bias_finds_a_shift_inside_every_rows_bound() -> None:
    shift = 2.5e-6  # ~11 eps of the answers' magnitude (|score| + |offset| ~ 1.8)
    shifted = target(Fake(lambda X: (in_float32(X) + shift).astype(np.float32)))
    assert run_check("data_rows", shifted).status == "pass"  # each data row within its bound
    caught = run_check("score_bias", shifted)
    assert caught.status == "fail"
    assert "shifted as a whole" in caught.message
    assert "sign test" in caught.bound
    assert caught.measured == pytest.approx(shift, rel=0.2)
    clean = run_check("score_bias", target(Fake(in_float32)))
    assert clean.status == "pass", clean.message
    assert "median shift" in clean.message


def test_score_bias_needs_data_rows_and_derived_bounds() -> None:
    few = ParityTarget(
        reference=Fake(exact, dtype=np.float64), candidate=Fake(in_float32), base_rows=BASE[:10]
    )
    outcome = run_check("score_bias", few)
    assert outcome.status == "skip"
    assert "fewer than 24 distinct data rows" in outcome.message
    one_row = ParityTarget(
        reference=Fake(exact, dtype=np.float64),
        candidate=Fake(lambda X: (in_float32(X) + 2.5e-6).astype(np.float32)),
        base_rows=np.repeat(BASE[:1], 100, axis=0),  # a row repeated is one piece of evidence
    )
    assert run_check("score_bias", one_row).status == "skip"
    given = target(Fake(in_float32), tolerance=Tolerance(rtol=1e-3))
    assert "score_bias" not in dict(check_plan(given))
    assert "data_rows" in dict(check_plan(given))


def test_sign_consistency_sees_a_label_threshold_moved_inside_the_decision_bound() -> None:
    moved = Fake(in_float32)
    moved.predict = lambda X: np.where(moved.decision_function(X) < 2e-6, -1, 1)  # type: ignore[method-assign]
    unit = BASE / np.abs(BASE).mean(axis=1, keepdims=True)  # decision exactly 0
    near = (unit * np.float32(1 - 1e-6)).astype(np.float32)  # decision ~ +1e-6
    kw: dict[str, Any] = {"boundary_rows": near}
    # the reference's labels may differ there: 2e-6 is within the decision's bound
    assert run_check("label_exact", target(moved, **kw)).status == "pass"
    caught = run_check("sign_consistency", target(moved, **kw))
    assert caught.status == "fail"
    assert "4 eps" in caught.bound
    assert run_check("sign_consistency", target(Fake(in_float32), **kw)).status == "pass"


def test_dtype_float64_makes_no_overflow_of_its_own() -> None:
    """The float64 copy of a row at float32's limit stays within it: nudging it by 1e-9 would
    make it infinite in float32, which the reference refuses and a plain graph answers."""
    from harness.checks.parity import check_dtype

    edge = np.full((2, BASE.shape[1]), np.finfo(np.float32).max, dtype=np.float32)
    edge[1] *= -1
    reference = Fake(lambda X: np.clip(exact(X), -1e30, 1e30), refuse_non_finite=True)
    candidate = Fake(lambda X: np.clip(in_float32(X), -1e30, 1e30))
    with np.errstate(over="ignore"):  # the float32 engine's mean of two limits overflows
        tally = check_dtype(target(candidate, reference), edge)
    assert tally.rows == 2
    undeclared = target(Fake(lambda X: np.zeros(len(X))), reference, refusals_declared=False)
    with pytest.raises(Exception, match="does not declare"):
        check_dtype(undeclared, np.full((1, BASE.shape[1]), np.inf, dtype=np.float32))
