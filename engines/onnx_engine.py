"""ONNX Runtime engine: one session, created and warmed up once, with provider truth."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
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

from engines._inputs import FLOAT32_MAX, as_batch
from engines._io import read_regular_file
from engines._outputs import (
    SCORE_KINDS,
    GraphOutput,
    finite_offset,
    label_reader,
    plan_for,
    pyod_plan_for,
    read_graph,
    rows_of,
)
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
    THRESHOLD_KEY,
    decode_metadata,
)
from engines.providers import diagnose_provider

__all__ = ["SCORE_KINDS", "ModelSource", "OnnxEngine", "Placement", "placement_of"]

ModelSource = str | os.PathLike[str] | bytes | onnx.ModelProto

_ORT_DTYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
}
_GRAPH_OPT = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class OnnxEngine(Engine):
    """Anomaly detector served by onnxruntime.

    Any detector graph with one 2-D float input loads: this project's exports, skl2onnx and
    onnxmltools conversions (outputs ``label`` and ``scores``, plus ``score_samples`` with the
    ``{'score_samples': True}`` option), torch.onnx exports with one per-row output. Outputs are
    read by name: ``label`` (-1 anomaly / 1 normal), ``scores`` or ``decision_function``,
    ``score_samples``, ``reconstruction_error`` (higher = more abnormal). A graph whose only
    output has another name is read as an anomaly score (higher = more abnormal) unless
    ``score_kind`` (argument or metadata) says what it is. ``offset``
    (``decision_function = score_samples - offset``, e.g. ``reference.offset_``) overrides the
    metadata's and lets one score derive the other; ``methods`` lists what can be answered.

    A graph whose metadata says ``label_convention: "pyod"`` (``engines.export`` of a PyOD
    detector) answers in PyOD's convention (``convention == "pyod"``, see ``Engine``): label
    1 outlier / 0 inlier (or ``decision_function > threshold`` from the metadata's
    ``threshold``), decision_function higher = more abnormal, no score_samples.

    Classifiers, clusterers, regressors and transformers are refused at load with
    UnsupportedModelError saying what was found; so is, at run time, an output that does not
    give one value per row or a label outside {-1, 1}.

    The model is read once: its sha256, metadata, output checks and the onnxruntime session
    all come from the same bytes (external data too, read from the model's folder only). Only
    regular files of at most ``config.max_model_bytes`` are read. A provider is active only
    where it runs graph nodes (``info()["nodes_per_provider"]``, ``"placement"``: "single" or
    "mixed"); under ``strict_provider`` the requested provider must run at least one node.
    Finite float64 values beyond float32's range become +-inf in a float32 model, as
    scikit-learn's own float32 cast makes them; where the original estimator refuses infinity
    (metadata ``accepts_inf: false``) they are refused, saying so.

    A graph whose input has a fixed batch dimension (``[1, d]``, ``[8, d]``: skl2onnx with
    ``FloatTensorType([1, d])``, torch.onnx without dynamic axes) answers any number of rows:
    they run in chunks of that size, the last one padded with copies of its last row whose
    answers are dropped (``fixed_batch``, also in ``info()`` and ``repr``). A symbolic or
    missing batch dimension is dynamic: a batch runs whole, up to ``config.max_chunk_rows``.

    Example:
        >>> engine = OnnxEngine("model.onnx", EngineConfig(provider="cpu", intra_op_threads=1))
        ... # doctest: +SKIP
        >>> engine.predict(X)  # doctest: +SKIP
        array([ 1, -1,  1])
        >>> plain = OnnxEngine(to_onnx(forest, X[:1], target_opset={"": 17, "ai.onnx.ml": 3}),
        ...                    offset=forest.offset_)  # doctest: +SKIP
        >>> sorted(plain.methods)  # doctest: +SKIP
        ['decision_function', 'predict', 'score_samples']
    """

    kind = "onnx"

    def __init__(
        self,
        model: ModelSource,
        config: EngineConfig | None = None,
        *,
        offset: float | None = None,
        score_kind: str | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        offset = None if offset is None else finite_offset(offset)
        if score_kind is not None and score_kind not in SCORE_KINDS:
            raise ValueError(f"score_kind must be one of {SCORE_KINDS} or None, got {score_kind!r}")
        loaded = _read_model(model, self.config.model_dir, self.config.max_model_bytes)
        self.model_path, payload, proto = loaded.path, loaded.payload, loaded.proto
        self.model_sha256 = hashlib.sha256(payload).hexdigest()
        self.external_data_sha256 = {
            location: hashlib.sha256(data).hexdigest() for location, data in loaded.external
        }
        self._payload = payload
        self.metadata = decode_metadata({p.key: p.value for p in proto.metadata_props})
        self._session = self._create_session(loaded)
        self._bind_io(proto, offset, score_kind)
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

    def _create_session(self, loaded: _Loaded) -> ort.InferenceSession:
        available = ort.get_available_providers()
        chain = [p for p in self.config.requested_providers if p in available]
        if "CPUExecutionProvider" not in chain:
            chain.append("CPUExecutionProvider")
        primary = self.config.provider_name
        provider_options = [
            dict(self.config.provider_options) if p == primary else {} for p in chain
        ]
        options = self._session_options()
        payload = loaded.payload
        if loaded.external and _IN_MEMORY_EXTERNAL:  # the bytes _read_model read and checked
            options.add_external_initializers_from_files_in_memory(
                [location for location, _ in loaded.external],
                [data for _, data in loaded.external],
                [len(data) for _, data in loaded.external],
            )
        elif loaded.external:  # an onnxruntime without that API: the same bytes, inlined
            payload = _inlined(loaded.proto, dict(loaded.external), self._name())
        try:  # from the bytes already hashed and checked: never the file again
            return ort.InferenceSession(
                payload, options, providers=chain, provider_options=provider_options
            )
        except (
            Exception
        ) as exc:  # ORT raises its own exception types; say what failed and what to do
            said = _ort_message(exc).rstrip(".")
            cannot = f"onnxruntime {ort.__version__} cannot load {self._name()}"
            if _VERSION_TROUBLE.search(said):  # the advice first: onnxruntime's text is long
                raise ModelLoadError(
                    f"{cannot}. If its IR version or opset is newer than this onnxruntime "
                    "supports, re-export with an explicit ir_version and target opset, or "
                    f"upgrade onnxruntime. onnxruntime says: {said}."
                ) from exc
            raise ModelLoadError(f"{cannot}: {said}.") from exc

    def _bind_io(
        self, proto: onnx.ModelProto, offset: float | None, score_kind: str | None
    ) -> None:
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
        lead, width = spec.shape
        # onnxruntime runs only that many rows at a time; a name or None is dynamic.
        self._fixed_batch = lead if isinstance(lead, int) and lead > 0 else None
        self._n_features = width if isinstance(width, int) else self.metadata.get("n_features")
        names = self.metadata.get("feature_names")
        self.feature_names: list[str] | None = list(names) if isinstance(names, list) else None
        outputs = [GraphOutput.of(o) for o in self._session.get_outputs()]
        self.output_names = [o.name for o in outputs]
        reading = read_graph(proto, outputs, self.metadata, score_kind, self._name())
        self._roles = reading.roles
        self._role_source = reading.role_source
        self._ignored = reading.ignored
        # Refuse what the original estimator refuses (from the export's probe of it).
        self._reject_nan = self.metadata.get(ACCEPTS_NAN_KEY) is False
        self._reject_inf = self.metadata.get(ACCEPTS_INF_KEY) is False
        stored = self.metadata.get(OFFSET_KEY)
        self.offset: float | None = offset
        self._offset_source: str | None = "argument" if offset is not None else None
        if offset is None and isinstance(stored, int | float) and not isinstance(stored, bool):
            self.offset, self._offset_source = float(stored), "metadata"
        self.convention: str = reading.convention
        labels = label_reader(
            self._roles.get("label", ""),
            reading.sign_label,
            reading.label_proven,
            self._name(),
            self.convention,
        )
        self.threshold: float | None = None
        if self.convention == "pyod":
            # PyOD's answers: an offset (scikit-learn's decision = score - offset) means nothing.
            if self._offset_source == "argument":
                raise ValueError(
                    f"offset= does not apply to {self._name()}: its label_convention is 'pyod' "
                    "(decision_function higher = more abnormal, no score_samples)"
                )
            self.offset, self._offset_source = None, None
            cut = self.metadata.get(THRESHOLD_KEY)
            if isinstance(cut, int | float) and not isinstance(cut, bool):
                self.threshold = float(cut)
            self._plans = {
                m: pyod_plan_for(m, self._roles, self.threshold, labels) for m in METHODS
            }
        else:
            self._plans = {m: plan_for(m, self._roles, self.offset, labels) for m in METHODS}
        self._methods = frozenset(m for m, plan in self._plans.items() if plan is not None)
        if not self._methods:  # e.g. a decision_function-less graph with an unknown score kind
            raise UnsupportedModelError(
                f"{self._name()} outputs {self.output_names} (roles {self._roles}) give none of "
                f"{METHODS}"
            )

    def _check_provider(self) -> None:
        requested = self.config.provider_name
        self.placement = placement_of(
            self._session.get_providers(), self._assigned_nodes(), requested
        )
        self.is_fallback = requested not in self.placement.active
        self.fallback_reason: str | None = None
        if self.is_fallback:
            reason = self.placement.idle_reason or diagnose_provider(requested)
            if self.config.strict_provider:
                raise ProviderUnavailableError(self.config.provider, reason)
            running = ", ".join(self.placement.active)
            self.fallback_reason = f"{requested} unavailable ({reason}); running on {running}"

    def _assigned_nodes(self) -> dict[str, int] | None:
        """How many graph nodes each provider runs, from ORT's graph-assignment record."""
        try:
            assigned = self._session.get_provider_graph_assignment_info()
        except Exception:  # older onnxruntime without the API: unknown, not guessed
            return None
        counts: Counter[str] = Counter()
        for subgraph in assigned:
            counts[subgraph.ep_name] += len(subgraph.get_nodes())
        return dict(counts)

    def _warm_up(self) -> None:
        width = self._n_features or 1
        rows = self._fixed_batch or 1
        warm = np.zeros((rows, width), dtype=self.input_dtype)
        try:
            results = self._session.run(None, {self.input_name: warm})
        except Exception as exc:
            raise ModelLoadError(
                f"{self._name()} loaded but failed its warm-up run on a batch of shape "
                f"{warm.shape}: {_ort_message(exc)}"
            ) from exc
        # Outputs whose static shape was unknown: a row must give one value (labels in -1/1).
        # An empty batch answers an empty array of the dtype a non-empty one gets.
        by_name = dict(zip(self.output_names, results, strict=True))
        self._empty: dict[str, npt.NDArray[Any]] = {}
        for method, plan in self._plans.items():
            if plan is not None:
                name, transform = plan
                answer = transform(rows_of(np.asarray(by_name[name]), rows, name, self._name()))
                if method == "predict":
                    answer = np.asarray(answer).astype(np.int64, copy=False)
                self._empty[method] = np.asarray(answer)[:0].copy()

    def _name(self) -> str:
        return str(self.model_path) if self.model_path is not None else "the in-memory model"

    # -- the contract -------------------------------------------------------------------------

    @property
    def methods(self) -> frozenset[str]:
        return self._methods

    @property
    def n_features(self) -> int | None:
        return self._n_features

    @property
    def fixed_batch(self) -> int | None:
        """The graph's fixed batch size (rows run in chunks of it), or None when dynamic."""
        return self._fixed_batch

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
            pyod = self.convention == "pyod"
            hint = (
                " (label_convention 'pyod': PyOD has no score_samples)"
                if pyod and method == "score_samples"
                else " (pass offset=, e.g. the reference estimator's offset_, to derive it)"
                if self.offset is None and set(self._roles) - {"label"} and not pyod
                else ""
            )
            raise MethodUnavailableError(
                f"{self._name()} cannot answer {method}: outputs {self.output_names} (roles "
                f"{self._roles}), offset {'unknown' if self.offset is None else self.offset}"
                f"{hint}; it answers {sorted(self._methods)}"
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
            self._refuse_non_finite(batch, X)
        n = batch.shape[0]
        name, transform = plan
        out: npt.NDArray[Any]
        fixed = self._fixed_batch
        if 0 < n <= self._chunk and fixed is None:
            out = transform(self._run1(name, batch))
        elif n == 0:
            out = self._empty[method].copy()
        elif fixed is not None:
            out = transform(self._run_fixed(name, batch, fixed))
        else:
            step = self._chunk
            out = np.concatenate(
                [transform(self._run1(name, batch[i : i + step])) for i in range(0, n, step)]
            )
        if self._collect:
            self._timing = (start, time.perf_counter(), n)
        return out

    def _refuse_non_finite(self, batch: npt.NDArray[Any], X: Any) -> None:
        has_nan = bool(np.isnan(batch).any())
        has_inf = bool(np.isinf(batch).any())
        beyond = False
        if has_inf and self._reject_inf and self.input_dtype == np.float32:
            # Which infinities were finite values beyond float32's range before the cast?
            source = as_batch(X, n_features=None, dtype=None, feature_names=self.feature_names)
            if source.dtype != np.float32:
                beyond = bool((np.abs(source[np.isfinite(source)]) > FLOAT32_MAX).any())
                has_inf = bool(np.isinf(source).any())
        if (has_nan and self._reject_nan) or (has_inf and self._reject_inf):
            what = " and ".join(w for w, h in (("NaN", has_nan), ("infinity", has_inf)) if h)
            estimator = self.metadata.get("estimator", "the original estimator")
            raise InputError(
                f"input contains {what}, which {estimator} refuses (scikit-learn raises for it); "
                "impute or drop those rows first"
            )
        if beyond:
            estimator = self.metadata.get("estimator", "the original estimator")
            raise InputError(
                f"input holds finite values beyond float32's range (|x| > {FLOAT32_MAX:.7g}): "
                f"this float32 model would see them as infinity, which {estimator} refuses; "
                "scale or clip those values first (or export a float64 model)"
            )

    def _run1(self, name: str, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        try:
            result: npt.NDArray[Any] = self._session.run([name], {self.input_name: batch})[0]
        except Exception as exc:  # onnxruntime's words first: a one-line display keeps them
            raise InferenceError(
                f"onnxruntime failed on a batch of shape {batch.shape}: {_ort_message(exc)} "
                f"(model {self._name()})"
            ) from exc
        return rows_of(result, batch.shape[0], name, self._name())

    def _run_fixed(self, name: str, batch: npt.NDArray[Any], size: int) -> npt.NDArray[Any]:
        """Output ``name`` for every row of ``batch``, run in chunks of the graph's fixed
        ``size``; the last chunk is padded with copies of its last row, their answers dropped."""
        parts = []
        for i in range(0, batch.shape[0], size):
            chunk = batch[i : i + size]
            n = chunk.shape[0]
            if n < size:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - n, axis=0)])
            parts.append(self._run1(name, chunk)[:n])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    # -- introspection ------------------------------------------------------------------------

    def __repr__(self) -> str:
        fixed = "" if self._fixed_batch is None else f" fixed_batch={self._fixed_batch}"
        return f"<{type(self).__name__} kind={self.kind!r} n_features={self._n_features}{fixed}>"

    def model_bytes(self) -> bytes:
        """The serialized model file this engine runs (external data, if any, not inlined)."""
        return self._payload

    def nodes_per_provider(self) -> dict[str, int] | None:
        """How many graph nodes each provider runs (recorded once, at session creation)."""
        nodes = self.placement.nodes
        return None if nodes is None else dict(nodes)

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
            "fixed_batch": self._fixed_batch,
            "input_dtype": str(self.input_dtype),
            "outputs": list(self.output_names),
            "output_roles": dict(self._roles),
            "role_source": self._role_source,
            "ignored_outputs": dict(self._ignored),
            "offset": self.offset,
            "offset_source": self._offset_source,
            "convention": self.convention,
            "threshold": self.threshold,
            "methods": sorted(self._methods),
            "requested_providers": self.config.requested_providers,
            "registered_providers": list(self.placement.registered),
            "active_providers": list(self.placement.active),
            "nodes_per_provider": self.nodes_per_provider(),
            "placement": self.placement.kind,
            "external_data_sha256": dict(self.external_data_sha256),
            "is_fallback": self.is_fallback,
            "fallback_reason": self.fallback_reason,
            "onnxruntime_version": ort.__version__,
            "session_options": self.config.as_dict(),
            "metadata": dict(self.metadata),
        }


