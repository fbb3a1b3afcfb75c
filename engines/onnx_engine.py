"""ONNX Runtime engine: one session, created and warmed up once, with provider truth."""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from engines._inputs import as_batch
from engines.base import METHODS, Engine
from engines.config import EngineConfig
from engines.errors import (
    InferenceError,
    InputError,
    MethodUnavailableError,
    ModelLoadError,
    ProviderUnavailableError,
    UnsupportedModelError,
)
from engines.metadata import (
    ACCEPTS_INF_KEY,
    ACCEPTS_NAN_KEY,
    OFFSET_KEY,
    SCORE_KIND_KEY,
    decode_metadata,
)
from engines.providers import diagnose_provider

__all__ = ["ModelSource", "OnnxEngine"]

ModelSource = str | os.PathLike[str] | bytes | onnx.ModelProto

_ORT_DTYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
}
# Output names mapped to what they mean, for every exporter this project knows.
_SCORE_NAMES = {
    "decision_function": "decision_function",
    "scores": "decision_function",  # skl2onnx: decision_function for IsolationForest/OCSVM/LOF
    "score_samples": "score_samples",
    "reconstruction_error": "reconstruction_error",
}
_GRAPH_OPT = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class OnnxEngine(Engine):
    """Anomaly detector served by onnxruntime.

    Example:
        >>> engine = OnnxEngine("model.onnx", EngineConfig(provider="cpu", intra_op_threads=1))
        ... # doctest: +SKIP
        >>> engine.predict(X)  # doctest: +SKIP
        array([ 1, -1,  1])
    """

    kind = "onnx"

    def __init__(self, model: ModelSource, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.model_path, payload, proto = _read_model(model, self.config.model_dir)
        self.model_sha256 = hashlib.sha256(payload).hexdigest()
        self._payload = payload
        self.metadata = decode_metadata({p.key: p.value for p in proto.metadata_props})
        self._session = self._create_session(payload)
        self._bind_io()
        self._check_provider()
        self._warm_up()
        self._chunk = self.config.max_chunk_rows
        self._collect = self.config.collect_metrics

    # -- construction -------------------------------------------------------------------------

    def _session_options(self) -> ort.SessionOptions:
        cfg = self.config
        options = ort.SessionOptions()
        if cfg.intra_op_threads is not None:
            options.intra_op_num_threads = cfg.intra_op_threads
        if cfg.inter_op_threads is not None:
            options.inter_op_num_threads = cfg.inter_op_threads
        options.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if cfg.execution_mode == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        options.graph_optimization_level = _GRAPH_OPT[cfg.graph_optimization]
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if cfg.allow_spinning else "0"
        )
        options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        if cfg.enable_profiling:
            options.enable_profiling = True
            if cfg.profile_path is not None:
                options.profile_file_prefix = str(cfg.profile_path)
        return options

    def _create_session(self, payload: bytes) -> ort.InferenceSession:
        available = ort.get_available_providers()
        chain = [p for p in self.config.requested_providers if p in available]
        if "CPUExecutionProvider" not in chain:
            chain.append("CPUExecutionProvider")
        primary = self.config.provider_name
        provider_options = [
            dict(self.config.provider_options) if p == primary else {} for p in chain
        ]
        source: str | bytes = str(self.model_path) if self.model_path is not None else payload
        try:
            return ort.InferenceSession(
                source, self._session_options(), providers=chain, provider_options=provider_options
            )
        except (
            Exception
        ) as exc:  # ORT raises its own exception types; say what failed and what to do
            raise ModelLoadError(
                f"onnxruntime {ort.__version__} cannot load {self._name()}: {exc}. If the IR "
                "version or opset is newer than this onnxruntime supports, re-export with an "
                "explicit ir_version and target opset, or upgrade onnxruntime."
            ) from exc

    def _bind_io(self) -> None:
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise UnsupportedModelError(
                f"{self._name()} has {len(inputs)} inputs {[i.name for i in inputs]}; "
                "an anomaly detector takes exactly one 2-D input"
            )
        spec = inputs[0]
        if spec.type not in _ORT_DTYPES:
            raise UnsupportedModelError(
                f"{self._name()} input {spec.name!r} has type {spec.type}; expected tensor(float) "
                "or tensor(double)"
            )
        if len(spec.shape) != 2:
            raise UnsupportedModelError(
                f"{self._name()} input {spec.name!r} has shape {spec.shape}; "
                "expected [batch, features]"
            )
        self.input_name: str = spec.name
        self.input_dtype: np.dtype[Any] = _ORT_DTYPES[spec.type]
        width = spec.shape[1]
        self._n_features = width if isinstance(width, int) else self.metadata.get("n_features")
        names = self.metadata.get("feature_names")
        self.feature_names: list[str] | None = list(names) if isinstance(names, list) else None
        self.output_names = [o.name for o in self._session.get_outputs()]
        self._roles = _output_roles(self.output_names, self.metadata)
        # Refuse what the original estimator refuses (from the export's probe of it).
        self._reject_nan = self.metadata.get(ACCEPTS_NAN_KEY) is False
        self._reject_inf = self.metadata.get(ACCEPTS_INF_KEY) is False
        offset = self.metadata.get(OFFSET_KEY)
        self.offset: float | None = float(offset) if isinstance(offset, int | float) else None
        self._plans = {m: _plan(m, self._roles, self.offset) for m in METHODS}
        self._methods = frozenset(m for m, plan in self._plans.items() if plan is not None)
        if not self._methods:
            raise UnsupportedModelError(
                f"{self._name()} outputs {self.output_names} give none of {METHODS}: expected an "
                "output named label, decision_function, scores, score_samples or "
                "reconstruction_error"
            )

    def _check_provider(self) -> None:
        active = self._session.get_providers()
        requested = self.config.provider_name
        self.is_fallback = requested not in active
        self.fallback_reason: str | None = None
        if self.is_fallback:
            reason = diagnose_provider(requested)
            if self.config.strict_provider:
                raise ProviderUnavailableError(self.config.provider, reason)
            self.fallback_reason = f"{requested} unavailable ({reason}); running on {active[0]}"

    def _warm_up(self) -> None:
        width = self._n_features or 1
        warm = np.zeros((1, width), dtype=self.input_dtype)
        try:
            self._session.run(None, {self.input_name: warm})
        except Exception as exc:
            raise ModelLoadError(
                f"{self._name()} loaded but failed its warm-up run: {exc}"
            ) from exc

    def _name(self) -> str:
        return str(self.model_path) if self.model_path is not None else "the in-memory model"

    # -- the contract -------------------------------------------------------------------------

    @property
    def methods(self) -> frozenset[str]:
        return self._methods

    @property
    def n_features(self) -> int | None:
        return self._n_features

    def predict(self, X: Any) -> npt.NDArray[np.int64]:
        labels = self._answer("predict", X)
        return labels if labels.dtype == np.int64 else labels.astype(np.int64)

    def score_samples(self, X: Any) -> npt.NDArray[np.floating[Any]]:
        return self._answer("score_samples", X)

    def decision_function(self, X: Any) -> npt.NDArray[np.floating[Any]]:
        return self._answer("decision_function", X)

    def _validate(self, X: Any) -> npt.NDArray[Any]:
        return as_batch(
            X, n_features=self._n_features, dtype=self.input_dtype, feature_names=self.feature_names
        )

    def _answer(self, method: str, X: Any) -> npt.NDArray[Any]:
        plan = self._plans[method]
        if plan is None:
            raise MethodUnavailableError(
                f"{self._name()} cannot answer {method}: outputs {self.output_names}, offset "
                f"{'unknown' if self.offset is None else self.offset}; "
                f"it answers {sorted(self._methods)}"
            )
        start = time.perf_counter()
        # Fast path: an array already of the right shape, dtype and layout is used as is.
        if (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.shape[1] == self._n_features
            and X.dtype == self.input_dtype
            and X.flags.c_contiguous
            and self.feature_names is None
        ):
            batch: npt.NDArray[Any] = X
        else:
            batch = self._validate(X)
        if (self._reject_nan or self._reject_inf) and not np.isfinite(batch).all():
            self._refuse_non_finite(batch)
        n = batch.shape[0]
        name, transform = plan
        out: npt.NDArray[Any]
        if 0 < n <= self._chunk:
            out = transform(self._run1(name, batch))
        elif n == 0:
            out = transform(np.zeros(0, dtype=self.input_dtype))
        else:
            step = self._chunk
            out = np.concatenate(
                [transform(self._run1(name, batch[i : i + step])) for i in range(0, n, step)]
            )
        if self._collect:
            self._timing = (start, time.perf_counter(), n)
        return out

    def _refuse_non_finite(self, batch: npt.NDArray[Any]) -> None:
        has_nan = bool(np.isnan(batch).any())
        has_inf = bool(np.isinf(batch).any())
        if (has_nan and self._reject_nan) or (has_inf and self._reject_inf):
            what = " and ".join(w for w, h in (("NaN", has_nan), ("infinity", has_inf)) if h)
            estimator = self.metadata.get("estimator", "the original estimator")
            raise InputError(
                f"input contains {what}, which {estimator} refuses (scikit-learn raises for it); "
                "impute or drop those rows first"
            )

    def _run1(self, name: str, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        try:
            result: npt.NDArray[Any] = self._session.run([name], {self.input_name: batch})[0]
        except Exception as exc:
            raise InferenceError(
                f"onnxruntime failed to run {self._name()} on a batch of shape {batch.shape}: {exc}"
            ) from exc
        return result.reshape(-1) if result.ndim != 1 else result

    # -- introspection ------------------------------------------------------------------------

    def model_bytes(self) -> bytes:
        """The serialized model this engine runs (external data, if any, stays in its files)."""
        return self._payload

    def nodes_per_provider(self) -> dict[str, int] | None:
        """How many graph nodes each provider runs, from ORT's graph-assignment record."""
        try:
            assigned = self._session.get_provider_graph_assignment_info()
        except Exception:  # older onnxruntime without the API: unknown, not guessed
            return None
        counts: Counter[str] = Counter()
        for subgraph in assigned:
            counts[subgraph.ep_name] += len(subgraph.get_nodes())
        return dict(counts)

    def end_profiling(self) -> Path | None:
        """Stop profiling and return the profile JSON path (None when profiling is off)."""
        if not self.config.enable_profiling:
            return None
        return Path(self._session.end_profiling())

    def info(self) -> dict[str, Any]:
        return {
            "engine": self.kind,
            "model_path": None if self.model_path is None else str(self.model_path),
            "model_sha256": self.model_sha256,
            "input_name": self.input_name,
            "n_features": self._n_features,
            "input_dtype": str(self.input_dtype),
            "outputs": list(self.output_names),
            "output_roles": dict(self._roles),
            "methods": sorted(self._methods),
            "requested_providers": self.config.requested_providers,
            "active_providers": self._session.get_providers(),
            "nodes_per_provider": self.nodes_per_provider(),
            "is_fallback": self.is_fallback,
            "fallback_reason": self.fallback_reason,
            "onnxruntime_version": ort.__version__,
            "session_options": self.config.as_dict(),
            "metadata": dict(self.metadata),
        }


# -- helpers ----------------------------------------------------------------------------------

_Transform = Any  # Callable[[ndarray], ndarray]; kept loose so lambdas stay cheap to call
_Plan = tuple[str, _Transform] | None


def _output_roles(names: list[str], metadata: dict[str, Any]) -> dict[str, str]:
    """Map output names to roles: label, decision_function, score_samples, reconstruction_error."""
    roles: dict[str, str] = {}
    for name in names:
        lowered = name.lower()
        if lowered in ("label", "labels"):
            roles["label"] = name
        elif lowered in _SCORE_NAMES:
            roles.setdefault(_SCORE_NAMES[lowered], name)
    kind = metadata.get(SCORE_KIND_KEY)
    if kind in ("decision_function", "score_samples", "reconstruction_error"):
        scored = [n for n in names if n.lower() not in ("label", "labels")]
        if len(scored) == 1 and kind not in roles:
            for role in ("decision_function", "score_samples", "reconstruction_error"):
                if roles.get(role) == scored[0]:
                    del roles[role]
            roles[kind] = scored[0]
    return roles


def _plan(method: str, roles: dict[str, str], offset: float | None) -> _Plan:
    """Which output answers ``method`` and how to turn it into the answer."""

    def same(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a

    if method == "predict" and "label" in roles:
        return roles["label"], same
    decision = _plan("decision_function", roles, offset) if method == "predict" else None
    if method == "predict" and decision is not None:
        name, to_decision = decision
        return name, lambda a: np.where(to_decision(a) < 0, -1, 1).astype(np.int64)
    if method == "score_samples":
        if "score_samples" in roles:
            return roles["score_samples"], same
        if "reconstruction_error" in roles:
            return roles["reconstruction_error"], np.negative
        if "decision_function" in roles and offset is not None:
            return roles["decision_function"], lambda a: a + a.dtype.type(offset)
    if method == "decision_function":
        if "decision_function" in roles:
            return roles["decision_function"], same
        score = _plan("score_samples", roles, offset)
        if score is not None and offset is not None:
            name, to_score = score
            return name, lambda a: to_score(a) - a.dtype.type(offset)
    return None


def _read_model(
    model: ModelSource, model_dir: Path | None
) -> tuple[Path | None, bytes, onnx.ModelProto]:
    """Resolve, read and parse a model; refuse missing, empty, corrupt and unsafe files."""
    if isinstance(model, onnx.ModelProto):
        payload = model.SerializeToString()
        return None, payload, _checked_proto(model, None, "the in-memory model")
    if isinstance(model, bytes | bytearray):
        return None, bytes(model), _parse(bytes(model), None, "the in-memory model")
    if not isinstance(model, str | os.PathLike):
        raise ModelLoadError(
            f"expected a path, bytes or onnx.ModelProto, got {type(model).__name__}"
        )
    path = Path(model)
    if not path.is_absolute() and model_dir is not None and not path.exists():
        path = Path(model_dir) / path
    if not path.exists():
        raise ModelLoadError(f"no such model file: {path}")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory; expected an .onnx file")
    payload = path.read_bytes()
    if not payload:
        raise ModelLoadError(f"{path} is empty (0 bytes); re-export the model")
    return path.resolve(), payload, _parse(payload, path.resolve().parent, str(path))


def _parse(payload: bytes, base_dir: Path | None, name: str) -> onnx.ModelProto:
    try:
        proto = onnx.load_model_from_string(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(
            f"{name} is not a valid ONNX model (truncated, or not an ONNX file): {exc}"
        ) from exc
    return _checked_proto(proto, base_dir, name)


def _checked_proto(proto: onnx.ModelProto, base_dir: Path | None, name: str) -> onnx.ModelProto:
    if not proto.HasField("graph") or not proto.graph.input or not proto.ir_version:
        raise ModelLoadError(
            f"{name} parsed but holds no ONNX graph (no inputs or IR version): "
            "it is probably not an ONNX file"
        )
    for tensor in external_data_helper._get_all_tensors(proto):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        if base_dir is None:
            raise ModelLoadError(
                f"{name} stores tensor {tensor.name!r} in external data ({location!r}); "
                "load it from its file path so the data can be found"
            )
        target = (base_dir / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(base_dir):
            raise ModelLoadError(
                f"{name} refers to external data {location!r} outside the model's folder "
                f"{base_dir}; refusing to read it (move the data next to the model)"
            )
    return proto
