"""Exports for an older onnxruntime: target parsing, the form chosen per release, parity."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from sklearn.ensemble import IsolationForest
from sklearn.svm import OneClassSVM

from engines import EngineConfig, OnnxEngine, UnsupportedModelError, export, read_metadata
from engines.export import _check_target, _drop_initializer_value_info
from engines.metadata import MIN_RUNTIME_KEY
from engines.native import native_to_onnx
from engines.native._runtime import (
    LOADS,
    OLDEST_SUPPORTED,
    TREE_ENSEMBLE_V5,
    RuntimeVersion,
    installed_runtime,
    minimum_runtime,
    resolve_target,
    tree_ensemble_opset,
)
from engines.native.iforest import IForestVariant, iforest_to_onnx

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
RNG = np.random.default_rng(7)
TRAIN = (RNG.normal(size=(800, 5)) * [1, 3, 0.5, 2, 1]).astype(np.float32)
TEST = np.vstack(
    [TRAIN[:200] + RNG.normal(scale=0.05, size=(200, 5)), RNG.normal(size=(40, 5)) * 7]
)
TEST = TEST.astype(np.float32)
TEST[::17, 2] = np.nan  # missing values follow scikit-learn's per-node routing in both forms
V = RuntimeVersion
HERE = installed_runtime()
HAS_V5 = HERE >= TREE_ENSEMBLE_V5


@pytest.fixture(scope="module")
def forest() -> IsolationForest:
    return IsolationForest(n_estimators=40, random_state=0).fit(TRAIN)


def _ml_ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node if n.domain == "ai.onnx.ml"]


def _ml_opset(model: onnx.ModelProto) -> int | None:
    return next((o.version for o in model.opset_import if o.domain == "ai.onnx.ml"), None)


# -- target strings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.20", V(1, 20)), ("1.20.1", V(1, 20)), (" 1.22 ", V(1, 22)), ("1.32.0", V(1, 32))],
)
def test_versions_parse_to_major_minor(text: str, expected: RuntimeVersion) -> None:
    assert RuntimeVersion.parse(text) == expected
    assert str(expected) == ".".join(text.strip().split(".")[:2])


@pytest.mark.parametrize("text", ["", "latest", "1", "1.x", "v1.20", "1.20.1.2", "1.20rc1", "1,20"])
def test_bad_target_strings_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"like '1\.20' or '1\.22\.1', got"):
        RuntimeVersion.parse(text)


def test_target_defaults_to_the_installed_runtime() -> None:
    assert resolve_target(None, installed=V(1, 32)) == V(1, 32)
    assert resolve_target(None) == HERE
    assert resolve_target("1.20.1", installed=V(1, 32)) == V(1, 20)
    assert resolve_target(V(1, 22), installed=V(1, 22)) == V(1, 22)


def test_targets_outside_the_supported_range_are_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.19 is older than the oldest .* \(1\.20\)"):
        resolve_target("1.19", installed=V(1, 32))
    with pytest.raises(ValueError, match=r"1\.33 is newer than the installed onnxruntime 1\.32"):
        resolve_target("1.33", installed=V(1, 32))
    with pytest.raises(ValueError, match=r"1\.22 is newer than the installed onnxruntime 1\.20"):
        resolve_target("1.22", installed=V(1, 20))


def test_export_checks_the_target_before_any_work(forest: IsolationForest) -> None:
    with pytest.raises(ValueError, match="target_runtime must be"):
        export(forest, target_runtime="newest")
    with pytest.raises(ValueError, match="older than the oldest"):
        export(forest, target_runtime="1.16")
    with pytest.raises(ValueError, match="newer than the installed"):
        export(forest, target_runtime=f"{HERE.major}.{HERE.minor + 1}")


# -- which form for which runtime -----------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "opset"),
    [(V(1, 20), 3), (V(1, 21), 5), (V(1, 22), 5), (V(1, 32), 5), (V(2, 0), 5)],
)
def test_tree_form_per_runtime(runtime: RuntimeVersion, opset: int, forest: Any) -> None:
    assert tree_ensemble_opset(runtime) == opset
    model = iforest_to_onnx(forest, target_runtime=runtime)  # built, not loaded: any release
    assert _ml_opset(model) == opset
    assert _ml_ops(model) == (["TreeEnsemble"] if opset == 5 else ["TreeEnsembleRegressor"])
    assert minimum_runtime(model) == (OLDEST_SUPPORTED if opset == 3 else TREE_ENSEMBLE_V5)


def test_native_to_onnx_targets_the_installed_runtime_by_default(forest: Any) -> None:
    expected = ["TreeEnsemble"] if HAS_V5 else ["TreeEnsembleRegressor"]
    assert _ml_ops(native_to_onnx(forest)) == expected
    assert _ml_ops(native_to_onnx(forest, target_runtime=V(1, 20))) == ["TreeEnsembleRegressor"]


def test_a_variant_the_target_cannot_load_is_refused(forest: IsolationForest) -> None:
    with pytest.raises(UnsupportedModelError, match=r"ml_opset=5\) needs onnxruntime >= 1\.21"):
        iforest_to_onnx(forest, variant=IForestVariant(ml_opset=5), target_runtime=V(1, 20))
    layout = IForestVariant(thresholds="float", n_parts=2)  # ml_opset None: the target's form
    assert (
        _ml_ops(iforest_to_onnx(forest, variant=layout, target_runtime=V(1, 20)))
        == ["TreeEnsembleRegressor"] * 2
    )


def _model(ir: int, opsets: dict[str, int]) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph([helper.make_node("Add", ["X", "X"], ["Y"])], "g", [x], [y])
    imports = [helper.make_opsetid(d, v) for d, v in opsets.items()]
    return helper.make_model(graph, ir_version=ir, opset_imports=imports)


@pytest.mark.parametrize(
    ("ir", "opsets", "expected"),
    [
        (8, {"": 17, "ai.onnx.ml": 1}, V(1, 20)),  # skl2onnx's graphs: floored at 1.20
        (10, {"": 21, "ai.onnx.ml": 3}, V(1, 20)),
        (10, {"": 22}, V(1, 21)),
        (10, {"": 21, "ai.onnx.ml": 5}, V(1, 21)),
        (11, {"": 23}, V(1, 23)),
        (12, {"": 21}, V(1, 24)),
        (13, {"": 26}, V(1, 25)),
        (13, {"": 28}, V(1, 32)),
        (14, {"": 28}, V(1, 32)),  # onnx.helper.make_model's default; loads on 1.32.0
    ],
)
def test_minimum_runtime_from_ir_and_opsets(
    ir: int, opsets: dict[str, int], expected: RuntimeVersion
) -> None:
    assert minimum_runtime(_model(ir, opsets)) == expected


def test_measured_limits_only_grow() -> None:
    assert LOADS[0].since == OLDEST_SUPPORTED
    for older, newer in itertools.pairwise(LOADS):
        assert older.since < newer.since
        assert older.ir_version <= newer.ir_version
        assert older.onnx_opset <= newer.onnx_opset
        assert older.ml_opset <= newer.ml_opset


def test_an_export_newer_than_the_target_is_refused(forest: IsolationForest) -> None:
    with pytest.raises(UnsupportedModelError, match=r"needs onnxruntime >= 1\.23, but .* 1\.20"):
        _check_target(_model(11, {"": 23}), "torch", forest, V(1, 20))


# -- what export records, and parity of the two forms ----------------------------------------


def test_export_records_the_minimum_runtime(forest: IsolationForest, tmp_path: Any) -> None:
    old = export(forest, path=tmp_path / "old.onnx", target_runtime="1.20", validation_data=TEST)
    assert _ml_ops(old.model) == ["TreeEnsembleRegressor"]
    assert read_metadata(tmp_path / "old.onnx")[MIN_RUNTIME_KEY] == "1.20"
    assert old.validation is not None
    assert old.validation.label_agreement == 1.0
    default = export(forest, validation_data=TEST)
    expected = str(TREE_ENSEMBLE_V5) if HAS_V5 else "1.20"
    assert {p.key: p.value for p in default.model.metadata_props}[
        MIN_RUNTIME_KEY
    ] == f'"{expected}"'


def test_skl2onnx_exports_load_on_the_oldest_runtime() -> None:
    svm = OneClassSVM(nu=0.1, gamma="scale").fit(TRAIN[:200, :2])
    report = export(svm, exporter="skl2onnx", target_runtime="1.20", validation_data=TEST[:50, :2])
    assert minimum_runtime(report.model) == OLDEST_SUPPORTED


def _rows(dtype: Any) -> Any:
    return TEST.astype(dtype) * (1 + 1e-9 if dtype == np.float64 else 1)  # not float32 values


def _engine(forest: IsolationForest, dtype: Any, runtime: RuntimeVersion) -> OnnxEngine:
    return OnnxEngine(iforest_to_onnx(forest, dtype=dtype, target_runtime=runtime), CPU1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_opset3_form_answers_like_the_reference(forest: IsolationForest, dtype: Any) -> None:
    """Labels exact; TreeEnsembleRegressor's float32 output: scores within 1e-7 (not ~1e-15)."""
    X = _rows(dtype)
    old = _engine(forest, dtype, V(1, 20))
    np.testing.assert_array_equal(old.predict(X), forest.predict(X))
    np.testing.assert_allclose(old.score_samples(X), forest.score_samples(X), rtol=0, atol=1e-7)
    np.testing.assert_allclose(
        old.decision_function(X), forest.decision_function(X), rtol=0, atol=1e-7
    )


