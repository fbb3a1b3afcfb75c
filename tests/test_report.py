from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.reports.compare import compare_markdown
from harness.reports.html import render_html, write_reports
from harness.reports.report import render_markdown
from harness.results.store import ResultFile, write_result
from tests._results import bench_row, result_payload, sample_rows, user_row


def _results(scale: float = 1.0, provider: str = "cpu") -> list[ResultFile]:
    payload = result_payload(sample_rows(scale), provider=provider)
    return [ResultFile(Path(f"{provider}.json"), payload)]


def test_markdown_has_every_section() -> None:
    md = render_markdown(_results())
    headings = ["# Harness report", "## Verdict", "## Speed-up against scikit-learn"]
    headings += ["## Latency percentiles", "## Parity", "## Skipped", "## Environment"]
    positions = [md.index(heading) for heading in headings]
    assert positions == sorted(positions)
    # the speed-up with its bootstrap interval, then the median latency
    assert re.search(r"\| iforest-100 \| onnx-native@cpu t1 \| \d+\.\dx \[[\d.]+, [\d.]+\] \(", md)
    assert "no NVIDIA GPU" in md
    assert "Test CPU, 2 cores, 24 GiB" in md
    # these fixture rows predate the stored relative error and bound
    assert "| gmm-full | onnx-native | pass | 1e-09 | - | - | 1.0000 |" in md


def test_empty_results() -> None:
    assert "No benchmark rows" in render_markdown([ResultFile(Path("x"), result_payload([]))])


def test_html_is_self_contained_with_plots() -> None:
    page = render_html(_results())
    assert page.startswith("<!doctype html>")
    # the speed-up heat map and latency; parity needs the bounds these rows predate
    assert page.count("data:image/png;base64,") == 2
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


def test_compare_never_pairs_providers() -> None:
    """The old compare dropped the provider when the files' providers differed."""
    cuda_rows = [
        bench_row(e["case"], e["engine"], e["batch_size"], r["stats"]["data"], provider="cuda")
        for r in sample_rows()
        for e in [r["extra_info"]]
    ]
    cuda = [ResultFile(Path("cuda.json"), result_payload(cuda_rows, provider="cuda"))]
    table = compare_markdown(_results(provider="cpu"), cuda)
    assert "| iforest-100 | sklearn | 1 | 1 | - |" in table  # scikit-learn runs on neither
    assert "| onnx-native |" not in table
    assert "Not comparable (4):" in table
    assert "- iforest-100[onnx-native]-b1-t1: provider cpu vs cuda" in table


def test_compare_lists_a_changed_user_model_as_not_comparable() -> None:
    def side(sha: str) -> list[ResultFile]:
        rows = [user_row("mymodel", "onnx-user", [1e-3] * 5, sha=sha)]
        return [ResultFile(Path(f"{sha[:4]}.json"), result_payload(rows))]

    table = compare_markdown(side("3fa2" + "0" * 60), side("9bc1" + "0" * 60))
    assert "No benchmark is comparable in both." in table
    assert "- mymodel[onnx-user-cpu]-b1-t1: model sha256 differs: 3fa20000…→9bc10000…" in table
    across = compare_markdown(
        side("3fa2" + "0" * 60), side("9bc1" + "0" * 60), model_change="compare"
    )
    assert "| mymodel | onnx-user | 1 | 1 | cpu | 1.000 ms | 1.000 ms | 1.00 |" in across
    assert "- mymodel[onnx-user-cpu]-b1-t1: model changed: model sha256 differs" in across
    same = compare_markdown(side("3fa2" + "0" * 60), side("3fa2" + "0" * 60))
    assert "| mymodel | onnx-user | 1 | 1 | cpu | 1.000 ms | 1.000 ms | 1.00 |" in same


