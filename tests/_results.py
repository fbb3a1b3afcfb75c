"""Fixture result files (pytest-benchmark JSON with or without a harness block) built in code."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.results.store import SCHEMA_VERSION


def bench_row(
    case: str,
    engine: str,
    batch: int,
    samples: list[float] | np.ndarray,
    *,
    provider: str = "cpu",
    threads: int = 1,
    speedup: float | None = None,
    parity: str = "pass",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A harness row; ``extra`` adds or overrides ``extra_info`` keys (origin, model_sha256...)."""
    data = [float(s) for s in samples]
    arr = np.asarray(data)
    provider_requested = "-" if engine == "sklearn" else provider
    name = f"test_score_samples[{case}[{engine}-{provider}]-b{batch}-t{threads}]"
    return {
        "name": name,
        "fullname": f"suites/bench/test_inference.py::{name}",
        "group": f"{case}-b{batch}-t{threads}",
        "params": None,
        "extra_info": {
            "case": case,
            "engine": engine,
            "exporter": engine.split("-")[1] if engine.startswith("onnx-") else None,
            "provider_requested": provider_requested,
            "provider_active": "CPUExecutionProvider" if provider_requested == "cpu" else None,
            "batch_size": batch,
            "threads": threads,
            "parity": "reference" if engine == "sklearn" else parity,
            "parity_max_abs_err": None if engine == "sklearn" else 1e-9,
            "parity_label_agreement": None if engine == "sklearn" else 1.0,
            "p50_ms": float(np.percentile(arr, 50) * 1e3),
            "p90_ms": float(np.percentile(arr, 90) * 1e3),
            "p99_ms": float(np.percentile(arr, 99) * 1e3),
            "samples_per_s": batch / float(np.median(arr)),
            "speedup_vs_sklearn": speedup,
            **(extra or {}),
        },
        "stats": _stats(arr, data),
    }


def user_row(
    name: str,
    engine: str,
    samples: list[float] | np.ndarray,
    *,
    sha: str | None = "3fa2" + "0" * 60,
    n_features: int | None = 25,
    estimator: str | None = "IsolationForest",
    provider: str = "cpu",
    batch: int = 1,
) -> dict[str, Any]:
    """A row of a user's own model, with the identity keys harness.timing.prepare writes."""
    identity = {
        "origin": "user",
        "model_sha256": sha,
        "n_features": n_features,
        "estimator": estimator,
    }
    return bench_row(name, engine, batch, samples, provider=provider, extra=identity)


def plain_row(
    name: str,
    samples: list[float] | np.ndarray,
    *,
    module: str = "tests/test_speed.py",
    save_data: bool = True,
    extra_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A row as plain pytest-benchmark writes it (no harness keys); ``save_data`` is
    ``--benchmark-save-data``."""
    data = [float(s) for s in samples]
    stats = _stats(np.asarray(data), data)
    if not save_data:
        del stats["data"]
    return {
        "group": None,
        "name": name,
        "fullname": f"{module}::{name}",
        "params": None,
        "param": None,
        "extra_info": extra_info or {},
        "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5},
        "stats": stats,
    }


def plain_payload(
    rows: list[dict[str, Any]],
    *,
    brand: str | None = "AMD EPYC 7B13 Processor",
    count: int | None = 2,
    node: str = "build-host",
    commit: str = "b" * 40,
) -> dict[str, Any]:
    """A whole ``pytest --benchmark-json`` file."""
    cpu: dict[str, Any] = {"arch": "X86_64", "bits": 64}
    if brand is not None:
        cpu["brand_raw"] = brand
    if count is not None:
        cpu["count"] = count
    return {
        "machine_info": {
            "node": node,
            "processor": "x86_64",
            "machine": "x86_64",
            "python_version": "3.11.7",
            "system": "Linux",
            "cpu": cpu,
        },
        "commit_info": {"id": commit, "dirty": False, "project": "demo", "branch": "main"},
        "benchmarks": rows,
        "datetime": "2026-11-25T00:00:00.000000+00:00",
        "version": "5.3.1",
    }


def _stats(arr: np.ndarray, data: list[float]) -> dict[str, Any]:
    """The same fields pytest-benchmark writes."""
    q1, q3 = (float(v) for v in np.percentile(arr, [25, 75]))
    iqr = q3 - q1
    mean, std = float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_outliers = int(((arr < low) | (arr > high)).sum())
    std_outliers = int((np.abs(arr - mean) > std).sum())
    return {
        "min": float(arr.min()),
        "max": float(arr.max()),
        "mean": mean,
        "stddev": std,
        "rounds": len(arr),
        "median": float(np.median(arr)),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": std_outliers,
        "outliers": f"{std_outliers};{iqr_outliers}",
        "ld15iqr": float(arr[arr >= low].min()),
        "hd15iqr": float(arr[arr <= high].max()),
        "ops": 1.0 / mean,
        "total": float(arr.sum()),
        "iterations": 1,
        "data": data,
    }


def result_payload(
    rows: list[dict[str, Any]],
    *,
    provider: str = "cpu",
    machine: str = "test-cpu-2c",
    commit: str = "a" * 40,
    version: int = SCHEMA_VERSION,
) -> dict[str, Any]:
    return {
        "machine_info": {"node": "test"},
        "commit_info": {"id": commit},
        "benchmarks": rows,
        "datetime": "2026-11-22T00:00:00+00:00",
        "version": "5.3.1",
        "harness": {
            "schema_version": version,
            "machine_id": machine,
            "provider": provider,
            "machine": {
                "cpu_model": "Test CPU",
                "cores": 2,
                "cgroup_cpu_quota": None,
                "memory_bytes": 24 * 2**30,
            },
            "versions": {"onnxruntime": "1.32.0", "scikit-learn": "1.9.1"},
            "git": {"commit": commit, "dirty": False},
            "profile": "quick",
            "skipped": [{"id": "iforest-100[onnx-native-cuda]-b1-t1", "reason": "no NVIDIA GPU"}],
        },
    }


def sample_rows(scale: float = 1.0, seed: int = 0) -> list[dict[str, Any]]:
    """Two cases x (sklearn, native) x batches 1 and 100, with lognormal timings."""
    rng = np.random.default_rng(seed)
    rows = []
    for case, base in (("iforest-100", 2e-3), ("gmm-full", 5e-4)):
        for batch in (1, 100):
            ref = rng.lognormal(np.log(base * (1 + batch / 50)), 0.05, 30)
            ours = rng.lognormal(np.log(base * scale * (1 + batch / 50) / 20), 0.05, 30)
            rows.append(bench_row(case, "sklearn", batch, ref))
            rows.append(
                bench_row(
                    case,
                    "onnx-native",
                    batch,
                    ours,
                    speedup=float(np.median(ref) / np.median(ours)),
                )
            )
    return rows