# -- where nodes run ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a session's nodes run: only providers that run a node are active."""

    registered: tuple[str, ...]  # session.get_providers(): accepted, not necessarily used
    active: tuple[str, ...]  # providers that run at least one node, in preference order
    nodes: dict[str, int] | None  # nodes per provider; None when onnxruntime cannot say
    idle_reason: str | None  # why the requested provider, registered, is not active

    @property
    def kind(self) -> str:
        """One of "single" (one provider runs every node), "mixed" or "unknown"."""
        if self.nodes is None or not sum(self.nodes.values()):
            return "unknown"
        return "mixed" if len(self.active) > 1 else "single"


def placement_of(registered: list[str], nodes: dict[str, int] | None, requested: str) -> Placement:
    """Which providers really run: those with nodes (all registered ones when ORT cannot say,
    or the graph has no node)."""
    counts = {p: n for p, n in (nodes or {}).items() if n > 0}
    if nodes is None or not counts:
        return Placement(tuple(registered), tuple(registered), nodes, None)
    order = [p for p in registered if p in counts] + sorted(set(counts) - set(registered))
    idle = None
    if requested in registered and requested not in counts:
        where = ", ".join(f"{p} {counts[p]}" for p in order)
        idle = (
            f"registered, but it runs none of the graph's {sum(counts.values())} nodes "
            f"(nodes per provider: {where}): it has no kernel for them, or is not a compute "
            "provider"
        )
    return Placement(tuple(registered), tuple(order), dict(nodes), idle)