@pytest.mark.skipif(not HAS_V5, reason=f"onnxruntime {HERE} has no TreeEnsemble(5) kernel")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_opset3_form_answers_like_the_opset5_form(forest: IsolationForest, dtype: Any) -> None:
    X = _rows(dtype)
    old, new = _engine(forest, dtype, V(1, 20)), _engine(forest, dtype, TREE_ENSEMBLE_V5)
    np.testing.assert_allclose(new.score_samples(X), forest.score_samples(X), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(old.predict(X), new.predict(X))
    np.testing.assert_allclose(old.score_samples(X), new.score_samples(X), rtol=0, atol=1e-7)


def test_pyod_iforest_follows_the_target() -> None:
    pyod_iforest = pytest.importorskip("pyod.models.iforest")
    detector = pyod_iforest.IForest(n_estimators=20, random_state=0).fit(TRAIN)
    report = export(detector, target_runtime="1.20", validation_data=TEST[~np.isnan(TEST[:, 2])])
    assert _ml_ops(report.model) == ["TreeEnsembleRegressor"]
    assert {p.key: p.value for p in report.model.metadata_props}[MIN_RUNTIME_KEY] == '"1.20"'


def test_torch_value_info_on_initializers_is_dropped() -> None:
    """torch.onnx repeats weight shapes in value_info; onnxruntime 1.20's quantizer fails on it."""
    weight = onnx.numpy_helper.from_array(np.ones((3, 2), dtype=np.float32), "w")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3])
    nodes = [
        helper.make_node("Gemm", ["X", "w"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["Y"]),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[weight])
    graph.value_info.extend(
        [
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 2]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, ["N", 3]),
        ]
    )
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 21)])
    _drop_initializer_value_info(model)
    assert [v.name for v in model.graph.value_info] == ["h"]
    onnx.checker.check_model(model, full_check=True)
