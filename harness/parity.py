"""Parity checks: does an engine answer like its scikit-learn reference? Hypothesis finds out.

Each check is a property over batches drawn by ``harness.strategies.input_rows``. A failing
check reports the measured value, the bound, how many examples were tried, and the minimal
failing input Hypothesis shrank to. The pytest suite (suites/parity) and ``harness check``
both run these.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import HealthCheck, Phase, given, settings
from scipy import stats

from engines import Engine, EngineError, InputError, OnnxEngine, Tolerance
from engines.tolerance import compare_outputs
from harness.strategies import input_rows

__all__ = [
    "CHECKS",
    "PROFILES",
    "CheckOutcome",
    "ParityTarget",
    "applicable_checks",
    "profile_settings",
    "run_check",
]

#: Hypothesis settings per profile (HYPOTHESIS_PROFILE): ci is derandomized so CI never flakes.
PROFILES: dict[str, dict[str, Any]] = {
    "dev": {"max_examples": 25, "derandomize": False},
    "ci": {"max_examples": 40, "derandomize": True},
    "nightly": {"max_examples": 500, "derandomize": False},
}


def profile_settings(profile: str | None = None) -> settings:
    """Settings for ``profile`` (default: $HYPOTHESIS_PROFILE, else ci)."""
    name = profile or os.environ.get("HYPOTHESIS_PROFILE", "ci")
    if name not in PROFILES:
        raise ValueError(f"unknown hypothesis profile {name!r}; known: {sorted(PROFILES)}")
    return settings(
        deadline=None,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        **PROFILES[name],
    )


@dataclasses.dataclass
class ParityTarget:
    """An engine under test, its reference, and what the inputs may hold."""

    reference: Engine
    candidate: Engine
    base_rows: npt.NDArray[Any]
    tolerance: Tolerance
    thresholds: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    accepts_nan: bool = False
    accepts_inf: bool = False
    exact_labels: bool = True
    eager: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None  # torch reference
    rank_bounds: tuple[float, float] | None = None  # quantized: (label agreement, Spearman)


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """What a check found."""

    check: str
    passed: bool
    examples: int
    measured: float | None
    bound: str
    message: str
    minimal_input: list[list[float]] | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Discrepancy(AssertionError):
    """A property failed: carries the measured value."""

    def __init__(self, message: str, measured: float | None = None) -> None:
        super().__init__(message)
        self.measured = measured


def _answer(engine: Engine, method: str, X: npt.NDArray[Any]) -> npt.NDArray[Any] | EngineError:
    try:
        out: npt.NDArray[Any] = getattr(engine, method)(X)
        return out
    except EngineError as exc:
        return exc


def _scores(target: ParityTarget, X: npt.NDArray[Any], method: str) -> None:
    ref, ours = _answer(target.reference, method, X), _answer(target.candidate, method, X)
    if isinstance(ref, EngineError) or isinstance(ours, EngineError):
        raise Discrepancy(
            f"{method}: reference {'raised' if isinstance(ref, EngineError) else 'answered'}, "
            f"engine {'raised ' + repr(ours) if isinstance(ours, EngineError) else 'answered'}"
        )
    result = compare_outputs(method, ours, ref, target.tolerance)
    if not result.passed:
        row = result.worst_row
        raise Discrepancy(
            f"{method}: max_abs_err={result.max_abs_err:.3g}, max_rel_err={result.max_rel_err:.3g} "
            f"beyond rtol={target.tolerance.rtol:g}, atol={target.tolerance.atol:g}; row {row}: "
            f"engine {ours[row]!r} vs reference {ref[row]!r}",
            result.max_abs_err,
        )


def check_labels(target: ParityTarget, X: npt.NDArray[Any]) -> None:
    """Labels equal; where a case is not exact, a label may differ only where the reference's
    decision is within the score tolerance of 0."""
    ref, ours = _answer(target.reference, "predict", X), _answer(target.candidate, "predict", X)
    if isinstance(ref, EngineError) or isinstance(ours, EngineError):
        raise Discrepancy(f"predict: reference {ref!r}, engine {ours!r}")
    differ = np.flatnonzero(ref != ours)
    if not len(differ):
        return
    if not target.exact_labels and "decision_function" in target.reference.methods:
        decision = np.asarray(target.reference.decision_function(X))
        band = target.tolerance.atol + target.tolerance.rtol * np.abs(decision)
        differ = differ[np.abs(decision[differ]) > band[differ] + 1e-12]
        if not len(differ):
            return
    row = int(differ[0])
    raise Discrepancy(
        f"labels differ on {len(differ)} of {len(X)} rows; row {row}: engine {ours[row]} vs "
        f"reference {ref[row]}",
        float(len(differ)) / len(X),
    )


def check_decision(target: ParityTarget, X: npt.NDArray[Any]) -> None:
    _scores(target, X, "decision_function")


def check_score(target: ParityTarget, X: npt.NDArray[Any]) -> None:
    _scores(target, X, "score_samples")


def check_sign(target: ParityTarget, X: npt.NDArray[Any]) -> None:
    """label == -1 exactly where decision_function < 0 (the engine agrees with itself)."""
    labels, decision = (
        _answer(target.candidate, "predict", X),
        _answer(target.candidate, "decision_function", X),
    )
    if isinstance(labels, EngineError) or isinstance(decision, EngineError):
        return
    bad = np.flatnonzero((labels == -1) != (decision < 0))
    if len(bad):
        row = int(bad[0])
        raise Discrepancy(
            f"label {labels[row]} with decision {decision[row]!r} on row {row}", float(len(bad))
        )


def check_batch_invariance(target: ParityTarget, X: npt.NDArray[Any]) -> None:
    """Row by row == whole batch == chunks of 3."""
    whole = _answer(target.candidate, "score_samples", X)
    if isinstance(whole, EngineError):
        return
    single = np.concatenate([target.candidate.score_samples(X[i : i + 1]) for i in range(len(X))])
    chunks = np.concatenate(
        [target.candidate.score_samples(X[i : i + 3]) for i in range(0, len(X), 3)]
    )
    for name, other in (("row by row", single), ("chunks of 3", chunks)):
        # ONNX Runtime picks kernels by batch size: float rounding may differ, within tolerance
        result = compare_outputs("score_samples", other, whole, target.tolerance)
        if not result.passed:
            raise Discrepancy(
                f"score_samples {name} differs from the whole batch by {result.max_abs_err:.3g}",
                result.max_abs_err,
            )


def check_row_order(target: ParityTarget, X: npt.NDArray[Any]) -> None:
    """Reversing the rows reverses the answers."""
    forward = _answer(target.candidate, "score_samples", X)
    if isinstance(forward, EngineError):
        return
    backward = target.candidate.score_samples(np.ascontiguousarray(X[::-1]))[::-1]
    result = compare_outputs("score_samples", backward, forward, target.tolerance)
    if not result.passed:
        raise Discrepancy(
            f"row order changed score_samples by {result.max_abs_err:.3g}", result.max_abs_err
        )


def check_dtype(target: ParityTarget, X: npt.NDArray[Any]) -> None:
    """float64 input is scored as the model's input type: like the reference on those rows."""
    X64 = X.astype(np.float64) * (1 + 1e-9)  # values float32 cannot hold exactly
    model_dtype = getattr(target.candidate, "input_dtype", np.dtype(np.float64))
    with np.errstate(over="ignore"):
        seen = X64.astype(model_dtype)  # what a float32 model is documented to score
    method = "score_samples"
    ref, ours = _answer(target.reference, method, seen), _answer(target.candidate, method, X64)
    if isinstance(ref, EngineError) != isinstance(ours, EngineError):
        raise Discrepancy(f"float64 input: reference {ref!r}, engine {ours!r}")
    if isinstance(ref, EngineError) or isinstance(ours, EngineError):
        return
    result = compare_outputs(method, ours, ref, target.tolerance)
    if not result.passed:
        raise Discrepancy(
            f"float64 input: {method} max_abs_err={result.max_abs_err:.3g}", result.max_abs_err
        )


