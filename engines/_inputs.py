"""Input validation shared by every engine: cheap on the fast path, explicit on errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.errors import InputError

__all__ = ["FLOAT32_MAX", "as_batch"]

#: The largest finite float32: larger finite values become +-inf when cast to float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMERIC_KINDS = frozenset("fiub")


def as_batch(
    X: Any,
    *,
    n_features: int | None,
    dtype: np.dtype[Any] | None,
    feature_names: Sequence[str] | None = None,
) -> npt.NDArray[Any]:
    """``X`` as a C-contiguous 2-D array of ``dtype`` (None: keep floats, ints become float64).

    A DataFrame's columns are matched to ``feature_names`` by name and reordered; without
    names they are taken by position. Finite values beyond float32's range become +-inf when
    cast to float32, as scikit-learn's own float32 cast makes them (engines refuse them where
    the original estimator refuses infinity). Raises InputError naming the expected and
    received shape, dtype or columns.
    """
    if type(X) is np.ndarray:
        arr: npt.NDArray[Any] = X
    elif hasattr(X, "columns") and hasattr(X, "to_numpy"):
        arr = _from_frame(X, feature_names)
    else:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise InputError(f"input cannot be read as a numeric array: {exc}") from exc
    if arr.ndim != 2:
        expected = f"(n_rows, {n_features})" if n_features is not None else "(n_rows, n_features)"
        hint = " (use X.reshape(1, -1) for a single row)" if arr.ndim == 1 else ""
        raise InputError(f"expected a 2-D array of shape {expected}, got shape {arr.shape}{hint}")
    if n_features is not None and arr.shape[1] != n_features:
        raise InputError(
            f"expected {n_features} features, i.e. shape (n_rows, {n_features}), "
            f"got shape {arr.shape}"
        )
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise InputError(
            f"expected a numeric array (float, int or bool), got dtype {arr.dtype}; "
            "convert it first, e.g. X.astype(np.float32)"
        )
    target = dtype if dtype is not None else (arr.dtype if arr.dtype.kind == "f" else np.float64)
    if arr.dtype != target:
        with np.errstate(over="ignore"):  # beyond float32's range becomes inf, as in scikit-learn
            arr = arr.astype(target)
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


def _from_frame(frame: Any, feature_names: Sequence[str] | None) -> npt.NDArray[Any]:
    """A DataFrame's values, columns matched to ``feature_names`` by name (labels compared as
    strings, whatever their type), in the model's order."""
    columns = [str(c) for c in frame.columns]
    if feature_names is not None and columns != list(feature_names):
        names = [str(n) for n in feature_names]
        duplicated = sorted(c for c, k in Counter(columns).items() if k > 1)
        missing = [c for c in names if c not in columns]
        extra = [c for c in columns if c not in names]
        if duplicated or missing or extra:
            raise InputError(
                f"DataFrame columns do not match the model's features: missing {missing}, "
                f"unexpected {extra}"
                + (f", duplicated {duplicated}" if duplicated else "")
                + f"; expected columns {names}"
            )
        # By position, not by label: the labels may be ints, or strings equal to str(int).
        position = {c: i for i, c in enumerate(columns)}
        frame = frame.iloc[:, [position[n] for n in names]]
    try:
        return np.asarray(frame.to_numpy())
    except (TypeError, ValueError) as exc:
        raise InputError(f"DataFrame cannot be read as a numeric array: {exc}") from exc