def test_report_never_shares_a_cell_between_machines_or_models() -> None:
    def run(machine: str, sha: str, ms: float) -> ResultFile:
        rows = [user_row("mymodel", "onnx-user", [ms * 1e-3] * 5, sha=sha)]
        payload = result_payload(rows, machine=machine)
        return ResultFile(Path(machine) / "cpu" / "0001_nogit_20260101T000000Z.json", payload)

    md = render_markdown([run("m1", "3fa2" + "0" * 60, 1.0), run("m2", "9bc1" + "0" * 60, 2.0)])
    for machine, sha in (("m1", "3fa2"), ("m2", "9bc1")):
        label = f"| mymodel | onnx-user@cpu t1 on {machine} (sha256 {sha}0000…) |"
        assert md.count(label) == 2  # speed-up and latency, each in a row of its own
    assert "| mymodel | onnx-user@cpu t1 on m1 (sha256 3fa20000…) | 1 |" in md
    assert "| mymodel | onnx-user@cpu t1 on m2 (sha256 9bc10000…) | 1 |" in md
    one_machine = render_markdown([run("m1", "3fa2" + "0" * 60, 1.0)])
    assert "| mymodel | onnx-user@cpu t1 | 1 |" in one_machine


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
    from harness.results.store import load_results

    md = render_markdown(load_results([root]))
    assert "1 older run(s) not shown" in md
    # one speed-up row and two latency rows (batch 1, 100) from the latest run only
    assert md.count("| iforest-100 | onnx-native@cpu t1 |") == 3


def _release(version: str, scale: float, sha: str) -> ResultFile:
    payload = result_payload(sample_rows(scale))
    payload["harness"]["versions"]["onnxruntime"] = version
    for row in payload["benchmarks"]:
        if row["extra_info"]["engine"] != "sklearn":
            row["extra_info"]["model_sha256"] = sha
    return ResultFile(Path(f"ort-{version}.json"), payload)


def test_a_runtime_matrix_shows_one_run_per_release_side_by_side() -> None:
    """tox -m runtimes writes one run per onnxruntime release into one store: the report keeps
    each release's run and tables the ONNX medians per release, newest against oldest."""
    results = [
        _release("1.22.1", 1.0, "b" * 64),
        _release("1.20.0", 2.0, "a" * 64),
        _release("1.32.0", 1.0, "b" * 64),
    ]
    md = render_markdown(results)
    assert "older run(s) not shown" not in md
    assert "## Across onnxruntime releases (test-cpu-2c)" in md
    header = next(line for line in md.splitlines() if line.startswith("| case | engine | provider"))
    assert header.endswith("| 1.20.0 | 1.22.1 | 1.32.0 | 1.32.0 / 1.20.0 |")
    row = next(
        line
        for line in md.splitlines()
        if line.startswith("| iforest-100 | onnx-native | cpu | 100 | 1 |")
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5].endswith("†")  # 1.20.0 ran another export form
    assert not cells[7].endswith("†")
    assert 0.4 < float(cells[8]) < 0.6  # twice as fast on the newest release
    # the speed-up rows name their release, and no sklearn row enters the release table
    assert "onnx-native@cpu t1 ort 1.20.0" in md
    assert "| iforest-100 | sklearn | -" not in md


def test_one_release_has_no_release_table_and_compare_names_the_releases() -> None:
    assert "Across onnxruntime releases" not in render_markdown(_results())
    table = compare_markdown([_release("1.20.0", 2.0, "a")], [_release("1.32.0", 1.0, "b")])
    assert "(onnxruntime 1.20.0)" in table
    assert "(onnxruntime 1.32.0)" in table


# -- several user models in one folder; what a user model's parity status says ------------


def _user_run(
    name: str, parity: str | None, *, block: dict[str, Any] | None = None, profile: str = "quick"
) -> dict[str, Any]:
    """A `harness run --model` (or a plugin session's) run of one user model: its .onnx row
    with ``parity`` as stored (None: no field) and its scikit-learn reference."""
    onnx = user_row(name, "onnx-user", [1e-3] * 20)
    if parity is None:
        del onnx["extra_info"]["parity"]
    else:
        onnx["extra_info"]["parity"] = parity
    payload = result_payload([user_row(name, "sklearn", [2e-2] * 20), onnx])
    payload["harness"]["profile"] = profile
    if block is not None:
        payload["harness"]["parity"] = block
    return payload


