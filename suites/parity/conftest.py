"""Parametrize the parity suite as case x engine x check, and write the conformance summary.

With ``HARNESS_CONFORMANCE=path/name`` the run writes name.json and name.md. Under
pytest-xdist each worker writes its part and the controller merges them.
"""

from __future__ import annotations

import dataclasses
import json
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
    if "gpu_provider" in metafunc.fixturenames:
        metafunc.parametrize("gpu_provider", ["cuda", "tensorrt"])


@pytest.fixture
def conformance_rows() -> list[ConformanceRow]:
    return ROWS


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("HARNESS_CONFORMANCE")
    if not target:
        return
    base = Path(target)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # a part, merged by the controller
        base.parent.mkdir(parents=True, exist_ok=True)
        part = base.with_name(f"{base.name}.part-{worker}.json")
        part.write_text(json.dumps([dataclasses.asdict(r) for r in ROWS]))
        return
    rows = list(ROWS)
    for part in sorted(base.parent.glob(f"{base.name}.part-*.json")):
        rows += [ConformanceRow(**row) for row in json.loads(part.read_text())]
        part.unlink()
    if rows:
        write_conformance(rows, base)
