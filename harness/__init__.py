"""harness: run parity and benchmark suites over ONNX anomaly detectors, store and gate results.

Importing the package is cheap (the pytest plugin loads it in every pytest run); the
commands and fixtures import what they need when they run.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("onnx-anomaly-harness")
except PackageNotFoundError:  # pragma: no cover - running from a source tree, not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
