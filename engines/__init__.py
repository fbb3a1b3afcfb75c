"""engines: export anomaly detectors to ONNX and serve them with provider truth.

Example:
    >>> from engines import EngineConfig, create_engine
    >>> engine = create_engine("model.onnx", EngineConfig(provider="cpu"))  # doctest: +SKIP
    >>> engine.predict(X)  # doctest: +SKIP
"""

from engines._version import __version__
from engines.base import METHODS, Engine, Metrics
from engines.config import PROVIDER_ALIASES, EngineConfig
from engines.detectors import PCAReconstructionDetector, SupervisedScorer
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
from engines.export import EXPORTABLE, ExportReport, ValidationSummary, export
from engines.factory import create_engine
from engines.fallback import FallbackEngine
from engines.metadata import read_metadata
from engines.onnx_engine import OnnxEngine
from engines.persistence import load_model, save_model
from engines.providers import ProviderStatus, probe_providers
from engines.quantize import QuantizeReport, quantize
from engines.sklearn_engine import SklearnEngine
from engines.tolerance import Tolerance

_LAZY = {  # torch is an optional extra: imported only when these are used
    "export_torch": "engines.torch_export",
    "AutoencoderDetector": "engines.torch_models",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engines' has no attribute {name!r}")


__all__ = [
    "EXPORTABLE",
    "METHODS",
    "PROVIDER_ALIASES",
    "AutoencoderDetector",
    "Engine",
    "EngineConfig",
    "EngineError",
    "ExportReport",
    "ExportValidationError",
    "FallbackEngine",
    "FallbackWarning",
    "InferenceError",
    "InputError",
    "MethodUnavailableError",
    "Metrics",
    "ModelLoadError",
    "OnnxEngine",
    "PCAReconstructionDetector",
    "ProviderStatus",
    "ProviderUnavailableError",
    "QuantizeReport",
    "SklearnEngine",
    "SupervisedScorer",
    "Tolerance",
    "UnsupportedModelError",
    "ValidationSummary",
    "__version__",
    "create_engine",
    "export",
    "export_torch",
    "load_model",
    "probe_providers",
    "quantize",
    "read_metadata",
    "save_model",
]
