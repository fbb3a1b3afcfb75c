"""The harness as a user meets it: a built wheel, installed (not editable) into a fresh virtual
environment, used from an empty folder outside the checkout on a model trained there.

Slow (about two minutes: the install takes most of it). ``HARNESS_WHEEL_VENV=path`` reuses an
environment that already has the wheel's dependencies, for quicker local runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TRAIN = """
import numpy as np
import skops.io as sio
from skl2onnx import to_onnx
from sklearn.ensemble import IsolationForest

rng = np.random.default_rng(7)
X = np.vstack([rng.gamma(2.0, 1.5, size=(900, 7)), rng.uniform(-4, 12, size=(40, 7))])
X = X.astype(np.float32)
model = IsolationForest(n_estimators=40, random_state=3).fit(X)
sio.dump(model, "detector.skops")
onx = to_onnx(model, X[:1], target_opset={"": 17, "ai.onnx.ml": 3})
open("detector.onnx", "wb").write(onx.SerializeToString())
header = ",".join(f"sensor_{i}" for i in range(7))
np.savetxt("rows.csv", X[::5], delimiter=",", header=header, comments="")
"""

PYPROJECT = """
[tool.harness.known-gaps]
errors_match = "skl2onnx ignores scikit-learn's NaN routing in IsolationForest"
"""

USER_TEST = """
def test_parity(harness_check):
    # the known gap comes from [tool.harness] in pyproject.toml, as for `harness check`
    verdict = harness_check("detector.onnx", "detector.skops", data="rows.csv")
    assert not verdict.failed
    assert {o.check: o.status for o in verdict.outcomes}["errors_match"] == "xfail"


def test_speed(harness_benchmark):
    result = harness_benchmark(
        "detector.onnx", reference="detector.skops", data="rows.csv", batch_size=64
    )
    assert result.active_provider == "CPUExecutionProvider"
    assert result.speedup is not None and result.speedup > 0
"""


def _sh(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args} exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding the wheel built from this checkout; its bin folder."""
    base = tmp_path_factory.mktemp("wheel")
    _sh(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(base / "dist"),
            str(ROOT),
        ],
        cwd=base,
        env=dict(os.environ),
    )
    (wheel,) = (base / "dist").glob("*.whl")
    reused = os.environ.get("HARNESS_WHEEL_VENV")
    venv = Path(reused) if reused else base / "venv"
    if not reused:
        _sh([sys.executable, "-m", "venv", str(venv)], cwd=base, env=dict(os.environ))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _sh([*pip, f"{wheel}[cpu]"], cwd=base, env=dict(os.environ))
    _sh([*pip, "--no-deps", "--force-reinstall", str(wheel)], cwd=base, env=dict(os.environ))
    return venv / "bin"


@pytest.mark.slow
def test_a_user_project_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    project = tmp_path / "user-project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    env.update(PATH=f"{installed}{os.pathsep}{env.get('PATH', '')}", HYPOTHESIS_PROFILE="ci")
    python = str(installed / "python")
    where = _sh([python, "-c", "import harness, engines; print(harness.__file__)"], project, env)
    assert str(ROOT) not in where, f"the checkout leaked into the environment: {where}"
    (project / "train.py").write_text(TRAIN)
    # plain skl2onnx ignores scikit-learn's NaN routing (a real gap the check finds): declared
    (project / "pyproject.toml").write_text(PYPROJECT)
    _sh([python, "train.py"], project, env)

    out = _sh(
        [
            str(installed / "harness"),
            "check",
            "--model",
            "detector.onnx",
            "--reference",
            "detector.skops",
            "--data",
            "rows.csv",
        ],
        project,
        env,
    )
    assert "**FAIL**" not in out
    assert "errors_match | xfail" in out

    out = _sh(
        [
            str(installed / "harness"),
            "run",
            "--model",
            "detector.onnx",
            "--reference",
            "detector.skops",
            "--data",
            "rows.csv",
            "--batch-sizes",
            "1,100",
        ],
        project,
        env,
    )
    assert "results:" in out
    report = (project / "out" / "report.md").read_text()
    assert "detector" in report
    stored = list((project / "results").rglob("*.json"))
    assert stored, "harness run stored nothing"

    (project / "test_detector.py").write_text(textwrap.dedent(USER_TEST))
    out = _sh(
        [
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--harness-store",
            "bench-results",
        ],
        project,
        env,
    )
    assert "2 passed" in out
    assert list((project / "bench-results").rglob("*.json"))
