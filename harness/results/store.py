"""The results store: pytest-benchmark JSON plus a versioned ``harness`` block.

Layout: ``results/<machine-id>/<provider>/NNNN_<commit>_<time>.json``. Files are written
atomically (temporary file, then an exclusive hard link to the final name), so an
interrupted write leaves nothing and two concurrent runs never overwrite each other nor share
a run number (a number is reserved before it is used; past 9999 numbers grow a digit and
still sort in run order). A run that did not finish is stored marked ``interrupted``, and
readers leave it out unless asked.

Every reader (gate, report, history, compare) loads files through :func:`scan_results`: one
loader that checks every field the readers use, so a malformed file is skipped (or refused
by the gate) with its path and the field, never a traceback.

Plain pytest-benchmark JSON (``--benchmark-json``, no ``harness`` block) is read too: its rows
are keyed by their ``fullname``, its machine comes from ``machine_info`` and it has no provider.

What makes two rows the same benchmark lives here, in one place (:func:`benchmark_key`,
:func:`match`), for compare, gate, report and history alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import re
import stat
import statistics
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from engines._io import write_temp
from harness.results.schema import SCHEMA_VERSION, YARDSTICK, benchmark_id

__all__ = [
    "IDENTITY_FIELDS",
    "MAX_RESULT_BYTES",
    "MODEL_FIELDS",
    "SCHEMA_VERSION",
    "BenchmarkKey",
    "Matches",
    "ModelChange",
    "NotAResultError",
    "OutputError",
    "Pair",
    "ResultFile",
    "ResultsError",
    "RowGroup",
    "Scan",
    "SkippedResultWarning",
    "benchmark_key",
    "check_output_file",
    "check_output_folder",
    "describe_identity",
    "find_results",
    "group_rows",
    "identity_labels",
    "keep_somewhere",
    "keyed_rows",
    "load_result",
    "load_results",
    "match",
    "pooled_median",
    "pooled_samples",
    "result_order",
    "run_order",
    "scan_results",
    "write_result",
]

#: A stored run's name: harness (``NNNN_<commit>_<time>.json``) or pytest-benchmark storage.
_NUMBERED = re.compile(r"^(\d{4,})_.*\.json$")


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
    def plain(self) -> bool:
        """True for plain pytest-benchmark JSON (no ``harness`` block)."""
        return "harness" not in self.data

    @property
    def harness(self) -> dict[str, Any]:
        """The ``harness`` block; for a plain file, one derived from ``machine_info``."""
        if self.plain:
            return _plain_block(self.data)
        block: dict[str, Any] = self.data["harness"]
        return block

    @property
    def benchmarks(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.data.get("benchmarks", [])
        return rows

    @property
    def interrupted(self) -> bool:
        """True for a run that did not finish (stored marked ``harness.interrupted``)."""
        return not self.plain and self.harness.get("interrupted") is True

    @property
    def label(self) -> str:
        h = self.harness
        mark = " (interrupted)" if self.interrupted else ""
        return f"{h.get('machine_id')}/{h.get('provider')}/{self.path.name}{mark}"


def _stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def _numbers(folder: Path) -> set[int]:
    return {int(m.group(1)) for p in folder.glob("*.json") if (m := _NUMBERED.match(p.name))}


def _reserve(folder: Path, number: int) -> Path | None:
    """Reserve a run number (an exclusively created marker), None if another writer holds it."""
    marker = folder / f".{number:04d}.reserved"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return None
    return marker


def write_result(
    results_dir: str | Path,
    data: dict[str, Any],
    *,
    machine_id: str,
    provider: str,
    commit: str | None,
) -> Path:
    """Store ``data`` (pytest-benchmark JSON with a ``harness`` block) under its machine and
    provider, atomically, with a run number no other file has, never replacing another file.

    A number is first reserved (a marker only one writer can create), then checked unused,
    then the file is linked under it: two writers never share a number, and ``10000_...``
    follows ``9999_...`` (see :func:`run_order`).
    """
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
        number = max(_numbers(folder), default=0) + 1
        for _ in range(1000):
            marker = _reserve(folder, number)
            if marker is None:  # another writer is using this number now
                number += 1
                continue
            try:
                taken = _numbers(folder)
                if number in taken:  # used (and released) before we reserved it
                    number = max(taken) + 1
                    continue
                final = folder / f"{number:04d}_{short}_{_stamp()}.json"
                os.link(tmp, final)  # exclusive: never replaces a file
                return final
            except FileExistsError:
                number += 1
            finally:
                marker.unlink(missing_ok=True)
        raise ResultsError(f"could not find a free result name in {folder}")
    finally:
        Path(tmp).unlink(missing_ok=True)


class OutputError(Exception):
    """An output location (``--out``, ``--results``, ``--json``...) cannot be written."""


def check_output_folder(folder: str | Path, what: str) -> Path:
    """Create ``folder`` and prove it writable now, before any work; OutputError if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = write_temp(folder, b"", prefix=".harness-probe-")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{what} {folder} is not writable: {exc.strerror or exc}") from None
    return folder


