"""What an export produced and how it answered: shared by every exporter (``engines.export``
and ``engines.torch_export``), so neither imports the other for its types."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import onnx

from engines.tolerance import Comparison

__all__ = ["ExportReport", "ValidationSummary"]


@dataclasses.dataclass(frozen=True)
class ValidationSummary:
    """How the ONNX model answered against the estimator on ``n_rows`` rows."""

    n_rows: int
    label_agreement: float | None
    max_abs_err: float
    max_rel_err: float
    passed: bool
    comparisons: tuple[Comparison, ...]

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["comparisons"] = [c.as_dict() for c in self.comparisons]
        return out


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What ``export`` produced."""

    model: onnx.ModelProto = dataclasses.field(repr=False)
    path: Path | None
    exporter: str
    sha256: str
    seconds: float
    validation: ValidationSummary | None
    n_nodes: int
