"""``pytest --harness-store``: what a user's own pytest session stores, or says it could not.

Each test is a pytest run of its own in a throwaway project (``_pytest``: not an xdist worker
of this run), with a small IsolationForest, its native ONNX export and a wrong export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_faults_results import _pytest

_TESTS = """
def test_parity(harness_check):
    harness_check("{model}", "ref.skops", data="X.npy", profile="dev")

def test_speed(harness_benchmark):
    result = harness_benchmark("{model}", reference="ref.skops", data="X.npy", batch_size=1)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """X.npy, ref.skops, model.onnx (its export) and wrong.onnx (another fit's export)."""
    import skops.io as sio
    from sklearn.ensemble import IsolationForest

    from engines import export

    folder = tmp_path_factory.mktemp("project")
    X = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    np.save(folder / "X.npy", X)
    reference = IsolationForest(n_estimators=5, random_state=0).fit(X)
    sio.dump(reference, folder / "ref.skops")
    export(reference, n_features=4, path=folder / "model.onnx", exporter="native")
    other = IsolationForest(n_estimators=5, random_state=1).fit(X)
    export(other, n_features=4, path=folder / "wrong.onnx", exporter="native")
    return folder


def _session(project: Path, model: str, *args: str) -> tuple[str, list[dict[str, Any]]]:
    """Run the two tests against ``model`` with ``--harness-store results``: the output and
    the results stored (read, then removed for the next session)."""
    (project / "test_detector.py").write_text(_TESTS.format(model=model))
    store = project / "results"
    done = _pytest(project, "--harness-store", str(store), *args, "test_detector.py")
    stored = []
    for path in sorted(store.rglob("*.json")):
        stored.append(json.loads(path.read_text()))
        path.unlink()
    return done.stdout + done.stderr, stored


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "why"),
    [
        (
            ("-p", "xdist", "-n", "2", "--benchmark-enable"),
            "pytest-benchmark times nothing under pytest-xdist (it turns itself off, even with "
            "--benchmark-enable): run the timed tests without it (-p no:xdist, or -n 0)",
        ),
        (("--benchmark-disable",), "--benchmark-enable turns it back on"),
    ],
    ids=["xdist", "benchmark-disable"],
)
def test_a_store_that_times_nothing_says_so(project: Path, args: tuple[str, ...], why: str) -> None:
    """pytest-benchmark turns its timing off under pytest-xdist (even with --benchmark-enable)
    and with --benchmark-disable: the session passed, stored nothing and said nothing."""
    output, stored = _session(project, "model.onnx", *args)
    assert "2 passed" in output, output
    assert stored == []
    line = next(line for line in output.splitlines() if "harness: nothing stored in" in line)
    # a line of its own, not glued to -q's "[100%]"
    assert line.startswith(f"harness: nothing stored in {project / 'results'} (--harness-store): ")
    assert why in line


@pytest.mark.slow
@pytest.mark.parametrize(("model", "verdict"), [("wrong.onnx", "fail"), ("model.onnx", "pass")])
def test_the_sessions_parity_verdict_is_stored_with_its_timings(
    project: Path, model: str, verdict: str
) -> None:
    """A session whose harness_check failed stored its timings with no parity at all, and the
    report opened with a clean speed verdict that never said "parity"."""
    from harness.reports.report import render_markdown
    from harness.results.store import ResultFile

    output, stored = _session(project, model)
    assert ("1 failed, 1 passed" if verdict == "fail" else "2 passed") in output, output
    (data,) = stored
    parity = {
        row["extra_info"]["engine"]: row["extra_info"].get("parity") for row in data["benchmarks"]
    }
    assert parity == {"onnx-user": verdict, "sklearn": None}
    md = render_markdown([ResultFile(Path("r.json"), data)])
    said = "**FAIL**" if verdict == "fail" else "PASS"
    name = Path(model).stem
    assert f"- **Parity of {name} against its reference:** {said} (`harness_check`" in md


_MISSPELT = """
import inspect

import pytest


def test_benchmark_keywords(harness_benchmark):
    with pytest.raises(TypeError) as caught:
        harness_benchmark("model.onnx", batch=1)
    print("BENCHMARK:", caught.value)
    print("SIGNATURE:", inspect.signature(harness_benchmark))
    assert "batch_size" in (harness_benchmark.__doc__ or "")


def test_check_keywords(harness_check):
    with pytest.raises(TypeError) as caught:
        harness_check("model.onnx", "ref.skops", examples="dev")
    print("CHECK:", caught.value)
"""


def test_a_misspelt_fixture_keyword_names_the_fixture_and_the_valid_ones(project: Path) -> None:
    """``harness_benchmark(model, batch=1)`` raised "benchmark_fixture() got an unexpected
    keyword argument 'batch'": an internal name, and no word of the valid ones."""
    (project / "test_keywords.py").write_text(_MISSPELT)
    done = _pytest(project, "-s", "test_keywords.py")
    output = done.stdout + done.stderr
    assert "2 passed" in output, output
    said = {  # each after its marker (-q's progress dots may precede it)
        mark: line.split(f"{mark}: ", 1)[1].strip()
        for line in output.splitlines()
        for mark in ("BENCHMARK", "CHECK", "SIGNATURE")
        if f"{mark}: " in line
    }
    assert said["BENCHMARK"] == (
        "harness_benchmark(): got an unexpected keyword argument 'batch'; it takes model and "
        "the keywords reference, data, batch_size, provider, threads, rounds, trusted, "
        "trust_pickle"
    )
    assert said["CHECK"] == (
        "harness_check(): got an unexpected keyword argument 'examples'; it takes model, "
        "reference and the keywords data, known_gaps, input_bound, profile, trusted, "
        "trust_pickle, project"
    )
    assert said["SIGNATURE"].startswith("(model: 'str | Path', *, reference: ")
    assert "batch_size: 'int' = 100" in said["SIGNATURE"]
    assert "benchmark_fixture" not in output
