"""Model metadata stored in ONNX ``metadata_props`` as JSON-encoded values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx

from engines._io import DEFAULT_MAX_MODEL_BYTES, read_regular_file
from engines.errors import ModelLoadError

__all__ = [
    "ACCEPTS_INF_KEY",
    "ACCEPTS_NAN_KEY",
    "CONVENTIONS",
    "LABEL_CONVENTION_KEY",
    "MIN_RUNTIME_KEY",
    "OFFSET_KEY",
    "QUANTIZED_KEY",
    "SCORE_KIND_KEY",
    "THRESHOLD_KEY",
    "decode_metadata",
    "library_versions",
    "read_metadata",
    "write_metadata",
]

#: ``decision_function = score_samples - offset``; lets an engine derive one output from the other.
OFFSET_KEY = "offset"
#: Whether the original estimator answers rows with NaN / +-inf (False: it raises, and so do
#: engines serving the export). Absent: unknown, inputs are not checked.
ACCEPTS_NAN_KEY = "accepts_nan"
ACCEPTS_INF_KEY = "accepts_inf"
#: What a model's single score output means when its name does not say it
#: ("decision_function", "score_samples" or "reconstruction_error").
SCORE_KIND_KEY = "score_kind"
#: Which answers a model gives (see engines.base.Engine): "sklearn" (label -1 anomaly / 1 normal,
#: scores higher = more normal; the default when absent) or "pyod" (label 1 outlier / 0 inlier,
#: decision_function higher = more abnormal, no score_samples). Other values are refused at load.
LABEL_CONVENTION_KEY = "label_convention"
#: The conventions engines serve, values of LABEL_CONVENTION_KEY.
CONVENTIONS: tuple[str, ...] = ("sklearn", "pyod")
#: Under the "pyod" convention: PyOD's ``threshold_``, label 1 where decision_function > it.
THRESHOLD_KEY = "threshold"
#: How ``engines.quantize`` made the graph ("fp16", "dynamic-int8", "static-int8"): its answers
#: are a quantized model's, held to rank bounds, not to float32's rounding.
QUANTIZED_KEY = "quantized"
#: The oldest onnxruntime (major.minor, e.g. "1.20") that loads the graph, from its IR version
#: and opsets as measured per release (engines.native._runtime.LOADS).
MIN_RUNTIME_KEY = "min_onnxruntime"


def decode_metadata(raw: Mapping[str, str]) -> dict[str, Any]:
    """Decode JSON values, keeping plain strings for values that are not JSON."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            out[key] = value
    return out


def write_metadata(model: onnx.ModelProto, metadata: Mapping[str, Any]) -> None:
    """Merge ``metadata`` into the model's metadata_props (values JSON-encoded, in place)."""
    current = {p.key: p.value for p in model.metadata_props}
    current.update(
        {str(k): json.dumps(v, sort_keys=True, default=str) for k, v in metadata.items()}
    )
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, current)


def read_metadata(path: str | Path, *, max_bytes: int = DEFAULT_MAX_MODEL_BYTES) -> dict[str, Any]:
    """Metadata of an ONNX file, decoded (only a regular file of at most ``max_bytes``).

    Example:
        >>> read_metadata("model.onnx")["estimator"]  # doctest: +SKIP
        'IsolationForest'
    """
    payload = read_regular_file(path, max_bytes=max_bytes, what="model file")
    try:
        model = onnx.load_model_from_string(payload)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable ONNX model: {exc}") from exc
    return decode_metadata({p.key: p.value for p in model.metadata_props})


#: (name, module) of the libraries an export or a measurement depends on.
_LIBRARIES = (
    ("onnxruntime", "onnxruntime"),
    ("onnx", "onnx"),
    ("scikit-learn", "sklearn"),
    ("skl2onnx", "skl2onnx"),
    ("torch", "torch"),
    ("numpy", "numpy"),
)


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries an export or a measurement depends on, and of ``engines``
    itself; None for one that is not installed (torch is optional). One copy for the export
    metadata and the harness's result files."""
    from engines._version import __version__

    versions: dict[str, str | None] = {}
    for name, module in _LIBRARIES:
        try:
            versions[name] = str(__import__(module).__version__)
        except ImportError:
            versions[name] = None
    versions["engines"] = __version__
    return versions
