"""OneClassSVM as a float64 kernel graph: one MatMul against the support vectors, then the kernel.

skl2onnx converts OneClassSVM to ``SVMRegressor``, which onnxruntime runs in float32 only (no
float64 kernel: a float64 export cannot be loaded). libsvm computes in float64; so does this
graph, whatever the input dtype, so its answers match scikit-learn to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from scipy import sparse

from engines.errors import UnsupportedModelError
from engines.native._graph import GraphBuilder
from engines.native._preprocess import transform_graph

__all__ = ["SVM_KERNELS", "ocsvm_to_onnx", "ocsvm_unsupported_reason"]

F64 = np.float64
#: Kernels the native graph computes (libsvm's four built-in ones).
SVM_KERNELS: tuple[str, ...] = ("rbf", "linear", "poly", "sigmoid")


def ocsvm_unsupported_reason(svm: Any) -> str | None:
    """None when ``ocsvm_to_onnx`` can export ``svm``, else why it cannot."""
    kernel = svm.kernel
    if not isinstance(kernel, str) or kernel not in SVM_KERNELS:
        return (
            f"native OneClassSVM export computes the kernels {list(SVM_KERNELS)}, not "
            f"{kernel!r} (a callable or precomputed kernel has no graph)"
        )
    if sparse.issparse(getattr(svm, "support_vectors_", None)):
        return "native OneClassSVM export needs dense support vectors (this one was fit on sparse)"
    return None


def ocsvm_to_onnx(
    svm: Any, *, dtype: Any = np.float32, steps: list[Any] | None = None
) -> onnx.ModelProto:
    """decision = sum_i dual_coef_i K(sv_i, x) + intercept (libsvm's sum - rho), in float64.

    label is 1 only where the decision is > 0 (libsvm's one-class rule: 0 is an anomaly), and
    score_samples = decision + offset_, in scikit-learn's order of operations.
    """
    reason = ocsvm_unsupported_reason(svm)
    if reason is not None:
        raise UnsupportedModelError(reason)
    vectors = np.asarray(svm.support_vectors_, dtype=F64)
    coef = np.asarray(svm.dual_coef_, dtype=F64).reshape(-1, 1)
    intercept = float(np.ravel(svm.intercept_)[0])
    offset = float(np.ravel(svm.offset_)[0])
    gamma = float(svm._gamma)
    builder = GraphBuilder("one_class_svm", np.dtype(dtype), int(svm.n_features_in_))
    x = transform_graph(builder, "X", steps or [])
    x = builder.cast(x, F64) if builder.dtype != F64 else x
    dot = builder.op("MatMul", [x, builder.const(vectors.T, F64, "support_vectors_t")])
    if svm.kernel == "rbf":  # |x - v|^2 = |x|^2 + |v|^2 - 2 x.v, clipped at 0 against rounding
        axes = builder.const([1], np.int64, "axes")
        x_norm = builder.op("ReduceSum", [builder.op("Mul", [x, x]), axes], keepdims=1)
        v_norm = builder.const(np.einsum("ij,ij->i", vectors, vectors), F64, "sv_norm")
        twice = builder.op("Mul", [dot, builder.const(-2.0, F64, "minus_two")])
        squared = builder.op("Add", [builder.op("Add", [twice, x_norm]), v_norm])
        squared = builder.op("Max", [squared, builder.const(0.0, F64, "zero")])
        kernel = builder.op("Exp", [builder.op("Mul", [squared, builder.const(-gamma, F64)])])
    elif svm.kernel == "linear":
        kernel = dot
    else:  # poly and sigmoid: gamma * x.v + coef0, then a power or tanh
        inner = builder.op("Mul", [dot, builder.const(gamma, F64, "gamma")])
        inner = builder.op("Add", [inner, builder.const(float(svm.coef0), F64, "coef0")])
        if svm.kernel == "poly":
            kernel = builder.op("Pow", [inner, builder.const(float(svm.degree), F64, "degree")])
        else:
            kernel = builder.op("Tanh", [inner])
    total = builder.op("MatMul", [kernel, builder.const(coef, F64, "dual_coef")])
    total = builder.op("Reshape", [total, builder.const([-1], np.int64, "flat")])
    decision = builder.op("Add", [total, builder.const(intercept, F64, "intercept")])
    score = builder.op("Add", [decision, builder.const(offset, F64, "offset")])
    positive = builder.op("Greater", [decision, builder.const(0.0, F64, "zero")])
    label = builder.op(
        "Where",
        [positive, builder.const(1, np.int64, "one"), builder.const(-1, np.int64, "minus_one")],
    )
    outputs = {"label": label, "decision_function": decision, "score_samples": score}
    return builder.finish(outputs, np.dtype(F64), doc=f"native OneClassSVM ({svm.kernel} kernel)")
