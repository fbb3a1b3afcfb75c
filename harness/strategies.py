"""Hypothesis strategies for parity testing: inputs that find real discrepancies.

Rows are drawn around a dataset (in-distribution, far outliers, duplicated rows, constant
columns), at / just above / just below a tree model's split thresholds (np.nextafter), with
NaN and +-inf where the estimator accepts them, subnormals, huge magnitudes, float64 vs
float32. Model hyperparameters for the estimators the zoo covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

__all__ = [
    "hyperparameters",
    "input_rows",
    "split_thresholds",
    "training_data",
]

_TINY = float(np.finfo(np.float32).tiny)


def _as_strategy(value: Any) -> st.SearchStrategy[Any]:
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


def split_thresholds(model: Any) -> list[tuple[int, float]]:
    """(input column, float64 threshold) of every split of a tree ensemble (pipelines: none)."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(model, "steps") and len(model.steps) > 1:
        return []  # thresholds live after the scalers, not in input space
    out: list[tuple[int, float]] = []
    for estimator, features in zip(
        getattr(final, "estimators_", []), getattr(final, "estimators_features_", []), strict=False
    ):
        tree = estimator.tree_
        inner = np.flatnonzero(tree.children_left != -1)
        columns = np.asarray(features)[tree.feature[inner]]
        out.extend(zip(columns.tolist(), tree.threshold[inner].tolist(), strict=True))
    return out


@st.composite
def input_rows(
    draw: st.DrawFn,
    *,
    base: npt.NDArray[Any],
    max_rows: int | st.SearchStrategy[int] = 16,
    thresholds: Sequence[tuple[int, float]] = (),
    allow_nan: bool = False,
    allow_inf: bool = False,
    dtype: Any = np.float32,
) -> npt.NDArray[Any]:
    """A batch of rows built from ``base`` rows with the edits real discrepancies hide in.

    ``base`` is a 2-D array of representative rows (a dataset's test rows). Each row is a base
    row, possibly with: a feature set at / just below / just above a split threshold, a far
    outlier scaling, a duplicated row, a subnormal or huge value, and NaN / inf when allowed.
    """
    base = np.asarray(base)
    if base.ndim != 2 or len(base) == 0:
        raise ValueError(f"base must be a non-empty 2-D array, got shape {base.shape}")
    n = draw(_as_strategy(max_rows).flatmap(lambda m: st.integers(1, max(1, int(m)))))
    width = base.shape[1]
    rows: list[npt.NDArray[np.float64]] = []
    for _ in range(n):
        row = base[draw(st.integers(0, len(base) - 1))].astype(np.float64)
        edit = draw(
            st.sampled_from(
                [
                    "none",
                    "threshold",
                    "threshold",
                    "outlier",
                    "duplicate",
                    "subnormal",
                    "huge",
                    "nan",
                    "inf",
                ]
            )
        )
        column = draw(st.integers(0, width - 1))
        if edit == "threshold" and thresholds:
            column, t64 = thresholds[draw(st.integers(0, len(thresholds) - 1))]
            t32 = np.float32(t64)
            below = t32 if float(t32) <= t64 else np.nextafter(t32, np.float32(-np.inf))
            row[column] = draw(
                st.sampled_from([below, np.nextafter(below, np.float32(np.inf)), t32, t64])
            )
        elif edit == "outlier":
            row = row * draw(st.sampled_from([5.0, 50.0, 1e3, -1e3]))
        elif edit == "duplicate" and rows:
            row = rows[-1].copy()
        elif edit == "subnormal":
            row[column] = draw(st.sampled_from([_TINY / 4, -_TINY / 8, 0.0, -0.0]))
        elif edit == "huge":
            row[column] = draw(st.sampled_from([1e30, -1e30, 3e38, -3e38]))
        elif edit == "nan" and allow_nan:
            row[column] = np.nan
        elif edit == "inf" and allow_inf:
            row[column] = draw(st.sampled_from([np.inf, -np.inf]))
        rows.append(row)
    with np.errstate(over="ignore"):
        return np.asarray(rows).astype(dtype)


@st.composite
def training_data(
    draw: st.DrawFn,
    *,
    min_rows: int = 20,
    max_rows: int = 300,
    min_features: int = 1,
    max_features: int = 8,
) -> npt.NDArray[np.float32]:
    """Training sets: scale, correlation, duplicated rows and constant columns vary."""
    if not 1 <= min_rows <= max_rows:
        raise ValueError(f"need 1 <= min_rows <= max_rows, got {min_rows}, {max_rows}")
    if not 1 <= min_features <= max_features:
        raise ValueError(
            f"need 1 <= min_features <= max_features, got {min_features}, {max_features}"
        )
    n = draw(st.integers(min_rows, max_rows))
    f = draw(st.integers(min_features, max_features))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    if draw(st.booleans()) and f > 1:  # correlated features
        X = X @ rng.normal(size=(f, f))
    X *= draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if draw(st.booleans()) and f > 1:  # a constant column
        X[:, draw(st.integers(0, f - 1))] = draw(st.sampled_from([0.0, 1.0, -7.5]))
    if draw(st.booleans()):  # duplicated rows
        X[n // 2 :] = X[: n - n // 2]
    return X.astype(np.float32)


def hyperparameters(estimator: str) -> st.SearchStrategy[dict[str, Any]]:
    """Hyperparameters for ``estimator`` (a class name from the zoo)."""
    contamination = st.one_of(st.just("auto"), st.floats(0.01, 0.2))
    table: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "IsolationForest": st.fixed_dictionaries(
            {
                "n_estimators": st.integers(1, 60),
                "max_samples": st.sampled_from(["auto", 16, 0.5]),
                "max_features": st.sampled_from([1.0, 0.5, 1]),
                "bootstrap": st.booleans(),
                "contamination": contamination,
                "random_state": st.integers(0, 1000),
            }
        ),
        "OneClassSVM": st.fixed_dictionaries(
            {
                "nu": st.floats(0.05, 0.5),
                "kernel": st.sampled_from(["rbf", "linear", "sigmoid"]),
                "gamma": st.sampled_from(["scale", "auto", 0.1]),
            }
        ),
        "GaussianMixture": st.fixed_dictionaries(
            {
                "n_components": st.integers(1, 4),
                "covariance_type": st.sampled_from(["full", "tied", "diag", "spherical"]),
                "random_state": st.integers(0, 1000),
            }
        ),
        "LocalOutlierFactor": st.fixed_dictionaries(
            {
                "n_neighbors": st.integers(2, 30),
                "novelty": st.just(True),
            }
        ),
        "PCAReconstructionDetector": st.fixed_dictionaries(
            {
                "n_components": st.integers(1, 3),
                "contamination": st.floats(0.01, 0.2),
            }
        ),
    }
    if estimator not in table:
        raise ValueError(f"no hyperparameter strategy for {estimator!r}; known: {sorted(table)}")
    return table[estimator]
