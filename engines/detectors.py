"""Anomaly detectors this project adds, with scikit-learn's conventions."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["PCAReconstructionDetector", "SupervisedScorer"]


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


class SupervisedScorer(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """A binary classifier used as an anomaly scorer, in scikit-learn's outlier conventions.

    ``score_samples`` is minus the classifier's probability of ``anomaly_class`` (higher = more
    normal), ``offset_`` is ``-threshold``, so ``decision_function = threshold - p(anomaly)``
    is negative for anomalies and ``predict`` gives -1 where ``p(anomaly) > threshold``, else
    1. ``fit(X, y)`` fits a clone of ``classifier`` on labelled rows (y holds two labels, one of
    them ``anomaly_class``; the classifier learns 1 = anomaly, 0 = normal); with ``prefit=True``
    the already fitted binary ``classifier`` is used as it is (``fit()`` then only checks it).
    LightGBM's ``LGBMClassifier`` and XGBoost's ``XGBClassifier`` export to ONNX through
    onnxmltools (``engines.export``, extra ``boost``); any binary classifier with
    ``predict_proba`` scores.

    Example:
        >>> from lightgbm import LGBMClassifier  # doctest: +SKIP
        >>> scorer = SupervisedScorer(LGBMClassifier(), threshold=0.5).fit(X, y)  # doctest: +SKIP
        >>> scorer.predict(X[:3]).tolist()  # doctest: +SKIP
        [1, -1, 1]
    """

    def __init__(
        self,
        classifier: Any,
        threshold: float = 0.5,
        anomaly_class: Any = 1,
        *,
        prefit: bool = False,
    ) -> None:
        self.classifier = classifier
        self.threshold = threshold
        self.anomaly_class = anomaly_class
        self.prefit = prefit

    def fit(
        self, X: npt.ArrayLike | None = None, y: npt.ArrayLike | None = None
    ) -> SupervisedScorer:
        """Fit a clone of ``classifier`` on (X, y), or take it as fitted with ``prefit=True``."""
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.floating):
            raise TypeError(f"threshold must be a number in (0, 1), got {threshold!r}")
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(
                f"threshold must be in (0, 1): a probability of the anomaly class above it "
                f"labels a row an anomaly; got {threshold}"
            )
        if not hasattr(self.classifier, "predict_proba"):
            raise TypeError(
                f"{type(self.classifier).__name__} has no predict_proba: SupervisedScorer "
                "scores rows by the classifier's probability of the anomaly class"
            )
        if self.prefit:
            check_is_fitted(self.classifier)
            fitted = self.classifier
            classes = np.asarray(fitted.classes_)
            self._check_binary(classes, f"{type(fitted).__name__} was fitted on")
        else:
            if X is None or y is None:
                raise ValueError(
                    "SupervisedScorer.fit needs labelled rows fit(X, y) to train its "
                    "classifier (or prefit=True with a fitted classifier)"
                )
            labels = np.asarray(y).reshape(-1)
            found = np.unique(labels)
            self._check_binary(found, "y holds")
            # The classifier learns anomaly (1) vs normal (0), whatever the labels are (XGBoost
            # accepts 0..n-1 only); classes_ keeps the caller's labels in that order.
            fitted = clone(self.classifier).fit(X, (labels == self.anomaly_class).astype(np.int64))
            classes = np.asarray([found[found != self.anomaly_class][0], self.anomaly_class])
        self.classifier_ = fitted
        self.classes_ = classes
        self.anomaly_index_ = int(np.flatnonzero(classes == self.anomaly_class)[0])
        self.offset_ = -float(threshold)
        self.n_features_in_ = int(fitted.n_features_in_)
        names = getattr(fitted, "feature_names_in_", None)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        return self

    def _check_binary(self, classes: npt.NDArray[Any], where: str) -> None:
        if len(classes) != 2:
            raise ValueError(
                f"SupervisedScorer needs a binary classifier (anomaly vs normal); {where} "
                f"{len(classes)} classes {classes.tolist()[:10]}: relabel the rows as anomaly / "
                "normal (a multi-class model scores no single anomaly class)"
            )
        if not (classes == self.anomaly_class).any():
            raise ValueError(
                f"anomaly_class={self.anomaly_class!r} is not one of the classes {classes.tolist()}"
            )

    def score_samples(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Minus the probability of the anomaly class: higher is more normal."""
        check_is_fitted(self, "classifier_")
        proba = np.asarray(self.classifier_.predict_proba(X), dtype=np.float64)
        scores: npt.NDArray[np.float64] = -proba[:, self.anomaly_index_]
        return scores

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """score_samples - offset_ (threshold - p(anomaly)): negative for anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """-1 where p(anomaly) > threshold, 1 elsewhere."""
        return np.where(self.decision_function(X) < 0, -1, 1).astype(np.int64)
