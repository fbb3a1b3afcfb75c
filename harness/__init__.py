"""harness: run parity and benchmark suites over ONNX anomaly detectors, store and gate results."""

from engines._version import __version__

__all__ = ["__version__"]
