from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.gate import gate, holm
from harness.store import ResultFile, write_result
from tests._results import bench_row, result_payload


def _result(rows: list[dict[str, object]], provider: str = "cpu") -> ResultFile:
    return ResultFile(Path("r.json"), result_payload(rows, provider=provider))  # type: ignore[arg-type]


def _rows(
    scale: float, n: int = 40, seed: int = 0, sklearn_scale: float = 1.0
) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    rows = []
    for case in ("iforest-100", "gmm-full"):
        for batch in (1, 100):
            base = 1e-3 * (1 + batch / 50)
            rows.append(
                bench_row(
                    case,
                    "sklearn",
                    batch,
                    rng.lognormal(np.log(base * 20 * sklearn_scale), 0.03, n),
                )
            )
            rows.append(
                bench_row(case, "onnx-native", batch, rng.lognormal(np.log(base * scale), 0.03, n))
            )
    return rows


def test_clear_regression_is_flagged() -> None:
    report = gate([_result(_rows(1.0))], [_result(_rows(1.3, seed=1))])
    assert {r.name for r in report.regressed} >= {
        "iforest-100[onnx-native-cpu]-b1-t1",
        "gmm-full[onnx-native-cpu]-b100-t1",
    }
    row = report.regressed[0]
    assert 1.2 < row.ratio < 1.4
    assert row.ci_low > 1.05
    assert row.p_adjusted < 0.01


def test_identical_runs_are_unchanged() -> None:
    report = gate([_result(_rows(1.0))], [_result(_rows(1.0))])
    assert {r.verdict for r in report.rows} == {"unchanged"}
    assert all(r.ratio == pytest.approx(1.0) for r in report.rows)


def test_same_distribution_resampled_is_not_a_regression() -> None:
    report = gate([_result(_rows(1.0, seed=1))], [_result(_rows(1.0, seed=2))])
    assert not report.regressed


def test_improvement() -> None:
    report = gate([_result(_rows(1.0))], [_result(_rows(0.7, seed=1))])
    assert {r.verdict for r in report.rows if "onnx" in r.name} == {"improved"}


def test_too_few_samples_is_inconclusive() -> None:
    report = gate([_result(_rows(1.0, n=3))], [_result(_rows(2.0, n=3, seed=1))])
    assert {r.verdict for r in report.rows} == {"inconclusive"}
    assert "fewer than 5 samples" in report.rows[0].note


def test_small_change_under_the_threshold_is_not_a_regression() -> None:
    report = gate(
        [_result(_rows(1.0, n=200))], [_result(_rows(1.02, n=200, seed=1))], threshold=0.05
    )
    assert not report.regressed


def test_speedup_metric_ignores_a_uniformly_slower_machine() -> None:
    slower_machine = _rows(1.5, seed=1, sklearn_scale=1.5)  # everything 50% slower
    by_time = gate([_result(_rows(1.0))], [_result(slower_machine)], metric="median")
    by_speedup = gate([_result(_rows(1.0))], [_result(slower_machine)], metric="speedup")
    assert by_time.regressed
    assert not by_speedup.regressed
    assert all("sklearn" not in r.name for r in by_speedup.rows)
    real = gate([_result(_rows(1.0))], [_result(_rows(1.5, seed=1))], metric="speedup")
    assert real.regressed  # ours slower, scikit-learn not: the speed-up dropped


@pytest.mark.parametrize("metric", ["p90", "p99"])
def test_percentile_metrics(metric: str) -> None:
    report = gate([_result(_rows(1.0))], [_result(_rows(1.4, seed=1))], metric=metric)  # type: ignore[arg-type]
    assert report.regressed


def test_mismatched_benchmarks_are_reported_not_crashed_on() -> None:
    extra = [*_rows(1.0), bench_row("lof-novelty", "onnx-native", 1, [0.001] * 10)]
    report = gate([_result(_rows(1.0))], [_result(extra)])
    assert report.only_candidate == ("lof-novelty[onnx-native-cpu]-b1-t1",)
    assert "Only in the candidate (1, not gated)" in report.to_markdown()


def test_holm_step_down() -> None:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.5]), [0.04, 0.09, 0.09, 0.5])
    assert holm([]).shape == (0,)


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="metric"):
        gate([], [], metric="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        gate([], [], threshold=5)


def _store(root: Path, rows: list[dict[str, object]]) -> Path:
    return write_result(root, result_payload(rows), machine_id="m", provider="cpu", commit=None)  # type: ignore[arg-type]


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _store(tmp_path / "a", _rows(1.0))
    same = _store(tmp_path / "b", _rows(1.0))
    slow = _store(tmp_path / "c", _rows(1.4, seed=1))
    few = _store(tmp_path / "d", _rows(1.0, n=3))
    assert main(["gate", str(base), str(same)]) == 0
    assert main(["gate", str(base), str(slow), "--json", str(tmp_path / "g.json")]) == 1
    verdicts = json.loads((tmp_path / "g.json").read_text())
    assert verdicts["summary"]["regressed"] >= 4
    assert main(["gate", str(base), str(few)]) == 0
    assert main(["gate", str(base), str(few), "--strict"]) == 3
    assert "| benchmark | baseline | candidate | ratio |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{truncated", "not valid JSON"),
        ('{"harness": {"schema_version": 9}, "benchmarks": []}', "schema_version 9"),
    ],
)
def test_cli_corrupt_or_unknown_schema_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    good = _store(tmp_path / "a", _rows(1.0))
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["gate", str(good), str(bad)]) == 2
    assert message in capsys.readouterr().err
    assert main(["gate", str(bad), str(good)]) == 2


def test_cli_usage_errors(tmp_path: Path) -> None:
    good = _store(tmp_path / "a", _rows(1.0))
    assert main(["gate", str(good)]) == 2
    assert main(["gate", str(good), str(tmp_path / "missing")]) == 2
    assert main(["gate", str(good), str(good), "--ab", "HEAD"]) == 2
    with pytest.raises(SystemExit):
        main(["gate", str(good), str(good), "--threshold", "250%"])
    other = _store(tmp_path / "b", [bench_row("x", "onnx-native", 1, [1e-3] * 10)])
    assert main(["gate", str(good), str(other)]) == 2  # nothing in common
