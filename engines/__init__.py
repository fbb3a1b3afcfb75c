"""engines: export anomaly detectors to ONNX and serve them with provider truth.

Example:
    >>> from engines import EngineConfig, create_engine
    >>> engine = create_engine("model.onnx", EngineConfig(provider="cpu"))  # doctest: +SKIP
    >>> engine.predict(X)  # doctest: +SKIP
"""

from engines._version import __version__
from engines.base import METHODS, Engine, Metrics
from engines.config import PROVIDER_ALIASES, EngineConfig
from engines.errors import (
    EngineError,
    ExportValidationError,
    FallbackWarning,
    InferenceError,
    InputError,
    MethodUnavailableError,
    ModelLoadError,
    ProviderUnavailableError,
    UnsupportedModelError,
)
from engines.factory import create_engine
from engines.fallback import FallbackEngine
from engines.metadata import read_metadata
from engines.onnx_engine import OnnxEngine
from engines.persistence import load_model
from engines.providers import ProviderStatus, probe_providers
from engines.sklearn_engine import SklearnEngine

__all__ = [
    "METHODS",
    "PROVIDER_ALIASES",
    "Engine",
    "EngineConfig",
    "EngineError",
    "ExportValidationError",
    "FallbackEngine",
    "FallbackWarning",
    "InferenceError",
    "InputError",
    "MethodUnavailableError",
    "Metrics",
    "ModelLoadError",
    "OnnxEngine",
    "ProviderStatus",
    "ProviderUnavailableError",
    "SklearnEngine",
    "UnsupportedModelError",
    "__version__",
    "create_engine",
    "load_model",
    "probe_providers",
    "read_metadata",
]
