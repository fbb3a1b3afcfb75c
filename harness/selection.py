"""What one harness session covers: profile, cases, batches, threads, providers, a user model.

Plain data with no heavy imports: the CLI and the pytest plugin read it before anything is
fitted, exported or timed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "PROFILES",
    "ProfileSpec",
    "Selection",
    "UserModel",
    "split_list",
]


@dataclasses.dataclass(frozen=True)
class ProfileSpec:
    """How much a ``harness run`` profile times."""

    batch_sizes: tuple[int, ...]
    threads: tuple[int, ...]
    all_exporters: bool
    variants: bool  # quantized ONNX and torch eager
    target_seconds: float  # measured time per benchmark
    zoo_profile: Literal["fast", "regular", "large"]


_ALL_CORES = os.cpu_count() or 1
_ONE_AND_ALL = tuple(sorted({1, _ALL_CORES}))  # 1 intra-op thread and all cores
PROFILES: dict[str, ProfileSpec] = {
    "quick": ProfileSpec((1, 100, 10_000), _ONE_AND_ALL, False, False, 0.15, "large"),
    "full": ProfileSpec((1, 10, 100, 1_000, 10_000), _ONE_AND_ALL, True, True, 0.6, "large"),
}


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


@dataclasses.dataclass(frozen=True)
class Selection:
    """What one benchmark session covers."""

    profile: str = "quick"
    cases: tuple[str, ...] = ()
    batch_sizes: tuple[int, ...] = ()
    threads: tuple[int, ...] = ()
    providers: tuple[str, ...] = ("cpu",)
    user_model: UserModel | None = None

    @property
    def spec(self) -> ProfileSpec:
        return PROFILES[self.profile]

    @property
    def effective_batch_sizes(self) -> tuple[int, ...]:
        return self.batch_sizes or self.spec.batch_sizes

    @property
    def effective_threads(self) -> tuple[int, ...]:
        return self.threads or self.spec.threads


def split_list(text: str | None, cast: Callable[[str], Any] = str) -> tuple[Any, ...]:
    """'1,100, 10000' -> (1, 100, 10000); None or '' -> ()."""
    if not text:
        return ()
    return tuple(cast(part.strip()) for part in text.split(",") if part.strip())
