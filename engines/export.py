"""``export``: scikit-learn anomaly detectors to ONNX with one output contract, validated."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
from sklearn.pipeline import Pipeline

from engines._io import atomic_write_bytes
from engines.config import EngineConfig
from engines.errors import ExportValidationError, InputError, UnsupportedModelError
from engines.export_report import ExportReport, ValidationSummary
from engines.metadata import (
    ACCEPTS_INF_KEY,
    ACCEPTS_NAN_KEY,
    MIN_RUNTIME_KEY,
    OFFSET_KEY,
    library_versions,
    write_metadata,
)
from engines.native import native_supported, native_to_onnx
from engines.native._runtime import RuntimeVersion, minimum_runtime, resolve_target
from engines.native.pyod import (
    PYOD_EXPORTABLE,
    check_pyod_exportable,
    is_pyod_detector,
    pyod_cloud,
    pyod_metadata,
    pyod_to_onnx,
    pyod_tolerance,
    pyod_width,
)
from engines.tolerance import Tolerance, compare_outputs

__all__ = [
    "EXPORTABLE",
    "ExportReport",
    "ValidationSummary",
    "default_tolerance",
    "export",
    "stored_rows",
    "validation_rows",
]

Exporter = Literal["auto", "native", "skl2onnx", "torch", "onnxmltools"]

#: Final estimators `export` knows, by class name (scalers may stand in front in a Pipeline).
EXPORTABLE: tuple[str, ...] = (
    "IsolationForest",
    "OneClassSVM",
    "SGDOneClassSVM",
    "LocalOutlierFactor",
    "GaussianMixture",
    "BayesianGaussianMixture",
    "EllipticEnvelope",
    "PCAReconstructionDetector",
    "AutoencoderDetector",
    "SupervisedScorer",
    # PyOD's detectors (engines.native.pyod) by qualified name: PyOD's PCA is not sklearn's.
    *(f"pyod.{name}" for name in PYOD_EXPORTABLE),
)


#: estimator class -> (its only exporter, why); each of those exporters converts nothing else.
_SOLE_EXPORTER = {
    "SupervisedScorer": (
        "onnxmltools",
        "a SupervisedScorer's classifier (LightGBM, XGBoost) is converted by onnxmltools "
        "(exporter='onnxmltools' or 'auto'), and onnxmltools exports nothing else here",
    ),
    "AutoencoderDetector": ("torch", "torch models use exporter='torch' (or 'auto')"),
}


def default_tolerance(final: Any, exporter: str) -> Tolerance:
    """The bounds an export of ``final`` by ``exporter`` is held to."""
    name = type(final).__name__
    if exporter == "torch":
        return Tolerance(label_agreement=0.999, rtol=1e-4, atol=1e-6)
    if exporter == "onnxmltools":  # margins summed in float32 (XGBoost) or float64 (LightGBM)
        return Tolerance(label_agreement=0.999, rtol=1e-4, atol=1e-5)
    if exporter == "native":
        if is_pyod_detector(final):
            return pyod_tolerance(final)
        if name == "IsolationForest":
            return Tolerance(label_agreement=1.0, rtol=0.0, atol=1e-6)
        return Tolerance(label_agreement=0.999, rtol=1e-4, atol=1e-5)
    # skl2onnx computes in float32 throughout, and OneClassSVM labels come from Sign (0 at 0).
    return Tolerance(label_agreement=0.99, rtol=1e-3, atol=1e-4)


def _final(model: Any) -> Any:
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def _check_exportable(model: Any) -> Any:
    final = _final(model)
    if is_pyod_detector(final):  # PyOD's own rules: engines.native.pyod
        return check_pyod_exportable(model)
    name = type(final).__name__
    if name == "LocalOutlierFactor" and not getattr(final, "novelty", False):
        raise UnsupportedModelError(
            "LocalOutlierFactor(novelty=False) cannot be exported: it has no predict, "
            "decision_function or score_samples for new rows, only fit_predict on its training "
            "data. Refit with novelty=True to score new rows."
        )
    if name not in EXPORTABLE:
        raise UnsupportedModelError(
            f"cannot export {name}: supported estimators are {list(EXPORTABLE)}, optionally in a "
            "Pipeline behind scalers"
        )
    if not hasattr(final, "n_features_in_"):
        raise UnsupportedModelError(f"{name} is not fitted; call fit() before exporting")
    return final


def _choose_exporter(model: Any, exporter: str) -> str:
    if exporter not in ("auto", "native", "skl2onnx", "torch", "onnxmltools"):
        raise ValueError(
            "exporter must be 'auto', 'native', 'skl2onnx', 'torch' or 'onnxmltools', got "
            f"{exporter!r}"
        )
    if is_pyod_detector(model):  # PyOD's detectors have native graphs only
        if exporter not in ("auto", "native"):
            raise UnsupportedModelError(
                f"exporter={exporter!r} does not apply to PyOD's {type(_final(model)).__name__}: "
                "PyOD detectors are exported by exporter='native' (or 'auto')"
            )
        return "native"
    name = type(_final(model)).__name__
    if name in _SOLE_EXPORTER:  # estimators that one exporter converts, and it nothing else
        only, why = _SOLE_EXPORTER[name]
        if isinstance(model, Pipeline):
            raise UnsupportedModelError(f"{name} is exported on its own, not in a Pipeline")
        if exporter not in ("auto", only):
            raise UnsupportedModelError(f"exporter={exporter!r} does not apply to {name}: {why}")
        return only
    for only, why in _SOLE_EXPORTER.values():
        if exporter == only:
            raise UnsupportedModelError(f"exporter={exporter!r} does not apply to {name}: {why}")
    if exporter == "auto":
        return "native" if native_supported(model) else "skl2onnx"
    return exporter


def _json_safe(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return repr(value)


def _metadata(model: Any, n_features: int, dtype: np.dtype[Any], exporter: str) -> dict[str, Any]:
    final = _final(model)
    params = final.get_params(deep=False) if hasattr(final, "get_params") else {}
    names = getattr(model, "feature_names_in_", None)
    offset = getattr(final, "offset_", None)
    meta: dict[str, Any] = {
        "estimator": type(final).__name__,
        "pipeline": [type(s).__name__ for _, s in model.steps]
        if isinstance(model, Pipeline)
        else None,
        "hyperparameters": _json_safe(params),
        "n_features": n_features,
        "feature_names": None if names is None else [str(n) for n in names],
        "dtype": str(dtype),
        "contamination": _json_safe(getattr(final, "contamination", None)),
        "versions": {k: v for k, v in library_versions().items() if v is not None},
        "source_sha256": hashlib.sha256(pickle.dumps(model)).hexdigest(),
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "exporter": exporter,
    }
    if offset is not None:
        meta[OFFSET_KEY] = float(np.ravel(offset)[0])
    meta.update(input_policy(model, n_features))
    return meta


def input_policy(model: Any, n_features: int) -> dict[str, bool]:
    """Whether the estimator answers a row holding NaN, and one holding inf (probed)."""
    from engines.sklearn_engine import SklearnEngine

    engine = SklearnEngine(model, collect_metrics=False)
    method = "score_samples" if "score_samples" in engine.methods else sorted(engine.methods)[0]
    policy = {}
    for key, value in ((ACCEPTS_NAN_KEY, np.nan), (ACCEPTS_INF_KEY, np.inf)):
        row = np.zeros((1, n_features), dtype=np.float64)
        row[0, 0] = value
        try:
            getattr(engine, method)(row)
        except InputError:
            policy[key] = False
        else:
            policy[key] = True
    return policy


def validation_rows(
    model: Any, n_features: int, *, n: int = 512, seed: int = 0
) -> npt.NDArray[np.float64]:
    """Rows around the data the model was fitted on (from its own fitted state), 10% far out."""
    rng = np.random.default_rng(seed)
    final = _final(model)
    center, spread = _fitted_cloud(final, n_features)
    z = rng.normal(size=(n, n_features))
    far = rng.random(n) < 0.1
    z[far] *= 6.0
    rows = center + z * spread
    if isinstance(model, Pipeline):  # the cloud lives after the scalers: map it back to input space
        for _, step in reversed(model.steps[:-1]):
            if hasattr(step, "inverse_transform"):
                rows = step.inverse_transform(rows)
    return np.asarray(rows, dtype=np.float64)


def stored_rows(model: Any, *, n: int = 512, seed: int = 0) -> npt.NDArray[np.float64] | None:
    """Rows the fitted model keeps: training rows (a OneClassSVM's support vectors, a
    neighbour model's fitted rows) or its centres (a mixture's means, a robust covariance's
    location), its own or its PyOD inner detector's; at most ``n``, in the model's input space
    (mapped back through a pipeline's scalers); None when it keeps none. The rows it calls
    normal where the data holds none (a detector that flags every new row)."""
    final = _final(model)
    holders = [final, getattr(final, "detector_", None), getattr(final, "neigh_", None)]
    for holder in holders:
        for attr in ("_fit_X", "support_vectors_", "means_", "location_"):
            data = getattr(holder, attr, None) if holder is not None else None
            if data is None or np.ndim(data) not in (1, 2) or not np.size(data):
                continue
            rows = np.atleast_2d(np.asarray(data, dtype=np.float64))
            if len(rows) > n:
                rows = rows[np.random.default_rng(seed).choice(len(rows), n, replace=False)]
            if isinstance(model, Pipeline):
                for _, step in reversed(model.steps[:-1]):
                    if not hasattr(step, "inverse_transform"):
                        return None  # a step that cannot be undone: no rows in input space
                    rows = step.inverse_transform(rows)
            return np.asarray(rows, dtype=np.float64)
    return None


def _fitted_cloud(final: Any, n_features: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    if is_pyod_detector(final):
        return pyod_cloud(final, n_features)
    if type(final).__name__ == "SupervisedScorer":  # around the trees' split thresholds
        from engines._onnxmltools import threshold_cloud

        return threshold_cloud(final, n_features)
    for attr in ("_fit_X", "support_vectors_", "training_data_"):
        data = getattr(final, attr, None)
        if data is not None and len(data) > 1:
            data = np.asarray(data, dtype=np.float64)
            return data.mean(axis=0), data.std(axis=0) + 1e-3
    if hasattr(final, "location_") and hasattr(final, "covariance_"):
        return final.location_, np.sqrt(np.diag(final.covariance_)) + 1e-3
    if hasattr(final, "module_") and hasattr(final.module_, "mean"):
        module = final.module_
        return module.mean.numpy().astype(np.float64), module.scale.numpy().astype(np.float64)
    if hasattr(final, "means_"):
        means = np.asarray(final.means_)
        return means.mean(axis=0), means.std(axis=0) + 1.0
    if hasattr(final, "estimators_") and hasattr(final, "estimators_features_"):
        lo = np.full(n_features, np.inf)
        hi = np.full(n_features, -np.inf)
        for est, features in zip(final.estimators_, final.estimators_features_, strict=True):
            tree = est.tree_
            inner = tree.children_left != -1
            cols = np.asarray(features)[tree.feature[inner]]
            np.minimum.at(lo, cols, tree.threshold[inner])
            np.maximum.at(hi, cols, tree.threshold[inner])
        lo, hi = np.where(np.isfinite(lo), lo, -1.0), np.where(np.isfinite(hi), hi, 1.0)
        return (lo + hi) / 2, (hi - lo) / 4 + 1e-3
    return np.zeros(n_features), np.ones(n_features)


def _reference_answers(model: Any, X: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
    """The estimator's answers by output name, for the methods it has."""
    from engines.sklearn_engine import SklearnEngine

    engine = SklearnEngine(model)
    calls = {"label": "predict", "decision_function": "decision_function"}
    return {
        output: getattr(engine, calls.get(output, output))(X)
        for output in ("label", "decision_function", "score_samples")
        if calls.get(output, output) in engine.methods
    }


def validate_export(
    model: Any, proto: onnx.ModelProto, X: npt.NDArray[Any], tolerance: Tolerance
) -> ValidationSummary:
    """Run ``proto`` in onnxruntime against ``model`` on ``X`` and compare every output."""
    from engines.onnx_engine import OnnxEngine

    engine = OnnxEngine(proto, EngineConfig(provider="cpu", collect_metrics=False))
    expected = _reference_answers(model, X)
    calls = {"label": "predict", "decision_function": "decision_function"}
    comparisons = []
    for name, reference in expected.items():
        method = calls.get(name, name)
        if method in engine.methods:
            ours = getattr(engine, method)(X)
            comparisons.append(compare_outputs(name, ours, reference, tolerance))
    if not comparisons:
        raise ExportValidationError(
            f"nothing to validate: the ONNX model answers {sorted(engine.methods)} and the "
            f"estimator {sorted(expected)}"
        )
    labels = [c.label_agreement for c in comparisons if c.label_agreement is not None]
    scores = [c for c in comparisons if c.output != "label"]
    return ValidationSummary(
        n_rows=len(X),
        label_agreement=labels[0] if labels else None,
        max_abs_err=max((c.max_abs_err for c in scores), default=0.0),
        max_rel_err=max((c.max_rel_err for c in scores), default=0.0),
        passed=all(c.passed for c in comparisons),
        comparisons=tuple(comparisons),
    )


def _drop_initializer_value_info(proto: onnx.ModelProto) -> None:
    """Remove value_info entries that repeat an initializer's shape (torch.onnx writes them).

    They are redundant, and onnxruntime 1.20's int8 quantizer fails on them once it has
    rewritten a Gemm weight ("Inferred shape and existing shape differ in dimension 0").
    """
    names = {t.name for t in proto.graph.initializer}
    kept = [v for v in proto.graph.value_info if v.name not in names]
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept)