# -- reading a model file ------------------------------------------------------------------

# Whether this onnxruntime takes external data files' bytes from memory; one without the API
# gets the same bytes inlined into the model instead.
_IN_MEMORY_EXTERNAL = hasattr(ort.SessionOptions, "add_external_initializers_from_files_in_memory")
# onnxruntime's words when a model is newer than it supports.
_VERSION_TROUBLE = re.compile(r"ir.?version|opset|Unsupported model", re.IGNORECASE)
# onnxruntime's status prefix, e.g. "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : ".
_ORT_STATUS = re.compile(r"^\[ONNXRuntimeError\] : \d+ : (\w+) : ")
# A C++ source location onnxruntime quotes, then the signature of the function that raised
# (a return type maybe, a qualified name, its opening bracket).
_CPP_SOURCE = re.compile(r"\S+\.(?:cc|cpp|cxx|h|hpp):\d+ (?:[\w:<>*&]+ )?[\w:<>~]+::[\w<>~]+\(")
_CONST = re.compile(r"^\s*const\b")
# Sentences of onnxruntime's opset refusal that hold no fact (the opset and the newest it
# supports are in the others).
_ORT_BOILERPLATE = re.compile(
    r"ONNX Runtime only \*guarantees\* support for models stamped with official released "
    r"onnx opset versions\. |The operator schemas and or other functionality may change "
    r"before next ONNX release and in this case ONNX Runtime will not guarantee backward "
    r"compatibility\. "
)


