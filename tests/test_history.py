from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.results.history import build_series
from harness.results.store import load_results, write_result
from tests._results import bench_row, result_payload, user_row


def _history(root: Path, levels: list[float]) -> None:
    rng = np.random.default_rng(0)
    for i, level in enumerate(levels):
        rows = [
            bench_row(
                "iforest-100", "onnx-native", 1, rng.lognormal(np.log(1e-3 * level), 0.01, 20)
            ),
            bench_row("gmm-full", "onnx-native", 1, rng.lognormal(np.log(1e-3), 0.01, 20)),
        ]
        write_result(
            root,
            result_payload(rows, commit=f"{i:040x}"),
            machine_id="m",
            provider="cpu",
            commit=f"{i:040x}",
        )


def test_step_is_detected_and_located(tmp_path: Path) -> None:
    _history(tmp_path, [1.0] * 6 + [1.3] * 6)
    series = {s.name: s for s in build_series(load_results([tmp_path]))}
    stepped = series["iforest-100[onnx-native]-b1-t1"]
    assert stepped.change_points == [6]
    assert "step at run 7" in stepped.flags
    assert series["gmm-full[onnx-native]-b1-t1"].flags == "-"


def test_slow_creep_is_flagged(tmp_path: Path) -> None:
    _history(tmp_path, list(np.linspace(1.0, 1.2, 10)))
    (creeping,) = [
        s for s in build_series(load_results([tmp_path])) if s.name.startswith("iforest")
    ]
    assert creeping.creep is not None
    assert 0.15 < creeping.creep < 0.25


def test_one_step_is_one_step_not_creep_too(tmp_path: Path) -> None:
    # 5 runs at 1.0 then 5 at 1.25 read "step at run 6; creep +36% over 10 runs"
    _history(tmp_path, [1.0] * 5 + [1.25] * 5)
    stepped = next(
        s for s in build_series(load_results([tmp_path])) if s.name.startswith("iforest")
    )
    assert stepped.change_points == [5]
    assert stepped.creep is None
    assert stepped.flags == f"step at run 6 ({5:040x}"[:23] + ")"


def test_a_step_smaller_than_the_threshold_is_no_step(tmp_path: Path) -> None:
    # quiet series: a -0.1% level change was 3 noise sigmas, and flagged as a step
    rng = np.random.default_rng(1)
    for level in [1.0] * 4 + [0.999] * 4:
        samples = rng.lognormal(np.log(1e-3 * level), 1e-5, 20)
        row = bench_row("iforest-100", "onnx-native", 1, samples)
        payload = result_payload([row], commit="unversioned")
        write_result(tmp_path, payload, machine_id="m", provider="cpu", commit="unversioned")
    (quiet,) = build_series(load_results([tmp_path]))
    assert quiet.change_points == []
    assert quiet.flags == "-"
    assert quiet.commits[0] == "unversioned"  # not cut to "unversio": only hashes are


def test_a_small_step_after_a_big_one_is_judged_against_its_neighbours(tmp_path: Path) -> None:
    # x1 then x2 then x2.04: the 2% step was compared with everything before it (x1) and flagged
    _history(tmp_path, [1.0] * 6 + [2.0] * 6 + [2.04] * 6)
    stepped = next(
        s for s in build_series(load_results([tmp_path])) if s.name.startswith("iforest")
    )
    assert stepped.change_points == [6]


def test_creep_between_steps_names_its_runs(tmp_path: Path) -> None:
    # flat, then a step to x2 and +30% over the next 12 runs: the creep is not "over 20 runs"
    _history(tmp_path, [1.0] * 8 + list(2.0 * np.linspace(1.0, 1.3, 12)))
    (series,) = [s for s in build_series(load_results([tmp_path])) if s.name.startswith("iforest")]
    assert series.creep is not None
    assert series.creep_runs is not None
    assert series.creep_runs[1] == 20
    assert f"over runs {series.creep_runs[0] + 1}-20" in series.flags