def check_output_file(path: str | Path, what: str, *, atomic: bool = False) -> Path:
    """Prove ``path`` writable now (its folder created), before any work; OutputError if not.

    ``atomic``: the file is written by a rename (temporary file, then replace), so it must be
    a regular file or not exist yet, and its folder writable. Otherwise it is opened and
    written in place, so a device such as ``/dev/stdout`` is fine.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise OutputError(f"{what} {path} is a folder; give a file name")
        if atomic and path.exists() and not path.is_file():
            raise OutputError(f"{what} {path} is not a regular file (it is replaced when written)")
        if atomic or not path.exists():
            check_output_folder(path.parent, what)
        if path.exists():
            with open(path, "ab"):
                pass
    except OSError as exc:
        raise OutputError(f"{what} {path} is not writable: {exc.strerror or exc}") from None
    return path


def keep_somewhere(payload: bytes, name: str) -> Path | None:
    """Keep ``payload`` in a new file when its destination failed (full disk, lost mount):
    the temporary folder, else the current folder, else home. None if nowhere would take it."""
    for folder in (Path(tempfile.gettempdir()), Path.cwd(), Path.home()):
        try:
            fd, kept = tempfile.mkstemp(prefix=f"{name}-", suffix=".json", dir=folder)
        except OSError:
            continue
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
        except OSError:
            with contextlib.suppress(OSError):
                Path(kept).unlink()
            continue
        return Path(kept)
    return None


#: A result file larger than this is refused unread (raw samples of a full run are ~20 MB).
MAX_RESULT_BYTES = 256 * 2**20
#: JSON nested deeper than this is not a result file (results nest about 6 levels).
_MAX_DEPTH = 64
_FIX = "restore it from git, delete it, or re-run the benchmarks to regenerate it"


class _Bad(Exception):
    """One field of a result file is wrong: where (a JSON path) and what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where} {problem}")
        self.where, self.problem = where, problem


class NotAResultError(ResultsError):
    """Valid JSON that does not claim to be a result (``calibration.json``, a report's JSON)."""


