"""Provider truth: which execution providers are installed, and which really run."""

from __future__ import annotations

import ctypes
import dataclasses
from functools import cache

import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from engines.config import resolve_provider_chain

__all__ = ["ProviderStatus", "diagnose_provider", "probe_providers", "tiny_model"]

#: The IR version and ai.onnx opset of every graph this library builds (the provider probe and
#: the native exporters; ai.onnx.ml is chosen per model and target runtime): onnxruntime 1.20,
#: the oldest release supported, loads IR 10 and opset 21 (README, "Runtime matrix").
IR_VERSION = 10
ONNX_OPSET = 21

_GPU_PROVIDERS = frozenset(
    {"CUDAExecutionProvider", "TensorrtExecutionProvider", "NvTensorRTRTXExecutionProvider"}
)


@dataclasses.dataclass(frozen=True)
class ProviderStatus:
    """One provider: listed by this onnxruntime build, and usable on this machine."""

    name: str
    installed: bool
    usable: bool
    reason: str


@cache
def _nvidia_driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def diagnose_provider(provider: str) -> str:
    """Why ``provider`` is not active in a session that asked for it."""
    available = ort.get_available_providers()
    if provider not in available:
        return (
            f"not installed: onnxruntime {ort.__version__} ({ort.get_device()} build) offers "
            f"{', '.join(available)}"
        )
    if provider in _GPU_PROVIDERS and not _nvidia_driver_present():
        return "no NVIDIA GPU or driver on this machine (libcuda.so.1 cannot be loaded)"
    if provider in _GPU_PROVIDERS:
        return (
            "its libraries failed to load (CUDA, cuDNN or TensorRT runtime missing or of the wrong "
            "version; onnxruntime's log on stderr names the library)"
        )
    return "onnxruntime listed it but did not activate it for this session (see its log on stderr)"


@cache
def tiny_model() -> bytes:
    """A one-node float model used to probe providers."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "probe", [x], [y])
    model = helper.make_model(
        graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", ONNX_OPSET)]
    )
    onnx.checker.check_model(model)
    payload: bytes = model.SerializeToString()
    return payload


def probe_providers() -> list[ProviderStatus]:
    """Create a tiny session on each installed provider and report which really activate.

    Example:
        >>> [p.name for p in probe_providers() if p.usable]  # doctest: +SKIP
        ['CPUExecutionProvider']
    """
    statuses = []
    known = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    available = ort.get_available_providers()
    for name in dict.fromkeys(available + known):
        if name not in available:
            statuses.append(ProviderStatus(name, False, False, diagnose_provider(name)))
            continue
        options = ort.SessionOptions()
        options.log_severity_level = 4
        options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        try:
            chain = [p for p in resolve_provider_chain(name) if p in available]
            session = ort.InferenceSession(tiny_model(), options, providers=chain)
            active = session.get_providers()
            placed = {sub.ep_name for sub in session.get_provider_graph_assignment_info()}
        except Exception as exc:  # a provider that crashes at creation is unusable, say why
            statuses.append(ProviderStatus(name, True, False, f"session creation failed: {exc}"))
            continue
        if name in placed:
            statuses.append(ProviderStatus(name, True, True, "ran the probe graph's node"))
        elif name in active:
            reason = "active, but assigned no node of a float Relu graph (not a compute provider)"
            statuses.append(ProviderStatus(name, True, False, reason))
        else:
            statuses.append(ProviderStatus(name, True, False, diagnose_provider(name)))
    return statuses