def check_errors_match(target: ParityTarget, X: npt.NDArray[Any]) -> None:
    """Where scikit-learn raises (NaN, inf), the engine raises a clear error too; where it
    answers, the engine answers the same."""
    ref = _answer(target.reference, "score_samples", X)
    ours = _answer(target.candidate, "score_samples", X)
    if isinstance(ref, EngineError):
        if not isinstance(ours, InputError):
            raise Discrepancy(
                f"reference raised {ref!r} but the engine answered or raised {ours!r}"
            )
        return
    if isinstance(ours, EngineError):
        raise Discrepancy(f"reference answered but the engine raised {ours!r}")
    result = compare_outputs("score_samples", ours, ref, target.tolerance)
    if not result.passed:
        row = result.worst_row
        raise Discrepancy(
            f"score_samples max_abs_err={result.max_abs_err:.3g}; row {row}: engine "
            f"{ours[row]!r} vs reference {ref[row]!r}",
            result.max_abs_err,
        )


def check_eager(target: ParityTarget, X: npt.NDArray[Any]) -> None:
    """The ONNX autoencoder answers like eager torch (reconstruction error = -score)."""
    assert target.eager is not None
    result = compare_outputs(
        "score_samples", target.candidate.score_samples(X), -target.eager(X), target.tolerance
    )
    if not result.passed:
        raise Discrepancy(
            f"ONNX vs eager torch: max_abs_err={result.max_abs_err:.3g}", result.max_abs_err
        )


