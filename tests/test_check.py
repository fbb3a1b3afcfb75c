"""Self-test: `harness check` catches deliberately broken models and passes the correct one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import skops.io as sio
from onnx import numpy_helper
from sklearn.ensemble import IsolationForest

from engines import export
from harness.cli import main
from harness.datasets import telemetry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, IsolationForest]:
    folder = tmp_path_factory.mktemp("pair")
    data = telemetry(n_train=1500, n_test=400, seed=3)
    forest = IsolationForest(n_estimators=30, random_state=0).fit(data.X_train)
    export(forest, path=folder / "good.onnx")
    sio.dump(forest, folder / "ref.skops")
    np.save(folder / "X.npy", data.X_test)
    return folder / "good.onnx", folder / "ref.skops", folder / "X.npy", forest


def _node(model: onnx.ModelProto, op: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == op)


def _attr(node: onnx.NodeProto, name: str) -> onnx.AttributeProto:
    return next(a for a in node.attribute if a.name == name)


def _const(model: onnx.ModelProto, consumer_op: str, position: int) -> onnx.TensorProto:
    node = _node(model, consumer_op)
    return next(t for t in model.graph.initializer if t.name == node.input[position])


def perturb_one_leaf(model: onnx.ModelProto, forest: IsolationForest, rows: np.ndarray) -> None:
    """One leaf of one tree is off: only rows reaching that leaf (a small region) differ."""
    weights = _attr(_node(model, "TreeEnsemble"), "leaf_weights")
    values = numpy_helper.to_array(weights.t).copy()
    tree = forest.estimators_[0].tree_
    leaves, counts = np.unique(forest.estimators_[0].apply(rows), return_counts=True)
    target = leaves[np.argmax(counts)]  # one leaf of one of 30 trees: a small input region
    index = int(np.flatnonzero(tree.children_left == -1).tolist().index(target))
    values[index] *= 1.5
    weights.t.CopyFrom(numpy_helper.from_array(values))


def shift_label_threshold(
    model: onnx.ModelProto, forest: IsolationForest, rows: np.ndarray
) -> None:
    """Labels switch at decision < 0.01 instead of < 0."""
    zero = _const(model, "Less", 1)
    zero.CopyFrom(numpy_helper.from_array(np.array(0.01, dtype=np.float64), zero.name))


def wrong_offset(model: onnx.ModelProto, forest: IsolationForest, rows: np.ndarray) -> None:
    offset = _const(model, "Sub", 1)
    value = numpy_helper.to_array(offset)
    offset.CopyFrom(numpy_helper.from_array(np.asarray(value + 0.02), offset.name))


def drop_nan_routing(model: onnx.ModelProto, forest: IsolationForest, rows: np.ndarray) -> None:
    """Missing values always take the false branch, ignoring scikit-learn's routing."""
    tracks = _attr(_node(model, "TreeEnsemble"), "nodes_missing_value_tracks_true")
    assert any(tracks.ints)
    tracks.ints[:] = [0] * len(tracks.ints)


FAULTS: dict[str, Callable[[onnx.ModelProto, IsolationForest, np.ndarray], None]] = {
    "one-leaf-perturbed": perturb_one_leaf,
    "label-threshold-off-by-epsilon": shift_label_threshold,
    "wrong-offset": wrong_offset,
    "nan-routing-dropped": drop_nan_routing,
}


def test_the_correct_model_passes(
    pair: tuple[Path, Path, Path, IsolationForest], tmp_path: Path
) -> None:
    good, ref, data, _ = pair
    code = main(
        [
            "check",
            "--model",
            str(good),
            "--reference",
            str(ref),
            "--data",
            str(data),
            "--json",
            str(tmp_path / "out.json"),
        ]
    )
    assert code == 0
    outcomes = json.loads((tmp_path / "out.json").read_text())
    assert {o["check"] for o in outcomes} >= {
        "label_exact",
        "score_close",
        "decision_close",
        "errors_match",
        "batch_invariance",
    }
    assert all(o["passed"] for o in outcomes)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_planted_faults_are_caught(
    pair: tuple[Path, Path, Path, IsolationForest],
    tmp_path: Path,
    fault: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good, ref, data, forest = pair
    model = onnx.load_model(good)
    FAULTS[fault](model, forest, np.load(data))
    broken = tmp_path / f"{fault}.onnx"
    onnx.save_model(model, broken)
    code = main(
        [
            "check",
            "--model",
            str(broken),
            "--reference",
            str(ref),
            "--data",
            str(data),
            "--json",
            str(tmp_path / "out.json"),
        ]
    )
    assert code == 1, f"{fault} was not caught"
    out = capsys.readouterr().out
    assert "**FAIL**" in out
    assert "minimal failing input" in out
    failed = [o for o in json.loads((tmp_path / "out.json").read_text()) if not o["passed"]]
    assert all(o["minimal_input"] for o in failed if o["check"] != "quantized_rank")


def test_setup_errors_exit_2(
    pair: tuple[Path, Path, Path, IsolationForest], tmp_path: Path
) -> None:
    good, ref, _, _ = pair
    assert main(["check", "--model", str(tmp_path / "nope.onnx"), "--reference", str(ref)]) == 2
    np.save(tmp_path / "narrow.npy", np.zeros((3, 2), np.float32))
    assert (
        main(
            [
                "check",
                "--model",
                str(good),
                "--reference",
                str(ref),
                "--data",
                str(tmp_path / "narrow.npy"),
            ]
        )
        == 2
    )
