"""Parity of every engine against its scikit-learn reference, check by check (Hypothesis).

Known upstream gaps are declared in the zoo (``ModelCase.known_gaps``) and run as strict
xfails, attached at collection: the suite says so when upstream fixes them. With
``--harness-conformance PATH`` the outcomes are summarised in PATH.json and PATH.md.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from harness.cases.zoo import cases
from harness.checks.parity import run_check
from harness.checks.targets import outcome_row, parity_points, target_for
from harness.plugin import SESSION_KEY, HarnessSession
from harness.results.schema import ConformanceRow


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "parity_point" in metafunc.fixturenames:
        selected = metafunc.config.stash[SESSION_KEY].selection.cases
        profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
        points = parity_points(profile, selected)
        gaps = {c.name: c.known_gaps for c in cases("large")}
        params = [
            pytest.param(
                point,
                id=f"{point[0]}[{point[1]}-cpu]-{point[2]}",
                marks=[pytest.mark.xfail(strict=True, reason=gap)]
                if (gap := gaps[point[0]].get(f"{point[1]}:{point[2]}"))
                else [],
            )
            for point in points
        ]
        metafunc.parametrize("parity_point", params)
    if "gpu_provider" in metafunc.fixturenames:
        metafunc.parametrize("gpu_provider", ["cuda", "tensorrt"])


def test_parity(parity_point: tuple[str, str, str], request: pytest.FixtureRequest) -> None:
    case_name, engine, check = parity_point
    session: HarnessSession = request.config.stash[SESSION_KEY]
    (case,) = cases(names=[case_name])
    gap = case.known_gaps.get(f"{engine}:{check}")
    outcome = run_check(check, target_for(case_name, engine))
    passed = outcome.status in ("pass", "skip")
    status = outcome.status if not gap else ("xpass" if passed else "xfail")
    session.conformance.append(dataclasses.asdict(outcome_row(case_name, engine, outcome, status)))
    if outcome.status == "skip":
        pytest.skip(outcome.message)
    assert passed, (
        f"{case_name} [{engine}] {check}: {outcome.message} (bound: {outcome.bound}; "
        f"{outcome.examples} examples tried)\nminimal failing input: {outcome.minimal_input}"
    )


_GPU_CHECKS = ("label_exact", "score_close", "batch_invariance")


def test_parity_on_gpu_providers(gpu_provider: str, request: pytest.FixtureRequest) -> None:
    """The same checks on CUDA / TensorRT when really active; otherwise a skip with the reason,
    also in the conformance summary (engine ``onnx-native@cuda``)."""
    from harness.timing.prepare import provider_skip

    session: HarnessSession = request.config.stash[SESSION_KEY]
    engine = f"onnx-native@{gpu_provider}"
    reason = provider_skip(gpu_provider)
    if reason:
        for check in _GPU_CHECKS:
            row = ConformanceRow("iforest-100", engine, check, "skip", 0, None, reason)
            session.conformance.append(dataclasses.asdict(row))
        pytest.skip(reason)
    from engines import EngineConfig, OnnxEngine
    from harness.cases.zoo import exported

    target = target_for("iforest-100", "onnx-native")
    config = EngineConfig(provider=gpu_provider, intra_op_threads=1)
    gpu = OnnxEngine(exported("iforest-100", "native").model, config)
    assert gpu.info()["active_providers"][0] != "CPUExecutionProvider"
    outcomes = [run_check(c, dataclasses.replace(target, candidate=gpu)) for c in _GPU_CHECKS]
    for outcome in outcomes:
        row = outcome_row("iforest-100", engine, outcome, outcome.status)
        session.conformance.append(dataclasses.asdict(row))
    for outcome in outcomes:
        assert outcome.status == "pass", f"{gpu_provider} {outcome.check}: {outcome.message}"
