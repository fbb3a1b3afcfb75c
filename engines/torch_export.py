"""``export_torch``: a PyTorch module to one self-contained ONNX file, verified against eager."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from engines._io import atomic_write_bytes
from engines.errors import ExportValidationError, UnsupportedModelError
from engines.export_report import ExportReport, ValidationSummary
from engines.metadata import OFFSET_KEY, SCORE_KIND_KEY, write_metadata
from engines.tolerance import Tolerance, compare_outputs

__all__ = ["export_torch"]


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """Silence torch.onnx's progress logs and its internal deprecation warnings."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_torch(
    module: Any,
    example_input: Any,
    path: str | Path | None = None,
    *,
    dynamic_batch: bool = True,
    validate: bool = True,
    output_name: str = "reconstruction_error",
    metadata: dict[str, Any] | None = None,
    offset: float | None = None,
    tolerance: Tolerance | None = None,
) -> ExportReport:
    """Export ``module`` (one 2-D input, one per-row output) with torch's dynamo exporter.

    The result is a single .onnx file (no external data) with input ``X`` and a dynamic batch
    dimension. With ``validate=True`` it is run in onnxruntime against eager torch on
    ``example_input`` and on random rows of its shape. ``offset`` (decision = score - offset)
    goes into the metadata so engines can answer all three methods.

    Example:
        >>> report = export_torch(det.module_, X[:8], "ae.onnx", offset=det.offset_)
        ... # doctest: +SKIP
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise UnsupportedModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
    example = torch.as_tensor(np.asarray(example_input, dtype=np.float32))
    if example.ndim != 2 or example.shape[0] < 2:
        raise ValueError(
            "example_input must be 2-D with at least 2 rows (the batch is dynamic), "
            f"got {tuple(example.shape)}"
        )
    module = module.eval()
    start = time.perf_counter()
    dynamic = {"x": {0: torch.export.Dim("batch")}} if dynamic_batch else None
    with _quiet_torch(), tempfile.TemporaryDirectory() as tmp:
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            dynamic_shapes=dynamic,
            input_names=["X"],
            output_names=[output_name],
            external_data=False,
            verbose=False,
        )
        target = Path(tmp) / "model.onnx"
        if program is None:  # only the legacy exporter returns None; dynamo returns a program
            raise UnsupportedModelError("torch.onnx.export returned no program")
        program.save(str(target), external_data=False)
        proto = onnx.load_model(str(target))
    seconds = time.perf_counter() - start
    meta: dict[str, Any] = {
        "estimator": type(module).__name__,
        "exporter": "torch.onnx(dynamo)",
        "n_features": int(example.shape[1]),
        "dtype": "float32",
        "torch_version": torch.__version__,
    }
    if output_name not in ("reconstruction_error", "score_samples", "decision_function"):
        meta[SCORE_KIND_KEY] = "reconstruction_error"
    if offset is not None:
        meta[OFFSET_KEY] = float(offset)
    meta.update(metadata or {})
    summary = None
    if validate:
        summary = _validate(
            module, proto, example, output_name, tolerance or Tolerance(1.0, 1e-4, 1e-6)
        )
        meta["validation"] = summary.as_dict()
    write_metadata(proto, meta)
    payload = proto.SerializeToString()
    out_path = None if path is None else atomic_write_bytes(path, payload)
    return ExportReport(
        model=proto,
        path=out_path,
        exporter="torch",
        sha256=hashlib.sha256(payload).hexdigest(),
        seconds=seconds,
        validation=summary,
        n_nodes=len(proto.graph.node),
    )


def _validate(
    module: Any, proto: onnx.ModelProto, example: Any, output_name: str, tolerance: Tolerance
) -> ValidationSummary:
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    rows: npt.NDArray[np.float32] = np.concatenate(
        [example.numpy(), rng.normal(size=(256, example.shape[1])).astype(np.float32) * 3]
    )
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ours = session.run([output_name], {"X": rows})[0]
    with torch.no_grad():
        eager = module(torch.from_numpy(rows)).numpy()
    comparison = compare_outputs(output_name, ours, eager, tolerance)
    summary = ValidationSummary(
        n_rows=len(rows),
        label_agreement=None,
        max_abs_err=comparison.max_abs_err,
        max_rel_err=comparison.max_rel_err,
        passed=comparison.passed,
        comparisons=(comparison,),
    )
    if not summary.passed:
        raise ExportValidationError(
            f"torch export disagrees with eager torch on {len(rows)} rows: "
            f"max_abs_err={comparison.max_abs_err:.3g}, max_rel_err={comparison.max_rel_err:.3g} "
            f"beyond {tolerance}",
            summary={"max_abs_err": comparison.max_abs_err, "max_rel_err": comparison.max_rel_err},
        )
    return summary
