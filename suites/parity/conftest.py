"""Parametrize the parity suite as case x engine x check, and write the conformance summary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.conformance import ConformanceRow, parity_points, write_conformance

ROWS: list[ConformanceRow] = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "parity_point" in metafunc.fixturenames:
        profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
        points = parity_points(profile)
        ids = [f"{case}[{engine}-cpu]-{check}" for case, engine, check in points]
        metafunc.parametrize("parity_point", points, ids=ids)


@pytest.fixture
def conformance_rows() -> list[ConformanceRow]:
    return ROWS


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("HARNESS_CONFORMANCE")
    if target and ROWS:
        write_conformance(ROWS, Path(target))