def test_cli_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _history(tmp_path / "results", [1.0] * 5 + [1.5] * 5)
    assert main(["history", str(tmp_path / "results"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "2 benchmarks over 10 runs; 1 flagged" in out
    page = (tmp_path / "out" / "history.html").read_text()
    assert "data:image/png;base64," in page
    assert "step at run 6" in (tmp_path / "out" / "history.md").read_text()
    assert main(["history", str(tmp_path / "nothing")]) == 2


def test_a_user_model_that_changed_starts_a_new_series(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i, sha in enumerate(["3fa2" + "0" * 60] * 3 + ["9bc1" + "0" * 60] * 3):
        rows = [
            user_row("mymodel", "onnx-user", rng.lognormal(np.log(1e-3), 0.01, 20), sha=sha),
            # a zoo case whose export changed is still the same benchmark
            bench_row(
                "iforest-100",
                "onnx-native",
                1,
                rng.lognormal(np.log(1e-3), 0.01, 20),
                extra={"model_sha256": f"{i:064x}"},
            ),
        ]
        write_result(tmp_path, result_payload(rows), machine_id="m", provider="cpu", commit=None)
    series = {s.name: s for s in build_series(load_results([tmp_path]))}
    assert sorted(series) == [
        "iforest-100[onnx-native]-b1-t1",
        "mymodel[onnx-user]-b1-t1 (sha256 3fa20000…)",
        "mymodel[onnx-user]-b1-t1 (sha256 9bc10000…)",
    ]
    assert [len(s.medians) for _, s in sorted(series.items())] == [6, 3, 3]


def test_providers_are_separate_series(tmp_path: Path) -> None:
    for provider in ("cpu", "cuda"):
        rows = [
            bench_row("iforest-100", "sklearn", 1, [1e-2] * 5),
            bench_row("iforest-100", "onnx-native", 1, [1e-3] * 5, provider=provider),
        ]
        payload = result_payload(rows, provider=provider)
        write_result(tmp_path, payload, machine_id="m", provider=provider, commit=None)
    series = build_series(load_results([tmp_path]))
    assert sorted((s.provider, s.name, len(s.medians)) for s in series) == [
        ("cpu", "iforest-100[onnx-native]-b1-t1", 1),
        ("cpu", "iforest-100[sklearn]-b1-t1", 1),
        ("cuda", "iforest-100[onnx-native]-b1-t1", 1),
        ("cuda", "iforest-100[sklearn]-b1-t1", 1),
    ]


@pytest.mark.parametrize("before", [4, 8, 15])
def test_a_step_in_the_latest_run_is_placed_on_its_commit(tmp_path: Path, before: int) -> None:
    # PELT's levels are two runs long at least: a step in the latest run alone was placed
    # one run early, on the commit before, or read as creep over the whole series
    _history(tmp_path, [1.0] * before + [1.3])
    stepped = next(
        s for s in build_series(load_results([tmp_path])) if s.name.startswith("iforest")
    )
    assert stepped.change_points == [before]
    assert stepped.creep is None
    assert stepped.flags.startswith(f"step at run {before + 1} (")
    assert stepped.flags.endswith("; the latest run alone)")


def test_a_step_two_runs_before_the_end_stays_there(tmp_path: Path) -> None:
    _history(tmp_path, [1.0] * 8 + [1.3] * 2)
    stepped = next(
        s for s in build_series(load_results([tmp_path])) if s.name.startswith("iforest")
    )
    assert stepped.change_points == [8]
    assert "latest run alone" not in stepped.flags


def test_a_latest_run_within_the_noise_is_no_step(tmp_path: Path) -> None:
    _history(tmp_path, [1.0] * 8 + [1.02])  # 2%: below the 5% threshold
    quiet = next(s for s in build_series(load_results([tmp_path])) if s.name.startswith("iforest"))
    assert quiet.flags == "-"


def test_fail_on_flag_exits_1_when_something_is_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A nightly creep alarm had to parse the markdown: history exited 0 with flags."""
    stepped, flat = tmp_path / "stepped", tmp_path / "flat"
    _history(stepped, [1.0] * 6 + [1.3] * 6)
    _history(flat, [1.0] * 8)
    out = ["--out", str(tmp_path / "out")]
    assert main(["history", str(stepped), *out]) == 0  # flags reported, exit 0 by default
    assert main(["history", str(stepped), *out, "--fail-on-flag"]) == 1
    assert "1 benchmark(s) flagged (--fail-on-flag)" in capsys.readouterr().err
    assert main(["history", str(flat), *out, "--fail-on-flag"]) == 0
