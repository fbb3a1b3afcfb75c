"""Native exporters: hand-built ONNX graphs that beat skl2onnx on speed and parity."""

from engines.native._registry import native_supported, native_to_onnx

__all__ = ["native_supported", "native_to_onnx"]
