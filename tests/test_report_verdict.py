"""The report speaks first: a verdict, speed-ups with intervals, percentiles the rounds support,
parity against its bound and conformance collapsed to counts with every finding in full."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.reports.conformance import conformance_markdown, input_rows, plain_text
from harness.reports.html import render_html
from harness.reports.report import render_markdown
from harness.results.schema import ConformanceRow
from harness.results.store import ResultFile
from tests._results import bench_row, result_payload

_NAN_GAP = "skl2onnx's IsolationForest ignores scikit-learn's missing-value routing"
_CUDA = "provider 'cuda' is not usable here: CUDA driver not found"
#: (case, batch) -> (engine's speed-up over scikit-learn, rounds of both rows)
_POINTS = {
    ("iforest-100", 1): (40.0, 200),
    ("iforest-100", 100): (8.0, 30),
    ("iforest-100", 10_000): (0.5, 12),
    ("gmm-diag", 1): (10.0, 200),
    ("gmm-diag", 100): (4.0, 30),
    ("gmm-diag", 10_000): (1.6, 5),
}
#: What harness.timing.prepare stores of each export's parity from this version on.
_PARITY: dict[str, dict[str, Any]] = {
    "iforest-100": {
        "parity_max_abs_err": 3.9e-16,
        "parity_max_rel_err": 8.0e-16,
        "parity_rtol": 0.0,
        "parity_atol": 1e-6,
        "parity_label_min": 1.0,
    },
    "gmm-diag": {  # log-likelihoods near 1e6: 22 off is 2.3e-5 of the answer
        "parity_max_abs_err": 22.0,
        "parity_max_rel_err": 2.3e-5,
        "parity_rtol": 1e-4,
        "parity_atol": 1e-5,
        "parity_label_agreement": None,
    },
}


def _rows(seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for (case, batch), (speedup, rounds) in _POINTS.items():
        base = 1e-4 * (1 + batch / 10)
        reference = rng.lognormal(np.log(base), 0.03, rounds)
        ours = rng.lognormal(np.log(base / speedup), 0.03, rounds)
        rows.append(bench_row(case, "sklearn", batch, reference))
        stored = float(np.median(reference) / np.median(ours))
        rows.append(
            bench_row(case, "onnx-native", batch, ours, speedup=stored, extra=_PARITY[case])
        )
    return rows


def _conformance() -> list[dict[str, Any]]:
    passes = [
        ConformanceRow("iforest-100", "onnx-native", check, "pass", 40, None, "ok")
        for check in ("label_exact", "score_close", "row_order", "roundtrip")
    ]
    failure = ConformanceRow(
        "gmm-diag",
        "onnx-native",
        "score_close",
        "fail",
        57,
        22.41378,
        "score_samples: max_abs_err=22.4, max_rel_err=2.31e-05 beyond rtol=1e-05, atol=1e-06; "
        "row 1: engine np.float64(-969867.2187500001) vs reference np.float32(-969889.6)",
        [[0.0, 1.0, 13.123456789], [0.0, 1.0, 13.123456789], [1e30, 0.5, -2.25]],
    )
    gap = ConformanceRow(
        "iforest-100",
        "onnx-skl2onnx",
        "errors_match",
        "xfail",
        61,
        0.009847795295360229,
        "score_samples max_abs_err=0.00985; row 0: engine np.float32(-0.4975039) vs "
        "reference np.float64(-0.48765611119305835)",
        [[float("nan"), 33.810001373291016, 70.79000091552734]],
    )
    gpu = [
        ConformanceRow("iforest-100", "onnx-native@cuda", check, "skip", 0, None, _CUDA)
        for check in ("label_exact", "score_close", "batch_invariance")
    ]
    return [dataclasses.asdict(r) for r in (*passes, failure, gap, *gpu)]


def _results(**harness: Any) -> list[ResultFile]:
    payload = result_payload(_rows())
    payload["harness"]["skipped"] = [
        {"id": f"{case}[onnx-native-cuda]-b{batch}-t1", "reason": _CUDA} for case, batch in _POINTS
    ]
    payload["harness"]["conformance"] = _conformance()
    payload["harness"].update(harness)
    return [ResultFile(Path("cpu.json"), payload)]


def _verdict(md: str) -> str:
    return md.split("## Verdict\n", 1)[1].split("\n## ", 1)[0]


def _bullet(md: str, label: str) -> str:
    """A verdict bullet with its nested items, as one string."""
    verdict = _verdict(md)
    start = verdict.index(f"- **{label}")
    end = verdict.find("\n- ", start + 1)
    return verdict[start : None if end < 0 else end]


def _row(md: str, *start: str) -> list[str]:
    prefix = "| " + " | ".join(start) + " |"
    line = next(line for line in md.splitlines() if line.startswith(prefix))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_the_verdict_comes_first_with_coverage_parity_speed_and_providers() -> None:
    md = render_markdown(_results())
    assert md.index("## Verdict") < md.index("## Speed-up against scikit-learn")
    verdict = _verdict(md)
    assert "**Covered:** 2 zoo cases (gmm-diag, iforest-100); engines onnx-native" in verdict
    assert "batch sizes 1, 100, 10,000; threads 1; 12 benchmarks from 1 run." in verdict
    assert "exports checked on each case's test rows: 2 pass, 0 fail" in verdict
    assert (
        "conformance suite 9 checks: 4 pass, **1 fail**, 1 known gap (declared, expected to "
        "fail), 3 skipped" in verdict
    )
    # 0.5x at batch 10,000 with an interval below 1x: slower, and named
    assert "batch < 100: faster in 2 of 2 cells" in verdict
    assert "batch 100-999: faster in 2 of 2 cells" in verdict
    assert "batch ≥ 1,000: faster in 1 of 2 cells, **slower in 1**" in verdict
    slower = _bullet(md, "Slower than scikit-learn")
    assert re.search(
        r"iforest-100 onnx-native@cpu t1 at batch 10,000: \*\*0\.\d\dx ▼\*\* \[", slower
    )
    assert "gmm-diag" not in slower


def test_the_verdict_says_which_providers_ran_were_asked_for_and_why_not() -> None:
    providers = _bullet(render_markdown(_results()), "Providers")
    assert "\n  - ran cpu (6 ONNX benchmarks)\n" in providers
    assert f"  - **cuda was asked for and did not run**: {_CUDA} (6 benchmarks skipped)\n" in (
        providers
    )
    assert f"  - parity checks on cuda: 3 skip: {_CUDA}\n" in providers
    assert "  - not asked for: tensorrt (" in providers
    # without skips, every GPU provider is named as not asked for
    quiet = render_markdown(_results(skipped=[], conformance=[]))
    assert "not asked for: cuda, tensorrt" in _verdict(quiet)
    assert "the conformance suite is not in these results" in _verdict(quiet)


def test_the_verdict_names_a_provider_that_ran_instead_of_the_one_asked_for() -> None:
    results = _results(skipped=[])
    for row in results[0].benchmarks:
        if row["extra_info"]["engine"] != "sklearn":
            row["extra_info"]["provider_requested"] = "cuda"
    providers = _bullet(render_markdown(results), "Providers")
    assert "  - **cuda was asked for but cpu ran** in 6 benchmarks" in providers


def test_the_verdict_carries_the_user_pair_parity() -> None:
    parity = {
        "model": "mymodel",
        "verdict": "fail",
        "failed": ["score_close"],
        "outcomes": [
            {"check": "label_exact", "status": "pass", "measured": 0.0, "bound": "exact"},
            {"check": "score_close", "status": "fail", "measured": 0.3, "bound": "rtol 1e-5"},
        ],
    }
    md = render_markdown(_results(parity=parity))
    assert "**Parity of mymodel against its reference:** **FAIL** (1 fail, 1 pass)." in _verdict(md)
    assert "## Parity of mymodel: **FAIL**" in md


def test_speedups_carry_intervals_that_hold_the_estimate_and_mark_cells_below_1x() -> None:
    md = render_markdown(_results())
    table = md.split("## Speed-up against scikit-learn", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"(\*\*)?(\d+\.\d+)x(?: ▼\*\*)? \[(\d+\.\d+), (\d+\.\d+)\]", table)
    assert len(cells) == 6
    for bold, value, low, high in cells:
        assert float(low) <= float(value) <= float(high)
        assert bool(bold) == (float(value) < 1)
    slow = re.fullmatch(
        r"\*\*0\.\d\dx ▼\*\* \[(\d\.\d\d), (\d\.\d\d)\] \(.* ms\)",
        _row(table, "iforest-100", "onnx-native@cpu t1")[4],
    )
    assert slow is not None
    assert float(slow[2]) < 1  # the whole interval below 1x
    page = render_html(_results())
    assert re.search(r'<td class="slow"><span class="nb"><strong>0\.\d\dx ▼</strong> \[', page)


def test_a_speedup_without_raw_samples_has_no_interval() -> None:
    results = _results()
    for row in results[0].benchmarks:
        del row["stats"]["data"]
    table = render_markdown(results).split("## Speed-up", 1)[1].split("\n## ", 1)[0]
    cell = _row(table, "gmm-diag", "onnx-native@cpu t1")[2]
    assert re.fullmatch(r"\d+\.\d+x \(\d+\.\d+ ms\)", cell)
    assert "by the median; cells without raw samples have no interval" in render_markdown(results)


def test_percentiles_only_where_the_rounds_support_them() -> None:
    latency = render_markdown(_results()).split("## Latency percentiles", 1)[1]
    header = _row(latency, "case", "engine")
    p90, p99 = header.index("p90 ms"), header.index("p99 ms")
    rounds = header.index("rounds")
    for batch, shown in (("1", (True, True)), ("100", (True, False)), ("10,000", (False, False))):
        cells = _row(latency, "gmm-diag", "onnx-native@cpu t1", batch)
        assert (cells[p90] != "-", cells[p99] != "-") == shown, (batch, cells)
    assert _row(latency, "gmm-diag", "onnx-native@cpu t1", "10,000")[rounds] == "5"
    assert _row(latency, "iforest-100", "sklearn t1", "10,000")[p90] != "-"  # 12 rounds


def test_parity_shows_relative_error_and_error_over_bound() -> None:
    md = render_markdown(_results())
    gmm = _row(md, "gmm-diag", "onnx-native", "pass")
    assert gmm[3:6] == ["22", "2.3e-05", "≤ 0.23 (atol 1e-05, rtol 0.0001)"]
    forest = _row(md, "iforest-100", "onnx-native", "pass")
    assert forest[5].startswith("≤ 3.9e-10")
    assert forest[6] == "1.0000 (≥ 1)"
    # results written before these fields: their cells say so
    older = _results()
    for row in older[0].benchmarks:
        for key in ("parity_max_rel_err", "parity_rtol", "parity_atol"):
            row["extra_info"].pop(key, None)
    assert _row(render_markdown(older), "gmm-diag", "onnx-native", "pass")[3:6] == ["22", "-", "-"]


def test_conformance_collapses_passes_and_lists_findings_whole() -> None:
    md = render_markdown(_results())
    section = md.split("## Conformance (parity suite)", 1)[1].split("\n## ", 1)[0]
    assert "9 checks: 4 pass, 1 fail, 1 known gap (xfail), 3 skipped." in section
    assert (
        _row(section, "iforest-100", "onnx-native")
        == ["iforest-100", "onnx-native", "4"] + ["-"] * 3
    )
    for check in ("label_exact", "row_order", "roundtrip"):  # passes only in the counts
        assert f"| {check} |" not in section
    # the failure whole: its finding without numpy reprs, its minimal input at 7 digits
    assert "### Failures (1)" in section
    finding = (
        "score_samples: max_abs_err=22.4, max_rel_err=2.31e-05 beyond rtol=1e-05, atol=1e-06; "
        "row 1: engine -969867.2 vs reference -969889.6"
    )
    assert f"| score_close | fail | 22.41 | 57 | {finding} |" in section
    assert "np.float" not in section
    assert "- rows 0-1 (identical): `[0, 1, 13.12346]`" in section
    assert "- row 2: `[1e+30, 0.5, -2.25]`" in section
    # the known gap whole, with the reason the zoo declares
    assert "### Known gaps (1: declared in the zoo, expected to fail)" in section
    assert f"Known gap (errors_match): {_NAN_GAP}" in section
    assert "- row 0: `[nan, 33.81, 70.79]`" in section
    # the GPU checks that could not run, with their reason
    assert (
        f"| iforest-100 | onnx-native@cuda | label_exact, score_close, batch_invariance | {_CUDA} |"
        in section
    )


def test_a_gap_the_zoo_no_longer_declares_says_so() -> None:
    row = ConformanceRow("gmm-diag", "fallback", "score_close", "xfail", 3, None, "m", None)
    assert "the reason is not stored in these results" in conformance_markdown([row])


def test_plain_text_and_input_rows() -> None:
    text = plain_text(
        "engine np.float32(-0.4975039) vs\nreference np.float64(-0.48765611119305835)"
    )
    assert text == "engine -0.4975039 vs reference -0.4876561"
    assert plain_text("max_abs_err=inf, nan beyond rtol=0.001") == (
        "max_abs_err=inf, nan beyond rtol=0.001"
    )
    rows = [[1.0, float("nan")], [1.0, float("nan")], [0.1234567891, -1e-30]]
    assert input_rows(rows) == [
        ("rows 0-1 (identical)", "[1, nan]"),
        ("row 2", "[0.1234568, -1e-30]"),
    ]


@pytest.mark.parametrize(("bounds", "plots"), [(True, 3), (False, 2)])
def test_html_plots_a_heat_map_latency_and_parity_over_bound(bounds: bool, plots: int) -> None:
    results = _results()
    if not bounds:
        for row in results[0].benchmarks:
            row["extra_info"].pop("parity_rtol", None)
    page = render_html(results)
    assert page.count("data:image/png;base64,") == plots  # no throughput plots
    # each plot sits in the section it illustrates, before that section's table
    speed = page.index('<a id="speed-up-against-scikit-learn')
    heat_map = page.index("<figcaption>Speed-up per case, engine and batch size")
    assert speed < heat_map < page.index("<table>", speed)
    latency = page.index('<a id="latency-percentiles')
    assert (
        latency < page.index("<figcaption>Median latency per case") < page.index("<table>", latency)
    )
    assert ("<figcaption>Worst error of each export" in page) == bounds
    assert '<nav class="contents"><a href="#verdict">Verdict</a>' in page
    assert "<ul><li><strong>Covered:</strong>" in page