def test_a_folder_of_two_user_models_reports_both(tmp_path: Path) -> None:
    """`harness run --name fraud` then `--name churn` into one results/: the report showed
    churn alone, fraud counted as an "older run" of it."""
    root = tmp_path / "results"
    for name in ("fraud", "churn"):
        write_result(root, _user_run(name, "paired"), machine_id="m", provider="cpu", commit=None)
    from harness.results.store import load_results

    md = render_markdown(load_results([root]))
    assert "older run(s) not shown" not in md
    assert "| fraud | onnx-user@cpu t1 |" in md
    assert "| churn | onnx-user@cpu t1 |" in md
    assert "your models churn, fraud" in md
    # a newer run of fraud replaces the older one; churn stays
    write_result(root, _user_run("fraud", "paired"), machine_id="m", provider="cpu", commit=None)
    md = render_markdown(load_results([root]))
    assert "Latest run per machine, provider, onnxruntime release and model; 1 older run(s)" in md
    assert md.count("| fraud | onnx-user@cpu t1 |") == 2  # speed-up and latency, once each
    assert "| churn | onnx-user@cpu t1 |" in md


def _status(md: str, case: str) -> str:
    """The status cell of ``case``'s row in the Parity table."""
    table = md.split("## Parity (ONNX against scikit-learn", 1)[1]
    row = next(line for line in table.splitlines() if line.startswith(f"| {case} | onnx-user |"))
    return row.split("|")[3].strip()


def _verdict_line(md: str, case: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(f"- **Parity of {case}"))


@pytest.mark.parametrize("stored", ["paired", "checked"])  # "checked": results written before
def test_a_user_models_parity_not_run_is_said_not_checked(stored: str) -> None:
    """`harness run --model M --reference R --no-parity`: the console said "not run", the
    report's Parity table said "checked" and its verdict said nothing of parity."""
    md = render_markdown([ResultFile(Path("r.json"), _user_run("mymodel", stored))])
    assert _status(md, "mymodel") == "not run"
    assert _verdict_line(md, "mymodel").startswith("- **Parity of mymodel:** not run (")
    assert "--no-parity" in _verdict_line(md, "mymodel")
    assert "checked |" not in md


@pytest.mark.parametrize(("verdict", "shown"), [("fail", "FAIL"), ("pass", "pass")])
def test_a_user_models_parity_status_is_its_pairs_verdict(verdict: str, shown: str) -> None:
    """`harness run` with a wrong model: the verdict said FAIL, the Parity table "checked"."""
    block = {"model": "mymodel", "verdict": verdict, "failed": [], "outcomes": []}
    run = _user_run("mymodel", "paired", block=block)
    md = render_markdown([ResultFile(Path("r.json"), run)])
    assert _status(md, "mymodel") == shown
    said = "**FAIL**" if shown == "FAIL" else "PASS"
    line = _verdict_line(md, "mymodel")
    assert line.startswith(f"- **Parity of mymodel against its reference:** {said}")


def test_a_pytest_sessions_run_says_whether_its_parity_was_recorded() -> None:
    """A session whose harness_check failed stored its timings and the report never said
    "parity": the plugin now writes the check's verdict into the rows of the same model, and
    a run with none says so."""
    silent = _user_run("mymodel", None, profile="pytest")
    md = render_markdown([ResultFile(Path("r.json"), silent)])
    line = _verdict_line(md, "mymodel")
    assert line.startswith("- **Parity of mymodel:** not recorded in these results (")
    assert "## Parity (ONNX against scikit-learn" not in md  # nothing to put in the table
    failed = _user_run("mymodel", "fail", profile="pytest")
    md = render_markdown([ResultFile(Path("r.json"), failed)])
    assert _verdict_line(md, "mymodel").startswith(
        "- **Parity of mymodel against its reference:** **FAIL** (`harness_check` failed"
    )
    assert _status(md, "mymodel") == "FAIL"
    assert "exports checked on each case's test rows" not in md  # not a zoo export