def check_roundtrip(target: ParityTarget, X: npt.NDArray[Any]) -> None:
    """The ONNX model saved to bytes and loaded again answers identically."""
    if not isinstance(target.candidate, OnnxEngine):
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(target.candidate.model_bytes())
        reloaded = OnnxEngine(path, target.candidate.config)
        a, b = target.candidate.score_samples(X), reloaded.score_samples(X)
    if not np.array_equal(a, b, equal_nan=True):
        raise Discrepancy("the reloaded model answers differently", float(np.nanmax(np.abs(a - b))))


def check_quantized(target: ParityTarget, X: npt.NDArray[Any]) -> None:
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
    if rank < min_rank or agreement < min_agreement:
        raise Discrepancy(
            f"Spearman {rank:.4f} (bound {min_rank}), label agreement {agreement:.4f} "
            f"(bound {min_agreement})",
            rank,
        )


Check = Callable[[ParityTarget, npt.NDArray[Any]], None]
#: check name -> (function, methods the reference must have, what it needs)
CHECKS: dict[str, tuple[Check, frozenset[str], str]] = {
    "label_exact": (check_labels, frozenset({"predict"}), "labels"),
    "decision_close": (check_decision, frozenset({"decision_function"}), ""),
    "score_close": (check_score, frozenset({"score_samples"}), ""),
    "sign_consistency": (check_sign, frozenset({"predict", "decision_function"}), ""),
    "batch_invariance": (check_batch_invariance, frozenset({"score_samples"}), ""),
    "row_order": (check_row_order, frozenset({"score_samples"}), ""),
    "dtype_float64": (check_dtype, frozenset({"score_samples"}), ""),
    "errors_match": (check_errors_match, frozenset({"score_samples"}), "non-finite"),
    "roundtrip": (check_roundtrip, frozenset({"score_samples"}), ""),
    "torch_eager": (check_eager, frozenset({"score_samples"}), "eager"),
    "quantized_rank": (check_quantized, frozenset({"score_samples", "predict"}), "quantized"),
}


def applicable_checks(target: ParityTarget) -> list[str]:
    """Checks chosen by capability: what the reference answers and what the target carries."""
    out = []
    for name, (_, methods, needs) in CHECKS.items():
        if not methods <= target.reference.methods:
            continue
        if needs == "eager" and target.eager is None:
            continue
        if needs == "quantized" and target.rank_bounds is None:
            continue
        if target.rank_bounds is not None and name not in (
            "quantized_rank",
            "batch_invariance",
            "row_order",
        ):
            continue  # a quantized model is held to rank bounds, not to score tolerances
        out.append(name)
    return out


def run_check(name: str, target: ParityTarget, *, profile: str | None = None) -> CheckOutcome:
    """Run one check with Hypothesis; on failure report the minimal input it shrank to."""
    fn = CHECKS[name][0]
    needs = CHECKS[name][2]
    tol = target.tolerance
    bound = f"rtol={tol.rtol:g}, atol={tol.atol:g}, labels exact={target.exact_labels}"
    if needs == "quantized":  # deterministic over the base rows
        try:
            fn(target, target.base_rows)
        except Discrepancy as exc:
            return CheckOutcome(name, False, 1, exc.measured, bound, str(exc), None)
        return CheckOutcome(name, True, 1, None, bound, "ok", None)
    non_finite = needs == "non-finite"
    strategy = input_rows(
        base=target.base_rows,
        thresholds=target.thresholds,
        allow_nan=non_finite or target.accepts_nan,
        allow_inf=non_finite or target.accepts_inf,
        dtype=np.float32,
    )
    examples = 0
    failures: list[tuple[npt.NDArray[Any], Discrepancy]] = []

    @profile_settings(profile)
    @given(X=strategy)
    def prop(X: npt.NDArray[Any]) -> None:
        nonlocal examples
        examples += 1
        try:
            # Extreme rows make NumPy warn (overflow, inf - inf) inside either engine: the
            # answers are compared, the warnings are not findings.
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                fn(target, X)
        except Discrepancy as exc:
            failures.append((X, exc))  # the last failure recorded is the shrunk, minimal one
            raise

    try:
        prop()
    except Discrepancy:
        X, found = failures[-1]
        minimal = np.asarray(X, dtype=np.float64).tolist()
        return CheckOutcome(name, False, examples, found.measured, bound, str(found), minimal)
    return CheckOutcome(name, True, examples, None, bound, "ok", None)
