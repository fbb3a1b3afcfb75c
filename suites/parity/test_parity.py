"""Parity of every engine against its scikit-learn reference, check by check (Hypothesis).

Known upstream gaps are declared in the zoo (``ModelCase.known_gaps``) and run as strict
xfails: the suite says so when upstream fixes them.
"""

from __future__ import annotations

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
