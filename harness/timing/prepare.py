"""Benchmark selection and runners: what to time, prepared once, outside the timing."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines import EngineConfig, OnnxEngine, SklearnEngine, Tolerance, probe_providers
from harness.cases.user import UserModel
from harness.cases.variants import EngineVariant
from harness.cases.zoo import ModelCase, available, cases, exported, fitted, quantized
from harness.results.schema import benchmark_id, short_provider
from harness.timing.points import PROFILES, ProfileSpec, Selection, split_list

__all__ = [
    "PROFILES",
    "BenchPoint",
    "Runner",
    "Selection",
    "UserModel",
    "build_points",
    "prepare",
    "split_list",
]


@dataclasses.dataclass(frozen=True)
class BenchPoint:
    """One timed configuration; ``id`` reads like ``iforest-100[onnx-native-cpu]-b100-t1``."""

    case: str
    engine: str  # "sklearn", "onnx-<exporter>", "onnx-<exporter>-int8", "torch-eager"
    provider: str  # "cpu", "cuda", "tensorrt" ("-" for engines without providers)
    batch_size: int
    threads: int

    @property
    def id(self) -> str:
        return benchmark_id(self.case, self.engine, self.provider, self.batch_size, self.threads)

    @property
    def variant(self) -> EngineVariant:
        return EngineVariant.parse(self.engine)

    @property
    def exporter(self) -> str | None:
        return self.variant.exporter


def _engines_for(case: ModelCase, spec: ProfileSpec) -> list[str]:
    exporters = list(case.exporters) if spec.all_exporters else [case.best_exporter]
    variants = [EngineVariant("sklearn"), *(EngineVariant("onnx", e) for e in exporters)]
    if spec.variants:
        variants += [EngineVariant("onnx", e, quantized=True) for e in exporters if e == "torch"]
        if "torch" in case.exporters:
            variants.append(EngineVariant("torch-eager"))
    return [str(v) for v in variants]


def _user_engines(user: UserModel) -> list[str]:
    if not user.is_onnx:  # a .skops model: scikit-learn is what is timed
        return ["sklearn"]
    return ["onnx-user"] + (["sklearn"] if user.reference is not None else [])


def build_points(selection: Selection) -> list[BenchPoint]:
    """Every (case, engine, provider, batch, threads) point: the product of declared axes."""
    spec = selection.spec
    user = selection.user_model
    if user is not None:
        per_case = [(user.label, _user_engines(user))]
    else:
        chosen = cases(spec.zoo_profile, list(selection.cases) or None)
        chosen = available(chosen)[0]  # named cases were checked; the rest say so in run
        if not selection.cases and selection.profile == "quick":
            chosen = [c for c in chosen if c.benchmark == "quick"]
        per_case = [(c.name, _engines_for(c, spec)) for c in chosen]
    points = [
        BenchPoint(case, engine, provider, batch, threads)
        for batch, threads, (case, engines) in itertools.product(
            selection.effective_batch_sizes, selection.effective_threads, per_case
        )
        for engine in engines
        for provider in (selection.providers if engine.startswith("onnx") else ("-",))
    ]
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate benchmark ids in the selection: {sorted(ids)}")
    return points


@dataclasses.dataclass
class Runner:
    """A prepared engine: the call to time, its rows, and what to record about it."""

    point: BenchPoint
    fn: Callable[[npt.NDArray[Any]], Any] | None
    rows: npt.NDArray[Any] | None
    info: dict[str, Any]
    skip_reason: str | None = None
    #: The ONNX file the engine was created from (for the cold-start measurement; not stored).
    model_path: Path | None = None

    def thread_limits(self) -> Any:
        """Context limiting BLAS/OpenMP pools (scikit-learn, NumPy) to the point's threads.

        Entered once around the whole timed loop: entering it costs milliseconds.
        """
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.point.threads)

    def batch(self, size: int) -> npt.NDArray[Any]:
        assert self.rows is not None
        reps = -(-size // len(self.rows))
        return np.ascontiguousarray(np.tile(self.rows, (reps, 1))[:size])


@cache
def _usable_providers() -> dict[str, str]:
    return {short_provider(s.name): "" if s.usable else s.reason for s in probe_providers()}


def provider_skip(provider: str) -> str | None:
    if provider in ("-", "cpu"):
        return None
    reason = _usable_providers().get(provider)
    if reason is None:
        return f"provider {provider!r} is not known to this onnxruntime build"
    return f"provider {provider!r} is not usable here: {reason}" if reason else None


def _config(point: BenchPoint) -> EngineConfig:
    return EngineConfig(
        provider=point.provider if point.provider != "-" else "cpu",
        intra_op_threads=point.threads,
        allow_spinning=False,
        collect_metrics=False,
    )


def prepare(point: BenchPoint, selection: Selection, workdir: Path) -> Runner:
    """Fit, export, create and warm up the engine for ``point`` (never timed)."""
    reason = provider_skip(point.provider)
    if reason:
        return Runner(point, None, None, {}, reason)
    if selection.user_model is not None:
        return _prepare_user(point, selection)
    case = next(c for c in cases("large") if c.name == point.case)
    rows = case.data().X_test
    model = fitted(point.case)
    info: dict[str, Any] = {"case": case.name, "dataset": case.dataset}
    if point.engine == "sklearn":
        # scikit-learn at the point's threads: n_jobs where the estimator takes it (on a copy:
        # the fitted model is cached), BLAS/OpenMP pools through Runner.thread_limits.
        model, takes_n_jobs = _with_n_jobs(model, point.threads)
        info["n_jobs"] = point.threads if takes_n_jobs else None
        reference = SklearnEngine(model, collect_metrics=False)
        method = _timed_method(reference)
        fn = getattr(reference, method)
        if reference.info().get("scoring") == "row by row":
            # ECOD/COPOD: the engine answers each row scored alone (what the ONNX graph
            # computes); a PyOD user calls the batch method, which is what is timed.
            fn = getattr(model, method)
            info["scoring"] = "PyOD batch call (it ranks a batch jointly)"
        return Runner(
            point,
            fn,
            rows,
            {**info, "method": method, "parity": "reference", "model_sha256": None},
        )
    if point.variant.kind == "torch-eager":
        import torch

        module = model.module_

        def eager(x: npt.NDArray[Any]) -> Any:
            with torch.no_grad():
                return module(torch.from_numpy(x))

        torch.set_num_threads(point.threads)
        return Runner(
            point, eager, rows, {**info, "parity": "reference-eager", "model_sha256": None}
        )
    exporter = point.exporter or "auto"
    report = exported(point.case, exporter)
    model_bytes = report.model.SerializeToString()
    parity = report.validation
    bounds = _export_bounds(case, model, report.exporter)
    extra: dict[str, Any] = {
        "parity": "pass" if parity is None or parity.passed else "fail",
        "parity_max_abs_err": None if parity is None else parity.max_abs_err,
        "parity_max_rel_err": None if parity is None else parity.max_rel_err,
        "parity_rtol": bounds.rtol,  # the bound |err| <= atol + rtol * |reference| it was held to
        "parity_atol": bounds.atol,
        "parity_label_min": bounds.label_agreement,
        "parity_label_agreement": None if parity is None else parity.label_agreement,
        "model_sha256": report.sha256,
        "export_seconds": report.seconds,
    }
    if point.variant.quantized:
        int8, q = quantized(point.case, exporter)
        if int8 is None:
            return Runner(point, None, None, {}, f"int8: {q.reason}")
        model_bytes = int8
        extra.update(parity="quantized", quantized_parity=q.parity, model_sha256=None)
    engine = OnnxEngine(model_bytes, _config(point))
    onnx_info = engine.info()
    extra.update(
        provider_active="+".join(onnx_info["active_providers"]),
        # .get: a gate --ab worker runs an older ref's engines, whose info() may predate it
        placement=onnx_info.get("placement"),
        nodes_per_provider=onnx_info["nodes_per_provider"],
        model_sha256=extra["model_sha256"] or onnx_info["model_sha256"],
    )
    model_path = workdir / f"{onnx_info['model_sha256']}.onnx"  # the cold start loads this file
    if not model_path.exists():
        model_path.write_bytes(model_bytes)
    method = _timed_method(engine)
    return Runner(
        point,
        getattr(engine, method),
        rows,
        {**info, **extra, "method": method},
        model_path=model_path,
    )


#: The fitted parts a PyOD detector scores with: its scikit-learn detector (IForest, LOF, ...)
#: and its neighbour search (KNN).
_INNER_SCORERS = ("detector_", "neigh_")
#: Whose n_jobs is no thread count: PyOD's ECOD and COPOD start a pool of worker processes
#: in every call (about 50x slower at batch 1,000 on 2 cores, and chatty); kept at theirs.
_PROCESS_POOLS = frozenset({"pyod.models.ecod.ECOD", "pyod.models.copod.COPOD"})


def _with_n_jobs(model: Any, n_jobs: int) -> tuple[Any, bool]:
    """(``model`` with ``n_jobs`` set in every part that takes it: the estimator, a Pipeline's
    steps, a PyOD detector's inner scorers; whether any did). Changed parts are shallow
    copies: the fitted model is cached and shared by every point, never changed."""
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        steps = [(name, *_with_n_jobs(step, n_jobs)) for name, step in model.steps]
        if not any(takes for _, _, takes in steps):
            return model, False
        pipeline = copy.copy(model)
        pipeline.steps = [(name, step) for name, step, _ in steps]
        return pipeline, True
    if f"{type(model).__module__}.{type(model).__qualname__}" in _PROCESS_POOLS:
        return model, False
    takes = hasattr(model, "get_params") and "n_jobs" in model.get_params(deep=False)
    inner = {}
    for attr in _INNER_SCORERS:
        part = getattr(model, attr, None)
        if part is not None:
            part, part_takes = _with_n_jobs(part, n_jobs)
            if part_takes:
                inner[attr] = part
    if not takes and not inner:
        return model, False
    clone = copy.copy(model)
    if takes:
        clone.set_params(n_jobs=n_jobs)
    for attr, part in inner.items():
        setattr(clone, attr, part)
    return clone, True


def _export_bounds(case: ModelCase, model: Any, exporter: str) -> Tolerance:
    """The tolerance ``export`` validated the case's export with (as ``export`` chooses it)."""
    from sklearn.pipeline import Pipeline

    from engines.export import default_tolerance

    final = model.steps[-1][1] if isinstance(model, Pipeline) else model
    return case.tolerance(exporter) or default_tolerance(final, exporter)


def _timed_method(engine: Any) -> str:
    """score_samples; decision_function where the model has none (PyOD's convention): the
    same method on both sides of a comparison, as both engines serve the same convention."""
    return "score_samples" if "score_samples" in engine.methods else "decision_function"


def _prepare_user(point: BenchPoint, selection: Selection) -> Runner:
    from harness.cases.usermodel import load_user_model

    user = selection.user_model
    assert user is not None
    loaded = load_user_model(user)
    config = _config(point)
    engine: Any
    if point.engine == "sklearn":
        engine = SklearnEngine(loaded.estimator, collect_metrics=False)
        sha, role = loaded.estimator_sha256, "reference"
    else:
        assert loaded.model_path is not None  # an "onnx-user" point exists for .onnx models only
        engine = OnnxEngine(loaded.model_path, config, offset=loaded.offset)
        engine_info = engine.info()
        sha, role = engine_info["model_sha256"], loaded.parity
        extra_onnx = {
            "provider_active": "+".join(engine_info["active_providers"]),
            "placement": engine_info.get("placement"),
            "nodes_per_provider": engine_info["nodes_per_provider"],
        }
        if loaded.scoring is not None:
            extra_onnx["scoring"] = loaded.scoring
    info: dict[str, Any] = {
        "case": user.label,
        "origin": "user",
        "model": str(user.reference if point.engine == "sklearn" and user.is_onnx else user.model),
        "model_sha256": sha,
        "n_features": loaded.n_features,
        "estimator": loaded.estimator_name,
        "method": loaded.method,
        "parity": role,
    }
    if point.engine != "sklearn":
        info.update(extra_onnx)
    distinct = loaded.distinct_rows(point.batch_size)
    if distinct < point.batch_size:  # the batch repeats rows: the report says so
        info["distinct_rows"] = distinct
    return Runner(
        point,
        getattr(engine, loaded.method),
        loaded.rows,
        info,
        model_path=None if point.engine == "sklearn" else loaded.model_path,  # as shipped
    )
