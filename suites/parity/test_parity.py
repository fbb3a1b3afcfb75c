"""Parity of every engine against its scikit-learn reference, check by check (Hypothesis).

Known upstream gaps are declared in the zoo (``ModelCase.known_gaps``) and run as strict
xfails: the suite says so when upstream fixes them.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness.conformance import ConformanceRow, outcome_row, target_for
from harness.parity import run_check
from harness.zoo import cases


def test_parity(parity_point: tuple[str, str, str], conformance_rows: list[ConformanceRow]) -> None:
    case_name, engine, check = parity_point
    (case,) = cases(names=[case_name])
    gap = case.known_gaps.get(f"{engine}:{check}")
    outcome = run_check(check, target_for(case_name, engine))
    status = ("xfail" if gap else "fail") if not outcome.passed else ("xpass" if gap else "pass")
    conformance_rows.append(outcome_row(case_name, engine, outcome, status))
    if gap:
        if outcome.passed:
            pytest.fail(f"known gap no longer reproduces (upstream fixed?): {gap}")
        pytest.xfail(f"{gap} -- found: {outcome.message}")
    minimal = json.dumps(outcome.minimal_input)
    assert outcome.passed, (
        f"{case_name} [{engine}] {check}: {outcome.message} (bound: {outcome.bound}; "
        f"{outcome.examples} examples tried)\nminimal failing input: {minimal}"
    )


def test_parity_on_gpu_providers(gpu_provider: str) -> None:
    """The same checks on CUDA / TensorRT when really active; otherwise a skip with the reason."""
    from harness.bench import _provider_skip

    reason = _provider_skip(gpu_provider)
    if reason:
        pytest.skip(reason)
    from engines import EngineConfig, OnnxEngine
    from harness.zoo import exported

    target = target_for("iforest-100", "onnx-native")
    config = EngineConfig(provider=gpu_provider, intra_op_threads=1)
    gpu = OnnxEngine(exported("iforest-100", "native").model, config)
    assert gpu.info()["active_providers"][0] != "CPUExecutionProvider"
    for check in ("label_exact", "score_close", "batch_invariance"):
        outcome = run_check(check, dataclasses.replace(target, candidate=gpu))
        assert outcome.passed, f"{gpu_provider} {check}: {outcome.message}"
