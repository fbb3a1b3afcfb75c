"""Threads: the quick profile's thread settings, scikit-learn's n_jobs, scaling efficiency,
the speed-up against scikit-learn at its best setting, and the multi-core report section."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from harness.cases.zoo import cases
from harness.options import add_selection_options, namespace_get, selection_from_options
from harness.reports.html import render_html
from harness.reports.report import render_markdown
from harness.results.schema import add_speedups
from harness.results.store import ResultFile, ResultsError, load_result, write_result
from harness.timing.points import PROFILES
from harness.timing.prepare import BenchPoint, Selection, _with_n_jobs, build_points, prepare
from tests._results import bench_row, result_payload, sample_rows

# IsolationForest(300) at batch 10,000 on a 2-core machine (seconds): onnxruntime on 1 and
# 2 threads, scikit-learn's score_samples with n_jobs 1 and 2.
ORT = {1: 0.107, 2: 0.0545}
SKL = {1: 0.101, 2: 0.102}


def _rows() -> list[dict[str, Any]]:
    rows = []
    for threads in (1, 2):
        rows.append(
            bench_row(
                "iforest-300",
                "sklearn",
                10_000,
                [SKL[threads]] * 5,
                threads=threads,
                extra={"n_jobs": threads},
            )
        )
        rows.append(
            bench_row("iforest-300", "onnx-native", 10_000, [ORT[threads]] * 5, threads=threads)
        )
    return rows


def _extra(rows: list[dict[str, Any]], engine: str, threads: int) -> dict[str, Any]:
    (row,) = [
        r
        for r in rows
        if r["extra_info"]["engine"] == engine and r["extra_info"]["threads"] == threads
    ]
    extra: dict[str, Any] = row["extra_info"]
    return extra


def test_add_speedups_adds_efficiency_and_the_speedup_against_sklearn_at_its_best() -> None:
    rows = _rows()
    add_speedups(rows)
    onnx2, onnx1 = _extra(rows, "onnx-native", 2), _extra(rows, "onnx-native", 1)
    assert onnx2["scaling_efficiency"] == pytest.approx(0.107 / (2 * 0.0545))  # 0.98
    assert onnx2["speedup_vs_sklearn"] == pytest.approx(0.102 / 0.0545)  # same threads
    assert onnx2["speedup_vs_sklearn_best"] == pytest.approx(0.101 / 0.0545)  # sklearn t1
    assert onnx2["sklearn_best_threads"] == 1
    assert onnx1["speedup_vs_sklearn_best"] == pytest.approx(0.101 / 0.107)
    assert "scaling_efficiency" not in onnx1  # t1 against itself says nothing
    skl2 = _extra(rows, "sklearn", 2)
    assert skl2["scaling_efficiency"] == pytest.approx(0.101 / (2 * 0.102))  # n_jobs barely helps
    assert skl2["speedup_vs_sklearn_best"] == pytest.approx(0.101 / 0.102)


def test_add_speedups_without_a_one_thread_row_or_a_sklearn_row() -> None:
    rows = [
        bench_row("a", "onnx-native", 100, [1e-3] * 5, threads=2),
        bench_row("a", "onnx-native", 100, [1e-3] * 5, threads=4, provider="cuda"),
        bench_row("a", "onnx-native", 100, [4e-3] * 5, threads=1, provider="cuda"),
    ]
    add_speedups(rows)
    cpu2, cuda4 = rows[0]["extra_info"], rows[1]["extra_info"]
    assert cpu2["scaling_efficiency"] is None  # no cpu t1 row: a cuda one is another series
    assert cuda4["scaling_efficiency"] == pytest.approx(4e-3 / (4 * 1e-3))
    assert cpu2["speedup_vs_sklearn_best"] is None
    assert cpu2["sklearn_best_threads"] is None


def _results(rows: list[dict[str, Any]]) -> list[ResultFile]:
    return [ResultFile(Path("cpu.json"), result_payload(rows))]


def test_report_has_a_scaling_section_with_two_thread_settings() -> None:
    rows = _rows()
    add_speedups(rows)
    md = render_markdown(_results(rows))
    lines = md.splitlines()
    speedup = next(i for i, line in enumerate(lines) if line.startswith("## Speed-up"))
    assert lines[speedup + 2] == "Each engine against scikit-learn on the same number of threads."
    scaling = lines.index("## Multi-core scaling")
    assert speedup < scaling < lines.index("## Latency percentiles and throughput")
    assert (
        "| iforest-300 | onnx-native@cpu | 10,000 | 2 | 107 ms | 54.500 ms | 0.98 | 1.9x "
        "| sklearn t1 (n_jobs=1) |" in lines
    )
    assert "| iforest-300 | sklearn | 10,000 | 2 | 101 ms | 102 ms | 0.50 | 1.0x " in md
    assert "<h2>Multi-core scaling</h2>" in render_html(_results(rows))


def test_report_scaling_efficiency_of_results_older_than_the_field() -> None:
    rows = _rows()
    add_speedups(rows)
    for row in rows:
        for key in ("scaling_efficiency", "speedup_vs_sklearn_best", "sklearn_best_threads"):
            row["extra_info"].pop(key, None)
    md = render_markdown(_results(rows))
    assert (
        "| iforest-300 | onnx-native@cpu | 10,000 | 2 | 107 ms | 54.500 ms | 0.98 | - | - |" in md
    )


def test_report_has_no_scaling_section_with_one_thread_setting() -> None:
    md = render_markdown(_results(sample_rows()))
    assert "## Speed-up against scikit-learn" in md
    assert "## Multi-core scaling" not in md


def test_quick_profile_times_one_thread_and_all_cores() -> None:
    expected = tuple(sorted({1, os.cpu_count() or 1}))
    assert PROFILES["quick"].threads == expected == PROFILES["full"].threads
    points = build_points(Selection(profile="quick", cases=("iforest-100",), batch_sizes=(1,)))
    assert {p.threads for p in points} == set(expected)


@pytest.mark.parametrize(
    ("argv", "threads"), [([], None), (["--threads", "1"], (1,)), (["--threads", "3,1"], (3, 1))]
)
def test_threads_on_the_command_line_override_the_profile(
    argv: list[str], threads: tuple[int, ...] | None
) -> None:
    parser = argparse.ArgumentParser()
    add_selection_options(parser.add_argument)
    args = parser.parse_args([*argv, "--cases", "iforest-100", "--batch-sizes", "1"])
    selection = selection_from_options(namespace_get(args))
    assert selection.effective_threads == (threads or PROFILES["quick"].threads)
    assert {p.threads for p in build_points(selection)} == set(selection.effective_threads)


def _case_rows(name: str) -> tuple[np.ndarray, np.ndarray]:
    data = next(c for c in cases("large") if c.name == name).data()
    return data.X_train, data.X_test


def test_n_jobs_is_set_on_a_copy_of_an_isolation_forest() -> None:
    X, X_test = _case_rows("iforest-100")
    forest = IsolationForest(n_estimators=10, random_state=0).fit(X)
    timed, takes = _with_n_jobs(forest, 2)
    assert takes
    assert timed is not forest
    assert timed.n_jobs == 2
    assert forest.n_jobs is None  # the cached fitted model is never changed
    assert timed.estimators_ is forest.estimators_  # a shallow copy: nothing refitted
    np.testing.assert_array_equal(timed.score_samples(X_test), forest.score_samples(X_test))


def test_n_jobs_is_set_on_a_copy_of_a_pipeline_ending_in_isolation_forest() -> None:
    X, X_test = _case_rows("scaler-iforest")
    pipeline = make_pipeline(StandardScaler(), IsolationForest(n_estimators=10, random_state=0))
    pipeline.fit(X)
    steps, forest = list(pipeline.steps), pipeline.steps[-1][1]
    timed, takes = _with_n_jobs(pipeline, 2)
    assert takes
    assert timed is not pipeline
    assert timed.steps[-1][1].n_jobs == 2
    assert timed.steps[-1][1] is not forest
    assert pipeline.steps == steps  # the original's steps: the same objects, unchanged
    assert forest.n_jobs is None
    np.testing.assert_array_equal(timed.score_samples(X_test), pipeline.score_samples(X_test))


def test_n_jobs_reaches_the_inner_detector_of_a_pyod_detector() -> None:
    pytest.importorskip("pyod")
    from pyod.models.iforest import IForest

    X, X_test = _case_rows("iforest-100")
    detector = IForest(n_estimators=10, random_state=0).fit(X)
    timed, takes = _with_n_jobs(detector, 2)
    assert takes
    assert (timed.n_jobs, timed.detector_.n_jobs) == (2, 2)
    assert (detector.n_jobs, detector.detector_.n_jobs) == (1, 1)
    np.testing.assert_array_equal(
        timed.decision_function(X_test), detector.decision_function(X_test)
    )


def test_n_jobs_of_a_process_pool_is_left_alone() -> None:
    """PyOD's ECOD starts worker processes for n_jobs > 1: no thread setting to time."""
    pytest.importorskip("pyod")
    from pyod.models.ecod import ECOD

    X = np.random.default_rng(0).normal(size=(200, 4))
    detector = ECOD().fit(X)
    assert _with_n_jobs(detector, 2) == (detector, False)
    assert detector.n_jobs == 1


