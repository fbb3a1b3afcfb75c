"""``harness check``: parity checks on a user's model pair, no zoo needed."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engines import EngineConfig, EngineError, OnnxEngine, SklearnEngine, load_model
from engines.export import default_tolerance, input_policy, validation_rows
from harness.parity import CheckOutcome, ParityTarget, applicable_checks, run_check
from harness.strategies import split_thresholds

__all__ = ["CheckSetupError", "check_pair", "outcomes_table"]


class CheckSetupError(Exception):
    """The pair cannot be checked (unreadable files, different widths, bad data)."""


def _rows(data: Path | None, model: object, width: int) -> np.ndarray:
    if data is None:
        return validation_rows(model, width, n=256).astype(np.float32)
    try:
        rows = (
            np.load(data, allow_pickle=False)
            if data.suffix == ".npy"
            else np.loadtxt(data, delimiter=",", dtype=np.float32, ndmin=2)
        )
    except (OSError, ValueError) as exc:
        raise CheckSetupError(f"cannot read --data {data}: {exc}") from exc
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != width or not len(rows):
        raise CheckSetupError(f"--data must hold rows of {width} features, got shape {rows.shape}")
    return rows


def check_pair(
    model: Path,
    reference: Path,
    *,
    data: Path | None = None,
    profile: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> list[CheckOutcome]:
    """Every applicable parity check of ``model`` (.onnx) against ``reference`` (.skops)."""
    try:
        estimator = load_model(reference)
        ref = SklearnEngine(estimator)
        candidate = OnnxEngine(model, EngineConfig(provider="cpu", intra_op_threads=1))
    except EngineError as exc:
        raise CheckSetupError(str(exc)) from exc
    width = ref.n_features
    if width is None or candidate.n_features not in (None, width):
        raise CheckSetupError(
            f"the ONNX model takes {candidate.n_features} features, the reference {width}"
        )
    exporter = str(candidate.metadata.get("exporter", "skl2onnx"))
    tolerance = default_tolerance(estimator, exporter)
    if rtol is not None or atol is not None:
        tolerance = dataclasses.replace(
            tolerance,
            rtol=tolerance.rtol if rtol is None else rtol,
            atol=tolerance.atol if atol is None else atol,
        )
    policy = input_policy(estimator, width)
    target = ParityTarget(
        reference=ref,
        candidate=candidate,
        base_rows=_rows(data, estimator, width),
        tolerance=tolerance,
        thresholds=split_thresholds(estimator),
        accepts_nan=policy["accepts_nan"],
        accepts_inf=policy["accepts_inf"],
        exact_labels=tolerance.label_agreement == 1.0,
    )
    return [run_check(name, target, profile=profile) for name in applicable_checks(target)]


def outcomes_table(outcomes: Sequence[CheckOutcome]) -> str:
    lines = [
        "| check | status | examples | measured | bound | finding |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        measured = "-" if o.measured is None else f"{o.measured:.3g}"
        status = "pass" if o.passed else "**FAIL**"
        lines.append(
            f"| {o.check} | {status} | {o.examples} | {measured} | {o.bound} | {o.message} |"
        )
    failed = [o for o in outcomes if not o.passed]
    for o in failed:
        lines += [
            "",
            f"{o.check}: minimal failing input ({len(o.minimal_input or [])} rows):",
            f"    {o.minimal_input}",
        ]
    lines += ["", f"{len(outcomes) - len(failed)} passed, {len(failed)} failed"]
    return "\n".join(lines)
