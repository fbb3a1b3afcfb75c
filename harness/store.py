"""The results store: pytest-benchmark JSON plus a versioned ``harness`` block.

Layout: ``results/<machine-id>/<provider>/NNNN_<commit>_<time>.json``. Files are written
atomically (temporary file, then an exclusive hard link to the final name), so an
interrupted run leaves nothing and two concurrent runs never overwrite each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from engines._io import write_temp

__all__ = [
    "SCHEMA_VERSION",
    "ResultFile",
    "ResultsError",
    "SkippedResultWarning",
    "find_results",
    "load_result",
    "load_results",
    "write_result",
]

#: Version of the ``harness`` block. Bump it when its meaning changes; the loader refuses
#: versions it does not know.
SCHEMA_VERSION = 1
_NAME = re.compile(r"^(\d{4})_([0-9a-f]{7,40}|nogit)_(\d{8}T\d{6}Z)\.json$")


class ResultsError(Exception):
    """A result file is missing, unreadable, corrupt or of an unknown schema."""


class SkippedResultWarning(UserWarning):
    """A result file in a folder was unreadable and has been skipped."""


@dataclasses.dataclass(frozen=True)
class ResultFile:
    """One stored run."""

    path: Path
    data: dict[str, Any] = dataclasses.field(repr=False)

    @property
    def harness(self) -> dict[str, Any]:
        block: dict[str, Any] = self.data["harness"]
        return block

    @property
    def benchmarks(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.data.get("benchmarks", [])
        return rows

    @property
    def label(self) -> str:
        h = self.harness
        return f"{h.get('machine_id')}/{h.get('provider')}/{self.path.name}"


def _stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def _next_number(folder: Path) -> int:
    numbers = [int(m.group(1)) for p in folder.glob("*.json") if (m := _NAME.match(p.name))]
    return max(numbers, default=0) + 1


def write_result(
    results_dir: str | Path,
    data: dict[str, Any],
    *,
    machine_id: str,
    provider: str,
    commit: str | None,
) -> Path:
    """Store ``data`` (pytest-benchmark JSON with a ``harness`` block) under its machine and
    provider, atomically and without ever replacing another run's file."""
    if data.get("harness", {}).get("schema_version") != SCHEMA_VERSION:
        raise ResultsError(
            f"refusing to write a result without harness.schema_version={SCHEMA_VERSION}"
        )
    folder = Path(results_dir) / machine_id / provider
    folder.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data, indent=1, sort_keys=True, default=str).encode()
    tmp = write_temp(folder, payload)
    try:
        short = (commit or "nogit")[:12]
        for _ in range(1000):
            final = folder / f"{_next_number(folder):04d}_{short}_{_stamp()}.json"
            try:
                os.link(tmp, final)  # fails if the name exists: a concurrent run took it
            except FileExistsError:
                continue
            return final
        raise ResultsError(f"could not find a free result name in {folder}")
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_result(path: str | Path) -> ResultFile:
    """Read and check one result file; ResultsError says what is wrong and what to do."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read result file ({exc.strerror})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); the file is truncated or "
            "was edited by hand: delete it or restore it from git"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("harness"), dict):
        raise ResultsError(
            f"{path}: no 'harness' block: this is not a harness result (plain pytest-benchmark "
            "JSON can be imported with `harness run` output only)"
        )
    version = data["harness"].get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(
            f"{path}: schema_version {version!r} is not known to this harness (it reads "
            f"{SCHEMA_VERSION}); upgrade the harness (pip install -U onnx-anomaly-harness) or "
            "re-run the benchmarks to regenerate the file"
        )
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, list) or not all(
        isinstance(b, dict) and isinstance(b.get("stats"), dict) and "name" in b for b in benchmarks
    ):
        raise ResultsError(f"{path}: 'benchmarks' must be a list of rows with 'name' and 'stats'")
    return ResultFile(path, data)


def find_results(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Result files named directly, or found under folders (recursively), sorted."""
    for item in paths:
        item = Path(item)
        if item.is_dir():
            yield from sorted(p for p in item.rglob("*.json") if not p.name.startswith("."))
        else:
            yield item


def load_results(paths: Iterable[str | Path], *, strict: bool = False) -> list[ResultFile]:
    """Load every result under ``paths``; unreadable files are skipped with a warning
    (``strict=True`` raises instead)."""
    loaded = []
    for path in find_results(paths):
        try:
            loaded.append(load_result(path))
        except ResultsError as exc:
            if strict:
                raise
            warnings.warn(f"skipped: {exc}", SkippedResultWarning, stacklevel=2)
    return loaded
