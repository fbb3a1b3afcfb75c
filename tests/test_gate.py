from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cli import main
from harness.results.gate import gate, holm
from harness.results.store import ResultFile, write_result
from tests._results import bench_row, result_payload, user_row


def _result(rows: list[dict[str, object]], provider: str = "cpu") -> ResultFile:
    return ResultFile(Path("r.json"), result_payload(rows, provider=provider))  # type: ignore[arg-type]


def _rows(
    scale: float, n: int = 40, seed: int = 0, sklearn_scale: float = 1.0, provider: str = "cpu"
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
            ours = rng.lognormal(np.log(base * scale), 0.03, n)
            rows.append(bench_row(case, "onnx-native", batch, ours, provider=provider))
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


# -- identity: what may be gated against what ------------------------------------------

SHA_A, SHA_B = "3fa2" + "0" * 60, "9bc1" + "0" * 60


def _user(sha: str, scale: float = 1.0, seed: int = 0, **identity: Any) -> ResultFile:
    samples = np.random.default_rng(seed).lognormal(np.log(1e-3 * scale), 0.03, 40)
    return _result([user_row("mymodel", "onnx-user", samples, sha=sha, **identity)])


def test_same_name_different_model_is_not_comparable() -> None:
    report = gate([_user(SHA_A)], [_user(SHA_B, scale=1.3, seed=1)])
    assert report.rows == ()
    assert report.not_comparable == (
        ("mymodel[onnx-user-cpu]-b1-t1", "model sha256 differs: 3fa20000…→9bc10000…"),
    )
    md = report.to_markdown()
    assert "1 not comparable" in md
    assert "Not comparable (1, not gated):" in md
    assert "- mymodel[onnx-user-cpu]-b1-t1: model sha256 differs: 3fa20000…→9bc10000…" in md
    assert "No benchmark is comparable in both runs." in md
    data = json.loads(report.to_json())
    assert data["not_comparable"] == [
        {
            "name": "mymodel[onnx-user-cpu]-b1-t1",
            "reason": "model sha256 differs: 3fa20000…→9bc10000…",
        }
    ]
    assert data["summary"]["not_comparable"] == 1
    assert data["model_change"] == "refuse"


def test_model_change_compare_gates_across_the_change() -> None:
    report = gate([_user(SHA_A)], [_user(SHA_B, scale=1.3, seed=1)], model_change="compare")
    (row,) = report.rows
    assert row.verdict == "regressed"
    assert row.note == "model changed: model sha256 differs: 3fa20000…→9bc10000…"
    assert "(model changed: model sha256 differs" in report.to_markdown()
    assert report.not_comparable == ()
    with pytest.raises(ValueError, match="model_change"):
        gate([], [], model_change="yes")  # type: ignore[arg-type]


def test_different_input_width_is_not_comparable() -> None:
    report = gate([_user(SHA_A, n_features=25)], [_user(SHA_A, n_features=30)])
    assert report.rows == ()
    assert report.not_comparable == (("mymodel[onnx-user-cpu]-b1-t1", "input width 25 vs 30"),)


def test_a_regression_across_providers_is_not_gated() -> None:
    """The old gate dropped the provider when the sides' providers differed: CUDA timings were
    then gated against CPU timings."""
    cuda = _rows(0.5, seed=1, provider="cuda")
    report = gate([_result(_rows(1.0))], [_result(cuda, provider="cuda")])
    assert {r.name for r in report.rows} == {
        f"{case}[sklearn]-b{batch}-t1" for case in ("iforest-100", "gmm-full") for batch in (1, 100)
    }
    assert dict(report.not_comparable) == {
        f"{case}[onnx-native]-b{batch}-t1": "provider cpu vs cuda"
        for case in ("iforest-100", "gmm-full")
        for batch in (1, 100)
    }


def test_runs_of_one_side_pool_but_duplicated_rows_count_once() -> None:
    rows = _rows(1.0)
    two_runs = gate([_result(rows), _result(_rows(1.0, seed=3))], [_result(_rows(1.0, seed=4))])
    assert {r.n_baseline for r in two_runs.rows} == {80}
    same_rows_twice = gate([_result(rows), _result(rows)], [_result(_rows(1.0, seed=4))])
    assert {r.n_baseline for r in same_rows_twice.rows} == {40}


def test_speedup_refuses_a_changed_scikit_learn_reference() -> None:
    def side(ref_sha: str) -> ResultFile:
        rng = np.random.default_rng(0)
        rows = [
            user_row("mymodel", "sklearn", rng.lognormal(np.log(2e-2), 0.03, 40), sha=ref_sha),
            user_row("mymodel", "onnx-user", rng.lognormal(np.log(1e-3), 0.03, 40)),
        ]
        return _result(rows)  # type: ignore[arg-type]

    report = gate([side(SHA_A)], [side(SHA_B)], metric="speedup")
    (row,) = report.rows
    assert row.verdict == "inconclusive"
    assert row.note == (
        "scikit-learn reference not comparable: model sha256 differs: 3fa20000…→9bc10000…"
    )
    assert gate([side(SHA_A)], [side(SHA_A)], metric="speedup").rows[0].verdict == "unchanged"


def test_cli_exits_2_when_nothing_is_comparable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_result(tmp_path / "a", _user(SHA_A).data, machine_id="m", provider="cpu", commit=None)
    b = write_result(tmp_path / "b", _user(SHA_B).data, machine_id="m", provider="cpu", commit=None)
    assert main(["gate", str(a), str(b)]) == 2
    assert "model sha256 differs" in capsys.readouterr().out


def test_a_report_of_a_users_model_has_no_empty_zoo_parity_table() -> None:
    # the plugin's stored rows carry no zoo parity: the report showed the table's header alone
    from harness.reports.report import render_markdown

    result = _user(SHA_A)
    for row in result.benchmarks:
        row["extra_info"].pop("parity", None)  # harness_benchmark stores no parity
    page = render_markdown([result])
    assert "## Parity (ONNX against scikit-learn" not in page
    assert "mymodel" in page


# -- a changed model under test, a baseline folder holding the candidate or two models ------

SHA_REF = "77ab" + "0" * 60


def _pair(sha: str, scale: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """A user model's run: its unchanged scikit-learn reference and its .onnx ``sha``."""
    rng = np.random.default_rng(seed)
    rows = [
        user_row("mymodel", "sklearn", rng.lognormal(np.log(2e-2), 0.03, 40), sha=SHA_REF),
        user_row("mymodel", "onnx-user", rng.lognormal(np.log(1e-3 * scale), 0.03, 40), sha=sha),
    ]
    return result_payload(rows)


def _stored(root: Path, *runs: dict[str, Any]) -> list[Path]:
    return [write_result(root, run, machine_id="m", provider="cpu", commit=None) for run in runs]


def test_a_changed_onnx_file_is_not_passed_by_gating_its_reference_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only detector.onnx changed (4x slower, same answers): its rows are not comparable, the
    unchanged reference rows gate as unchanged, and the gate exited 0."""
    old, new = _stored(tmp_path, _pair(SHA_A), _pair(SHA_B, scale=4.0, seed=1))
    assert main(["gate", str(old), str(new)]) == 2
    out, err = capsys.readouterr()
    assert "- mymodel[onnx-user-cpu]-b1-t1: model sha256 differs" in out
    assert "The model under test changed in 1 of them: not judged, so the gate does not pass" in out
    for way in ("--model-change compare", "harness gate --ab REF"):
        assert way in out
        assert way in err
    assert "harness gate: the model under test changed in 1 benchmark(s) and was not judged" in err
    # judged across the change when asked: the 4x slowdown is a regression
    assert main(["gate", str(old), str(new), "--model-change", "compare"]) == 1
    assert "**regressed** (model changed: model sha256 differs" in capsys.readouterr().out
    report = gate([ResultFile(old, _pair(SHA_A))], [ResultFile(new, _pair(SHA_B))])
    assert report.changed_models == ("mymodel[onnx-user-cpu]-b1-t1",)
    assert json.loads(report.to_json())["changed_models"] == ["mymodel[onnx-user-cpu]-b1-t1"]


def test_a_provider_difference_alone_keeps_the_documented_exit(tmp_path: Path) -> None:
    # rows on one provider only are listed, not gated; the rest decide (no model changed)
    base = _store(tmp_path / "a", _rows(1.0))
    cuda = [bench_row("iforest-100", "onnx-native", 1, [1e-4] * 30, provider="cuda")]
    both = _store(tmp_path / "b", _rows(1.0) + cuda)
    assert main(["gate", str(base), str(both)]) == 0


def test_the_candidate_is_left_out_of_a_baseline_folder_that_holds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`harness gate results/<machine>/cpu/ new.json`, new.json stored in that folder: its own
    samples were pooled into the baseline."""
    first, second = _stored(tmp_path, _pair(SHA_A), _pair(SHA_A, seed=1))
    folder = first.parent
    assert main(["gate", str(folder), str(second), "--json", str(tmp_path / "g.json")]) == 0
    err = capsys.readouterr().err
    assert (
        f"harness gate: left out of the baseline 1 run(s) that are the candidate ({second.name})"
        in err
    )
    assert {row["n_baseline"] for row in json.loads((tmp_path / "g.json").read_text())["rows"]} == {
        40
    }
    # a file against itself: nothing to gate it against
    assert main(["gate", str(second), str(second)]) == 2
    err = capsys.readouterr().err
    assert f"harness gate: BASELINE and CANDIDATE are the same file ({second})" in err
    assert "give earlier runs as BASELINE" in err


def test_a_baseline_folder_across_a_model_change_pools_the_candidates_model_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs of model A, then a retrained model B: every later folder gate exited 2 ("the
    baseline holds runs that differ") with no word of what to do."""
    runs = _stored(tmp_path, _pair(SHA_A), _pair(SHA_A, seed=1), _pair(SHA_B, seed=2))
    latest = _stored(tmp_path, _pair(SHA_B, seed=3))[0]
    folder = runs[0].parent
    assert main(["gate", str(folder), str(latest), "--json", str(tmp_path / "g.json")]) == 0
    rows = json.loads((tmp_path / "g.json").read_text())["rows"]
    assert {r["name"] for r in rows} == {"mymodel[onnx-user-cpu]-b1-t1", "mymodel[sklearn]-b1-t1"}
    by_name = {r["name"]: r for r in rows}
    onnx, reference = by_name["mymodel[onnx-user-cpu]-b1-t1"], by_name["mymodel[sklearn]-b1-t1"]
    assert onnx["n_baseline"] == 40  # run 3 alone: B's only earlier run
    assert onnx["note"] == "baseline: the 1 run(s) of this model only, 2 of another model left out"
    assert (reference["n_baseline"], reference["note"]) == (120, "")  # the reference never changed
    capsys.readouterr()
    # a model the baseline never saw: not judged, and the message says how to judge it
    other = _stored(tmp_path / "new", _pair("c0de" + "0" * 60, seed=4))[0]
    assert main(["gate", str(folder), str(other)]) == 2
    out, err = capsys.readouterr()
    assert "the baseline holds runs that differ (model sha256 differs" in out
    assert "a baseline of one model (a result file, or a folder of its runs only)" in err
    assert "harness gate --ab REF" in err


# -- the table explains itself ---------------------------------------------------------------


def _paired(samples: list[float]) -> ResultFile:
    payload = result_payload([bench_row("iforest-100", "onnx-native", 1, samples)])
    payload["harness"]["paired"] = True
    return ResultFile(Path("ab.json"), payload)


def test_a_paired_ratio_is_named_and_explained_where_it_disagrees_with_the_medians() -> None:
    """gate --ab: baseline 0.0139 ms, candidate 0.0142 ms, ratio 0.990: the paired statistic
    read as candidate / baseline of the medians shown."""
    a = [1e-3 * x for x in (1.0, 2.0, 3.0, 4.0, 5.0)] * 8
    b = [1e-3 * x for x in (0.95, 1.9, 4.5, 3.8, 4.75)] * 8  # 4 pairs in 5 faster, median higher
    report = gate([_paired(a)], [_paired(b)])
    (row,) = report.rows
    assert row.candidate > row.baseline  # what the user saw: both are right
    assert row.ratio < 1
    md = report.to_markdown()
    assert "| benchmark | baseline | candidate | paired ratio | CI | p (Holm) | verdict |" in md
    note = md.split("| verdict |", 1)[1].strip().splitlines()[-1]
    assert note.startswith("paired ratio: the median over the interleaved sample pairs")
    assert "not the ratio of the medians shown" in note


def test_an_unpaired_ratio_is_the_ratio_of_the_values_shown() -> None:
    md = gate([_result(_rows(1.0))], [_result(_rows(1.4, seed=1))]).to_markdown()
    assert "| benchmark | baseline | candidate | ratio | CI |" in md
    said = "ratio: candidate / baseline of the medians shown (above 1: the candidate is slower)"
    assert said in md


def test_an_underflowed_p_value_is_shown_as_a_bound() -> None:
    slow = [1e-3] * 2000 + [2e-3] * 2000
    fast = [1e-4] * 2000 + [2e-4] * 2000
    report = gate(
        [_result([bench_row("iforest-100", "onnx-native", 1, fast)])],
        [_result([bench_row("iforest-100", "onnx-native", 1, slow)])],
    )
    assert report.rows[0].p_adjusted < 1e-300
    md = report.to_markdown()
    assert "| < 1e-300 | **regressed** |" in md
    assert "| 0 |" not in md
