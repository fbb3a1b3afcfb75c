"""Parity targets from the zoo: which (case, engine, check) points the parity suite runs, each
engine under test with its reference, and the conformance row of each outcome."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from engines import EngineConfig, FallbackEngine, OnnxEngine, SklearnEngine
from engines.export import default_tolerance
from harness.cases.variants import EngineVariant
from harness.cases.zoo import ModelCase, available, cases, exported, fitted, quantized
from harness.checks.parity import (
    QUANTIZED_RANK_BOUNDS,
    CheckOutcome,
    ParityTarget,
    applicable_checks,
)
from harness.checks.strategies import split_rows, split_thresholds
from harness.results.schema import ConformanceRow

__all__ = ["engines_for", "outcome_row", "parity_points", "target_for"]

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)


def engines_for(case: ModelCase) -> list[str]:
    """Every exporter that supports the case, a quantized variant where one applies, and the
    fallback engine on the best exporter."""
    variants = [EngineVariant("onnx", e) for e in case.exporters]
    if "torch" in case.exporters:
        variants.append(EngineVariant("onnx", "torch", quantized=True))
    variants.append(EngineVariant("fallback"))
    return [str(v) for v in variants]


def parity_points(profile: str, names: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
    """(case, engine, check) triples for a hypothesis profile: ci covers the fast zoo and the
    autoencoder; nightly and dev cover every case. ``names`` (``--cases``) chooses the cases
    instead, whatever their profile; only they are fitted and exported."""
    if names:
        chosen = cases(names=list(names))
    elif profile == "nightly":
        chosen = cases("large")
    else:
        chosen = [c for c in cases("large") if c.profile == "fast" or c.name == "autoencoder"]
    chosen = available(chosen)[0]  # an extra not installed: run says which cases it leaves out
    out = []
    for case in chosen:
        for engine in engines_for(case):
            for check in applicable_checks(target_for(case.name, engine)):
                out.append((case.name, engine, check))
    return out


@cache
def target_for(case_name: str, engine: str) -> ParityTarget:
    """The engine under test for (case, engine), with its reference and input policy."""
    (case,) = cases(names=[case_name])
    model = fitted(case_name)
    reference = SklearnEngine(model)
    rows = case.data().X_test[:200]
    variant = EngineVariant.parse(engine)
    exporter = variant.exporter or case.best_exporter
    report = exported(case_name, exporter)
    tolerance = case.tolerance(exporter) or default_tolerance(model, exporter)
    meta = OnnxEngine(report.model, CPU1).metadata
    candidate: Any
    rank_bounds = None
    if variant.quantized:
        candidate = _int8(case_name, exporter)
        rank_bounds = QUANTIZED_RANK_BOUNDS
    elif variant.kind == "fallback":
        candidate = FallbackEngine(OnnxEngine(report.model, CPU1), reference)
    else:
        candidate = OnnxEngine(report.model, CPU1)
    eager = None
    if exporter == "torch" and not variant.quantized:
        import torch

        module = model.module_

        def eager(X: Any) -> Any:
            with torch.no_grad():
                return module(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).numpy()

    return ParityTarget(
        reference=reference,
        candidate=candidate,
        base_rows=rows,
        tolerance=tolerance,
        thresholds=split_thresholds(model),
        split_rows=split_rows(model, rows),
        accepts_nan=bool(meta.get("accepts_nan")),
        accepts_inf=bool(meta.get("accepts_inf")),
        exact_labels=tolerance.label_agreement == 1.0,
        eager=eager,
        rank_bounds=rank_bounds,
        # NaN and inf in errors_match only: a known gap on non-finite input is one expected
        # failure, the same on every machine, not a chance finding of whichever check drew it.
        isolate_non_finite=True,
    )


def _int8(case_name: str, exporter: str) -> OnnxEngine:
    model, report = quantized(case_name, exporter)
    if model is None:
        raise ValueError(f"{case_name}: dynamic int8 does not apply ({report.reason})")
    return OnnxEngine(model, CPU1)


def outcome_row(case: str, engine: str, outcome: CheckOutcome, status: str) -> ConformanceRow:
    return ConformanceRow(
        case,
        engine,
        outcome.check,
        status,
        outcome.examples,
        outcome.measured,
        outcome.message,
        outcome.minimal_input,
    )
