"""skl2onnx conversion, rewired to this project's output contract."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.pipeline import Pipeline

from engines.errors import UnsupportedModelError

__all__ = ["SKL2ONNX_OPSET", "skl2onnx_to_onnx"]

#: skl2onnx needs both opsets pinned for IsolationForest (an int or nothing fails); its
#: GaussianMixture converter fails on that dict with float64 input ("'<' not supported between
#: 'dict' and 'int'"), so every other estimator gets the int (skl2onnx picks ai.onnx.ml).
SKL2ONNX_OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}


def _final(model: Any) -> Any:
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def skl2onnx_to_onnx(model: Any, *, n_features: int, dtype: Any) -> onnx.ModelProto:
    """Convert with skl2onnx, then expose label / decision_function / score_samples as [N]."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    final = _final(model)
    _refuse_known_failures(final, np.dtype(dtype))
    is_mixture = hasattr(final, "n_components") and hasattr(final, "means_")
    is_forest = type(final).__name__ == "IsolationForest"
    tensor_type = FloatTensorType if np.dtype(dtype) == np.float32 else DoubleTensorType
    options = {id(final): {"score_samples": True}} if is_mixture else None
    try:
        proto = to_onnx(
            _without_unused_p(model),
            initial_types=[("X", tensor_type([None, n_features]))],
            target_opset=SKL2ONNX_OPSET if is_forest else SKL2ONNX_OPSET[""],
            options=options,
        )
    except Exception as exc:  # skl2onnx raises many types: report the estimator and its words
        raise UnsupportedModelError(
            f"skl2onnx cannot convert {type(final).__name__} ({np.dtype(dtype)} input): {exc}"
        ) from exc
    outputs = {o.name: o for o in proto.graph.output}
    wiring: dict[str, str] = {}
    if is_mixture:  # label/probabilities are mixture components, not anomaly answers
        wiring["score_samples"] = "score_samples"
    else:
        wiring["label"] = "label"
        wiring["decision_function"] = "scores"
    missing = [src for src in wiring.values() if src not in outputs]
    if missing:
        raise UnsupportedModelError(
            f"skl2onnx graph for {type(final).__name__} lacks outputs {missing}: "
            f"has {list(outputs)}"
        )
    return _rewire(proto, wiring, getattr(final, "offset_", None))


def _refuse_known_failures(final: Any, dtype: np.dtype[Any]) -> None:
    """Refuse, saying why, what skl2onnx would fail on or onnxruntime could not load."""
    name = type(final).__name__
    if dtype == np.float64 and name in ("IsolationForest", "OneClassSVM"):
        kernel = "TreeEnsembleRegressor" if name == "IsolationForest" else "SVMRegressor"
        raise UnsupportedModelError(
            f"skl2onnx cannot convert {name} (float64 input): its {kernel} graph is for "
            "float32 input only (onnxruntime has no float64 form of it); use exporter='native' "
            "or 'auto' (a float64 graph), or dtype='float32'"
        )


def _without_unused_p(model: Any) -> Any:
    """A LocalOutlierFactor whose minkowski p became another metric (p=1: manhattan) keeps its
    p, which skl2onnx then hands to that metric's graph and fails ("Argument 'p' not valid for
    'Transpose'"): convert a copy with p=2, which no metric but minkowski reads."""
    final = _final(model)
    if type(final).__name__ != "LocalOutlierFactor" or final.p == 2:
        return model
    if getattr(final, "effective_metric_", "minkowski") == "minkowski":
        return model
    twin = copy.copy(final)
    twin.p = 2
    if isinstance(model, Pipeline):
        return Pipeline([*model.steps[:-1], (model.steps[-1][0], twin)])
    return twin


def _rewire(proto: onnx.ModelProto, wiring: dict[str, str], offset: Any) -> onnx.ModelProto:
    graph = proto.graph
    sources = {o.name: o for o in graph.output}
    flat = numpy_helper.from_array(np.array([-1], dtype=np.int64), "contract_flat_shape")
    graph.initializer.append(flat)
    new_outputs = []
    renamed = {}
    for name, src in wiring.items():
        elem = sources[src].type.tensor_type.elem_type
        internal = f"{src}__raw"
        renamed[src] = internal
        new_outputs.append((name, internal, elem))
    for node in graph.node:  # outputs become internal tensors so the contract names are free
        node.output[:] = [renamed.get(o, o) for o in node.output]
        node.input[:] = [renamed.get(i, i) for i in node.input]
    del graph.output[:]
    score_elem = None
    for name, internal, elem in new_outputs:
        graph.node.append(helper.make_node("Reshape", [internal, flat.name], [name]))
        graph.output.append(helper.make_tensor_value_info(name, elem, ["N"]))
        if name == "decision_function":
            score_elem = elem
    if score_elem is not None and offset is not None:
        dtype = np.float32 if score_elem == TensorProto.FLOAT else np.float64
        const = numpy_helper.from_array(
            np.array(float(np.ravel(offset)[0]), dtype), "contract_offset"
        )
        graph.initializer.append(const)
        graph.node.append(
            helper.make_node("Add", ["decision_function", const.name], ["score_samples"])
        )
        graph.output.append(helper.make_tensor_value_info("score_samples", score_elem, ["N"]))
    onnx.checker.check_model(proto)
    return proto
