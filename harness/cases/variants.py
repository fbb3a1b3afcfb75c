"""Engine variants: what runs a case, as a type, and its spelling in ids and result rows.

Rows and benchmark ids carry the spelling (``sklearn``, ``onnx-native``, ``onnx-torch-int8``,
``torch-eager``, ``fallback``, ``onnx-user``); code reads the fields, never the string's parts.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

__all__ = ["EngineVariant"]

Kind = Literal["sklearn", "onnx", "torch-eager", "fallback"]
_KINDS: tuple[Kind, ...] = ("sklearn", "onnx", "torch-eager", "fallback")


@dataclasses.dataclass(frozen=True)
class EngineVariant:
    """``kind`` (scikit-learn, an ONNX graph, eager torch, the fallback engine), the ONNX
    graph's ``exporter`` (``native``, ``skl2onnx``, ``torch``, ``onnxmltools``, or ``user``
    for a graph the user brings) and whether it is ``quantized`` (dynamic int8).

    Example:
        >>> EngineVariant.parse("onnx-torch-int8")
        EngineVariant(kind='onnx', exporter='torch', quantized=True)
        >>> str(EngineVariant("onnx", "native"))
        'onnx-native'
    """

    kind: Kind
    exporter: str | None = None
    quantized: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown engine kind {self.kind!r}; known: {', '.join(_KINDS)}")
        if (self.kind == "onnx") != (self.exporter is not None):
            raise ValueError("an ONNX variant names its exporter, and only an ONNX variant does")
        if self.quantized and self.kind != "onnx":
            raise ValueError("only an ONNX graph is quantized")

    @classmethod
    def parse(cls, name: str) -> EngineVariant:
        """The variant a row's ``engine`` spells."""
        if name in ("sklearn", "torch-eager", "fallback"):
            return cls(name)  # type: ignore[arg-type]
        head, _, rest = name.partition("-")
        exporter, _, suffix = rest.partition("-")
        if head != "onnx" or not exporter or suffix not in ("", "int8"):
            raise ValueError(
                f"unknown engine {name!r}: expected sklearn, torch-eager, fallback, "
                "onnx-<exporter> or onnx-<exporter>-int8"
            )
        return cls("onnx", exporter, quantized=suffix == "int8")

    def __str__(self) -> str:
        if self.kind != "onnx":
            return self.kind
        return f"onnx-{self.exporter}" + ("-int8" if self.quantized else "")