def _read(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_RESULT_BYTES (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read result file ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ResultsError(f"{path}: not a regular file; give a result file or a folder")
        if info.st_size > MAX_RESULT_BYTES:
            raise ResultsError(
                f"{path}: {info.st_size:,} bytes, more than a result file's "
                f"{MAX_RESULT_BYTES:,}: not a result file"
            )
        try:
            return handle.read(MAX_RESULT_BYTES + 1)
        except OSError as exc:
            raise ResultsError(f"{path}: cannot read result file ({exc.strerror or exc})") from None


def _parse(path: Path, raw: bytes) -> Any:
    """JSON from UTF-8 bytes; every way it can fail is a ResultsError naming the file."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ResultsError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): not a "
            f"result file, or a damaged one; {_FIX}"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); the file is truncated or "
            f"was edited by hand: {_FIX}"
        ) from None
    except RecursionError:
        raise ResultsError(f"{path}: JSON nested too deeply to be a result file; {_FIX}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ResultsError(f"{path}: not a result file ({exc}); {_FIX}") from None
    if _depth(data) > _MAX_DEPTH:
        raise ResultsError(
            f"{path}: JSON nested more than {_MAX_DEPTH} levels deep (a result file nests about "
            f"6): not a result file; {_FIX}"
        )
    return data


def _depth(value: Any) -> int:
    """How deeply ``value`` nests, counted up to ``_MAX_DEPTH + 1`` (iteratively: a deep value
    must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= _MAX_DEPTH:
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, level + 1) for child in children)
    return deepest


def load_result(path: str | Path) -> ResultFile:
    """Read and check one result file; ResultsError says which field is wrong and what to do.

    Everything the readers (gate, report, history, compare) use is checked here, once: its
    type, timings finite and > 0, counts >= 1. A file that passes cannot crash them.
    """
    path = Path(path)
    data = _parse(path, _read(path))
    if not isinstance(data, dict) or not {"harness", "benchmarks", "machine_info"} & set(data):
        what = "an object" if isinstance(data, dict) else f"a JSON {_kind(data)}"
        raise NotAResultError(
            f"{path}: no 'harness' block and not pytest-benchmark JSON (the top level is {what} "
            "without 'benchmarks'): give a file written by `harness run` or "
            "`pytest --benchmark-json`"
        )
    if "harness" in data:
        if not isinstance(data["harness"], dict):
            raise ResultsError(
                f"{path}: the 'harness' block must be an object, got {_show(data['harness'])}; "
                + _FIX
            )
        version = data["harness"].get("schema_version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise ResultsError(
                f"{path}: schema_version {_show(version)} is not known to this harness (it reads "
                f"{SCHEMA_VERSION}); upgrade the harness (pip install -U onnx-anomaly-harness) or "
                "re-run the benchmarks to regenerate the file"
            )
    elif not isinstance(data.get("machine_info"), dict) or "benchmarks" not in data:
        raise ResultsError(
            f"{path}: no 'harness' block and not pytest-benchmark JSON (it needs 'machine_info' "
            "and 'benchmarks'): give a file written by `harness run` or `pytest --benchmark-json`"
        )
    try:
        _check_file(data)
    except _Bad as bad:
        raise ResultsError(f"{path}: {bad.where} {bad.problem}; {_FIX}") from None
    return ResultFile(path, data)


# -- what a result file must hold -----------------------------------------------------------


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _show(value: Any) -> str:
    text = json.dumps(value) if _depth(value) <= 3 else f"<a JSON {_kind(value)}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _real(value: Any) -> bool:
    """A number a float can hold (NaN and infinities too: a measured error may be either)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:  # an integer beyond float's range
        return False
    return True


def _finite(value: Any) -> bool:
    return _real(value) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _finite(value) and value > 0


def _non_negative(value: Any) -> bool:
    return _finite(value) and value >= 0


def _count(value: Any) -> bool:
    return _whole(value) and value >= 1


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _object_or_none(value: Any) -> bool:
    return value is None or isinstance(value, dict)


_Check = Callable[[Any], bool]  # one of the predicates above, described here
_WHAT: dict[_Check, str] = {
    _real: "a number",
    _finite: "a finite number",
    _positive: "a finite number > 0",
    _non_negative: "a finite number >= 0",
    _count: "an integer >= 1",
    _whole: "an integer >= 0",
    _text: "a string",
    _object_or_none: "an object",
}


def _need(container: dict[str, Any], key: str, where: str, check: _Check, *, optional: bool) -> Any:
    """``container[key]`` if it passes ``check``; absent or null passes where ``optional``."""
    value = container.get(key)
    if value is None and optional:
        return None
    if key not in container:
        raise _Bad(f"{where}.{key}", f"is missing (it must be {_WHAT[check]})")
    if not check(value):
        raise _Bad(f"{where}.{key}", f"must be {_WHAT[check]}, got {_show(value)}")
    return value


def _need_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(where, f"must be an object, got {_show(value)}")
    return value


def _need_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Bad(where, f"must be an array, got {_show(value)}")
    return value


#: Harness ``extra_info`` fields the readers format or key on, with what each must be.
_EXTRA_OPTIONAL: dict[str, _Check] = {
    "origin": _text,
    "model_sha256": _text,
    "n_features": _count,
    "estimator": _text,
    "provider_active": _text,
    "provider_requested": _text,
    "parity": _text,
    "exporter": _text,
    "parity_max_abs_err": _real,
    "parity_label_agreement": _real,
    "p50_ms": _non_negative,
    "p90_ms": _non_negative,
    "p99_ms": _non_negative,
    "samples_per_s": _non_negative,
    "speedup_vs_sklearn": _positive,
    "speedup_vs_sklearn_best": _positive,
    "sklearn_best_threads": _count,
    "scaling_efficiency": _positive,
    "n_jobs": _count,
    "distinct_rows": _count,
}
#: The fields of a harness row's id (see :func:`benchmark_key`): without them rows would pool.
_EXTRA_REQUIRED: dict[str, _Check] = {
    "case": _text,
    "engine": _text,
    "batch_size": _count,
    "threads": _count,
}
_STATS_OPTIONAL: dict[str, _Check] = {
    "min": _positive,
    "max": _positive,
    "mean": _positive,
    "stddev": _non_negative,
    "iqr": _non_negative,
    "ops": _non_negative,
    "rounds": _count,
}
_HARNESS_OPTIONAL: dict[str, _Check] = {
    "machine_id": _text,
    "provider": _text,
    "profile": _text,
    "machine": _object_or_none,
    "versions": _object_or_none,
    "git": _object_or_none,
    "seconds": _non_negative,
}


def _iso_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_file(data: dict[str, Any]) -> None:
    """Raise _Bad for the first field the readers could not use."""
    plain = "harness" not in data
    if plain:
        _need(data, "commit_info", "", _object_or_none, optional=True)
    else:
        _check_harness(data["harness"])
    moment = data.get("datetime")
    if moment is None and plain:  # a harness file's run order is its run number
        raise _Bad(
            "datetime",
            "is missing: pytest-benchmark writes when the run was made, and a plain file's "
            "place in run order (history, the report's latest run) is read from it",
        )
    if moment is not None and not _iso_time(moment):
        raise _Bad(
            "datetime",
            f"must be an ISO 8601 time such as 2026-11-25T09:00:00+00:00, got {_show(moment)}",
        )
    rows = _need_list(data.get("benchmarks"), "benchmarks")
    for i, row in enumerate(rows):
        _check_row(row, f"benchmarks[{i}]", plain=plain)


def _check_harness(block: dict[str, Any]) -> None:
    where = "harness"
    for key, check in _HARNESS_OPTIONAL.items():
        _need(block, key, where, check, optional=True)
    machine = block.get("machine") or {}
    _need(machine, "cgroup_cpu_quota", "harness.machine", _positive, optional=True)
    _need(machine, "memory_bytes", "harness.machine", _non_negative, optional=True)
    _need(block.get("git") or {}, "commit", "harness.git", _text, optional=True)
    for key in ("paired", "interrupted"):
        if not isinstance(block.get(key, False), bool):
            raise _Bad(f"harness.{key}", f"must be true or false, got {_show(block[key])}")
    for i, entry in enumerate(_need_list(block.get("skipped", []), "harness.skipped")):
        entry = _need_object(entry, f"harness.skipped[{i}]")
        for key in ("id", "reason"):
            _need(entry, key, f"harness.skipped[{i}]", _text, optional=False)
    conformance = _need_list(block.get("conformance", []), "harness.conformance")
    for i, entry in enumerate(conformance):
        _check_conformance(_need_object(entry, f"harness.conformance[{i}]"), i)
    if block.get("parity") is not None:
        _check_parity(_need_object(block["parity"], "harness.parity"))
    for i, entry in enumerate(_need_list(block.get("cold_start", []), "harness.cold_start")):
        where_i = f"harness.cold_start[{i}]"
        entry = _need_object(entry, where_i)
        for key, (check, optional) in _COLD_START.items():
            _need(entry, key, where_i, check, optional=optional)


#: A ``harness.cold_start`` entry (harness.timing.coldstart): field -> (check, optional).
#: Numbers are null where the measurement failed (``error`` says why).
_COLD_START: dict[str, tuple[_Check, bool]] = {
    "case": (_text, False),
    "engine": (_text, False),
    "provider": (_text, True),
    "exporter": (_text, True),
    "model_sha256": (_text, True),
    "onnxruntime": (_text, True),
    "error": (_text, True),
    "threads": (_count, True),
    "bytes": (_whole, True),
    "nodes": (_whole, True),
    "function_nodes": (_whole, True),
    "session_creations": (_count, True),
    "rss_after_import_bytes": (_whole, True),
    "peak_rss_bytes": (_whole, True),
    "export_seconds": (_non_negative, True),
    "import_seconds": (_non_negative, True),
    "session_seconds_first": (_non_negative, True),
    "session_seconds_median": (_non_negative, True),
    "first_call_seconds": (_non_negative, True),
}

_CONFORMANCE: dict[str, tuple[_Check, bool]] = {  # field: (check, optional)
    "case": (_text, False),
    "engine": (_text, False),
    "check": (_text, False),
    "status": (_text, False),
    "examples": (_whole, False),
    "measured": (_real, True),
    "message": (_text, False),
}


def _check_conformance(entry: dict[str, Any], i: int) -> None:
    where = f"harness.conformance[{i}]"
    known = {*_CONFORMANCE, "minimal_input"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise _Bad(f"{where}.{unknown[0]}", "is not a field of a conformance row")
    for key, (check, optional) in _CONFORMANCE.items():
        value = entry.get(key)
        if value is None and optional:
            continue
        if key not in entry or not check(value):
            raise _Bad(f"{where}.{key}", f"must be {_WHAT[check]}, got {_show(value)}")
    minimal = entry.get("minimal_input")
    if minimal is not None and not (
        isinstance(minimal, list)
        and all(isinstance(r, list) and all(_real(x) for x in r) for r in minimal)
    ):
        raise _Bad(f"{where}.minimal_input", "must be rows of numbers or null")


def _check_parity(parity: dict[str, Any]) -> None:
    _need(parity, "model", "harness.parity", _text, optional=False)
    for i, outcome in enumerate(_need_list(parity.get("outcomes", []), "harness.parity.outcomes")):
        outcome = _need_object(outcome, f"harness.parity.outcomes[{i}]")
        _need(outcome, "measured", f"harness.parity.outcomes[{i}]", _real, optional=True)


def _check_row(row: Any, where: str, *, plain: bool) -> None:
    row = _need_object(row, where)
    _need(row, "name", where, _text, optional=False)
    _need(row, "fullname", where, _text, optional=True)
    if "stats" not in row:
        raise _Bad(f"{where}.stats", "is missing (pytest-benchmark's statistics of the row)")
    stats = _need_object(row["stats"], f"{where}.stats")
    _need(stats, "median", f"{where}.stats", _positive, optional=False)
    for key, check in _STATS_OPTIONAL.items():
        _need(stats, key, f"{where}.stats", check, optional=True)
    samples = stats.get("data")
    if samples is not None:
        for j, x in enumerate(_need_list(samples, f"{where}.stats.data")):
            if not _positive(x):
                raise _Bad(f"{where}.stats.data[{j}]", f"must be a finite time > 0, got {_show(x)}")
    if "extra_info" in row and not isinstance(row["extra_info"], dict):
        raise _Bad(f"{where}.extra_info", f"must be an object, got {_show(row['extra_info'])}")
    extra = row.get("extra_info", {})
    # a plain row's extra_info is its author's: only the fields that make its key are checked
    checks = (
        {k: _EXTRA_OPTIONAL[k] for k in (*IDENTITY_FIELDS, "provider_requested")}
        if plain
        else _EXTRA_OPTIONAL
    )
    for key, check in checks.items():
        _need(extra, key, f"{where}.extra_info", check, optional=True)
    if not plain:
        for key, check in _EXTRA_REQUIRED.items():
            _need(extra, key, f"{where}.extra_info", check, optional=False)


def run_order(path: Path) -> tuple[str, int, str]:
    """Sort key of result files: folder, then run number (``NNNN_``, any number of digits:
    ``10000_`` follows ``9999_``), then name."""
    m = _NUMBERED.match(path.name)
    return path.parent.as_posix(), int(m.group(1)) if m else -1, path.name


def result_order(result: ResultFile) -> tuple[int, float, str, int, str]:
    """Sort key of loaded runs. Harness results: ``run_order`` (folder, then run number).
    Plain pytest-benchmark files: when the run was made (the ``datetime`` pytest-benchmark
    writes), whatever folder or name they have: users name them as they like (``z_monday``
    before ``a_tuesday``, one folder per CI job), so names say nothing of their order. Plain
    files come first. The loader refuses a plain file without a readable ``datetime``; one
    made in memory without it comes first among them."""
    folder, number, name = run_order(result.path)
    if not result.plain:
        return 1, 0.0, folder, number, name
    try:
        moment = dt.datetime.fromisoformat(str(result.data.get("datetime")))
    except ValueError:
        return 0, float("-inf"), folder, number, name
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return 0, moment.timestamp(), folder, number, name


def find_results(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Result files named directly, or found under folders (recursively), in run order."""
    for item in paths:
        item = Path(item)
        if item.is_dir():
            found = (p for p in item.rglob("*.json") if not p.name.startswith("."))
            yield from sorted((p for p in found if not p.is_dir()), key=run_order)
        else:
            yield item


@dataclasses.dataclass
class Scan:
    """What :func:`scan_results` found: results, unreadable files skipped (path, reason) and
    files ignored on purpose (path, why): interrupted runs, JSON that is no result."""

    results: list[ResultFile]
    skipped: list[tuple[Path, str]]
    ignored: list[tuple[Path, str]]


def scan_results(paths: Iterable[str | Path], *, include_interrupted: bool = False) -> Scan:
    """Load every result under ``paths``: the one loader behind gate, report, history, compare.

    A file that cannot be read or checked is skipped with the reason. Inside folders, JSON that
    does not claim to be a result (``calibration.json``, no ``benchmarks``/``harness``) is
    ignored unless named like a stored run (``NNNN_...json``). Runs marked ``interrupted`` are
    ignored unless ``include_interrupted``.

    Example::

        scan = scan_results(["results/"])
        scan.results, scan.skipped, scan.ignored
    """
    scan = Scan([], [], [])
    for item in paths:
        named = not Path(item).is_dir()
        for path in find_results([item]):
            try:
                result = load_result(path)
            except NotAResultError as exc:
                if named or _NUMBERED.match(path.name):
                    scan.skipped.append((path, _reason(exc, path)))
                else:
                    scan.ignored.append((path, "not a result file"))
                continue
            except ResultsError as exc:
                scan.skipped.append((path, _reason(exc, path)))
                continue
            if result.interrupted and not include_interrupted:
                scan.ignored.append((path, "an interrupted run (--include-interrupted reads it)"))
                continue
            scan.results.append(result)
    return scan


def _reason(exc: ResultsError, path: Path) -> str:
    return str(exc).removeprefix(f"{path}: ")


def load_results(
    paths: Iterable[str | Path], *, strict: bool = False, include_interrupted: bool = False
) -> list[ResultFile]:
    """Load every result under ``paths`` (see :func:`scan_results`); unreadable files are
    skipped with a warning (``strict=True`` raises instead)."""
    scan = scan_results(paths, include_interrupted=include_interrupted)
    for path, reason in scan.skipped:
        if strict:
            raise ResultsError(f"{path}: {reason}")
        warnings.warn(f"skipped: {path}: {reason}", SkippedResultWarning, stacklevel=2)
    return scan.results


# -- plain pytest-benchmark JSON ----------------------------------------------------------


def _slug(text: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text or "").lower()).strip("-")[:40]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _plain_machine_id(info: dict[str, Any]) -> str:
    """A folder-safe machine name from pytest-benchmark's ``machine_info``: CPU brand and
    count (like :func:`harness.results.machine.machine_id`), else the host name."""
    cpu = _object(info.get("cpu"))
    brand = _slug(cpu.get("brand_raw") or cpu.get("brand"))
    count = cpu.get("count")
    if brand:
        return f"{brand}-{count}c" if isinstance(count, int) else brand
    return _slug(info.get("node")) or "unknown-machine"


