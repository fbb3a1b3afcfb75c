"""Plain pytest-benchmark JSON (``--benchmark-json``, no harness block) in every command."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cli import main
from harness.reports.compare import compare_markdown
from harness.reports.html import render_html
from harness.reports.report import render_markdown
from harness.results.gate import gate
from harness.results.history import build_series
from harness.results.store import ResultFile, ResultsError, load_result, load_results
from tests._results import plain_payload, plain_row, result_payload, sample_rows

NAMES = ("test_parse[small]", "test_parse[big]", "test_render", "test_sort")


def _rows(scale: float = 1.0, seed: int = 0, save_data: bool = True) -> list[dict[str, Any]]:
    """Four benchmarks of very different speeds, 30 rounds each."""
    rng = np.random.default_rng(seed)
    return [
        plain_row(name, rng.lognormal(np.log(base * scale), 0.03, 30), save_data=save_data)
        for name, base in zip(NAMES, (2e-6, 3e-4, 1e-2, 5e-5), strict=True)
    ]


def _file(tmp_path: Path, name: str, payload: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return path


def _loaded(tmp_path: Path, name: str, **kwargs: Any) -> ResultFile:
    return load_result(_file(tmp_path, name, plain_payload(_rows(**kwargs))))


def test_plain_file_loads_with_a_machine_id_from_machine_info(tmp_path: Path) -> None:
    result = _loaded(tmp_path, "plain.json")
    assert result.plain
    assert result.harness["machine_id"] == "amd-epyc-7b13-processor-2c"
    assert result.harness["provider"] == "-"
    assert result.harness["git"]["commit"] == "b" * 40
    assert result.label == "amd-epyc-7b13-processor-2c/-/plain.json"
    assert len(result.benchmarks) == 4
    assert not load_result(_file(tmp_path, "ours.json", result_payload(sample_rows()))).plain


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [
        ({"brand": "Intel(R) Xeon(R) @ 2.80GHz", "count": None}, "intel-r-xeon-r-2-80ghz"),
        ({"brand": None, "count": 8}, "build-host-01"),
        ({"brand": "%%%", "count": 8}, "build-host-01"),
    ],
)
def test_machine_id_fallbacks_are_folder_safe(
    tmp_path: Path, cpu: dict[str, Any], expected: str
) -> None:
    payload = plain_payload([], node="Build_Host.01", **cpu)
    assert load_result(_file(tmp_path, "p.json", payload)).harness["machine_id"] == expected
    del payload["machine_info"]["node"]
    payload["machine_info"]["cpu"] = "not an object"
    assert load_result(_file(tmp_path, "q.json", payload)).harness["machine_id"] == (
        "unknown-machine"
    )


def _without(key: str) -> dict[str, Any]:
    payload = plain_payload(_rows())
    del payload[key]
    return payload


def _bad_row(**changes: Any) -> dict[str, Any]:
    row = plain_row("test_x", [1e-3] * 5)
    for key, value in changes.items():
        if key == "stats":
            row["stats"] = {**row["stats"], **value}
        else:
            row[key] = value
    return plain_payload([row])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "not pytest-benchmark JSON"),
        ({"benchmarks": []}, "needs 'machine_info' and 'benchmarks'"),
        (_without("benchmarks"), "needs 'machine_info' and 'benchmarks'"),
        ({**plain_payload([]), "benchmarks": {"a": 1}}, "benchmarks must be an array"),
        (_bad_row(stats={"median": None}), r"stats\.median must be a finite number > 0"),
        (_bad_row(stats={"median": "fast"}), r"stats\.median must be a finite number > 0"),
        (_bad_row(stats={"data": ["1", "2"]}), r"stats\.data\[0\] must be a finite time > 0"),
        (_bad_row(extra_info=[1]), r"benchmarks\[0\]\.extra_info must be an object"),
        ({"harness": [], "benchmarks": []}, "'harness' block must be an object"),
    ],
)
def test_bad_plain_files_are_refused(tmp_path: Path, payload: Any, message: str) -> None:
    with pytest.raises(ResultsError, match=message):
        load_result(_file(tmp_path, "bad.json", payload))


def test_gate_flags_every_slower_benchmark_separately(tmp_path: Path) -> None:
    """The old gate keyed every plain row `None[None]-bNone-tNone` and pooled them into one:
    a 25% slowdown of every benchmark could pass."""
    report = gate([_loaded(tmp_path, "a.json")], [_loaded(tmp_path, "b.json", scale=1.25, seed=1)])
    assert sorted(r.name for r in report.rows) == sorted(
        f"tests/test_speed.py::{name}" for name in NAMES
    )
    assert {r.verdict for r in report.rows} == {"regressed"}
    assert all(1.15 < r.ratio < 1.35 for r in report.rows)
    assert all(r.n_baseline == r.n_candidate == 30 for r in report.rows)
    same = gate([_loaded(tmp_path, "a.json")], [_loaded(tmp_path, "c.json", seed=2)])
    assert not same.regressed


def test_gate_without_raw_samples_is_inconclusive_with_medians(tmp_path: Path) -> None:
    a = _loaded(tmp_path, "a.json", save_data=False)
    b = _loaded(tmp_path, "b.json", scale=1.25, seed=1, save_data=False)
    report = gate([a], [b])
    assert len(report.rows) == 4
    assert {r.verdict for r in report.rows} == {"inconclusive"}
    row = report.rows[0]
    assert "no raw samples in the baseline and candidate" in row.note
    assert "--benchmark-save-data" in row.note
    assert 1.15 < row.ratio < 1.35  # the medians are shown, not tested
    assert (row.n_baseline, row.n_candidate) == (0, 0)
    md = report.to_markdown()
    assert "4 inconclusive" in md
    assert "nan" not in md  # no interval: shown as "-"
    json.loads(report.to_json())  # NaN intervals still serialise
    for metric in ("p90", "speedup"):
        other = gate([a], [b], metric=metric)  # type: ignore[arg-type]
        assert {r.verdict for r in other.rows} == {"inconclusive"}


def test_gate_with_raw_samples_on_one_side_only(tmp_path: Path) -> None:
    report = gate([_loaded(tmp_path, "a.json")], [_loaded(tmp_path, "b.json", save_data=False)])
    assert {r.verdict for r in report.rows} == {"inconclusive"}
    assert all("no raw samples in the candidate" in r.note for r in report.rows)


def test_gate_mixed_harness_and_plain_files(tmp_path: Path) -> None:
    ours = ResultFile(Path("ours.json"), result_payload(sample_rows()))
    both = gate([ours, _loaded(tmp_path, "a.json")], [ours, _loaded(tmp_path, "b.json", seed=1)])
    names = {r.name for r in both.rows}
    assert len(names) == 8 + 4
    assert "tests/test_speed.py::test_sort" in names
    assert "iforest-100[onnx-native-cpu]-b1-t1" in names
    crossed = gate([ours], [_loaded(tmp_path, "b.json")])
    assert crossed.rows == ()
    assert len(crossed.only_baseline) == 8
    assert len(crossed.only_candidate) == 4


def test_cli_gate_on_plain_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _file(tmp_path, "a.json", plain_payload(_rows()))
    slow = _file(tmp_path, "slow.json", plain_payload(_rows(1.25, seed=1)))
    same = _file(tmp_path, "same.json", plain_payload(_rows(seed=2)))
    no_data = _file(tmp_path, "nodata.json", plain_payload(_rows(1.25, seed=1, save_data=False)))
    assert main(["gate", str(a), str(slow)]) == 1
    assert main(["gate", str(a), str(same)]) == 0
    assert main(["gate", str(a), str(no_data), "--strict"]) == 3
    assert "tests/test_speed.py::test_render" in capsys.readouterr().out


def test_compare_plain_files(tmp_path: Path) -> None:
    table = compare_markdown(
        [_loaded(tmp_path, "a.json")], [_loaded(tmp_path, "b.json", scale=2.0, seed=1)]
    )
    assert "| benchmark | A median | B median | B / A |" in table
    lines = [line for line in table.splitlines() if "::" in line]
    assert len(lines) == 4
    assert all(1.8 < float(line.rsplit("|", 2)[1]) < 2.2 for line in lines)
    assert re.search(r"\| tests/test_speed.py::test_parse\[small\] \| [12](\.\d+)? us \|", table)


def test_report_renders_plain_files(tmp_path: Path) -> None:
    results = [_loaded(tmp_path, "a.json")]
    md = render_markdown(results)
    assert "## pytest-benchmark results" in md
    assert "| benchmark | median | IQR | ops/s | rounds | raw samples |" in md
    assert re.search(r"\| tests/test_speed.py::test_render \| 10(\.\d+)? ms \|", md)
    assert "AMD EPYC 7B13 Processor, 2 cores" in md
    assert "## Speed-up" not in md
    page = render_html(results)
    assert page.count("data:image/png;base64,") == 1
    no_data = render_markdown([_loaded(tmp_path, "b.json", save_data=False)])
    assert "cannot test a change" in no_data
    empty = load_result(_file(tmp_path, "empty.json", plain_payload([])))
    assert "No benchmark rows" in render_markdown([empty])
    assert "<!doctype html>" in render_html([empty])


def test_report_mixed_harness_and_plain(tmp_path: Path) -> None:
    ours = ResultFile(Path("ours.json"), result_payload(sample_rows()))
    results = [ours, _loaded(tmp_path, "a.json"), _loaded(tmp_path / "..", "other.json")]
    md = render_markdown(results)
    assert "## Speed-up against scikit-learn" in md
    assert "## pytest-benchmark results" in md
    assert "| run | benchmark |" in md  # two plain files: which run each row is from
    assert md.count("tests/test_speed.py::test_sort") == 2
    # speed-up heat map and latency (harness), the medians bar chart (plain)
    assert render_html(results).count("data:image/png;base64,") == 3


def test_a_pipe_in_a_benchmark_id_survives_the_tables(tmp_path: Path) -> None:
    payload = plain_payload([plain_row("test_split[a|b]", [1e-3] * 5)])
    result = load_result(_file(tmp_path, "pipe.json", payload))
    assert "test_split[a\\|b]" in render_markdown([result])
    assert "tests/test_speed.py::test_split[a|b]</span></td>" in render_html([result])
    gated = gate([result], [result]).to_markdown()
    assert "| tests/test_speed.py::test_split[a\\|b] |" in gated


def test_history_of_plain_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, level in enumerate([1.0] * 6 + [1.3] * 6):
        rows = _rows(seed=i)
        rows[2] = plain_row(NAMES[2], rng.lognormal(np.log(1e-2 * level), 0.01, 30))
        _file(folder, f"{i + 1:04d}_{i:040x}_20261125_000000.json", plain_payload(rows))
    series = {s.name: s for s in build_series(load_results([tmp_path / ".benchmarks"]))}
    assert len(series) == 4
    stepped = series["tests/test_speed.py::test_render"]
    assert stepped.change_points == [6]
    assert stepped.machine == "amd-epyc-7b13-processor-2c"
    assert stepped.provider == "-"
    assert main(["history", str(tmp_path / ".benchmarks"), "--out", str(tmp_path / "out")]) == 0
    assert "4 benchmarks over 12 runs" in capsys.readouterr().out


def test_plain_files_are_ordered_by_when_they_were_made_not_by_name(tmp_path: Path) -> None:
    # pytest-benchmark users name --benchmark-json files as they like: z_monday.json is older
    # than a_tuesday.json, and the newer run (25% slower) is the latest and the last point
    for name, day, scale in (("z_monday.json", 5, 1.0), ("a_tuesday.json", 6, 1.25)):
        payload = plain_payload(_rows(scale=scale))
        payload["datetime"] = f"2026-01-0{day}T09:00:00+00:00"
        _file(tmp_path, name, payload)
    results = load_results([tmp_path])
    latest = render_markdown(results).split("Older runs")[0]
    assert "a_tuesday.json" in latest
    assert "z_monday.json" not in latest
    series = {s.name: s for s in build_series(results)}
    medians = series["tests/test_speed.py::test_render"].medians
    assert medians[-1] / medians[0] == pytest.approx(1.25, rel=0.05)


def test_an_inconclusive_row_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # it said "plain pytest-benchmark files need --benchmark-save-data" of files that had them
    a, b = _file(tmp_path, "a.json", plain_payload(_rows())), tmp_path / "b.json"
    b.write_text(json.dumps(plain_payload(_rows(scale=1.05, seed=1))))
    report = gate([load_result(a)], [load_result(b)])
    undecided = report.inconclusive
    assert undecided, report.to_markdown()
    assert all("band" in r.note for r in undecided)
    assert main(["gate", str(a), str(b)]) == 0
    err = capsys.readouterr().err
    assert "inconclusive (the table says why" in err
    assert "--benchmark-save-data" not in err


def test_plain_files_in_folders_are_ordered_by_when_they_were_made(tmp_path: Path) -> None:
    # one folder per CI job: z_monday/bench.json is older than a_tuesday/bench.json
    for folder, day, scale in (("z_monday", 5, 1.0), ("a_tuesday", 6, 1.25)):
        payload = plain_payload(_rows(scale=scale))
        payload["datetime"] = f"2026-01-0{day}T09:00:00"  # naive: read as UTC
        (tmp_path / folder).mkdir()
        _file(tmp_path / folder, "bench.json", payload)
    series = {s.name: s for s in build_series(load_results([tmp_path]))}
    medians = series["tests/test_speed.py::test_render"].medians
    assert medians[-1] / medians[0] == pytest.approx(1.25, rel=0.05)