def _ort_message(exc: BaseException) -> str:
    """onnxruntime's message on one line, its status prefix shortened and the C++ source
    location and signature it quotes left out: its details (e.g. "index: 0 Got: 16
    Expected: 1") follow line breaks that a one-line display would cut."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return _ORT_BOILERPLATE.sub("", _without_cpp_source(_ORT_STATUS.sub(r"\1: ", text)))


def _without_cpp_source(text: str) -> str:
    """``text`` less each C++ source location onnxruntime quotes with the signature of the
    function that raised ("/onnxruntime_src/.../model.cc:256 onnxruntime::Model::Model(
    onnx::ModelProto&&, ...) Unsupported model IR version: 15" -> "Unsupported model IR
    version: 15"): hundreds of characters that say nothing to the user."""
    out, rest = [], text
    while (found := _CPP_SOURCE.search(rest)) is not None:
        depth, end = 0, -1
        for i in range(found.end() - 1, len(rest)):  # from the signature's "(" to its ")"
            depth += {"(": 1, ")": -1}.get(rest[i], 0)
            if depth == 0:
                end = i + 1
                break
        if end < 0:  # cut short: keep it as it is
            break
        out.append(rest[: found.start()])
        rest = _CONST.sub("", rest[end:]).lstrip()
    return "".join(out) + rest