def _plain_block(data: dict[str, Any]) -> dict[str, Any]:
    """What a ``harness`` block would say about a plain pytest-benchmark file."""
    info = _object(data.get("machine_info"))
    cpu = _object(info.get("cpu"))
    commit = _object(data.get("commit_info"))
    return {
        "machine_id": _plain_machine_id(info),
        "provider": "-",
        "machine": {
            "cpu_model": cpu.get("brand_raw") or cpu.get("brand") or info.get("processor"),
            "cores": cpu.get("count"),
        },
        "versions": {
            "python": info.get("python_version"),
            "pytest-benchmark": data.get("version"),
        },
        "git": {"commit": commit.get("id"), "dirty": commit.get("dirty")},
        "profile": None,
    }


# -- what identifies a benchmark ----------------------------------------------------------

#: ``extra_info`` fields that must agree, where both rows have a value, for two rows with the
#: same id to be compared. ``model_sha256`` counts for user models only (``origin: user``): a
#: zoo case is its name, and its exported bytes change whenever an exporter does.
IDENTITY_FIELDS = ("origin", "model_sha256", "n_features", "estimator", "provider_active")
#: The fields a model change may change (``model_change="compare"`` pairs across them).
MODEL_FIELDS = frozenset({"model_sha256", "n_features", "estimator"})
#: What to do with a user model whose file changed under the same name.
ModelChange = Literal["refuse", "compare"]


