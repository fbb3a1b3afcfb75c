"""Inference latency per case x engine x provider x batch size x threads (pytest-benchmark).

Training, export, session creation and warm-up happen once per point, outside the timing;
only the scoring call is timed, with its raw samples kept. Points come from the harness
selection (``--harness-*`` options, see ``harness.plugin``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness.plugin import SESSION_KEY
from harness.results.schema import percentiles, point_extra
from harness.timing.prepare import BenchPoint, build_points

#: Rounds per point, between which the profile's target seconds decide: ten at the least, so
#: a slow point (a batch of 10,000) still has a median with a bootstrap interval and a p90;
#: 200 at the most, so fast points stay short (the report shows p99 from 100 rounds on).
MIN_ROUNDS, MAX_ROUNDS = 10, 200


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "point" in metafunc.fixturenames:
        points = build_points(metafunc.config.stash[SESSION_KEY].selection)
        metafunc.parametrize("point", points, ids=[p.id for p in points])


def test_score_samples(benchmark: Any, point: BenchPoint, request: pytest.FixtureRequest) -> None:
    session = request.config.stash[SESSION_KEY]
    runner = session.runner(point)
    if runner.skip_reason:
        pytest.skip(runner.skip_reason)
    assert runner.fn is not None
    X = runner.batch(point.batch_size)
    with runner.thread_limits():
        start = time.perf_counter()
        runner.fn(X)  # warm-up, and the estimate that sets the number of rounds
        estimate = max(time.perf_counter() - start, 1e-6)
    target = session.selection.spec.target_seconds
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, target / estimate)))
    benchmark.group = f"{point.case}-b{point.batch_size}-t{point.threads}"
    benchmark.extra_info.update(runner.info, **point_extra(point))
    with runner.thread_limits():
        benchmark.pedantic(runner.fn, args=(X,), rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.stats is None:  # benchmarks disabled (unit-test run, xdist): a smoke run
        return
    stats = benchmark.stats.stats
    benchmark.extra_info.update(
        percentiles(stats.data), samples_per_s=point.batch_size / stats.median
    )