def _prepared(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, case: str, model: Any, threads: int
) -> Any:
    monkeypatch.setattr("harness.timing.prepare.fitted", lambda name: model)
    point = BenchPoint(case, "sklearn", "-", 10, threads)
    return prepare(point, Selection(cases=(case,)), tmp_path)


def test_prepare_times_sklearn_with_n_jobs_on_a_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    X, _ = _case_rows("iforest-100")
    forest = IsolationForest(n_estimators=10, random_state=0).fit(X)
    runner = _prepared(monkeypatch, tmp_path, "iforest-100", forest, threads=2)
    assert runner.info["n_jobs"] == 2
    assert runner.fn.__self__.estimator.n_jobs == 2  # the engine serves the copy
    assert forest.n_jobs is None
    with runner.thread_limits():
        assert runner.fn(runner.batch(10)).shape == (10,)


def test_an_estimator_without_n_jobs_records_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    X, _ = _case_rows("ocsvm-rbf")
    svm = OneClassSVM(nu=0.05).fit(X[:200])
    assert _with_n_jobs(svm, 2) == (svm, False)
    runner = _prepared(monkeypatch, tmp_path, "ocsvm-rbf", svm, threads=2)
    assert "n_jobs" in runner.info
    assert runner.info["n_jobs"] is None
    assert runner.fn.__self__.estimator is svm


def test_store_round_trip_keeps_the_new_fields_and_refuses_a_negative_efficiency(
    tmp_path: Path,
) -> None:
    rows = _rows()
    add_speedups(rows)
    path = write_result(
        tmp_path, result_payload(rows), machine_id="test-cpu-2c", provider="cpu", commit=None
    )
    loaded = load_result(path).benchmarks
    onnx2 = next(
        r["extra_info"]
        for r in loaded
        if r["extra_info"]["engine"] == "onnx-native" and r["extra_info"]["threads"] == 2
    )
    assert onnx2["scaling_efficiency"] == pytest.approx(0.98, abs=0.01)
    assert onnx2["sklearn_best_threads"] == 1
    assert {
        r["extra_info"]["n_jobs"] for r in loaded if r["extra_info"]["engine"] == "sklearn"
    } == {1, 2}
    data = json.loads(path.read_text())
    data["benchmarks"][3]["extra_info"]["scaling_efficiency"] = -0.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=r"scaling_efficiency must be a finite number > 0"):
        load_result(bad)