@dataclasses.dataclass(frozen=True)
class BenchmarkKey:
    """What one row measures. Rows pair on ``(plain, id)``; their ``identity`` must then agree.

    Harness rows: ``id`` is ``case[engine-provider]-bBATCH-tTHREADS`` (no ``-provider`` for
    scikit-learn and torch rows), ``name`` the same without the provider. Plain pytest-benchmark
    rows: ``name`` is the row's ``fullname``, ``id`` the same with ``@provider`` where the row's
    ``extra_info`` names a provider (``harness_benchmark`` rows do); otherwise the provider is
    ``-``.
    """

    id: str
    name: str
    provider: str = "-"
    case: str | None = None
    engine: str | None = None
    batch_size: int | None = None
    threads: int | None = None
    plain: bool = False
    identity: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    @property
    def yardstick(self) -> tuple[Any, ...]:
        """Where this row's speed-up yardstick is (``harness.results.schema.YARDSTICK``)."""
        return tuple(getattr(self, name) for name in YARDSTICK)

    @property
    def pairs_on(self) -> tuple[bool, str, str]:
        """Rows pair when this is equal: the id, and the provider (in a harness id already)."""
        return self.plain, self.id, self.provider


def benchmark_key(
    row: dict[str, Any], *, plain: bool = False, provider: str | None = None
) -> BenchmarkKey:
    """The key of one benchmark row; ``plain`` for rows of a plain pytest-benchmark file.

    ``provider``: the provider of the file the row comes from, for a harness row that names
    none itself (``provider_requested``): such rows of a CPU file and of a CUDA file must not
    pool. A row's own ``provider_requested`` (``-`` for scikit-learn) always wins.
    """
    extra = row.get("extra_info") or {}
    origin = extra.get("origin") or (None if plain else "zoo")
    identity = {
        field: extra[field]
        for field in IDENTITY_FIELDS
        if extra.get(field) is not None and (field != "model_sha256" or origin == "user")
    }
    fallback = "-" if plain or provider is None else provider
    provider = str(extra.get("provider_requested") or fallback)
    if plain:
        name = str(row.get("fullname") or row["name"])
        at = "" if provider == "-" else f"@{provider}"
        return BenchmarkKey(
            id=name + at, name=name, provider=provider, plain=True, identity=identity
        )
    if origin is not None:
        identity["origin"] = origin
    case, engine = extra.get("case"), extra.get("engine")
    batch, threads = extra.get("batch_size"), extra.get("threads")
    return BenchmarkKey(
        id=benchmark_id(case, engine, provider, batch, threads),
        name=benchmark_id(case, engine, "-", batch, threads),
        provider=provider,
        case=case,
        engine=engine,
        batch_size=batch,
        threads=threads,
        identity=identity,
    )