@dataclasses.dataclass(frozen=True)
class _Loaded:
    """A model read once: every later step uses these bytes, never the file again."""

    path: Path | None
    payload: bytes
    proto: onnx.ModelProto
    external: list[tuple[str, bytes]]  # (location as the model writes it, the file's bytes)


def _read_model(model: ModelSource, model_dir: Path | None, max_bytes: int) -> _Loaded:
    """Resolve, read and parse a model; refuse missing, empty, corrupt and unsafe files."""
    if isinstance(model, onnx.ModelProto):
        payload = model.SerializeToString()
        proto = _checked_proto(model, None, "the in-memory model")
        return _Loaded(None, payload, proto, [])
    if isinstance(model, bytes | bytearray):
        payload = bytes(model)
        return _Loaded(None, payload, _parse(payload, None, "the in-memory model"), [])
    if not isinstance(model, str | os.PathLike):
        raise ModelLoadError(
            f"expected a path, bytes or onnx.ModelProto, got {type(model).__name__}"
        )
    path = Path(model)
    if not path.is_absolute() and model_dir is not None and not path.exists():
        path = Path(model_dir) / path
    payload = read_regular_file(path, max_bytes=max_bytes, what="model file")
    if not payload:
        raise ModelLoadError(f"{path} is empty (0 bytes); re-export the model")
    resolved = path.resolve()
    proto = _parse(payload, resolved.parent, str(path))
    external = _read_external(proto, resolved.parent, str(path), max_bytes - len(payload))
    return _Loaded(resolved, payload, proto, external)


