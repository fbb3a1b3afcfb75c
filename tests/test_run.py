"""`harness run` end to end on small selections, and its building blocks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import IsolationForest

from engines import export
from harness.cli import main
from harness.results.schema import add_speedups
from harness.results.store import load_results
from harness.timing.prepare import BenchPoint, Selection, build_points, split_list
from tests._results import bench_row


def test_points_cover_the_selection() -> None:
    points = build_points(Selection(profile="quick", cases=("iforest-100", "autoencoder")))
    assert {p.batch_size for p in points} == {1, 100, 10_000}
    assert {p.threads for p in points} == {1, os.cpu_count() or 1}  # 1 thread and all cores
    engines = {(p.case, p.engine) for p in points}
    assert engines == {
        ("iforest-100", "sklearn"),
        ("iforest-100", "onnx-native"),
        ("autoencoder", "sklearn"),
        ("autoencoder", "onnx-torch"),
    }
    full = build_points(Selection(profile="full", cases=("autoencoder",)))
    assert {p.engine for p in full} == {"sklearn", "onnx-torch", "onnx-torch-int8", "torch-eager"}
    assert (
        BenchPoint("iforest-300", "onnx-native", "cpu", 100, 1).id
        == "iforest-300[onnx-native-cpu]-b100-t1"
    )


def test_unknown_case_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown cases"):
        build_points(Selection(cases=("nope",)))


def test_split_list() -> None:
    assert split_list("1, 100,10000", int) == (1, 100, 10_000)
    assert split_list("") == ()
    assert split_list(None) == ()


def test_speedups_are_matched_on_case_batch_and_threads() -> None:
    rows = [
        bench_row("a", "sklearn", 1, [2e-3] * 5),
        bench_row("a", "onnx-native", 1, [1e-4] * 5),
        bench_row("a", "onnx-native", 10, [1e-4] * 5),  # no sklearn row at batch 10
    ]
    add_speedups(rows)
    assert rows[1]["extra_info"]["speedup_vs_sklearn"] == pytest.approx(20.0)
    assert rows[2]["extra_info"]["speedup_vs_sklearn"] is None
    assert rows[0]["extra_info"]["speedup_vs_sklearn"] == pytest.approx(1.0)


@pytest.mark.slow
def test_harness_run_on_a_small_selection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--cases",
            "iforest-100,gmm-full",
            "--batch-sizes",
            "1,64",
            "--threads",
            "1",
            "--no-parity",
            "--providers",
            "cpu,cuda",
            "--out",
            str(tmp_path / "out"),
            "--results",
            str(tmp_path / "results"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "harness run: profile quick, 12 benchmarks" in out
    (result,) = load_results([tmp_path / "results"])
    assert result.path.parent.name == "cpu"  # nothing ran on cuda: no cuda result file
    h = result.harness
    assert h["schema_version"] == 1
    assert {"cpu_model", "cores", "cgroup_cpu_quota", "memory_bytes"} <= set(h["machine"])
    assert h["versions"]["onnxruntime"]
    assert "commit" in h["git"]
    assert any("cuda" in s["id"] and "not" in s["reason"] for s in h["skipped"])
    rows = result.benchmarks
    assert len(rows) == 8  # 2 cases x (sklearn, native) x 2 batches on cpu
    for row in rows:
        extra = row["extra_info"]
        assert len(row["stats"]["data"]) >= 5  # raw samples kept
        assert {"p50_ms", "p90_ms", "p99_ms", "samples_per_s", "speedup_vs_sklearn"} <= set(extra)
        if extra["engine"] != "sklearn":
            assert extra["provider_active"] == "CPUExecutionProvider"
            assert extra["parity"] == "pass"
            assert len(extra["model_sha256"]) == 64
            assert extra["speedup_vs_sklearn"] > 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| iforest-100 | onnx-native@cpu t1 |" in md
    assert "not usable here" in md
    assert (tmp_path / "out" / "report.html").read_text().count("data:image/png") >= 3


@pytest.mark.slow
def test_bring_your_own_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6)).astype(np.float32)
    forest = IsolationForest(n_estimators=20, random_state=0).fit(X)
    export(forest, path=tmp_path / "m.onnx")
    sio.dump(forest, tmp_path / "m.skops")
    np.save(tmp_path / "X.npy", X[:50])
    code = main(
        [
            "run",
            "--model",
            str(tmp_path / "m.onnx"),
            "--reference",
            str(tmp_path / "m.skops"),
            "--data",
            str(tmp_path / "X.npy"),
            "--batch-sizes",
            "1,8",
            "--no-store",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Harness report - m" in md
    assert "## Parity of m: PASS" in md
    assert "| m | onnx-user@cpu t1 |" in md
    assert not (tmp_path / "results").exists()
    parity = (tmp_path / "out" / "parity.md").read_text()
    assert "failed" in parity
    assert "**FAIL**" not in parity


def test_run_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(tmp_path / "out")]
    assert main(["run", "--model", str(tmp_path / "missing.onnx"), "--no-store", *out]) == 2
    assert "missing.onnx: no such file" in capsys.readouterr().err
    assert main(["run", "--cases", "nope", *out]) == 2
    assert "unknown case(s) ['nope']" in capsys.readouterr().err
    assert main(["run", "--batch-sizes", "0", *out]) == 2
    assert "outside [1," in capsys.readouterr().err
    assert main(["run", "--data", "x.csv", *out]) == 2
    assert "give --model too" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--profile", "huge"])


def test_stored_results_are_read_by_pytest_benchmark_compare(tmp_path: Path) -> None:
    import subprocess
    import sys

    from harness.results.store import write_result
    from tests._results import result_payload, sample_rows

    path = write_result(
        tmp_path, result_payload(sample_rows()), machine_id="m", provider="cpu", commit=None
    )
    cli = Path(sys.executable).parent / "pytest-benchmark"  # pytest-benchmark's own console script
    done = subprocess.run(
        [str(cli), "compare", str(path), "--group-by", "group"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "iforest-100" in done.stdout