def _check_target(
    proto: onnx.ModelProto, exporter: str, final: Any, target: RuntimeVersion
) -> RuntimeVersion:
    """The oldest onnxruntime that loads ``proto``; refused if that is newer than ``target``."""
    needed = minimum_runtime(proto)
    if needed > target:
        opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
        raise UnsupportedModelError(
            f"the {exporter} export of {type(final).__name__} (IR {proto.ir_version}, {opsets}) "
            f"needs onnxruntime >= {needed}, but target_runtime is {target}"
        )
    return needed


def _check_loads(proto: onnx.ModelProto, exporter: str, final: Any) -> None:
    """Refuse an export onnxruntime cannot load (never write an unloadable file)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        onnxruntime.InferenceSession(
            proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own Fail / NotImplemented / InvalidGraph
        raise UnsupportedModelError(
            f"the {exporter} export of {type(final).__name__} cannot be loaded by onnxruntime "
            f"{onnxruntime.__version__}, so it is not written: {exc}"
        ) from exc


def export(
    model: Any,
    n_features: int | None = None,
    path: str | Path | None = None,
    *,
    exporter: Exporter = "auto",
    dtype: str | type = "float32",
    metadata: dict[str, Any] | None = None,
    validate: bool = True,
    validation_data: npt.ArrayLike | None = None,
    tolerance: Tolerance | None = None,
    target_runtime: str | RuntimeVersion | None = None,
) -> ExportReport:
    """Export a fitted anomaly detector to ONNX: outputs label, decision_function, score_samples.

    ``exporter="auto"`` uses the native exporter where one exists (and supports the model's
    settings, e.g. LocalOutlierFactor's metric), else skl2onnx; a SupervisedScorer goes to
    onnxmltools, an AutoencoderDetector to torch. With
    ``validate=True`` the ONNX model is run against the estimator on ``validation_data`` (or
    rows sampled around the fitted data, 10% far out) and ExportValidationError is raised with
    the numbers if it disagrees beyond ``tolerance``; the summary is stored in the metadata.

    The graph loads on ``target_runtime`` (an onnxruntime version such as ``"1.20"``; default:
    the installed one) and every newer release: where the target lacks a faster operator, the
    older form is emitted (IsolationForest: ai.onnx.ml 3 ``TreeEnsembleRegressor`` below
    onnxruntime 1.21, scores within ~2e-8 instead of ~1e-15). A target older than 1.20 or newer
    than the installed onnxruntime is refused. The metadata's ``min_onnxruntime`` says the
    oldest release that loads the graph.

    Example:
        >>> report = export(IsolationForest().fit(X), path="m.onnx")  # doctest: +SKIP
        >>> report.validation.label_agreement  # doctest: +SKIP
        1.0
        >>> old = export(forest, target_runtime="1.20")  # doctest: +SKIP
        >>> [n.op_type for n in old.model.graph.node if n.domain == "ai.onnx.ml"]  # doctest: +SKIP
        ['TreeEnsembleRegressor']
    """
    runtime = resolve_target(target_runtime)
    final = _check_exportable(model)
    fitted_width = pyod_width(final) if is_pyod_detector(final) else final.n_features_in_
    width = int(n_features if n_features is not None else fitted_width)
    if width != fitted_width:
        raise ValueError(f"n_features={width} but the model was fitted on {fitted_width}")
    np_dtype = np.dtype(dtype)
    if np_dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {np_dtype}")
    chosen = _choose_exporter(model, exporter)
    start = time.perf_counter()
    if chosen == "torch":
        if np_dtype != np.float32:
            raise ValueError("torch models are exported with float32 input only")
        from engines.torch_export import export_torch

        example = validation_rows(model, width, n=8).astype(np.float32)
        proto = export_torch(
            final.module_, example, validate=False, offset=float(final.offset_)
        ).model
        _drop_initializer_value_info(proto)
    elif chosen == "native" and is_pyod_detector(final):
        proto = pyod_to_onnx(model, dtype=np_dtype, target_runtime=runtime)
    elif chosen == "native":
        proto = native_to_onnx(model, dtype=np_dtype, target_runtime=runtime)
    elif chosen == "onnxmltools":
        from engines._onnxmltools import scorer_to_onnx

        proto = scorer_to_onnx(final, dtype=np_dtype)
    else:
        from engines._skl2onnx import skl2onnx_to_onnx

        proto = skl2onnx_to_onnx(model, n_features=width, dtype=np_dtype)
    seconds = time.perf_counter() - start
    needed = _check_target(proto, chosen, final, runtime)
    meta = _metadata(model, width, np_dtype, chosen)
    meta[MIN_RUNTIME_KEY] = str(needed)
    if is_pyod_detector(final):  # PyOD's convention and threshold_, no scikit-learn offset
        meta = pyod_metadata(final, meta)
    if chosen == "onnxmltools":
        from engines._onnxmltools import scorer_metadata

        meta.update(scorer_metadata(final))
    meta.update(metadata or {})
    summary = None
    if validate:
        X = (
            validation_rows(model, width)
            if validation_data is None
            else np.asarray(validation_data, dtype=np.float64)
        ).astype(np_dtype)
        bounds = tolerance or default_tolerance(final, chosen)
        summary = validate_export(model, proto, X, bounds)
        if not summary.passed:
            failed = [c for c in summary.comparisons if not c.passed]
            details = "; ".join(
                f"{c.output}: max_abs_err={c.max_abs_err:.3g} max_rel_err={c.max_rel_err:.3g}"
                + (
                    f" label_agreement={c.label_agreement:.4f}"
                    if c.label_agreement is not None
                    else ""
                )
                + (
                    f" (first bad row {c.worst_row}: {X[c.worst_row].tolist()})"
                    if c.worst_row is not None
                    else ""
                )
                for c in failed
            )
            raise ExportValidationError(
                f"{chosen} export of {type(final).__name__} disagrees with the estimator on "
                f"{len(X)} rows beyond {bounds}: {details}",
                summary={"max_abs_err": summary.max_abs_err, "max_rel_err": summary.max_rel_err},
            )
        meta["validation"] = json.loads(json.dumps(summary.as_dict()))
    else:
        _check_loads(proto, chosen, final)
    write_metadata(proto, meta)
    payload = proto.SerializeToString()
    out_path = None if path is None else atomic_write_bytes(path, payload)
    return ExportReport(
        model=proto,
        path=out_path,
        exporter=chosen,
        sha256=hashlib.sha256(payload).hexdigest(),
        seconds=seconds,
        validation=summary,
        n_nodes=len(proto.graph.node),
    )
