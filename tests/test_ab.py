"""Interleaved A/B gating in live worker processes (slow: real workers, real timings)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.cli import main
from harness.timing.ab import Worker, ab_gate, calibrate, interleave, run_pairs
from harness.timing.prepare import BenchPoint, Selection

ROOT = Path(__file__).resolve().parent.parent  # this project's checkout
POINTS = [
    BenchPoint("iforest-100", "onnx-native", "cpu", 1, 1),
    BenchPoint("iforest-100", "onnx-native", "cuda", 1, 1),
]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.slow
def test_workers_time_blocks_alternately(tmp_path: Path) -> None:
    with open(tmp_path / "log", "w") as log:
        a, b = Worker(ROOT, POINTS, tmp_path, log), Worker(ROOT, POINTS, tmp_path, log)
        try:
            # The installed harness times; this checkout's engines are what is tested.
            assert a.engines_path.resolve() == ROOT / "engines" / "__init__.py"
            assert a.points[POINTS[0].id]["calls"] >= 1
            assert (
                "not usable" in a.points[POINTS[1].id]["skip"]
                or "not known" in a.points[POINTS[1].id]["skip"]
            )
            sa, sb, skipped = interleave(a, b, POINTS, rounds=3)
        finally:
            a.close()
            b.close()
    assert len(sa[POINTS[0].id]) == len(sb[POINTS[0].id]) == 6  # 2 samples a side per round
    assert all(s > 0 for s in sa[POINTS[0].id])
    assert [s["id"] for s in skipped] == [POINTS[1].id]


@pytest.mark.slow
def test_worker_pairs_pool_their_samples_with_one_block_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(tmp_path / "log", "w") as log:
        ab = run_pairs(ROOT, ROOT, POINTS, rounds=5, pairs=2, workdir=tmp_path, log=log)
    live = POINTS[0].id
    assert ab.pairs == 2
    assert ab.rounds_per_pair == 3
    assert len(ab.a[live]) == len(ab.b[live]) == 2 * 3 * 2  # pairs x rounds x 2 a side
    assert [s["id"] for s in ab.skipped] == [POINTS[1].id]
    assert "worker pair 2/2" in capsys.readouterr().out
    for worker in ab.workers:  # closed after their pair
        assert worker._process.poll() is not None


def test_run_pairs_refuses_zero_pairs(tmp_path: Path) -> None:
    with open(tmp_path / "log", "w") as log, pytest.raises(ValueError, match="pairs"):
        run_pairs(ROOT, ROOT, POINTS, rounds=4, pairs=0, workdir=tmp_path, log=log)


@pytest.mark.slow
def test_ab_gate_against_head_is_unchanged_or_inconclusive() -> None:
    report, seconds, (a, b) = ab_gate(
        "HEAD",
        Selection(cases=("iforest-100",), batch_sizes=(64,), threads=(1,)),
        rounds=6,
        pairs=2,
        cwd=ROOT,
    )
    assert seconds > 0
    assert {r.verdict for r in report.rows} <= {
        "unchanged",
        "inconclusive",
        "improved",
        "regressed",
    }
    assert len(report.rows) == 2  # sklearn and native at batch 64
    assert a.harness["git"]["commit"] == _git("rev-parse", "HEAD")
    assert b.benchmarks[0]["extra_info"]["calls_per_sample"] >= 1
    assert b.harness["worker_pairs"] == 2
    assert b.harness["rounds_per_pair"] == 3
    assert len(b.benchmarks[0]["stats"]["data"]) == 2 * 3 * 2
    assert "ab-" not in _git("worktree", "list")  # the temporary worktree is gone


@pytest.mark.slow
def test_ab_with_a_ref_whose_engines_the_harness_cannot_run_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the CLI tests the repository it runs in
    root_commit = _git("rev-list", "--max-parents=0", "HEAD").splitlines()[0]
    code = main(
        [
            "gate",
            "--ab",
            root_commit,
            "--cases",
            "iforest-100",
            "--batch-sizes",
            "1",
            "--rounds",
            "2",
        ]
    )
    assert code == 2
    assert "cannot be A/B tested" in capsys.readouterr().err


def test_ab_unknown_ref_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["gate", "--ab", "no-such-ref-anywhere"]) == 2
    assert "rev-parse" in capsys.readouterr().err


@pytest.mark.slow
def test_calibrate_stores_a_recommendation(tmp_path: Path) -> None:
    summary = calibrate(
        Selection(cases=("iforest-100",), batch_sizes=(64,), threads=(1,)),
        runs=1,
        rounds=4,
        pairs=2,
        results_dir=tmp_path,
    )
    stored = json.loads(Path(summary["path"]).read_text())
    assert stored["recommended_threshold"] >= 0.01
    assert stored["pairs"] == 2
    assert set(stored["noise"]) == {
        "iforest-100[onnx-native-cpu]-b64-t1",
        "iforest-100[sklearn]-b64-t1",
    }
    assert main(["calibrate", "--runs", "0"]) == 2
