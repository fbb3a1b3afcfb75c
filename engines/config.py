"""Engine configuration: providers, threading, optimisation, profiling, metrics."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from engines._io import DEFAULT_MAX_MODEL_BYTES

__all__ = [
    "DEFAULT_MAX_MODEL_BYTES",
    "MAX_THREADS",
    "PROVIDER_ALIASES",
    "EngineConfig",
    "resolve_provider_chain",
]

#: Short names accepted for ``EngineConfig.provider`` and the ORT provider they stand for.
PROVIDER_ALIASES: Mapping[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

GraphOptimization = Literal["disable", "basic", "extended", "all"]
ExecutionMode = Literal["sequential", "parallel"]
EngineKind = Literal["onnx", "sklearn"]

_GRAPH_OPTIMIZATIONS: tuple[str, ...] = ("disable", "basic", "extended", "all")
_EXECUTION_MODES: tuple[str, ...] = ("sequential", "parallel")
_ENGINE_KINDS: tuple[str, ...] = ("onnx", "sklearn")
#: The most intra- or inter-op threads a config accepts: 4 x this machine's CPU count, at least
#: 16. More only oversubscribes the cores, and onnxruntime creates every thread at session
#: creation (1,024 threads took 28 s on a 2-core machine; 100,000 hang it for minutes).
MAX_THREADS = max(16, 4 * (os.cpu_count() or 1))
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def resolve_provider_chain(provider: str) -> list[str]:
    """ORT provider names to request, most preferred first, always ending on CPU."""
    name = PROVIDER_ALIASES.get(provider.lower(), provider)
    if name == "TensorrtExecutionProvider":
        return [name, "CUDAExecutionProvider", "CPUExecutionProvider"]
    if name == "CPUExecutionProvider":
        return [name]
    return [name, "CPUExecutionProvider"]


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """How an engine creates and runs its session.

    Thread counts are bounded by ``MAX_THREADS`` (0 = onnxruntime's default); a model may read
    at most ``max_model_bytes`` (its file plus external data, default 2 GiB): larger files,
    and anything that is not a regular file, are refused with ModelLoadError.

    Example:
        >>> cfg = EngineConfig(provider="cpu", intra_op_threads=1)
        >>> cfg.provider_name
        'CPUExecutionProvider'
    """

    provider: str = "cpu"
    provider_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    execution_mode: ExecutionMode = "sequential"
    graph_optimization: GraphOptimization = "all"
    allow_spinning: bool = True
    enable_profiling: bool = False
    profile_path: Path | None = None
    strict_provider: bool = True
    collect_metrics: bool = True
    engine: EngineKind = "onnx"
    model_dir: Path | None = None
    max_chunk_rows: int = 65_536
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES

    def __post_init__(self) -> None:
        if not isinstance(self.provider, str) or not self.provider:
            raise ValueError(f"provider must be a non-empty string, got {self.provider!r}")
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"{name} must be an integer >= 0 (0 = ORT default), got {value!r}")
            if value is not None and value > MAX_THREADS:
                raise ValueError(_too_many_threads(name, value))
        _check_choice("graph_optimization", self.graph_optimization, _GRAPH_OPTIMIZATIONS)
        _check_choice("execution_mode", self.execution_mode, _EXECUTION_MODES)
        _check_choice("engine", self.engine, _ENGINE_KINDS)
        if not isinstance(self.max_chunk_rows, int) or self.max_chunk_rows < 1:
            raise ValueError(
                f"max_chunk_rows must be a positive integer, got {self.max_chunk_rows!r}"
            )
        limit = self.max_model_bytes
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"max_model_bytes must be a positive integer, got {limit!r}")

    @property
    def provider_name(self) -> str:
        """The ORT provider name the ``provider`` field stands for."""
        return resolve_provider_chain(self.provider)[0]

    @property
    def requested_providers(self) -> list[str]:
        """The provider chain handed to ``InferenceSession``."""
        return resolve_provider_chain(self.provider)

    def replace(self, **changes: Any) -> EngineConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view of the settings."""
        out = dataclasses.asdict(self)
        out["provider_options"] = dict(self.provider_options)
        for key in ("profile_path", "model_dir"):
            out[key] = None if out[key] is None else str(out[key])
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> EngineConfig:
        """Build a config from ``ONNX_*`` environment variables.

        Reads ONNX_PROVIDER, ONNX_THREADS (intra-op, 0 to MAX_THREADS), ONNX_ENGINE
        (sklearn|onnx), ONNX_PROFILING (1/0/true/false), ONNX_MODEL_DIR and
        ONNX_MAX_MODEL_BYTES. A bad value raises ValueError naming the variable and the
        allowed values.

        Example:
            >>> EngineConfig.from_env({"ONNX_THREADS": "1"}).intra_op_threads
            1
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if (raw := env.get("ONNX_PROVIDER")) is not None:
            if not raw.strip():
                raise ValueError(
                    "ONNX_PROVIDER is empty: expected 'cpu', 'cuda', 'tensorrt' or an ORT "
                    "provider name"
                )
            values["provider"] = raw.strip()
        if (raw := env.get("ONNX_THREADS")) is not None:
            try:
                threads = int(raw)
            except ValueError:
                threads = -1
            if threads < 0:
                raise ValueError(
                    f"ONNX_THREADS={raw!r} is not valid: expected an integer >= 0 (0 = ORT default)"
                )
            if threads > MAX_THREADS:
                raise ValueError(_too_many_threads("ONNX_THREADS", threads))
            values["intra_op_threads"] = threads
        if (raw := env.get("ONNX_ENGINE")) is not None:
            kind = raw.strip().lower()
            if kind not in _ENGINE_KINDS:
                raise ValueError(
                    f"ONNX_ENGINE={raw!r} is not valid: expected one of {_ENGINE_KINDS}"
                )
            values["engine"] = kind
        if (raw := env.get("ONNX_PROFILING")) is not None:
            flag = raw.strip().lower()
            if flag not in _TRUE + _FALSE:
                raise ValueError(
                    f"ONNX_PROFILING={raw!r} is not valid: expected one of {_TRUE + _FALSE[:-1]}"
                )
            values["enable_profiling"] = flag in _TRUE
        if (raw := env.get("ONNX_MODEL_DIR")) is not None:
            if not raw.strip():
                raise ValueError("ONNX_MODEL_DIR is empty: expected a directory path")
            values["model_dir"] = Path(raw)
        if (raw := env.get("ONNX_MAX_MODEL_BYTES")) is not None:
            try:
                limit = int(raw)
            except ValueError:
                limit = 0
            if limit < 1:
                raise ValueError(
                    f"ONNX_MAX_MODEL_BYTES={raw!r} is not valid: expected a positive integer "
                    f"(bytes; default {DEFAULT_MAX_MODEL_BYTES})"
                )
            values["max_model_bytes"] = limit
        values.update(overrides)
        return cls(**values)


def _too_many_threads(name: str, value: int) -> str:
    return (
        f"{name}={value} is too many threads: at most {MAX_THREADS} (4 x this machine's "
        f"{os.cpu_count()} CPUs, at least 16; onnxruntime creates them all when a session is "
        "created). Use 0 for onnxruntime's default (one per core)"
    )


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
