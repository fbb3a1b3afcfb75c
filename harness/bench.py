"""Benchmark selection and runners: what to time, prepared once, outside the timing."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from engines import EngineConfig, OnnxEngine, SklearnEngine, create_engine, probe_providers
from harness.zoo import ModelCase, cases, exported, fitted

__all__ = [
    "PROFILES",
    "BenchPoint",
    "Runner",
    "Selection",
    "UserModel",
    "build_points",
    "prepare",
]

Profile = Literal["quick", "full"]


@dataclasses.dataclass(frozen=True)
class ProfileSpec:
    batch_sizes: tuple[int, ...]
    threads: tuple[int, ...]
    all_exporters: bool
    variants: bool  # quantized ONNX and torch eager
    target_seconds: float  # measured time per benchmark
    zoo_profile: Literal["fast", "regular", "large"]


_ALL_CORES = os.cpu_count() or 1
PROFILES: dict[str, ProfileSpec] = {
    "quick": ProfileSpec((1, 100, 10_000), (1,), False, False, 0.15, "large"),
    "full": ProfileSpec(
        (1, 10, 100, 1_000, 10_000), tuple(sorted({1, _ALL_CORES})), True, True, 0.6, "large"
    ),
}


@dataclasses.dataclass(frozen=True)
class UserModel:
    """Bring your own model: an ONNX or skops model, an optional reference, optional data."""

    model: Path
    reference: Path | None = None
    data: Path | None = None
    n_features: int | None = None


@dataclasses.dataclass(frozen=True)
class Selection:
    """What one benchmark session covers."""

    profile: str = "quick"
    cases: tuple[str, ...] = ()
    batch_sizes: tuple[int, ...] = ()
    threads: tuple[int, ...] = ()
    providers: tuple[str, ...] = ("cpu",)
    user_model: UserModel | None = None

    @property
    def spec(self) -> ProfileSpec:
        return PROFILES[self.profile]

    @property
    def effective_batch_sizes(self) -> tuple[int, ...]:
        return self.batch_sizes or self.spec.batch_sizes

    @property
    def effective_threads(self) -> tuple[int, ...]:
        return self.threads or self.spec.threads


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
        where = self.engine if self.provider == "-" else f"{self.engine}-{self.provider}"
        return f"{self.case}[{where}]-b{self.batch_size}-t{self.threads}"

    @property
    def exporter(self) -> str | None:
        return self.engine.split("-")[1] if self.engine.startswith("onnx-") else None


def _engines_for(case: ModelCase, spec: ProfileSpec) -> list[str]:
    exporters = list(case.exporters) if spec.all_exporters else [_best_exporter(case)]
    engines = ["sklearn"]
    engines += [f"onnx-{e}" for e in exporters]
    if spec.variants:
        engines += [f"onnx-{e}-int8" for e in exporters if e in ("torch",)]
        if "torch" in case.exporters:
            engines.append("torch-eager")
    return engines


def _best_exporter(case: ModelCase) -> str:
    for exporter in ("native", "torch", "skl2onnx"):
        if exporter in case.exporters:
            return exporter
    raise ValueError(f"{case.name} has no exporter")


def build_points(selection: Selection) -> list[BenchPoint]:
    """Every (case, engine, provider, batch, threads) point of the selection."""
    spec = selection.spec
    points = []
    names = ["user-model"] if selection.user_model else None
    chosen = [] if names else cases(spec.zoo_profile, list(selection.cases) or None)
    for batch in selection.effective_batch_sizes:
        for threads in selection.effective_threads:
            if names:
                engines = ["onnx-user"] + (
                    ["sklearn"] if selection.user_model and selection.user_model.reference else []
                )
                per_case = [("user-model", engines)]
            else:
                per_case = [(c.name, _engines_for(c, spec)) for c in chosen]
            for case, engines in per_case:
                for engine in engines:
                    providers = selection.providers if engine.startswith("onnx") else ("-",)
                    for provider in providers:
                        points.append(BenchPoint(case, engine, provider, batch, threads))
    return points


@dataclasses.dataclass
class Runner:
    """A prepared engine: the call to time, its rows, and what to record about it."""

    point: BenchPoint
    fn: Callable[[npt.NDArray[Any]], Any] | None
    rows: npt.NDArray[Any] | None
    info: dict[str, Any]
    skip_reason: str | None = None

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
    aliases = {
        "CPUExecutionProvider": "cpu",
        "CUDAExecutionProvider": "cuda",
        "TensorrtExecutionProvider": "tensorrt",
    }
    return {aliases.get(s.name, s.name): "" if s.usable else s.reason for s in probe_providers()}


def _provider_skip(provider: str) -> str | None:
    if provider in ("-", "cpu"):
        return None
    reason = _usable_providers().get(provider)
    if reason is None:
        return f"provider {provider!r} is not known to this onnxruntime build"
    return f"provider {provider!r} is not usable here: {reason}" if reason else None


@cache
def _user_rows(data: Path | None, n_features: int | None, width: int | None) -> npt.NDArray[Any]:
    if data is None:
        n = n_features or width
        if n is None:
            raise ValueError("the model's input width is unknown: pass --n-features or --data")
        return np.random.default_rng(0).normal(size=(10_000, n)).astype(np.float32)
    if data.suffix == ".npy":
        rows = np.load(data, allow_pickle=False)
    elif data.suffix == ".csv":
        rows = np.loadtxt(data, delimiter=",", dtype=np.float32, ndmin=2)
    else:
        raise ValueError(f"--data must be a .npy or .csv file, got {data}")
    if rows.ndim != 2 or len(rows) == 0:
        raise ValueError(f"--data must hold a non-empty 2-D array, got shape {rows.shape}")
    return np.asarray(rows, dtype=np.float32)


def _config(point: BenchPoint) -> EngineConfig:
    return EngineConfig(
        provider=point.provider if point.provider != "-" else "cpu",
        intra_op_threads=point.threads,
        allow_spinning=False,
        collect_metrics=False,
    )


def prepare(point: BenchPoint, selection: Selection, workdir: Path) -> Runner:
    """Fit, export, create and warm up the engine for ``point`` (never timed)."""
    reason = _provider_skip(point.provider)
    if reason:
        return Runner(point, None, None, {}, reason)
    if point.case == "user-model":
        return _prepare_user(point, selection)
    case = next(c for c in cases("large") if c.name == point.case)
    rows = case.data().X_test
    model = fitted(point.case)
    info: dict[str, Any] = {"case": case.name, "dataset": case.dataset}
    if point.engine == "sklearn":
        reference = SklearnEngine(model, collect_metrics=False)
        return Runner(
            point,
            reference.score_samples,
            rows,
            {**info, "parity": "reference", "model_sha256": None},
        )
    if point.engine == "torch-eager":
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
    extra: dict[str, Any] = {
        "parity": "pass" if parity is None or parity.passed else "fail",
        "parity_max_abs_err": None if parity is None else parity.max_abs_err,
        "parity_label_agreement": None if parity is None else parity.label_agreement,
        "model_sha256": report.sha256,
        "export_seconds": report.seconds,
    }
    if point.engine.endswith("-int8"):
        from engines import quantize

        source = workdir / f"{point.case}-{exporter}.onnx"
        source.write_bytes(model_bytes)
        target = workdir / f"{point.case}-{exporter}-int8.onnx"
        q = quantize(source, target, "dynamic-int8", parity_data=rows[:512])
        if q.skipped:
            return Runner(point, None, None, {}, f"int8: {q.reason}")
        model_bytes = target.read_bytes()
        extra.update(parity="quantized", quantized_parity=q.parity, model_sha256=None)
    engine = OnnxEngine(model_bytes, _config(point))
    onnx_info = engine.info()
    extra.update(
        provider_active=onnx_info["active_providers"][0],
        nodes_per_provider=onnx_info["nodes_per_provider"],
        model_sha256=extra["model_sha256"] or onnx_info["model_sha256"],
    )
    return Runner(point, engine.score_samples, rows, {**info, **extra})


def _prepare_user(point: BenchPoint, selection: Selection) -> Runner:
    user = selection.user_model
    assert user is not None
    if point.engine == "sklearn":
        assert user.reference is not None
        engine: Any = create_engine(user.reference, _config(point))
        info: dict[str, Any] = {"parity": "reference"}
    else:
        engine = create_engine(user.model, _config(point))
        info = {"parity": "unchecked" if user.reference is None else "see harness check"}
        engine_info = engine.info()
        info.update(
            provider_active=engine_info["active_providers"][0],
            model_sha256=engine_info.get("model_sha256"),
        )
    rows = _user_rows(user.data, user.n_features, engine.n_features)
    method = engine.score_samples if "score_samples" in engine.methods else engine.decision_function
    return Runner(point, method, rows, {"case": "user-model", "model": str(user.model), **info})


def split_list(text: str | None, cast: Callable[[str], Any] = str) -> tuple[Any, ...]:
    """'1,100, 10000' -> (1, 100, 10000); None or '' -> ()."""
    if not text:
        return ()
    return tuple(cast(part.strip()) for part in text.split(",") if part.strip())


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99 of raw seconds, in milliseconds."""
    data = np.asarray(samples, dtype=np.float64) * 1e3
    return {f"p{q}_ms": float(np.percentile(data, q)) for q in (50, 90, 99)}
