"""Parametrize the benchmark suite from the harness selection (see harness.plugin)."""

from __future__ import annotations

import pytest

from harness.bench import build_points
from harness.plugin import SESSION_KEY


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "point" in metafunc.fixturenames:
        selection = metafunc.config.stash[SESSION_KEY].selection
        points = build_points(selection)
        metafunc.parametrize("point", points, ids=[p.id for p in points])
