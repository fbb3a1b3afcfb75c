"""What one harness session covers: profile, cases, batches, threads, providers, a user model.

Plain data with no heavy imports: the CLI and the pytest plugin read it before anything is
fitted, exported or timed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any, Literal

from harness.cases.user import UserModel

__all__ = [
    "PROFILES",
    "ProfileSpec",
    "Selection",
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
