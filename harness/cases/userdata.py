"""A user's rows: one reader for ``harness run`` and ``harness check`` (.npy, .csv, .parquet)."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DataError", "as_model_rows", "load_rows"]

SUFFIXES = (".npy", ".csv", ".parquet")


class DataError(ValueError):
    """The data file cannot be used: unreadable, not numeric, or not the model's width."""


def load_rows(
    path: str | Path,
    *,
    n_features: int | None = None,
    feature_names: Sequence[str] | None = None,
    dtype: Any = np.float32,
) -> npt.NDArray[Any]:
    """Rows of ``path`` as an (n, d) array of ``dtype`` (the model's input type: float32, or
    float64 for a graph that takes double), checked against the model's input; a value
    beyond float32's range is refused for a float32 model (it would score infinity).

    A .csv may have a header row (pandas writes one); its names are checked against
    ``feature_names`` when the model has them, and columns in another order are reordered.
    A .parquet file needs pyarrow (``pip install onnx-anomaly-harness[parquet]``).

    Example:
        >>> rows = load_rows("data.csv", n_features=25)  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"--data {path}: is a directory, not a data file")
    if not path.is_file():
        raise DataError(f"--data {path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"--data {path}: expected one of {', '.join(SUFFIXES)}, got {suffix!r}")
    names: list[str] | None
    if suffix == ".npy":
        rows, names = _npy(path), None
    elif suffix == ".csv":
        rows, names = _csv(path)
    else:
        rows, names = _parquet(path)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0:
        raise DataError(f"--data {path}: expected a non-empty 2-D table, got shape {rows.shape}")
    if names is not None and feature_names is not None:
        rows = _match_names(path, rows, names, list(feature_names))
    if n_features is not None and rows.shape[1] != n_features:
        raise DataError(
            f"--data {path}: rows have {rows.shape[1]} columns, the model takes {n_features}"
        )
    return as_model_rows(rows, dtype, f"--data {path}: value")


def as_model_rows(rows: npt.NDArray[Any], dtype: Any, what: str = "data value") -> npt.NDArray[Any]:
    """``rows`` as a C-contiguous array of the model's input ``dtype``; a finite value that
    type cannot hold (1e39 for float32) is a DataError naming ``what``, its row and column."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(rows, dtype=dtype)
        bad = ~np.isfinite(out) & np.isfinite(np.asarray(rows, dtype=np.float64))
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"{what} {float(rows[row, col])!r} (row {row}, column {col}) overflows "
            f"{out.dtype} (the model's input type)"
        )
    return out


def _npy(path: Path) -> npt.NDArray[Any]:
    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"--data {path}: not a readable .npy array ({exc})") from exc
    if not np.issubdtype(rows.dtype, np.number) and rows.dtype != np.bool_:
        raise DataError(f"--data {path}: expected numbers, got dtype {rows.dtype}")
    return np.asarray(rows, dtype=np.float64)


def _csv(path: Path) -> tuple[npt.NDArray[Any], list[str] | None]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--data {path}: cannot read ({exc})") from exc
    if not first:
        raise DataError(f"--data {path}: the file is empty")
    other = next((sep for sep in ";\t|" if len(first) == 1 and sep in first[0]), None)
    if other is not None:
        raise DataError(
            f"--data {path}: its first line is one column holding {other!r}: values must be "
            "separated by commas (pandas: df.to_csv(path, index=False))"
        )
    header = not all(_is_number(cell) for cell in first)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": said below
            rows = np.loadtxt(
                path,
                delimiter=",",
                dtype=np.float64,
                ndmin=2,
                skiprows=int(header),
                encoding="utf-8-sig",
            )
    except ValueError as exc:
        raise DataError(f"--data {path}: not a numeric table ({exc})") from exc
    if header and rows.size == 0:
        raise DataError(f"--data {path}: a header row ({len(first)} columns) and no data rows")
    return rows, [cell.strip() for cell in first] if header else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parquet(path: Path) -> tuple[npt.NDArray[Any], list[str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"--data {path}: reading .parquet needs pyarrow: "
            "pip install 'onnx-anomaly-harness[parquet]'"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(f"--data {path}: not a readable parquet file ({exc})") from exc
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        values = column.to_numpy(zero_copy_only=False)
        if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
            raise DataError(f"--data {path}: column {name!r} is not numeric ({values.dtype})")
        columns.append(values.astype(np.float64))
    if not columns:
        raise DataError(f"--data {path}: the table has no columns")
    return np.column_stack(columns), list(table.column_names)


def _match_names(
    path: Path, rows: npt.NDArray[Any], names: list[str], expected: list[str]
) -> npt.NDArray[Any]:
    if names == expected:
        return rows
    if sorted(names) == sorted(expected) and len(set(names)) == len(names):
        return rows[:, [names.index(n) for n in expected]]
    missing = [n for n in expected if n not in names]
    extra = [n for n in names if n not in expected]
    raise DataError(
        f"--data {path}: header names do not match the model's features "
        f"(missing {missing[:5]}, unexpected {extra[:5]})"
    )
