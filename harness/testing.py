"""What the plugin's user fixtures do: parity of a pair, timing with provider truth, storing.

Kept apart from ``harness.plugin`` so that loading the plugin stays cheap; this module is
imported only when a test asks for ``harness_check`` or ``harness_benchmark``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from harness.cases.user import UserModel

if TYPE_CHECKING:
    import pytest

    from harness.checks.parity import CheckOutcome
    from harness.plugin import HarnessSession
    from harness.results.schema import ExtraInfo

__all__ = [
    "BenchmarkOutcome",
    "PairVerdict",
    "benchmark_fixture",
    "bind_fixture_call",
    "check_fixture",
    "fixture_callable",
    "store_rows",
]

_T = TypeVar("_T")

#: Statuses that fail a run: a real discrepancy, or a declared gap that no longer reproduces.
FAILING = ("fail", "xpass", "error")


@dataclasses.dataclass(frozen=True)
class PairVerdict:
    """The outcomes of every check of a pair, and the table ``harness check`` prints."""

    outcomes: tuple[CheckOutcome, ...]
    table: str

    @property
    def failed(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if o.status in FAILING]


def check_fixture(
    model: str | Path,
    reference: str | Path,
    *,
    data: str | Path | np.ndarray[Any, Any] | None = None,
    known_gaps: Mapping[str, str] | None = None,
    input_bound: float | None = None,
    profile: str | None = None,
    trusted: Sequence[str] = (),
    trust_pickle: bool = False,
    project: Path | None = None,
) -> PairVerdict:
    """Run ``harness check`` on a pair inside a test; fail the test with the evidence.

    ``harness_check(model, reference, **keywords)``: ``model`` the .onnx file, ``reference``
    the model it was exported from (.skops; .pkl/.joblib with ``trust_pickle=True``).
    Keywords, all optional:

    - ``data``: representative rows, a .npy/.csv/.parquet path or an array (default: rows
      generated from the reference).
    - ``known_gaps``: ``{check: reason}``, strict expected failures.
    - ``input_bound``: generated inputs within the data's range widened this many times.
    - ``profile``: Hypothesis examples per check, "dev", "ci" or "nightly" (default:
      $HYPOTHESIS_PROFILE, else ci).
    - ``trusted``: types to trust in the .skops reference.
    - ``trust_pickle``: load a .pkl/.joblib reference (pickle runs code).
    - ``project``: the folder whose nearest pyproject.toml gives ``[tool.harness]`` (the
      plugin passes pytest's rootdir; None ignores the file).

    As on the command line, ``[tool.harness]`` gives the known gaps, input bound and trusted
    types; the arguments add to them (a gap given here replaces the file's).

    Example::

        verdict = harness_check("detector.onnx", "detector.skops", data="rows.csv")
    """
    import pytest

    from harness.checks.pair import CheckSetupError, check_pair, outcomes_table
    from harness.options import OptionError, pair_settings, project_settings, stale_gaps_advice

    refused: str | None = None
    settings: dict[str, Any] = {}
    try:
        settings = project_settings(project) if project is not None else {}
        gaps, bound, trusted = pair_settings(
            settings,
            known_gaps=known_gaps or {},
            input_bound=input_bound,
            trusted=trusted,
        )
        outcomes = check_pair(
            Path(model),
            Path(reference),
            data=data if data is None or isinstance(data, np.ndarray) else Path(data),
            profile=profile,
            known_gaps=gaps,
            input_bound=bound,
            trusted=trusted,
            trust_pickle=trust_pickle,
        )
    except (CheckSetupError, OptionError) as exc:
        refused = str(exc)
    if refused is not None:  # failed outside the handler: one message, no chained traceback
        given = [model, reference] + ([data] if isinstance(data, str | Path) else [])
        if any(not Path(p).is_absolute() and not Path(p).exists() for p in given):
            refused += f" (relative paths are read from the working directory {Path.cwd()})"
        pytest.fail(f"harness check cannot check this pair: {refused}", pytrace=False)
    verdict = PairVerdict(tuple(outcomes), outcomes_table(outcomes))
    if verdict.failed:
        stale = stale_gaps_advice(outcomes, settings, given="known_gaps=")
        advice = "" if stale is None else f"\n{stale}"
        pytest.fail(
            f"parity of {model} against {reference}:\n{verdict.table}{advice}", pytrace=False
        )
    return verdict


def bind_fixture_call(
    name: str, signature: inspect.Signature, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> inspect.BoundArguments:
    """A fixture call's arguments bound to ``signature``; a misspelt or missing argument is a
    TypeError that names the fixture and every argument it takes (not an internal function)."""
    try:
        return signature.bind(*args, **kwargs)
    except TypeError as exc:
        params = signature.parameters.values()
        positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        keywords = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
        raise TypeError(
            f"{name}(): {exc}; it takes {', '.join(positional)} and the keywords "
            f"{', '.join(keywords)}"
        ) from None


def fixture_callable(
    name: str, fn: Callable[..., _T], internal: int, body: Callable[[inspect.BoundArguments], _T]
) -> Callable[..., _T]:
    """What the fixture ``name`` hands a test: ``fn``'s signature less its first ``internal``
    parameters (the plugin's), checked on every call (:func:`bind_fixture_call`), then
    ``body`` on the bound arguments; ``fn``'s docstring, for ``help()``."""
    full = inspect.signature(fn)
    signature = full.replace(parameters=list(full.parameters.values())[internal:])

    def call(*args: Any, **kwargs: Any) -> _T:
        return body(bind_fixture_call(name, signature, args, kwargs))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = fn.__doc__
    setattr(call, "__signature__", signature)  # noqa: B010 - what inspect.signature reads
    return call


@dataclasses.dataclass(frozen=True)
class BenchmarkOutcome:
    """What ``harness_benchmark`` measured (medians in seconds; None when timing is off)."""

    median_s: float | None
    reference_median_s: float | None
    speedup: float | None
    active_provider: str
    info: Mapping[str, Any]


def _median_seconds(fn: Any, X: Any, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(X)
        samples.append(time.perf_counter() - start)
    return samples


def benchmark_fixture(
    benchmark: Any,
    session: HarnessSession,
    node: pytest.Item,
    model: str | Path,
    *,
    reference: str | Path | None = None,
    data: str | Path | None = None,
    batch_size: int = 100,
    provider: str = "cpu",
    threads: int = 1,
    rounds: int | None = None,
    trusted: Sequence[str] = (),
    trust_pickle: bool = False,
) -> BenchmarkOutcome:
    """Time ``model`` at ``batch_size`` with pytest-benchmark, the reference in the same test.

    ``harness_benchmark(model, **keywords)``: ``model`` the .onnx file. Keywords, all
    optional:

    - ``reference``: the model it was exported from (.skops), timed in the same test for
      ``speedup`` (default: none, no speed-up).
    - ``data``: the rows batches are made of, a .npy/.csv/.parquet path (default: rows
      generated for the model's input width).
    - ``batch_size``: rows per call (default 100).
    - ``provider``: "cpu", "cuda" or "tensorrt" (default "cpu"; strict: never another).
    - ``threads``: onnxruntime intra-op threads (default 1).
    - ``rounds``: timed calls (default: as many as fit in ~0.2 s, 5 to 200).
    - ``trusted``: types to trust in the .skops reference.
    - ``trust_pickle``: load a .pkl/.joblib reference (pickle runs code).

    Example::

        result = harness_benchmark("detector.onnx", reference="detector.skops", batch_size=1)
        result.speedup, result.active_provider
    """
    import pytest

    from engines import EngineConfig, OnnxEngine, SklearnEngine
    from harness.cases.usermodel import UserModelError, load_user_model
    from harness.results.schema import percentiles
    from harness.timing.prepare import BenchPoint

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    user = UserModel(
        Path(model),
        None if reference is None else Path(reference),
        None if data is None else Path(data),
        trusted=tuple(trusted),
        trust_pickle=trust_pickle,
    )
    try:
        loaded = load_user_model(user)
    except UserModelError as exc:
        pytest.fail(f"harness_benchmark: {exc}", pytrace=False)
    if loaded.model_path is None:
        pytest.fail("harness_benchmark times an .onnx model; pass the .skops as reference=")
    config = EngineConfig(
        provider=provider, intra_op_threads=threads, allow_spinning=False, collect_metrics=False
    )
    engine = OnnxEngine(loaded.model_path, config, offset=loaded.offset)  # strict provider
    info = engine.info()
    active = "+".join(info["active_providers"])
    reps = -(-batch_size // len(loaded.rows))
    X = np.ascontiguousarray(np.tile(loaded.rows, (reps, 1))[:batch_size])
    method = getattr(engine, loaded.method)
    start = time.perf_counter()
    method(X)  # warm-up, and the estimate that sets the rounds
    estimate = max(time.perf_counter() - start, 1e-6)
    n_rounds = rounds or int(min(200, max(5, 0.2 / estimate)))
    point = BenchPoint(user.label, "onnx-user", provider, batch_size, threads)
    extra: ExtraInfo = {
        "case": user.label,
        "origin": "user",
        "engine": "onnx-user",
        "provider_requested": provider,
        "provider_active": active,
        "placement": info["placement"],
        "nodes_per_provider": info["nodes_per_provider"],
        "batch_size": batch_size,
        "threads": threads,
        "model": str(user.model),
        "model_sha256": info["model_sha256"],
        "n_features": loaded.n_features,
        "estimator": loaded.estimator_name,
        "method": loaded.method,
    }
    distinct = len(np.unique(X, axis=0))
    if distinct < batch_size:  # the batch repeats rows: the report says so
        extra["distinct_rows"] = distinct
    benchmark.group = f"{user.label}-b{batch_size}-t{threads}"
    benchmark.extra_info.update(extra)
    benchmark.pedantic(method, args=(X,), rounds=n_rounds, iterations=1, warmup_rounds=1)
    stats = None if benchmark.stats is None else benchmark.stats.stats
    median = None if stats is None else float(stats.median)
    ref_median = None
    ref_samples: list[float] = []
    if loaded.estimator is not None and stats is not None:
        ref = SklearnEngine(loaded.estimator, collect_metrics=False)
        ref_call = getattr(ref, loaded.method)
        ref_call(X)
        ref_samples = _median_seconds(ref_call, X, max(5, min(n_rounds, 50)))
        ref_median = float(np.median(ref_samples))
    speedup = None if median is None or ref_median is None else ref_median / median
    if stats is not None:
        benchmark.extra_info.update(
            percentiles(stats.data),
            samples_per_s=batch_size / median if median else None,
            reference_median_s=ref_median,
            speedup_vs_sklearn=speedup,
        )
        session.stored_rows.append(_row(node.nodeid, point.id, stats.data, benchmark.extra_info))
        if ref_samples:
            ref_extra: ExtraInfo = {
                **extra,
                "engine": "sklearn",
                "provider_requested": "-",
                "provider_active": None,
                "placement": None,
                "nodes_per_provider": None,
                "model": str(user.reference),
                "model_sha256": loaded.estimator_sha256,
                "samples_per_s": batch_size / ref_median if ref_median else None,
            }
            ref_extra.update(percentiles(ref_samples))  # type: ignore[typeddict-item]
            ref_point = dataclasses.replace(point, engine="sklearn", provider="-")
            session.stored_rows.append(_row(node.nodeid, ref_point.id, ref_samples, ref_extra))
    return BenchmarkOutcome(median, ref_median, speedup, active, extra)


def _row(
    nodeid: str, point_id: str, samples: Sequence[float], extra: Mapping[str, Any]
) -> dict[str, Any]:
    data = [float(s) for s in samples]
    arr = np.asarray(data)
    return {
        "name": f"{nodeid.rpartition('::')[2].partition('[')[0]}[{point_id}]",  # the test's
        "fullname": f"{nodeid}[{point_id}]",
        "group": None,
        "stats": {
            "median": float(np.median(arr)),
            "min": float(arr.min()),
            "max": float(arr.max()),
            "mean": float(arr.mean()),
            "stddev": float(arr.std()),
            "rounds": len(arr),
            "iterations": 1,
            "data": data,
        },
        "extra_info": dict(extra),
    }


def store_rows(rows: list[dict[str, Any]], results_dir: Path, git: Mapping[str, Any]) -> list[Path]:
    """Write ``harness_benchmark`` rows as one harness result file per provider."""
    from harness.results.machine import machine_id, machine_info
    from harness.results.schema import add_speedups, extra_of, harness_block
    from harness.results.store import write_result

    add_speedups(rows)
    info = machine_info()
    machine = machine_id(info)
    asked = {extra_of(r).get("provider_requested", "-") for r in rows}
    providers = sorted(asked - {"-"}) or ["cpu"]
    paths = []
    for provider in providers:
        mine = [r for r in rows if extra_of(r).get("provider_requested") in (provider, "-")]
        payload = {
            "benchmarks": mine,
            "datetime": dt.datetime.now(dt.timezone.utc).isoformat(),
            "harness": harness_block(
                git=dict(git), profile="pytest", machine=info, provider=provider
            ),
        }
        paths.append(
            write_result(
                results_dir,
                payload,
                machine_id=machine,
                provider=provider,
                commit=git.get("commit"),
            )
        )
    return paths
