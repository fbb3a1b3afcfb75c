from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import external_data_helper
from skl2onnx import to_onnx
from sklearn.ensemble import IsolationForest

from engines import (
    EngineConfig,
    InputError,
    MethodUnavailableError,
    ModelLoadError,
    OnnxEngine,
    ProviderUnavailableError,
    UnsupportedModelError,
)
from engines.onnx_engine import _ort_message
from tests._models import linear_detector, reference_scores

CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
INFO_KEYS = {
    "engine",
    "model_path",
    "model_sha256",
    "input_name",
    "n_features",
    "input_dtype",
    "outputs",
    "output_roles",
    "role_source",
    "ignored_outputs",
    "offset",
    "offset_source",
    "methods",
    "requested_providers",
    "registered_providers",
    "active_providers",
    "nodes_per_provider",
    "placement",
    "external_data_sha256",
    "is_fallback",
    "fallback_reason",
    "onnxruntime_version",
    "session_options",
    "metadata",
}


def test_contract_on_our_own_output_names(linear_path: Path, rng_data: np.ndarray) -> None:
    engine = OnnxEngine(linear_path, CPU1)
    score, decision = reference_scores(rng_data)
    labels = engine.predict(rng_data)
    assert labels.dtype == np.int64
    assert labels.shape == (len(rng_data),)
    assert set(np.unique(labels)) <= {-1, 1}
    np.testing.assert_array_equal(labels, np.where(decision < 0, -1, 1))
    np.testing.assert_allclose(engine.score_samples(rng_data), score, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(engine.decision_function(rng_data), decision, rtol=1e-6, atol=1e-6)
    assert engine.methods == {"predict", "score_samples", "decision_function"}


def test_info_reports_provider_truth(linear_path: Path) -> None:
    info = OnnxEngine(linear_path, CPU1).info()
    assert set(info) >= INFO_KEYS
    assert info["active_providers"] == ["CPUExecutionProvider"]
    assert info["requested_providers"] == ["CPUExecutionProvider"]
    assert info["nodes_per_provider"]["CPUExecutionProvider"] >= 1
    assert set(info["nodes_per_provider"]) == {"CPUExecutionProvider"}
    assert info["placement"] == "single"
    assert info["is_fallback"] is False
    assert info["fallback_reason"] is None
    assert info["model_path"] == str(linear_path.resolve())
    assert len(info["model_sha256"]) == 64
    assert info["n_features"] == 4
    assert info["input_dtype"] == "float32"
    assert info["session_options"]["intra_op_threads"] == 1
    assert info["role_source"] == "names"
    assert (info["offset"], info["offset_source"], info["ignored_outputs"]) == (None, None, {})
    json.dumps(info)  # the whole info is JSON-serialisable


def test_skl2onnx_scores_output_is_decision_function(
    iforest: IsolationForest, rng_data: np.ndarray
) -> None:
    model = to_onnx(iforest, rng_data[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    engine = OnnxEngine(model, CPU1)
    np.testing.assert_array_equal(engine.predict(rng_data), iforest.predict(rng_data))
    np.testing.assert_allclose(
        engine.decision_function(rng_data), iforest.decision_function(rng_data), atol=1e-5
    )
    with pytest.raises(MethodUnavailableError, match=r"score_samples.*offset unknown"):
        engine.score_samples(rng_data)


def test_offset_metadata_derives_the_missing_score(rng_data: np.ndarray) -> None:
    score, decision = reference_scores(rng_data)
    only_decision = linear_detector(outputs=("scores",), metadata={"offset": -1.5})
    engine = OnnxEngine(only_decision, CPU1)
    np.testing.assert_allclose(engine.score_samples(rng_data), score, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(engine.predict(rng_data), np.where(decision < 0, -1, 1))
    only_score = OnnxEngine(
        linear_detector(outputs=("score_samples",), metadata={"offset": -1.5}), CPU1
    )
    np.testing.assert_allclose(
        only_score.decision_function(rng_data), decision, rtol=1e-6, atol=1e-6
    )


def test_reconstruction_error_output_maps_with_sklearn_signs(rng_data: np.ndarray) -> None:
    score, decision = reference_scores(rng_data)
    model = linear_detector(outputs=("reconstruction_error",), metadata={"offset": -1.5})
    engine = OnnxEngine(model, CPU1)
    np.testing.assert_allclose(engine.score_samples(rng_data), score, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(engine.decision_function(rng_data), decision, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(engine.predict(rng_data), np.where(decision < 0, -1, 1))


def test_score_kind_metadata_names_an_unusual_output() -> None:
    model = linear_detector(outputs=("scores",), metadata={"score_kind": "score_samples"})
    engine = OnnxEngine(model, CPU1)
    assert engine.info()["output_roles"] == {"score_samples": "scores"}
    assert engine.methods == {"score_samples"}  # no offset: no decision_function, no labels
    np.testing.assert_allclose(engine.score_samples(np.ones((2, 4), np.float32)), [0.5, 0.5])


def test_model_without_known_outputs_is_unsupported() -> None:
    model = linear_detector(outputs=("label",))
    model.graph.output[0].name = "mystery"
    model.graph.node[-1].output[0] = "mystery"
    with pytest.raises(UnsupportedModelError, match="mystery"):
        OnnxEngine(model, CPU1)


def test_label_only_model_says_what_it_cannot_answer() -> None:
    engine = OnnxEngine(linear_detector(outputs=("label",)), CPU1)
    assert engine.methods == {"predict"}
    with pytest.raises(MethodUnavailableError, match=r"answers \['predict'\]"):
        engine.decision_function(np.ones((1, 4), np.float32))


def test_float64_model_and_input_casting(rng_data: np.ndarray) -> None:
    engine = OnnxEngine(linear_detector(dtype=np.float64), CPU1)
    assert engine.info()["input_dtype"] == "float64"
    out = engine.score_samples(rng_data)  # float32 input cast up
    assert out.dtype == np.float64
    f32 = OnnxEngine(linear_detector(), CPU1)
    ints = np.ones((3, 4), dtype=np.int64)
    np.testing.assert_allclose(f32.score_samples(ints), [-1.0] * 3)
    np.testing.assert_allclose(f32.score_samples(ints.astype(np.float64)), [-1.0] * 3)


def test_non_contiguous_input(rng_data: np.ndarray) -> None:
    engine = OnnxEngine(linear_detector(), CPU1)
    wide = np.repeat(rng_data, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous
    np.testing.assert_allclose(engine.score_samples(wide), engine.score_samples(rng_data))
    fortran = np.asfortranarray(rng_data)
    np.testing.assert_allclose(engine.score_samples(fortran), engine.score_samples(rng_data))


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((4,), r"got shape \(4,\)"),
        ((2, 3), r"expected 4 features.*got shape \(2, 3\)"),
        ((1, 2, 4), r"got shape \(1, 2, 4\)"),
    ],
)
def test_bad_shapes_raise_input_error(shape: tuple[int, ...], message: str) -> None:
    engine = OnnxEngine(linear_detector(), CPU1)
    for method in (engine.predict, engine.score_samples, engine.decision_function):
        with pytest.raises(InputError, match=message):
            method(np.zeros(shape, np.float32))


def test_empty_batch_gives_empty_outputs() -> None:
    engine = OnnxEngine(linear_detector(), CPU1)
    empty = np.zeros((0, 4), np.float32)
    assert engine.predict(empty).shape == (0,)
    assert engine.predict(empty).dtype == np.int64
    assert engine.score_samples(empty).shape == (0,)
    assert engine.decision_function(empty).shape == (0,)


def test_large_batches_are_chunked_with_identical_answers(rng_data: np.ndarray) -> None:
    whole = OnnxEngine(linear_detector(), CPU1)
    chunked = OnnxEngine(linear_detector(), CPU1.replace(max_chunk_rows=7))
    np.testing.assert_array_equal(chunked.predict(rng_data), whole.predict(rng_data))
    np.testing.assert_array_equal(chunked.score_samples(rng_data), whole.score_samples(rng_data))


def test_last_metrics(rng_data: np.ndarray) -> None:
    engine = OnnxEngine(linear_detector(), CPU1)
    assert engine.last_metrics is None
    engine.predict(rng_data)
    assert engine.last_metrics is not None
    assert engine.last_metrics.n_rows == len(rng_data)
    assert engine.last_metrics.latency_ms > 0
    assert engine.last_metrics.samples_per_s > 0
    quiet = OnnxEngine(linear_detector(), CPU1.replace(collect_metrics=False))
    quiet.predict(rng_data)
    assert quiet.last_metrics is None


@pytest.mark.parametrize("provider", ["cuda", "tensorrt", "CUDAExecutionProvider"])
def test_unavailable_gpu_provider_strict_raises_with_reason(provider: str) -> None:
    with pytest.raises(ProviderUnavailableError, match=r"not usable: (not installed|no NVIDIA)"):
        OnnxEngine(linear_detector(), EngineConfig(provider=provider))


def test_unavailable_provider_non_strict_labels_the_fallback(rng_data: np.ndarray) -> None:
    engine = OnnxEngine(linear_detector(), EngineConfig(provider="cuda", strict_provider=False))
    info = engine.info()
    assert info["is_fallback"] is True
    assert info["active_providers"] == ["CPUExecutionProvider"]
    assert "CUDA" not in "".join(info["nodes_per_provider"])
    assert "CUDAExecutionProvider unavailable" in info["fallback_reason"]
    assert "running on CPUExecutionProvider" in info["fallback_reason"]
    assert engine.predict(rng_data).shape == (len(rng_data),)


def test_profiling_writes_per_node_provider_placement(tmp_path: Path) -> None:
    config = CPU1.replace(enable_profiling=True, profile_path=tmp_path / "prof")
    engine = OnnxEngine(linear_detector(), config)
    engine.predict(np.ones((3, 4), np.float32))
    profile = engine.end_profiling()
    assert profile is not None
    events = json.loads(profile.read_text())
    providers = {e["args"]["provider"] for e in events if e.get("cat") == "Node"}
    assert providers == {"CPUExecutionProvider"}
    assert OnnxEngine(linear_detector(), CPU1).end_profiling() is None


def test_session_options_are_applied(linear_path: Path) -> None:
    config = EngineConfig(
        intra_op_threads=2,
        inter_op_threads=1,
        execution_mode="parallel",
        graph_optimization="disable",
        allow_spinning=False,
    )
    engine = OnnxEngine(linear_path, config)
    options = engine._session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert str(options.graph_optimization_level).endswith("ORT_DISABLE_ALL")


def test_relative_path_resolves_against_model_dir(linear_path: Path) -> None:
    engine = OnnxEngine(linear_path.name, CPU1.replace(model_dir=linear_path.parent))
    assert engine.model_path == linear_path.resolve()


def test_metadata_is_exposed(rng_data: np.ndarray) -> None:
    model = linear_detector(metadata={"version": "1.0.0", "n_features": 4, "offset": -1.5})
    info = OnnxEngine(model, CPU1).info()
    assert info["metadata"] == {"version": "1.0.0", "n_features": 4, "offset": -1.5}


# -- model files that cannot be loaded -------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model file"):
        OnnxEngine(tmp_path / "nope.onnx")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="is a directory"):
        OnnxEngine(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        OnnxEngine(path)


def test_truncated_file(linear_path: Path) -> None:
    data = linear_path.read_bytes()
    linear_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"not a valid ONNX model|holds no ONNX graph"):
        OnnxEngine(linear_path)


@pytest.mark.parametrize("payload", [b"\x89PNG\r\n\x1a\n" + bytes(range(256)), b"hello world\n"])
def test_non_onnx_file_named_onnx(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "fake.onnx"
    path.write_bytes(payload)
    with pytest.raises(ModelLoadError, match=r"not a valid ONNX model|not an ONNX file"):
        OnnxEngine(path)


def test_ir_version_too_new_for_onnxruntime() -> None:
    with pytest.raises(ModelLoadError, match="ir_version and target opset"):
        OnnxEngine(linear_detector(ir_version=99), CPU1)


def test_opset_too_new_for_onnxruntime() -> None:
    with pytest.raises(ModelLoadError, match="cannot load"):
        OnnxEngine(linear_detector(opset=99), CPU1)


@pytest.mark.parametrize(("ir", "opset"), [(99, None), (None, 99)])
def test_a_model_too_new_gets_the_advice_first_without_cpp_signatures(
    ir: int | None, opset: int | None
) -> None:
    """About 700 characters of onnxruntime's C++ location and signature came before the
    advice (IR 20, opset 30)."""
    given = {k: v for k, v in (("ir_version", ir), ("opset", opset)) if v is not None}
    with pytest.raises(ModelLoadError) as caught:
        OnnxEngine(linear_detector(**given), CPU1)  # type: ignore[arg-type]
    said = str(caught.value)
    assert said.index("re-export with an explicit ir_version and target opset") < 200
    assert "onnxruntime::" not in said
    assert ".cc:" not in said
    assert ".h:" not in said
    fact = "IR version: 99" if ir else "Opset 99"  # what onnxruntime found stays quoted
    assert fact in said.split("onnxruntime says: ", 1)[1]


def test_onnxruntimes_cpp_source_and_signature_are_left_out() -> None:
    raw = RuntimeError(
        "[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/onnxruntime/core/graph/model.cc:256 "
        "onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&, "
        "const onnxruntime::logging::Logger&, const onnxruntime::ModelOptions&) Unsupported "
        "model IR version: 15, max supported IR version: 14\n"
    )
    assert (
        _ort_message(raw) == "FAIL: Unsupported model IR version: 15, max supported IR version: 14"
    )
    run = RuntimeError(
        "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while "
        "running Reshape node. Name:'r' Status Message: /onnxruntime_src/onnxruntime/core/"
        "providers/cpu/tensor/reshape_helper.h:47 onnxruntime::ReshapeHelper::ReshapeHelper("
        "const onnxruntime::TensorShape&, onnxruntime::TensorShapeVector&, bool) "
        "input_shape_size == size was false. requested shape:{1,4}"
    )
    assert _ort_message(run) == (
        "RUNTIME_EXCEPTION: Non-zero status code returned while running Reshape node. Name:'r' "
        "Status Message: input_shape_size == size was false. requested shape:{1,4}"
    )
    plain = RuntimeError("a message (with brackets) in model.cc:12 words")  # no signature
    assert _ort_message(plain) == "a message (with brackets) in model.cc:12 words"


def test_wrong_object_type() -> None:
    with pytest.raises(ModelLoadError, match=r"expected a path, bytes or onnx\.ModelProto"):
        OnnxEngine(42)  # type: ignore[arg-type]


def _with_external_tensor(tmp_path: Path, location: str) -> Path:
    model = linear_detector()
    tensor = next(t for t in model.graph.initializer if t.name == "minus_one")
    external_data_helper.set_external_data(tensor, location=location)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    path = tmp_path / "model" / "ext.onnx"
    path.parent.mkdir()
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../x.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path: Path, location: str) -> None:
    path = _with_external_tensor(tmp_path, location)
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        OnnxEngine(path, CPU1)


def test_external_data_inside_the_folder_loads(tmp_path: Path) -> None:
    model = linear_detector()
    path = tmp_path / "inside.onnx"
    onnx.save_model(
        model,
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="inside.data",
        size_threshold=0,
    )
    engine = OnnxEngine(path, CPU1)
    np.testing.assert_allclose(engine.score_samples(np.ones((1, 4), np.float32)), [-1.0])
    with pytest.raises(ModelLoadError, match="load it from its file path"):
        OnnxEngine(onnx.load_model(path, load_external_data=False), CPU1)


def test_two_inputs_is_unsupported() -> None:
    model = linear_detector()
    extra = onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, ["N", 4])
    model.graph.input.append(extra)
    with pytest.raises(UnsupportedModelError, match="exactly one 2-D input"):
        OnnxEngine(model, CPU1)


def test_warm_up_failure_is_a_load_error() -> None:
    model = linear_detector()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "F"  # width unknown
    model.graph.node.insert(
        0,
        onnx.helper.make_node("Reshape", ["X", "bad_shape"], ["X_bad"]),
    )
    model.graph.initializer.append(
        onnx.numpy_helper.from_array(np.array([3, 3], dtype=np.int64), "bad_shape")
    )
    model.graph.node[1].input[0] = "X_bad"
    with pytest.raises(ModelLoadError, match="failed its warm-up run"):
        OnnxEngine(model, CPU1)
