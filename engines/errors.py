"""Typed errors raised by the engines library.

Every message says what was expected, what was received and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "EngineError",
    "ExportValidationError",
    "FallbackWarning",
    "InferenceError",
    "InputError",
    "MethodUnavailableError",
    "ModelLoadError",
    "ProviderUnavailableError",
    "UnsupportedModelError",
]


class EngineError(Exception):
    """Base class of every error this library raises on purpose."""


class InputError(EngineError, ValueError):
    """The input array has the wrong shape, dtype or content for the model."""


class InferenceError(EngineError):
    """The runtime failed while running an input that passed validation."""


class FallbackWarning(RuntimeWarning):
    """An engine answered from its fallback; emitted once per engine."""


class ModelLoadError(EngineError):
    """A model could not be loaded (missing, corrupt, unsafe, unsupported IR or opset)."""


class ProviderUnavailableError(EngineError):
    """The requested execution provider is not the one the session actually runs on."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(
            f"execution provider {provider!r} is not usable: {reason}. "
            "Install the matching onnxruntime build or pass strict_provider=False to run on CPU "
            "(the fallback is then reported in info())."
        )
        self.provider = provider
        self.reason = reason


class UnsupportedModelError(EngineError, TypeError):
    """The estimator or graph is not one this library can export or run."""


class MethodUnavailableError(EngineError, AttributeError):
    """The model cannot answer this method (e.g. no score_samples output, no offset)."""


class ExportValidationError(EngineError):
    """The exported ONNX model disagrees with the original estimator beyond the tolerance."""

    def __init__(self, message: str, summary: dict[str, float] | None = None) -> None:
        super().__init__(message)
        self.summary = dict(summary or {})