def test_a_user_models_rows_claim_no_check_before_it_ran() -> None:
    # rows are timed before (or without) the pair's checks: "checked" claimed a check
    import numpy as np

    from harness.cases.user import UserModel
    from harness.cases.usermodel import LoadedUserModel

    def loaded(reference: Path | None, model: Path | None) -> LoadedUserModel:
        user = UserModel(Path("m.onnx"), reference)
        rows = np.zeros((1, 4), dtype=np.float32)
        return LoadedUserModel(user, model, None, None, None, 4, None, "score_samples", rows)

    assert loaded(Path("r.skops"), Path("m.onnx")).parity == "paired"
    assert loaded(None, Path("m.onnx")).parity == "unchecked"
    assert loaded(None, None).parity == "reference"


def _verdict_of(rows: list[dict[str, Any]]) -> str:
    md = render_markdown([ResultFile(Path("r.json"), result_payload(rows))])
    return md.split("## Verdict", 1)[1].split("\n## ", 1)[0]


def test_the_verdict_names_the_reference_a_run_really_had() -> None:
    """It said "engines onnx-user against scikit-learn" and "ONNX against scikit-learn" of a
    PyOD reference, and of a model run with no reference at all."""
    pyod = [
        user_row("det", "sklearn", [2e-2] * 20, estimator="IForest"),
        user_row("det", "onnx-user", [1e-3] * 20, estimator="IForest"),
    ]
    verdict = _verdict_of(pyod)
    assert "engines onnx-user against its PyOD reference;" in verdict
    assert "**ONNX against its PyOD reference** (median latency" in verdict
    assert "scikit-learn" not in verdict
    ae = user_row("ae", "onnx-user", [1e-3] * 20, estimator=None)
    ae["extra_info"]["parity"] = "unchecked"  # harness run --model ae.onnx: no reference
    alone = _verdict_of([ae])
    assert "engines onnx-user (no reference: ONNX alone);" in alone
    assert "against" not in alone
    sklearn = _verdict_of([user_row("det", "sklearn", [2e-2] * 20), pyod[1]])
    assert "engines onnx-user against its scikit-learn reference;" in sklearn
    zoo = _verdict_of(
        [
            *sample_rows(),
            bench_row("pyod-knn", "sklearn", 1, [2e-3] * 20),
            bench_row("pyod-knn", "onnx-native", 1, [1e-3] * 20),
        ]
    )
    assert "against scikit-learn and PyOD (each case's reference);" in zoo


def test_a_batch_of_repeated_rows_is_noted_under_the_latency_table() -> None:
    """`harness run --data single_row.npy` timed batches 100 and 10,000 of one row, unsaid."""
    rows = [user_row("det", "onnx-user", [1e-3] * 20, batch=b) for b in (1, 100, 10_000)]
    for row in rows[1:]:
        row["extra_info"]["distinct_rows"] = 1
    md = render_markdown([ResultFile(Path("r.json"), result_payload(rows))])
    latency = md.split("## Latency percentiles", 1)[1].split("\n## ", 1)[0]
    assert latency.rstrip().endswith(
        "Repeated rows: det's data has fewer distinct rows than these batches, which repeat "
        "them (rows tiled) and may time differently from varied data: batch 100 of 1 distinct "
        "row, batch 10,000 of 1 distinct row."
    )
    assert "Repeated rows" not in render_markdown(_results())


def test_compare_names_the_side_with_no_readable_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`harness compare good.json emptydir` said "both sides need at least one readable result
    file", not which side had none."""
    payload = result_payload(sample_rows())
    good = write_result(tmp_path / "r", payload, machine_id="m", provider="cpu", commit=None)
    empty = tmp_path / "emptydir"
    empty.mkdir()
    assert main(["compare", str(good), str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"harness compare: no readable result file in B ({empty}); each side needs at least one"
    )
    assert main(["compare", str(empty), str(empty)]) == 2
    assert f"in A ({empty}) nor in B ({empty})" in capsys.readouterr().err
