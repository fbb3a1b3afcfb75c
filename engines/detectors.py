"""Anomaly detectors this project adds, with scikit-learn's conventions."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["PCAReconstructionDetector"]


class PCAReconstructionDetector(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Anomaly score = squared error of the PCA reconstruction (higher error, more anomalous).

    ``score_samples`` is minus the squared reconstruction error, ``offset_`` the
    ``contamination`` quantile of the training scores, so ``decision_function`` and ``predict``
    follow scikit-learn's sign conventions.

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(200, 5))
        >>> det = PCAReconstructionDetector(n_components=2).fit(X)
        >>> det.predict(X[:3]).tolist()
        [1, 1, 1]
    """

    def __init__(
        self, n_components: int | float | None = None, contamination: float = 0.05
    ) -> None:
        self.n_components = n_components
        self.contamination = contamination

    def fit(self, X: npt.ArrayLike, y: Any = None) -> PCAReconstructionDetector:
        if not 0.0 < self.contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {self.contamination}")
        checked = validate_data(self, X, dtype=[np.float64, np.float32])
        self.pca_ = PCA(n_components=self.n_components).fit(checked)
        self.offset_ = float(np.percentile(self._raw_scores(checked), 100.0 * self.contamination))
        return self

    def _raw_scores(self, X: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        centered = np.asarray(X, dtype=np.float64) - self.pca_.mean_
        components = self.pca_.components_
        residual = centered - (centered @ components.T) @ components
        scores: npt.NDArray[np.float64] = -np.einsum("ij,ij->i", residual, residual)
        return scores

    def score_samples(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Minus the squared reconstruction error: higher is more normal."""
        check_is_fitted(self, "pca_")
        checked = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self._raw_scores(checked)

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """score_samples - offset_: negative for anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """-1 for anomalies, 1 for normal rows."""
        return np.where(self.decision_function(X) < 0, -1, 1).astype(np.int64)
