"""How close an exported model must answer to its original."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Comparison", "Tolerance", "compare_outputs"]


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Per-case bounds: label agreement (1.0 = exact) and rtol/atol for the two scores."""

    label_agreement: float = 1.0
    rtol: float = 1e-5
    atol: float = 1e-6

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_agreement <= 1.0:
            raise ValueError(f"label_agreement must be in [0, 1], got {self.label_agreement}")
        if self.rtol < 0 or self.atol < 0:
            raise ValueError(f"rtol and atol must be >= 0, got {self.rtol}, {self.atol}")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Measured agreement of one output against its reference."""

    output: str
    n_rows: int
    max_abs_err: float
    max_rel_err: float
    label_agreement: float | None
    passed: bool
    worst_row: int | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compare_outputs(
    output: str,
    actual: npt.ArrayLike,
    expected: npt.ArrayLike,
    tolerance: Tolerance,
) -> Comparison:
    """Compare one output; labels by agreement, scores by |a - e| <= atol + rtol * |e|.

    NaN must match NaN and infinities must match exactly.
    """
    a = np.asarray(actual).reshape(-1)
    e = np.asarray(expected).reshape(-1)
    n = len(e)
    if a.shape != e.shape:
        return Comparison(output, n, float("inf"), float("inf"), None, False, None)
    if n == 0:
        return Comparison(output, 0, 0.0, 0.0, 1.0 if output == "label" else None, True, None)
    if output == "label":
        agree = a == e
        ratio = float(agree.mean())
        worst = None if agree.all() else int(np.flatnonzero(~agree)[0])
        passed = ratio >= tolerance.label_agreement
        return Comparison(output, n, float((~agree).sum()), 1.0 - ratio, ratio, passed, worst)
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    same_special = (np.isnan(a64) & np.isnan(e64)) | (np.isinf(e64) & (a64 == e64))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same_special, 0.0, np.abs(a64 - e64))
        diff = np.where(np.isnan(diff), np.inf, diff)
        rel = diff / np.maximum(np.abs(e64), np.finfo(np.float64).tiny)
        excess = diff - (tolerance.atol + tolerance.rtol * np.abs(np.nan_to_num(e64)))
    worst = int(np.argmax(excess))
    return Comparison(
        output,
        n,
        float(diff.max()),
        float(np.where(diff == 0, 0.0, rel).max()),
        None,
        bool((excess <= 0).all()),
        worst if excess[worst] > 0 else None,
    )
