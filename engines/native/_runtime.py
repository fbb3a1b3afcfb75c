"""Which onnxruntime an export must load on, and the oldest one a graph loads on (measured).

Each onnxruntime release loads graphs up to some IR version and opsets. ``LOADS`` lists what
was measured (docs in the README, "Runtime matrix"): a one-node model per IR version,
ai.onnx opset and ai.onnx.ml operator, loaded and run on the newest patch of each minor
release from 1.18 to 1.32 (and on 1.20.0, 1.21.0 and 1.22.0). The changes that matter here:
ai.onnx.ml opset 5 ``TreeEnsemble`` first loads in 1.21.0 (1.20.x: "NOT_IMPLEMENTED: Could
not find an implementation for TreeEnsemble(5)"), so exporters target the opset 3
``TreeEnsembleRegressor`` below it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

import onnx

__all__ = [
    "LOADS",
    "OLDEST_SUPPORTED",
    "TREE_ENSEMBLE_V5",
    "RuntimeLimits",
    "RuntimeVersion",
    "installed_runtime",
    "minimum_runtime",
    "resolve_target",
    "tree_ensemble_opset",
]

_TARGET = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_INSTALLED = re.compile(r"(\d+)\.(\d+)")


@dataclasses.dataclass(frozen=True, order=True)
class RuntimeVersion:
    """An onnxruntime release, to the minor version (what decides which graphs it loads)."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @classmethod
    def parse(cls, text: str) -> RuntimeVersion:
        """``"1.20"`` or ``"1.20.1"`` (the patch is ignored); anything else is refused."""
        match = _TARGET.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"target_runtime must be an onnxruntime version like '1.20' or '1.22.1', "
                f"got {text!r}"
            )
        return cls(int(match.group(1)), int(match.group(2)))


@dataclasses.dataclass(frozen=True)
class RuntimeLimits:
    """The newest IR version and opsets releases from ``since`` on load (until the next row)."""

    since: RuntimeVersion
    ir_version: int
    onnx_opset: int
    ml_opset: int


#: The oldest onnxruntime this project supports (pyproject's lower bound; tox env ort120).
OLDEST_SUPPORTED = RuntimeVersion(1, 20)
#: The first onnxruntime with a kernel for ai.onnx.ml opset 5 ``TreeEnsemble`` (measured).
TREE_ENSEMBLE_V5 = RuntimeVersion(1, 21)

#: Measured with one-node models (Add for IR / ai.onnx opset, TreeEnsembleRegressor at
#: ai.onnx.ml 3 and 4, TreeEnsemble at 5): the highest that loads and runs. 1.18 and 1.19 load
#: what 1.20 loads; they are below OLDEST_SUPPORTED, so not listed.
LOADS: tuple[RuntimeLimits, ...] = (
    RuntimeLimits(RuntimeVersion(1, 20), ir_version=10, onnx_opset=21, ml_opset=4),
    RuntimeLimits(TREE_ENSEMBLE_V5, ir_version=10, onnx_opset=22, ml_opset=5),
    RuntimeLimits(RuntimeVersion(1, 23), ir_version=11, onnx_opset=23, ml_opset=5),
    RuntimeLimits(RuntimeVersion(1, 24), ir_version=13, onnx_opset=25, ml_opset=5),
    RuntimeLimits(RuntimeVersion(1, 25), ir_version=13, onnx_opset=26, ml_opset=5),
    RuntimeLimits(RuntimeVersion(1, 32), ir_version=14, onnx_opset=28, ml_opset=5),
)


def installed_runtime() -> RuntimeVersion:
    """The onnxruntime installed here (a dev or local build counts as its release)."""
    import onnxruntime

    match = _INSTALLED.match(onnxruntime.__version__)
    if match is None:  # pragma: no cover - onnxruntime always has a dotted version
        raise RuntimeError(f"cannot read onnxruntime's version {onnxruntime.__version__!r}")
    return RuntimeVersion(int(match.group(1)), int(match.group(2)))


def resolve_target(
    target: str | RuntimeVersion | None, installed: RuntimeVersion | None = None
) -> RuntimeVersion:
    """The runtime an export must load on: ``target``, or the installed onnxruntime.

    A target older than OLDEST_SUPPORTED, or newer than the installed onnxruntime (the export
    is validated on the installed one and could not be checked), is refused with ValueError.
    """
    here = installed or installed_runtime()
    if target is None:
        return here
    wanted = target if isinstance(target, RuntimeVersion) else RuntimeVersion.parse(target)
    if wanted < OLDEST_SUPPORTED:
        raise ValueError(
            f"target_runtime {wanted} is older than the oldest onnxruntime this project supports "
            f"({OLDEST_SUPPORTED}); exports for it are not built or tested"
        )
    if wanted > here:
        raise ValueError(
            f"target_runtime {wanted} is newer than the installed onnxruntime {here}: exports are "
            f"validated on the installed runtime, so export where onnxruntime {wanted} is "
            "installed, or leave target_runtime unset (an export for an older runtime loads on "
            "newer ones)"
        )
    return wanted


def tree_ensemble_opset(target: RuntimeVersion) -> Literal[3, 5]:
    """ai.onnx.ml opset of the tree-ensemble form ``target`` loads: 5 (TreeEnsemble) or 3."""
    return 5 if target >= TREE_ENSEMBLE_V5 else 3


def minimum_runtime(model: onnx.ModelProto) -> RuntimeVersion:
    """The oldest supported onnxruntime that loads ``model``'s IR version and opsets.

    A model beyond every measured release gets the installed onnxruntime (where its export was
    just loaded). Custom domains are not judged.
    """
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    for limits in LOADS:
        if (
            model.ir_version <= limits.ir_version
            and opsets.get("ai.onnx", 0) <= limits.onnx_opset
            and opsets.get("ai.onnx.ml", 0) <= limits.ml_opset
        ):
            return limits.since
    return max(installed_runtime(), LOADS[-1].since)
