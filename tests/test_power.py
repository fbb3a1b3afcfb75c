"""A fast subset of docs/experiments/conformance_power.py: plain skl2onnx graphs pass as they are
and every planted fault (score shift 1e-4, one perturbed leaf / coefficient, label threshold
moved by 1e-3, two columns swapped) fails ``check_pair``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import IsolationForest
from sklearn.svm import OneClassSVM

from harness.cases.datasets import telemetry
from harness.checks.pair import check_pair

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parents[1] / "docs" / "experiments" / "conformance_power.py"


@pytest.fixture(scope="module")
def power() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_power", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data() -> Any:
    return telemetry(n_train=600, n_test=200, seed=5)


def _pair(power: ModuleType, name: str, estimator: Any, data: Any, **options: Any) -> Any:
    X = data.X_train
    fitted = estimator.fit(X)
    extra = {"options": options} if options else {}
    model = to_onnx(fitted, X[:1], target_opset=power.SKL2ONNX_OPSET, **extra)
    gaps = {"errors_match": power.NAN_ROUTING} if "iforest" in name else {}
    return power.Pair(name, fitted, model, data.X_test[:120], gaps)


def test_plain_skl2onnx_forest_passes_and_every_fault_is_caught(
    power: ModuleType, data: Any
) -> None:
    pair = _pair(power, "iforest", IsolationForest(n_estimators=20, random_state=0), data)
    result = power.run_pair(pair, "ci")
    cells = result["cells"]
    assert cells["correct"] == "pass", result["outcomes"]["correct"]
    for fault in power.FAULTS:
        assert cells[fault].startswith("caught"), (fault, cells[fault])
    correct = {o["check"]: o for o in result["outcomes"]["correct"]}
    # a label/scores graph answers score_samples with the reference's offset
    assert correct["score_close"]["status"] in ("pass", "skip")
    assert correct["errors_match"]["status"] == "xfail"  # NaN routing, declared


def test_plain_skl2onnx_svm_passes_and_a_shift_is_caught(power: ModuleType, data: Any) -> None:
    pair = _pair(power, "ocsvm", OneClassSVM(nu=0.05), data)
    result = power.run_pair(pair, "ci", faults=("shift", "param"))
    assert result["cells"]["correct"] == "pass", result["outcomes"]["correct"]
    assert result["cells"]["shift"].startswith("caught")
    assert result["cells"]["param"].startswith("caught")


def test_a_forest_graph_without_score_samples_skips_nothing_silently(
    power: ModuleType, data: Any
) -> None:
    pair = _pair(power, "iforest", IsolationForest(n_estimators=5, random_state=0), data)
    outcomes = check_pair(pair.model, pair.estimator, data=pair.rows, known_gaps=pair.known_gaps)
    for o in outcomes:
        assert o.status in ("pass", "skip", "xfail"), o
        if o.status == "skip":
            assert o.message
    assert {o.check for o in outcomes} >= {"label_exact", "decision_close", "roundtrip"}
    assert all(np.isfinite(o.rows) for o in outcomes)


def test_step_functions_and_noisy_mixtures_lose_no_fault(power: ModuleType) -> None:
    """The faults the per-row bounds cannot see: an empirical-CDF detector on integer counts
    (every row on a step: one ulp moves the score by a whole step, so each row's bound is
    wide) and a mixture whose float32 reference strays ~30 eps of its answer; data_rows and
    score_bias catch them."""
    from pyod.models.ecod import ECOD
    from sklearn.mixture import GaussianMixture

    from engines import export

    rng = np.random.default_rng(4)
    counts = rng.poisson(4.0, size=(500, 8)).astype(np.float32)
    ecod = ECOD().fit(counts[:400])
    pair = power.Pair("ecod", ecod, export(ecod).model, counts[400:], {})
    cells = power.run_pair(pair, "ci", faults=("shift", "param", "swap"))["cells"]
    assert cells["correct"] == "pass"
    for fault in ("shift", "param", "swap"):
        assert cells[fault].startswith("caught"), (fault, cells[fault])
    assert cells["param"] == "caught (data_rows)"  # 1% on one CDF entry: no row's bound sees it
    offset = 30 + rng.normal(size=(600, 6))  # far from 0: float32 squared distances cancel
    gmm = GaussianMixture(3, covariance_type="diag", random_state=0).fit(offset[:500])
    pair = power.Pair("gmm", gmm, export(gmm).model, offset[500:].astype(np.float32), {})
    result = power.run_pair(pair, "ci", faults=("shift",))
    assert result["cells"]["correct"] == "pass", result["outcomes"]["correct"]
    assert result["cells"]["shift"] == "caught (score_bias)"


def test_a_moved_cut_inside_a_histograms_jump_is_caught(
    power: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HBOS's decision jumps over its cut by more than 1e-3: bisection alone reaches no row
    whose decision a cut moved by 1e-3 flips; recombining the nearest rows' features does."""
    import functools

    from pyod.models.hbos import HBOS

    import harness.checks.pair
    from engines import export
    from harness.checks.strategies import boundary_rows

    rows = np.random.default_rng(11).gamma(2.0, size=(600, 10)).astype(np.float32)
    hbos = HBOS().fit(rows[:400])
    pair = power.Pair("hbos", hbos, export(hbos).model, rows[400:], {})
    cells = power.run_pair(pair, "ci", faults=("threshold",))["cells"]
    assert cells["correct"] == "pass"
    assert cells["threshold"].startswith("caught"), cells["threshold"]
    bisected = functools.partial(boundary_rows, recombine=0)
    monkeypatch.setattr(harness.checks.pair, "boundary_rows", bisected)
    monkeypatch.setattr(power, "decision_boundary", harness.checks.pair.decision_boundary)
    power._REACHED.clear()
    cells = power.run_pair(pair, "ci", faults=("threshold",))["cells"]
    assert cells["threshold"].startswith("no effect"), cells["threshold"]
