"""A user's own model: which files, which reference, which data; plain data, no heavy imports.

It enters the harness where a zoo case does (``harness run --model``, ``harness check``,
``harness gate --ab``) and takes the same road.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = ["UserModel"]


@dataclasses.dataclass(frozen=True)
class UserModel:
    """Bring your own model: an ONNX or skops model, an optional reference, optional data.

    ``name`` is what its benchmarks are called (default: the model file's stem); ``trusted``
    and ``trust_pickle`` say which reference files may be loaded; ``known_gaps`` (check ->
    reason) and ``input_bound`` shape the parity checks of the pair.
    """

    model: Path
    reference: Path | None = None
    data: Path | None = None
    n_features: int | None = None
    name: str | None = None
    trusted: tuple[str, ...] = ()
    trust_pickle: bool = False
    known_gaps: tuple[tuple[str, str], ...] = ()  # (check, reason) pairs: hashable
    input_bound: float | None = None

    @property
    def label(self) -> str:
        """The benchmark name of this model."""
        return self.name or self.model.stem

    @property
    def gaps(self) -> dict[str, str]:
        """Declared known gaps, check -> reason."""
        return dict(self.known_gaps)

    @property
    def is_onnx(self) -> bool:
        return self.model.suffix.lower() == ".onnx"
