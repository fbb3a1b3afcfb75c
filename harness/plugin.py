"""The harness pytest plugin: options, the session object, and the results JSON block.

Hooks hand everything to one ``HarnessSession`` kept in ``config.stash``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pytest

from harness.bench import (
    PROFILES,
    BenchPoint,
    Runner,
    Selection,
    UserModel,
    prepare,
    split_list,
)
from harness.machine import git_info, library_versions, machine_id, machine_info
from harness.store import SCHEMA_VERSION

__all__ = ["HarnessSession", "add_selection_options", "selection_from_options"]


def add_selection_options(add: Any, prefix: str = "") -> None:
    """Declare the selection options once, for pytest (prefix 'harness-') and the CLI."""
    add(
        f"--{prefix}profile",
        choices=sorted(PROFILES),
        default="quick",
        help="quick: every case at batch 1/100/10000, best exporter; full: everything",
    )
    add(f"--{prefix}cases", default="", help="comma-separated zoo case names (default: all)")
    add(
        f"--{prefix}batch-sizes",
        default="",
        help="comma-separated batch sizes (default: profile's)",
    )
    add(f"--{prefix}threads", default="", help="comma-separated intra-op thread counts")
    add(f"--{prefix}providers", default="cpu", help="comma-separated: cpu, cuda, tensorrt")
    add(f"--{prefix}model", default=None, help="benchmark your own .onnx or .skops model")
    add(f"--{prefix}reference", default=None, help="scikit-learn reference (.skops) for --model")
    add(f"--{prefix}data", default=None, help="rows to score (.npy or .csv) for --model")
    add(f"--{prefix}n-features", type=int, default=None, help="--model input width, without --data")


def selection_from_options(get: Any) -> Selection:
    """Build a Selection from option values (``get(name)`` with dashes as underscores)."""
    model = get("model")
    user = None
    if model:
        user = UserModel(
            Path(model),
            Path(get("reference")) if get("reference") else None,
            Path(get("data")) if get("data") else None,
            get("n_features"),
        )
    return Selection(
        profile=get("profile"),
        cases=split_list(get("cases")),
        batch_sizes=split_list(get("batch_sizes"), int),
        threads=split_list(get("threads"), int),
        providers=split_list(get("providers")) or ("cpu",),
        user_model=user,
    )


class HarnessSession:
    """Selection, prepared runners (cached per point) and the temporary work folder."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.git = git_info()  # at the start: what is measured, whatever happens meanwhile
        self._runners: dict[BenchPoint, Runner] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="harness-")
        self.workdir = Path(self._tmp.name)

    def runner(self, point: BenchPoint) -> Runner:
        # Batch size and thread count do not change what is prepared for ONNX Runtime only
        # through the session options, so the cache key keeps everything but the batch.
        key = dataclasses.replace(point, batch_size=0)
        if key not in self._runners:
            self._runners[key] = prepare(point, self.selection, self.workdir)
        runner = self._runners[key]
        return dataclasses.replace(runner, point=point)

    def close(self) -> None:
        self._tmp.cleanup()


SESSION_KEY = pytest.StashKey[HarnessSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "anomaly-detection ONNX harness")

    def add(name: str, **kwargs: Any) -> None:
        group.addoption(name, dest=name.lstrip("-").replace("-", "_"), **kwargs)

    add_selection_options(add, prefix="harness-")


def pytest_configure(config: pytest.Config) -> None:
    selection = selection_from_options(lambda name: config.getoption(f"harness_{name}"))
    config.stash[SESSION_KEY] = HarnessSession(selection)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]
) -> None:
    """Add the versioned harness block and in-run speed-ups against scikit-learn."""
    session = config.stash.get(SESSION_KEY, None)
    info = machine_info()
    output_json["harness"] = {
        "schema_version": SCHEMA_VERSION,
        "machine_id": machine_id(info),
        "machine": info,
        "versions": library_versions(),
        "git": git_info() if session is None else session.git,
        "profile": None if session is None else session.selection.profile,
    }
    add_speedups(output_json.get("benchmarks", []))


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """speedup_vs_sklearn = sklearn median / row median, matched on case, batch and threads."""
    baseline = {}
    for row in rows:
        extra = row.get("extra_info", {})
        if extra.get("engine") == "sklearn":
            baseline[(extra.get("case"), extra.get("batch_size"), extra.get("threads"))] = row[
                "stats"
            ]["median"]
    for row in rows:
        extra = row.setdefault("extra_info", {})
        ref = baseline.get((extra.get("case"), extra.get("batch_size"), extra.get("threads")))
        median = row["stats"]["median"]
        extra["speedup_vs_sklearn"] = ref / median if ref and median else None


def namespace_get(args: argparse.Namespace) -> Any:
    """``get`` for selection_from_options over argparse results."""
    return lambda name: getattr(args, name)
