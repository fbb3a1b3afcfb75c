"""Small helpers to build ONNX graphs with an explicit, loadable IR version and opsets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from engines.providers import IR_VERSION, ONNX_OPSET

__all__ = ["GraphBuilder"]

_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


class GraphBuilder:
    """Accumulates nodes and constants, then makes a model with the anomaly output contract."""

    def __init__(self, name: str, dtype: np.dtype[Any], n_features: int) -> None:
        self.name = name
        self.dtype = np.dtype(dtype)
        self.n_features = n_features
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counter = 0
        self.ml_opset: int | None = None

    def fresh(self, stem: str) -> str:
        """A unique tensor name."""
        self._counter += 1
        return f"{stem}_{self._counter}"

    def const(self, value: npt.ArrayLike, dtype: Any, stem: str = "c") -> str:
        """Add an initializer and return its name."""
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], domain: str = "", **attrs: Any) -> str:
        """Add a one-output node and return the output name."""
        out = self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], domain=domain, **attrs))
        return out

    def cast(self, name: str, dtype: Any) -> str:
        return self.op("Cast", [name], to=_ELEM[np.dtype(dtype)])

    def finish(
        self,
        outputs: dict[str, str],
        output_dtype: np.dtype[Any],
        doc: str = "",
    ) -> onnx.ModelProto:
        """Wire the named results to the graph outputs and build a checked model.

        ``outputs`` maps contract names (label, decision_function, score_samples) to tensors.
        """
        graph_outputs = []
        produced = {out for node in self.nodes for out in node.output}
        renames: dict[str, str] = {}
        for name, tensor in outputs.items():
            elem = TensorProto.INT64 if name == "label" else _ELEM[np.dtype(output_dtype)]
            if tensor in produced and tensor not in renames:
                renames[tensor] = name  # the node writes the output directly: no Identity
            else:
                self.nodes.append(helper.make_node("Identity", [tensor], [name]))
            graph_outputs.append(helper.make_tensor_value_info(name, elem, ["N"]))
        for node in self.nodes:
            node.input[:] = [renames.get(i, i) for i in node.input]
            node.output[:] = [renames.get(o, o) for o in node.output]
        x = helper.make_tensor_value_info("X", _ELEM[self.dtype], ["N", self.n_features])
        graph = helper.make_graph(
            self.nodes, self.name, [x], graph_outputs, initializer=self.initializers
        )
        graph.doc_string = doc
        opsets = [helper.make_opsetid("", ONNX_OPSET)]
        if self.ml_opset is not None:
            opsets.append(helper.make_opsetid("ai.onnx.ml", self.ml_opset))
        model = helper.make_model(graph, ir_version=IR_VERSION, opset_imports=opsets)
        model.producer_name = "onnx-anomaly-harness"
        onnx.checker.check_model(model)
        return model

    def anomaly_outputs(self, score: str, offset: float) -> dict[str, str]:
        """decision = score - offset; label = -1 where decision < 0 (scikit-learn's rule)."""
        dtype = self.dtype_of_scores
        decision = self.op("Sub", [score, self.const(offset, dtype, "offset")])
        negative = self.op("Less", [decision, self.const(0, dtype, "zero")])
        label = self.op(
            "Where",
            [negative, self.const(-1, np.int64, "minus_one"), self.const(1, np.int64, "one")],
        )
        return {"label": label, "decision_function": decision, "score_samples": score}

    #: dtype in which scores are computed (double: scikit-learn scores in float64).
    dtype_of_scores: np.dtype[Any] = np.dtype(np.float64)