def _read_external(
    proto: onnx.ModelProto, base_dir: Path, name: str, budget: int
) -> list[tuple[str, bytes]]:
    """The external data files ``proto`` names (checked inside ``base_dir``), each read once."""
    out: list[tuple[str, bytes]] = []
    for location in dict.fromkeys(loc for _, loc in _external_locations(proto)):
        data = read_regular_file(
            (base_dir / location).resolve(),
            max_bytes=max(budget, 0),
            what=f"external data of {name} (the model file and its data share one limit)",
        )
        budget -= len(data)
        out.append((location, data))
    return out


def _inlined(proto: onnx.ModelProto, files: dict[str, bytes], name: str) -> bytes:
    """``proto`` serialized with its external tensors' bytes taken from ``files``."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    for tensor in external_data_helper._get_all_tensors(copy):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        data = files[info.location]
        start = info.offset or 0
        end = len(data) if info.length is None else start + info.length
        if end > len(data):
            raise ModelLoadError(
                f"{name}: tensor {tensor.name!r} needs bytes {start}-{end} of {info.location!r}, "
                f"which has {len(data)}"
            )
        tensor.raw_data = data[start:end]
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    payload: bytes = copy.SerializeToString()
    return payload


def _external_locations(proto: onnx.ModelProto) -> list[tuple[str, str]]:
    """(tensor name, location) of every tensor stored in external data."""
    locations = []
    for tensor in external_data_helper._get_all_tensors(proto):
        if external_data_helper.uses_external_data(tensor):
            info = {entry.key: entry.value for entry in tensor.external_data}
            locations.append((tensor.name, info.get("location", "")))
    return locations


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
    for tensor, location in _external_locations(proto):
        if base_dir is None:
            raise ModelLoadError(
                f"{name} stores tensor {tensor!r} in external data ({location!r}); "
                "load it from its file path so the data can be found"
            )
        if not location:
            raise ModelLoadError(
                f"{name} stores tensor {tensor!r} in external data without a location"
            )
        target = (base_dir / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(base_dir):
            raise ModelLoadError(
                f"{name} refers to external data {location!r} outside the model's folder "
                f"{base_dir}; refusing to read it (move the data next to the model)"
            )
    return proto