def keyed_rows(results: Iterable[ResultFile]) -> list[tuple[BenchmarkKey, dict[str, Any]]]:
    """Every row of ``results`` with its key."""
    return [
        (benchmark_key(row, plain=r.plain, provider=r.harness.get("provider")), row)
        for r in results
        for row in r.benchmarks
    ]


def _short(value: Any) -> str:
    return f"{str(value)[:8]}…"


def _difference(field: str, a: Any, b: Any) -> str:
    if field == "model_sha256":
        return f"model sha256 differs: {_short(a)}→{_short(b)}"
    if field == "n_features":
        return f"input width {a} vs {b}"
    if field == "provider_active":
        return f"active provider {a} vs {b}"
    return f"{field} {a} vs {b}"


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) for each identity field set on both sides with different values."""
    return [
        (field, _difference(field, a[field], b[field]))
        for field in IDENTITY_FIELDS
        if field in a and field in b and a[field] != b[field]
    ]


def describe_identity(identity: dict[str, Any], fields: Iterable[str] = IDENTITY_FIELDS) -> str:
    """A short label, e.g. ``IsolationForest, 25 features, sha256 3fa2b1c0…``."""
    shown = set(fields)
    parts = {
        "origin": f"{identity.get('origin')} model",
        "estimator": str(identity.get("estimator")),
        "n_features": f"{identity.get('n_features')} features",
        "model_sha256": f"sha256 {_short(identity.get('model_sha256'))}",
        "provider_active": f"on {identity.get('provider_active')}",
    }
    return (
        ", ".join(p for f, p in parts.items() if f in shown and identity.get(f) is not None) or "-"
    )


def identity_labels(identities: Sequence[dict[str, Any]]) -> list[str]:
    """Labels that tell apart benchmarks sharing one name: only the fields that vary."""
    varying = [f for f in IDENTITY_FIELDS if len({repr(i.get(f)) for i in identities}) > 1]
    return [describe_identity(i, varying) for i in identities]


@dataclasses.dataclass
class RowGroup:
    """Rows of one benchmark whose identities agree (runs to pool), in the order seen."""

    key: BenchmarkKey
    identity: dict[str, Any]
    rows: list[dict[str, Any]]


def group_rows(keyed: Iterable[tuple[BenchmarkKey, dict[str, Any]]]) -> list[RowGroup]:
    """Group rows by key, splitting a key whose rows' identities disagree. A row equal to one
    already in its group (a scikit-learn row stored in each provider's file) is kept once."""
    groups: dict[tuple[bool, str, str], list[RowGroup]] = {}
    for key, row in keyed:
        candidates = groups.setdefault(key.pairs_on, [])
        for group in candidates:
            if not _differences(group.identity, key.identity):
                group.identity.update(key.identity)
                if row not in group.rows:
                    group.rows.append(row)
                break
        else:
            candidates.append(RowGroup(key, dict(key.identity), [row]))
    return [group for found in groups.values() for group in found]


class Pair(NamedTuple):
    """One benchmark found on both sides; ``note`` says what changed if pairing was allowed
    across a model change."""

    key: BenchmarkKey
    rows_a: list[dict[str, Any]]
    rows_b: list[dict[str, Any]]
    note: str = ""


class Matches(NamedTuple):
    """Pairs, ids found on one side only, and (name, reason) for what must not be compared;
    of those, the ids not compared because the model changed between the sides
    (``changed_models``: ``model_change="compare"`` pairs them) or because a side holds runs of
    several models under the id (``mixed_models``)."""

    matched: list[Pair]
    only_a: list[str]
    only_b: list[str]
    not_comparable: list[tuple[str, str]]
    changed_models: tuple[str, ...] = ()
    mixed_models: tuple[str, ...] = ()


def _narrowed(ga: list[RowGroup], gb: list[RowGroup], label: str) -> tuple[list[RowGroup], str]:
    """Side A's groups of one id, narrowed to the one whose model is side B's single model
    (a baseline folder that spans a model change), with a note saying so; else unchanged."""
    if len(ga) < 2 or len(gb) != 1:
        return ga, ""
    same = [g for g in ga if not _differences(g.identity, gb[0].identity)]
    if len(same) != 1:
        return ga, ""
    others = sum(len(g.rows) for g in ga if g is not same[0])
    return same, (
        f"{label}: the {len(same[0].rows)} run(s) of this model only, {others} of another model "
        "left out"
    )


def match(
    a: Iterable[tuple[BenchmarkKey, dict[str, Any]]],
    b: Iterable[tuple[BenchmarkKey, dict[str, Any]]],
    *,
    model_change: ModelChange = "refuse",
    labels: tuple[str, str] = ("A", "B"),
    narrow_a: bool = False,
) -> Matches:
    """Pair the benchmarks of two sides (keyed rows, see :func:`keyed_rows`).

    Rows pair on their id (provider included: providers are never pooled). A pair whose
    identities differ (model sha256 of a user model, input width, estimator, active provider,
    origin) is not comparable, with the reason; ``model_change="compare"`` pairs across model
    differences instead and notes them. Ids on one side only that differ from the other side's
    by the provider alone are listed as not comparable too. ``narrow_a``: where A holds runs of
    several models under one id and B one, only A's runs of B's model are pooled (noted), as
    the gate does with a baseline folder that spans a model change.
    """
    if model_change not in ("refuse", "compare"):
        raise ValueError(f"model_change must be 'refuse' or 'compare', got {model_change!r}")
    sides: list[dict[tuple[bool, str, str], list[RowGroup]]] = [{}, {}]
    for side, keyed in zip(sides, (a, b), strict=True):
        for group in group_rows(keyed):
            side.setdefault(group.key.pairs_on, []).append(group)
    pools_a, pools_b = sides
    allowed = MODEL_FIELDS if model_change == "compare" else frozenset()
    matched: list[Pair] = []
    not_comparable: list[tuple[str, str]] = []
    changed: list[str] = []
    mixed_models: list[str] = []
    for k in sorted(pools_a.keys() & pools_b.keys()):
        ga, gb = pools_a[k], pools_b[k]
        narrowed = ""
        if narrow_a:
            ga, narrowed = _narrowed(ga, gb, labels[0])
        mixed = [
            (label, _differences(groups[0].identity, groups[1].identity))
            for label, groups in zip(labels, (ga, gb), strict=True)
            if len(groups) > 1
        ]
        if mixed:
            reasons = [
                f"the {label} holds runs that differ (" + "; ".join(r for _, r in diff) + ")"
                for label, diff in mixed
            ]
            not_comparable.append((k[1], "; ".join(reasons)))
            if any(field in MODEL_FIELDS for _, diff in mixed for field, _ in diff):
                mixed_models.append(k[1])
            continue
        differences = _differences(ga[0].identity, gb[0].identity)
        if any(field not in allowed for field, _ in differences):
            not_comparable.append((k[1], "; ".join(r for _, r in differences)))
            if all(field in MODEL_FIELDS for field, _ in differences):
                changed.append(k[1])
            continue
        note = "model changed: " + "; ".join(r for _, r in differences) if differences else ""
        note = "; ".join(n for n in (note, narrowed) if n)
        matched.append(Pair(ga[0].key, ga[0].rows, gb[0].rows, note))
    # one side only: the same benchmark on other providers is "not comparable", not missing
    leftover: list[dict[tuple[bool, str], set[str]]] = [{}, {}]
    for providers, pools, other in zip(
        leftover, (pools_a, pools_b), (pools_b, pools_a), strict=True
    ):
        for k in pools.keys() - other.keys():
            key = pools[k][0].key
            providers.setdefault((key.plain, key.name), set()).add(key.provider)
    for both in sorted(leftover[0].keys() & leftover[1].keys()):
        pa, pb = (", ".join(sorted(providers.pop(both))) for providers in leftover)
        not_comparable.append((both[1], f"provider {pa} vs {pb}"))
    only = [
        sorted(
            groups[0].key.id
            for k, groups in pools.items()
            if k not in other and (k[0], groups[0].key.name) in providers
        )
        for pools, other, providers in (
            (pools_a, pools_b, leftover[0]),
            (pools_b, pools_a, leftover[1]),
        )
    ]
    return Matches(
        matched, only[0], only[1], sorted(not_comparable), tuple(changed), tuple(mixed_models)
    )


def pooled_samples(rows: Iterable[dict[str, Any]]) -> list[float]:
    """The raw samples (``stats.data``) of several runs of one benchmark, pooled."""
    return [float(x) for row in rows for x in row["stats"].get("data") or ()]


def pooled_median(rows: Sequence[dict[str, Any]]) -> float:
    """The median of the pooled raw samples, else (no raw samples) of the runs' medians."""
    samples = pooled_samples(rows)
    return statistics.median(samples or [float(row["stats"]["median"]) for row in rows])
