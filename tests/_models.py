"""Small hand-built ONNX detectors for engine tests (no exporter involved)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engines.metadata import write_metadata

#: Hand-built graphs here stand for a user's graph of another era: IR 9, ai.onnx opset 17
#: (ReduceMean still takes ``axes`` as an attribute), which every supported onnxruntime loads.
IR_VERSION = 9
ONNX_OPSET = 17


def linear_detector(
    n_features: int = 4,
    *,
    offset: float = -1.5,
    outputs: Sequence[str] = ("label", "decision_function", "score_samples"),
    dtype: type[np.floating] = np.float32,
    metadata: dict[str, object] | None = None,
    ir_version: int = IR_VERSION,
    opset: int = ONNX_OPSET,
    batch_dim: str | None = "N",
) -> onnx.ModelProto:
    """score_samples = -mean(|x|); decision = score - offset; label = -1 where decision < 0.

    Extra output names: "reconstruction_error" (= mean(|x|)) and "scores" (= decision).
    """
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    consts = [
        numpy_helper.from_array(np.array(offset, dtype=dtype), "offset"),
        numpy_helper.from_array(np.array(0, dtype=dtype), "zero"),
        numpy_helper.from_array(np.array(-1, dtype=np.int64), "minus_one"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
    ]
    nodes = [
        helper.make_node("Abs", ["X"], ["abs"]),
        helper.make_node("ReduceMean", ["abs"], ["error"], axes=[1], keepdims=0),
        helper.make_node("Neg", ["error"], ["score"]),
        helper.make_node("Sub", ["score", "offset"], ["decision"]),
        helper.make_node("Less", ["decision", "zero"], ["is_anomaly"]),
        helper.make_node("Where", ["is_anomaly", "minus_one", "one"], ["label_value"]),
    ]
    source = {
        "label": ("label_value", TensorProto.INT64),
        "decision_function": ("decision", elem),
        "scores": ("decision", elem),
        "score_samples": ("score", elem),
        "reconstruction_error": ("error", elem),
    }
    graph_outputs = []
    for name in outputs:
        tensor, kind = source[name]
        nodes.append(helper.make_node("Identity", [tensor], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, kind, [batch_dim]))
    x = helper.make_tensor_value_info("X", elem, [batch_dim, n_features])
    graph = helper.make_graph(nodes, "linear_detector", [x], graph_outputs, initializer=consts)
    model = helper.make_model(
        graph, ir_version=ir_version, opset_imports=[helper.make_opsetid("", opset)]
    )
    if metadata:
        write_metadata(model, metadata)
    return model


def reference_scores(X: np.ndarray, offset: float = -1.5) -> tuple[np.ndarray, np.ndarray]:
    """What linear_detector computes, in numpy: (score_samples, decision_function)."""
    score = -np.mean(np.abs(X), axis=1)
    return score, score - offset


def fails_above_one_row(n_features: int = 4) -> onnx.ModelProto:
    """A model that loads and passes its 1-row warm-up but fails at run time for larger batches."""
    shape = numpy_helper.from_array(np.array([1, n_features], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Reshape", ["X", "shape"], ["flat"]),
        helper.make_node("ReduceSum", ["flat"], ["total"], keepdims=0),
        helper.make_node("Expand", ["total", "one_shape"], ["decision_function"]),
    ]
    one_shape = numpy_helper.from_array(np.array([1], dtype=np.int64), "one_shape")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", n_features])
    y = helper.make_tensor_value_info("decision_function", TensorProto.FLOAT, [None])
    graph = helper.make_graph(nodes, "fragile", [x], [y], initializer=[shape, one_shape])
    return helper.make_model(
        graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", ONNX_OPSET)]
    )
