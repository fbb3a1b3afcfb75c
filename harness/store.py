"""The results store: pytest-benchmark JSON plus a versioned ``harness`` block.

Layout: ``results/<machine-id>/<provider>/NNNN_<commit>_<time>.json``. Files are written
atomically (temporary file, then an exclusive hard link to the final name), so an
interrupted run leaves nothing and two concurrent runs never overwrite each other.

Plain pytest-benchmark JSON (``--benchmark-json``, no ``harness`` block) is read too: its rows
are keyed by their ``fullname``, its machine comes from ``machine_info`` and it has no provider.

What makes two rows the same benchmark lives here, in one place (:func:`benchmark_key`,
:func:`match`), for compare, gate, report and history alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import statistics
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from engines._io import write_temp

__all__ = [
    "IDENTITY_FIELDS",
    "MODEL_FIELDS",
    "SCHEMA_VERSION",
    "BenchmarkKey",
    "Matches",
    "ModelChange",
    "Pair",
    "ResultFile",
    "ResultsError",
    "RowGroup",
    "SkippedResultWarning",
    "benchmark_key",
    "describe_identity",
    "find_results",
    "group_rows",
    "identity_labels",
    "keyed_rows",
    "load_result",
    "load_results",
    "match",
    "pooled_median",
    "pooled_samples",
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
    if not isinstance(data, dict):
        raise ResultsError(
            f"{path}: no 'harness' block and not pytest-benchmark JSON (the top level is not an "
            "object): give a file written by `harness run` or `pytest --benchmark-json`"
        )
    if "harness" in data:
        if not isinstance(data["harness"], dict):
            raise ResultsError(f"{path}: the 'harness' block must be an object")
        version = data["harness"].get("schema_version")
        if version != SCHEMA_VERSION:
            raise ResultsError(
                f"{path}: schema_version {version!r} is not known to this harness (it reads "
                f"{SCHEMA_VERSION}); upgrade the harness (pip install -U onnx-anomaly-harness) or "
                "re-run the benchmarks to regenerate the file"
            )
    elif not isinstance(data.get("machine_info"), dict) or "benchmarks" not in data:
        raise ResultsError(
            f"{path}: no 'harness' block and not pytest-benchmark JSON (it needs 'machine_info' "
            "and 'benchmarks'): give a file written by `harness run` or `pytest --benchmark-json`"
        )
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, list) or not all(_valid_row(b) for b in benchmarks):
        raise ResultsError(
            f"{path}: 'benchmarks' must be a list of rows with 'name' and 'stats' (a numeric "
            "'median', 'data' a list of numbers if present, 'extra_info' an object if present)"
        )
    return ResultFile(path, data)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid_row(row: Any) -> bool:
    if not isinstance(row, dict) or "name" not in row or not isinstance(row.get("stats"), dict):
        return False
    stats = row["stats"]
    data = stats.get("data")
    return (
        _number(stats.get("median"))
        and (data is None or (isinstance(data, list) and all(_number(x) for x in data)))
        and isinstance(row.get("extra_info", {}), dict)
    )


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


# -- plain pytest-benchmark JSON ----------------------------------------------------------


def _slug(text: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text or "").lower()).strip("-")[:40]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _plain_machine_id(info: dict[str, Any]) -> str:
    """A folder-safe machine name from pytest-benchmark's ``machine_info``: CPU brand and
    count (like :func:`harness.machine.machine_id`), else the host name."""
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
    def pairs_on(self) -> tuple[bool, str, str]:
        """Rows pair when this is equal: the id, and the provider (in a harness id already)."""
        return self.plain, self.id, self.provider


def benchmark_key(row: dict[str, Any], *, plain: bool = False) -> BenchmarkKey:
    """The key of one benchmark row; ``plain`` for rows of a plain pytest-benchmark file."""
    extra = row.get("extra_info") or {}
    origin = extra.get("origin") or (None if plain else "zoo")
    identity = {
        field: extra[field]
        for field in IDENTITY_FIELDS
        if extra.get(field) is not None and (field != "model_sha256" or origin == "user")
    }
    provider = str(extra.get("provider_requested") or "-")
    if plain:
        name = str(row.get("fullname") or row["name"])
        at = "" if provider == "-" else f"@{provider}"
        return BenchmarkKey(name + at, name, provider, plain=True, identity=identity)
    if origin is not None:
        identity["origin"] = origin
    case, engine = extra.get("case"), extra.get("engine")
    batch, threads = extra.get("batch_size"), extra.get("threads")
    where = engine if provider == "-" else f"{engine}-{provider}"
    return BenchmarkKey(
        f"{case}[{where}]-b{batch}-t{threads}",
        f"{case}[{engine}]-b{batch}-t{threads}",
        provider,
        case,
        engine,
        batch,
        threads,
        identity=identity,
    )


def keyed_rows(results: Iterable[ResultFile]) -> list[tuple[BenchmarkKey, dict[str, Any]]]:
    """Every row of ``results`` with its key."""
    return [(benchmark_key(row, plain=r.plain), row) for r in results for row in r.benchmarks]


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
    """Pairs, ids found on one side only, and (name, reason) for what must not be compared."""

    matched: list[Pair]
    only_a: list[str]
    only_b: list[str]
    not_comparable: list[tuple[str, str]]


def match(
    a: Iterable[tuple[BenchmarkKey, dict[str, Any]]],
    b: Iterable[tuple[BenchmarkKey, dict[str, Any]]],
    *,
    model_change: ModelChange = "refuse",
    labels: tuple[str, str] = ("A", "B"),
) -> Matches:
    """Pair the benchmarks of two sides (keyed rows, see :func:`keyed_rows`).

    Rows pair on their id (provider included: providers are never pooled). A pair whose
    identities differ (model sha256 of a user model, input width, estimator, active provider,
    origin) is not comparable, with the reason; ``model_change="compare"`` pairs across model
    differences instead and notes them. Ids on one side only that differ from the other side's
    by the provider alone are listed as not comparable too.
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
    for k in sorted(pools_a.keys() & pools_b.keys()):
        ga, gb = pools_a[k], pools_b[k]
        mixed = [
            f"the {label} holds runs that differ ("
            + "; ".join(r for _, r in _differences(groups[0].identity, groups[1].identity))
            + ")"
            for label, groups in zip(labels, (ga, gb), strict=True)
            if len(groups) > 1
        ]
        if mixed:
            not_comparable.append((k[1], "; ".join(mixed)))
            continue
        differences = _differences(ga[0].identity, gb[0].identity)
        if any(field not in allowed for field, _ in differences):
            not_comparable.append((k[1], "; ".join(r for _, r in differences)))
            continue
        note = "model changed: " + "; ".join(r for _, r in differences) if differences else ""
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
    return Matches(matched, only[0], only[1], sorted(not_comparable))


def pooled_samples(rows: Iterable[dict[str, Any]]) -> list[float]:
    """The raw samples (``stats.data``) of several runs of one benchmark, pooled."""
    return [float(x) for row in rows for x in row["stats"].get("data") or ()]


def pooled_median(rows: Sequence[dict[str, Any]]) -> float:
    """The median of the pooled raw samples, else (no raw samples) of the runs' medians."""
    samples = pooled_samples(rows)
    return statistics.median(samples or [float(row["stats"]["median"]) for row in rows])
