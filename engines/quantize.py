"""``quantize``: int8 (dynamic or static) and fp16 variants, with parity against fp32."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx

from engines._io import atomic_write_bytes
from engines.config import EngineConfig
from engines.errors import ModelLoadError, UnsupportedModelError
from engines.metadata import QUANTIZED_KEY, write_metadata

__all__ = ["QUANTIZABLE_OPS", "QuantizeReport", "quantize"]

Mode = Literal["dynamic-int8", "static-int8", "fp16"]

#: Ops that onnxruntime's quantizers rewrite; a graph without them has nothing to quantize.
QUANTIZABLE_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "Attention", "LSTM", "GRU"})
_QUANTIZED_OPS = frozenset(
    {
        "MatMulInteger",
        "DynamicQuantizeMatMul",
        "QLinearMatMul",
        "QGemm",
        "QLinearConv",
        "ConvInteger",
        "DynamicQuantizeLinear",
        "QuantizeLinear",
    }
)


@dataclasses.dataclass(frozen=True)
class QuantizeReport:
    """What ``quantize`` did (or why it did nothing) and how the result compares to fp32."""

    mode: str
    source: Path
    target: Path | None
    skipped: bool
    reason: str | None
    size_before: int
    size_after: int | None
    n_quantized_nodes: int
    parity: dict[str, float] | None


def _load(path: Path) -> onnx.ModelProto:
    if not path.exists():
        raise ModelLoadError(f"no such model file: {path}")
    try:
        return onnx.load_model(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable ONNX model: {exc}") from exc


def _parity(source: Path, target: Path, rows: npt.NDArray[Any]) -> dict[str, float]:
    from scipy.stats import spearmanr

    from engines.onnx_engine import OnnxEngine

    config = EngineConfig(provider="cpu", collect_metrics=False)
    reference, candidate = OnnxEngine(source, config), OnnxEngine(target, config)
    out: dict[str, float] = {"n_rows": float(len(rows))}
    if "score_samples" in reference.methods and "score_samples" in candidate.methods:
        a = candidate.score_samples(rows).astype(np.float64)
        b = reference.score_samples(rows).astype(np.float64)
        rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
        out["max_rel_err"] = float(rel.max())
        out["spearman"] = float(spearmanr(a, b).statistic)
    if "predict" in reference.methods and "predict" in candidate.methods:
        out["label_agreement"] = float((reference.predict(rows) == candidate.predict(rows)).mean())
    return out


class _Calibration:
    """onnxruntime CalibrationDataReader over an array, one batch of rows at a time."""

    def __init__(self, input_name: str, data: npt.NDArray[np.float32], batch: int = 64) -> None:
        self._batches: Iterator[dict[str, npt.NDArray[np.float32]]] = iter(
            {input_name: data[i : i + batch]} for i in range(0, len(data), batch)
        )

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        return next(self._batches, None)


def quantize(
    source: str | Path,
    target: str | Path,
    mode: Mode = "dynamic-int8",
    *,
    calibration_data: npt.ArrayLike | None = None,
    parity_data: npt.ArrayLike | None = None,
) -> QuantizeReport:
    """Write a quantized copy of ``source`` to ``target`` and measure it against fp32.

    ``dynamic-int8`` and ``static-int8`` run onnxruntime's pre-processing (shape inference,
    graph optimisation) first; ``static-int8`` needs ``calibration_data``. ``fp16`` keeps
    ai.onnx.ml ops (tree ensembles) and the input/output types in fp32 so the model loads.
    A graph with no quantizable op (a tree ensemble) is skipped with the reason, and no file is
    written. ``parity_data`` (default: calibration data, else 256 standard-normal rows) gives
    max relative error of score_samples, label agreement and Spearman rank correlation.

    Example:
        >>> quantize("ae.onnx", "ae_int8.onnx").size_after  # doctest: +SKIP
    """
    src, dst = Path(source), Path(target)
    model = _load(src)
    size_before = src.stat().st_size
    if mode not in ("dynamic-int8", "static-int8", "fp16"):
        raise ValueError(f"mode must be 'dynamic-int8', 'static-int8' or 'fp16', got {mode!r}")
    if mode == "static-int8" and calibration_data is None:
        raise ValueError("static-int8 needs calibration_data: representative input rows")
    ops = {node.op_type for node in model.graph.node}
    if mode != "fp16" and not ops & QUANTIZABLE_OPS:
        reason = (
            f"nothing to quantize: the graph has no {sorted(QUANTIZABLE_OPS)} node (its ops: "
            f"{sorted(ops)}); tree ensembles keep their thresholds exact, so int8 would only grow "
            "the file"
        )
        return QuantizeReport(mode, src, None, True, reason, size_before, None, 0, None)
    input_name = model.graph.input[0].name
    width = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value or 1
    if mode == "fp16":
        quantized = _to_fp16(model)
        _check_loadable(quantized)
        n_nodes = sum(
            1 for n in quantized.graph.node if n.domain in ("", "ai.onnx") and n.op_type != "Cast"
        )
    else:
        quantized = _to_int8(src, mode, input_name, calibration_data)
        n_nodes = sum(1 for n in quantized.graph.node if n.op_type in _QUANTIZED_OPS)
    write_metadata(quantized, {QUANTIZED_KEY: mode})
    atomic_write_bytes(dst, quantized.SerializeToString())
    rows = parity_data if parity_data is not None else calibration_data
    if rows is None:
        rows = np.random.default_rng(0).normal(size=(256, width))
    parity = _parity(src, dst, np.asarray(rows, dtype=np.float32))
    return QuantizeReport(
        mode, src, dst, False, None, size_before, dst.stat().st_size, n_nodes, parity
    )


def _to_int8(
    src: Path, mode: str, input_name: str, calibration_data: npt.ArrayLike | None
) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        output = Path(tmp) / "quantized.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        if mode == "dynamic-int8":
            quantize_dynamic(str(prepared), str(output), weight_type=QuantType.QInt8)
        else:
            data = np.asarray(calibration_data, dtype=np.float32)
            reader = _Calibration(input_name, data)
            quantize_static(str(prepared), str(output), reader, weight_type=QuantType.QInt8)
        return onnx.load_model(str(output))


def _to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    ml_nodes = [
        n.name or f"node_{i}" for i, n in enumerate(model.graph.node) if n.domain == "ai.onnx.ml"
    ]
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"node_{i}"
    converted: onnx.ModelProto = convert_float_to_float16(
        model, keep_io_types=True, node_block_list=ml_nodes, disable_shape_infer=False
    )
    return converted


def _check_loadable(model: onnx.ModelProto) -> None:
    import onnxruntime as ort

    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise UnsupportedModelError(f"the converted model does not load: {exc}") from exc
