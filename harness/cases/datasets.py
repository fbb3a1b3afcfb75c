"""Datasets for the model-case zoo: synthetic telemetry and scikit-learn's bundled data."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_breast_cancer, load_digits

__all__ = ["DATASETS", "Dataset", "load_dataset"]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Training rows (mostly normal) and labelled test rows (-1 anomaly, 1 normal), float32.

    ``y_train`` (same -1 / 1 labels) is there for supervised scorers only; None elsewhere.
    """

    name: str
    X_train: npt.NDArray[np.float32] = dataclasses.field(repr=False)
    X_test: npt.NDArray[np.float32] = dataclasses.field(repr=False)
    y_test: npt.NDArray[np.int64] = dataclasses.field(repr=False)
    feature_names: tuple[str, ...] = dataclasses.field(repr=False)
    description: str = ""
    y_train: npt.NDArray[np.int64] | None = dataclasses.field(default=None, repr=False)

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])


def telemetry(
    *,
    n_train: int = 2_000,
    n_test: int = 1_000,
    n_features: int = 12,
    n_constant: int = 2,
    anomaly_rate: float = 0.05,
    seed: int = 0,
) -> Dataset:
    """Device-telemetry-like rows: correlated features, heavy tails, constant columns, and
    planted anomalies (large shifts on a few features, and rows that break the correlations)."""
    rng = np.random.default_rng(seed)
    n_live = n_features - n_constant
    loadings = rng.normal(size=(n_live, 3))
    covariance = loadings @ loadings.T + np.diag(rng.uniform(0.2, 1.0, n_live))
    chol = np.linalg.cholesky(covariance)

    def normal_rows(n: int) -> npt.NDArray[np.float64]:
        z = rng.normal(size=(n, n_live))
        z[:, : n_live // 3] = rng.standard_t(df=3, size=(n, n_live // 3))  # heavy tails
        return np.asarray(z @ chol.T, dtype=np.float64)

    def with_constants(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        constants = np.tile(np.arange(1, n_constant + 1, dtype=np.float64), (len(rows), 1))
        return np.hstack([rows, constants]).astype(np.float32)

    train = normal_rows(n_train)
    test = normal_rows(n_test)
    labels = np.ones(n_test, dtype=np.int64)
    anomalous = rng.random(n_test) < anomaly_rate
    labels[anomalous] = -1
    for i in np.flatnonzero(anomalous):
        if rng.random() < 0.5:
            cols = rng.choice(n_live, size=2, replace=False)
            test[i, cols] += rng.choice([-1, 1], size=2) * 6 * np.sqrt(np.diag(covariance)[cols])
        else:
            test[i] = rng.permutation(test[i]) * 2.5
    names = tuple(f"sensor_{i:02d}" for i in range(n_features))
    return Dataset(
        "telemetry",
        with_constants(train),
        with_constants(test),
        labels,
        names,
        f"synthetic telemetry, {n_features} features ({n_constant} constant), "
        f"{anomaly_rate:.0%} planted anomalies",
    )


def telemetry_dense() -> Dataset:
    """Telemetry without constant columns (for covariance-based detectors)."""
    data = telemetry(n_constant=0, n_features=10, seed=1)
    return dataclasses.replace(data, name="telemetry-dense", description=data.description)


def breast_cancer(*, seed: int = 0) -> Dataset:
    """scikit-learn's breast_cancer: train on benign tumours, test on benign + malignant."""
    bunch = load_breast_cancer()
    X, y = bunch.data.astype(np.float32), bunch.target
    rng = np.random.default_rng(seed)
    benign = rng.permutation(np.flatnonzero(y == 1))
    malignant = np.flatnonzero(y == 0)
    train = benign[:250]
    test = np.concatenate([benign[250:], rng.choice(malignant, size=40, replace=False)])
    labels = np.where(y[test] == 1, 1, -1).astype(np.int64)
    names = tuple(str(n) for n in bunch.feature_names)
    return Dataset("breast_cancer", X[train], X[test], labels, names, "malignant as anomalies")


def breast_cancer_labelled(*, seed: int = 0) -> Dataset:
    """breast_cancer with labels for training too (supervised scorers): a stratified 60/40 split
    of all rows, malignant (the minority, 37%) as anomalies (-1), benign as normal (1)."""
    bunch = load_breast_cancer()
    X, y = bunch.data.astype(np.float32), np.where(bunch.target == 1, 1, -1).astype(np.int64)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in (-1, 1):
        rows = rng.permutation(np.flatnonzero(y == label))
        cut = round(0.6 * len(rows))
        train.append(rows[:cut])
        test.append(rows[cut:])
    tr, te = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    names = tuple(str(n) for n in bunch.feature_names)
    return Dataset(
        "breast_cancer-labelled",
        X[tr],
        X[te],
        y[te],
        names,
        "malignant as anomalies, labelled training rows",
        y_train=y[tr],
    )


def digits(*, normal_class: int = 0, seed: int = 0) -> Dataset:
    """scikit-learn's digits: one class is normal, the others are anomalies."""
    bunch = load_digits()
    X, y = bunch.data.astype(np.float32), bunch.target
    rng = np.random.default_rng(seed)
    normal = rng.permutation(np.flatnonzero(y == normal_class))
    others = rng.choice(np.flatnonzero(y != normal_class), size=30, replace=False)
    train, test = normal[:130], np.concatenate([normal[130:], others])
    labels = np.where(y[test] == normal_class, 1, -1).astype(np.int64)
    names = tuple(f"pixel_{i}" for i in range(X.shape[1]))
    return Dataset("digits", X[train], X[test], labels, names, f"digit {normal_class} is normal")


def w1(*, seed: int = 0) -> Dataset:
    """The W1 workload: 10,000 x 25 standard normal float32 training rows, fresh test rows."""
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(10_000, 25)).astype(np.float32)
    test = rng.normal(size=(10_000, 25)).astype(np.float32)
    names = tuple(f"x{i}" for i in range(25))
    return Dataset("w1", train, test, np.ones(len(test), np.int64), names, "standard normal")


DATASETS: dict[str, Callable[[], Dataset]] = {
    "telemetry": telemetry,
    "telemetry-dense": telemetry_dense,
    "breast_cancer": breast_cancer,
    "breast_cancer-labelled": breast_cancer_labelled,
    "digits": digits,
    "w1": w1,
}


@cache
def load_dataset(name: str) -> Dataset:
    """A dataset by name (built once per process)."""
    try:
        return DATASETS[name]()
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
