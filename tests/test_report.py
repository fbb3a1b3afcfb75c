from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.report import compare_markdown, render_html, render_markdown, write_reports
from harness.store import ResultFile, write_result
from tests._results import result_payload, sample_rows


def _results(scale: float = 1.0, provider: str = "cpu") -> list[ResultFile]:
    payload = result_payload(sample_rows(scale), provider=provider)
    return [ResultFile(Path(f"{provider}.json"), payload)]


def test_markdown_has_every_section() -> None:
    md = render_markdown(_results())
    headings = ["# Harness report", "## Speed-up against scikit-learn", "## Latency percentiles"]
    headings += ["## Parity", "## Skipped", "## Environment"]
    for heading in headings:
        assert heading in md
    assert re.search(r"\| iforest-100 \| onnx-native@cpu t1 \| \d+\.\dx \(", md)
    assert "no NVIDIA GPU" in md
    assert "Test CPU, 2 cores, 24 GiB" in md
    assert "| gmm-full | onnx-native | pass | 1e-09 | 1.0000 |" in md


def test_empty_results() -> None:
    assert "No benchmark rows" in render_markdown([ResultFile(Path("x"), result_payload([]))])


def test_html_is_self_contained_with_plots() -> None:
    page = render_html(_results())
    assert page.startswith("<!doctype html>")
    assert page.count("data:image/png;base64,") == 4  # speed-up, latency, throughput, parity
    assert "http://" not in page
    assert "https://" not in page
    assert "<table>" in page


def test_write_reports(tmp_path: Path) -> None:
    md, page = write_reports(_results(), tmp_path / "out")
    assert md.read_text().startswith("# Harness report")
    assert page.stat().st_size > 10_000


def test_compare_ratios_and_unmatched_rows() -> None:
    a, b = _results(1.0), _results(2.0)
    b[0].data["benchmarks"] = b[0].data["benchmarks"][:-1]
    table = compare_markdown(a, b)
    assert "| iforest-100 | onnx-native | 1 | 1 |" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "onnx-native" in line]
    ratios = [float(line.rsplit("|", 2)[1]) for line in rows]
    assert len(ratios) == 3
    assert all(1.7 < r < 2.3 for r in ratios)
    assert "Only in A (1)" in table


def test_compare_across_providers_matches_without_provider() -> None:
    table = compare_markdown(_results(provider="cpu"), _results(provider="cuda"))
    assert table.count("onnx-native") == 4


def test_cli_report_and_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "results"
    for scale in (1.0, 1.5):
        write_result(
            root, result_payload(sample_rows(scale)), machine_id="m", provider="cpu", commit=None
        )
    (root / "m" / "cpu" / "0099_nogit_20260101T000000Z.json").write_text("{broken")
    assert main(["report", str(root), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "skipped" in captured.err
    assert "not valid JSON" in captured.err
    assert (tmp_path / "out" / "report.html").exists()
    first, second = sorted((root / "m" / "cpu").glob("000[12]_*.json"))
    assert main(["compare", str(first), str(second), "--out", str(tmp_path / "cmp.md")]) == 0
    assert "B / A" in (tmp_path / "cmp.md").read_text()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["compare", str(first), str(tmp_path / "missing")]) == 2


def test_reports_show_the_latest_run_per_machine_and_provider(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for scale in (1.0, 3.0):
        write_result(
            root, result_payload(sample_rows(scale)), machine_id="m", provider="cpu", commit=None
        )
    from harness.store import load_results

    md = render_markdown(load_results([root]))
    assert "1 older run(s) not shown" in md
    # one speed-up row and two latency rows (batch 1, 100) from the latest run only
    assert md.count("| iforest-100 | onnx-native@cpu t1 |") == 3
