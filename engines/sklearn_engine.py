"""scikit-learn engine: the same contract over a fitted estimator or pipeline."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.base import is_outlier_detector
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from engines._inputs import as_batch
from engines.base import METHODS, Engine
from engines.errors import EngineError, InputError, MethodUnavailableError, UnsupportedModelError
from engines.native.pyod import ROW_BY_ROW, is_pyod_detector, pyod_width

__all__ = ["SklearnEngine"]


class SklearnEngine(Engine):
    """Anomaly detector answered by a fitted scikit-learn estimator (or PyOD detector).

    A PyOD detector (or a Pipeline ending in one) is served in PyOD's convention
    (``convention == "pyod"``, see ``Engine``): its own predict (1 outlier / 0 inlier) and
    decision_function (higher = more abnormal), no score_samples. ECOD and COPOD rank a batch
    jointly in PyOD (each row's score depends on the rows scored with it): this engine scores
    them one row at a time, PyOD's answer for each row scored alone, after refusing NaN and
    infinity as PyOD's fit does (its decision_function would answer 0 for a row of NaN).

    Example:
        >>> from sklearn.ensemble import IsolationForest
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(200, 3))
        >>> engine = SklearnEngine(IsolationForest(random_state=0).fit(X))
        >>> engine.predict(X[:3]).dtype
        dtype('int64')
    """

    kind = "sklearn"

    def __init__(
        self,
        estimator: Any,
        *,
        model_path: str | None = None,
        model_sha256: str | None = None,
        collect_metrics: bool = True,
    ) -> None:
        if not hasattr(estimator, "fit"):
            raise UnsupportedModelError(
                f"expected a fitted scikit-learn estimator, got {type(estimator).__name__}: a "
                "reference is an object with fit and score_samples / decision_function / "
                "predict (scikit-learn, PyOD); wrap a torch module in a class deriving from "
                "sklearn.base.BaseEstimator and OutlierMixin (README: 'A torch model')"
            )
        final = _final_step(estimator)
        pyod = is_pyod_detector(final)
        try:
            check_is_fitted(estimator)
            if pyod:  # some PyOD detectors (KNN) hold fitted-looking attributes from __init__
                check_is_fitted(final, ["decision_scores_", "threshold_"])
        except NotFittedError as exc:
            raise UnsupportedModelError(
                f"{type(estimator).__name__} is not fitted; call fit() before serving it"
            ) from exc
        self.estimator = estimator
        self.model_path = model_path
        self.model_sha256 = model_sha256
        self.collect_metrics = collect_metrics
        self.convention = "pyod" if pyod else "sklearn"
        self._row_by_row = f"{type(final).__module__}.{type(final).__qualname__}" in ROW_BY_ROW
        # Density models (GaussianMixture) predict component ids, not -1/1: score_samples only.
        answers = METHODS if is_outlier_detector(final) else ("score_samples",)
        self._methods = frozenset(m for m in answers if hasattr(estimator, m))
        if not self._methods:
            if hasattr(estimator, "negative_outlier_factor_"):
                hint = (
                    " (LocalOutlierFactor with novelty=False only labels its own training "
                    "data; refit it with novelty=True to score new rows)"
                )
            elif hasattr(estimator, "predict_proba") or hasattr(estimator, "predict"):
                hint = (
                    ": it is a classifier or regressor (its predict "
                    "is a class or a value); to serve one as an anomaly scorer, wrap it in "
                    "engines.SupervisedScorer(model, prefit=True) and save that"
                )
            else:
                hint = "; it is not an anomaly detector"
            raise UnsupportedModelError(
                f"{type(estimator).__name__} answers none of {METHODS} as an anomaly detector{hint}"
            )
        width = getattr(estimator, "n_features_in_", None)
        if width is None and pyod:  # most PyOD detectors keep no n_features_in_ of their own
            try:
                width = pyod_width(final)
            except UnsupportedModelError:
                width = None
        self._n_features = int(width) if width is not None else None
        names = getattr(estimator, "feature_names_in_", None)
        self.feature_names: list[str] | None = None if names is None else [str(n) for n in names]
        # PyOD's IForest forwards scikit-learn's offset_, which has no meaning in PyOD's answers.
        offset = None if pyod else getattr(final, "offset_", None)
        self.offset: float | None = None if offset is None else float(np.ravel(offset)[0])
        threshold = getattr(final, "threshold_", None) if pyod else None
        self.threshold: float | None = None if threshold is None else float(threshold)
        self._empty: dict[tuple[str, str], np.dtype[Any]] = {}

    @property
    def methods(self) -> frozenset[str]:
        return self._methods

    @property
    def n_features(self) -> int | None:
        return self._n_features

    def predict(self, X: Any) -> npt.NDArray[np.int64]:
        return self._answer("predict", X).astype(np.int64, copy=False)

    def score_samples(self, X: Any) -> npt.NDArray[np.floating[Any]]:
        return self._answer("score_samples", X)

    def decision_function(self, X: Any) -> npt.NDArray[np.floating[Any]]:
        return self._answer("decision_function", X)

    def _answer(self, method: str, X: Any) -> npt.NDArray[Any]:
        if method not in self._methods:
            raise MethodUnavailableError(
                f"{type(self.estimator).__name__} cannot answer {method}; "
                f"it answers {sorted(self._methods)}"
            )
        start = time.perf_counter()
        batch = as_batch(
            X, n_features=self._n_features, dtype=None, feature_names=self.feature_names
        )
        if batch.shape[0] == 0:
            out: npt.NDArray[Any] = np.zeros(0, dtype=self._empty_dtype(method, batch))
        else:
            call: Callable[[Any], Any] = getattr(self.estimator, method)
            # scikit-learn casts to float32 for some estimators: values beyond its range
            # become inf, as in the ONNX engine; the answer stands, NumPy's warning is noise.
            # Its finiteness check sums the batch: -inf + inf warns before it refuses the row.
            with np.errstate(over="ignore", invalid="ignore"):
                out = (self._call_rows if self._row_by_row else self._call)(call, batch)
        if self.collect_metrics:
            self._timing = (start, time.perf_counter(), batch.shape[0])
        return out.reshape(-1)

    def _empty_dtype(self, method: str, batch: npt.NDArray[Any]) -> np.dtype[Any]:
        """The dtype a one-row call answers for this input dtype (scikit-learn refuses 0 rows):
        an empty batch answers like any other (float32 from LocalOutlierFactor on float32)."""
        key = (method, batch.dtype.str)
        if key not in self._empty:
            row = np.zeros((1, batch.shape[1]), dtype=batch.dtype)
            try:
                one = self._call(getattr(self.estimator, method), row)
                self._empty[key] = np.asarray(one).dtype
            except (EngineError, ValueError, TypeError):  # a model that refuses zeros
                self._empty[key] = np.dtype(np.float64)
        return self._empty[key]

    def _call(self, call: Callable[[Any], Any], batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        try:
            if self.feature_names is None:
                return np.asarray(call(batch))
            # Columns were checked by name in as_batch; the array is in fitted order.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                return np.asarray(call(batch))
        except ValueError as exc:  # scikit-learn's own input checks (NaN, inf, ...)
            raise InputError(f"{type(self.estimator).__name__} refused the input: {exc}") from exc

    def _call_rows(self, call: Callable[[Any], Any], batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """PyOD's answer for each row scored alone (ECOD, COPOD: see the class docstring)."""
        from sklearn.utils import check_array

        try:
            check_array(batch)
        except ValueError as exc:
            raise InputError(f"{type(self.estimator).__name__} refused the input: {exc}") from exc
        with warnings.catch_warnings():
            # scipy's skew of a constant training column with the row added: the sign is what
            # PyOD uses (0 when the row equals the constant), the warning is noise.
            warnings.filterwarnings(
                "ignore", message="Precision loss occurred in moment calculation"
            )
            return np.concatenate([self._call(call, batch[i : i + 1]) for i in range(len(batch))])

    @property
    def row_by_row(self) -> bool:
        """Whether new rows are scored one at a time (PyOD's ECOD / COPOD refit their empirical
        CDFs on the training rows plus the batch): each row costs a refit."""
        return self._row_by_row

    def info(self) -> dict[str, Any]:
        final = _final_step(self.estimator)
        return {
            "engine": self.kind,
            "model_path": self.model_path,
            "model_sha256": self.model_sha256,
            "estimator": type(self.estimator).__name__,
            "final_estimator": type(final).__name__,
            "n_features": self._n_features,
            "feature_names": self.feature_names,
            "methods": sorted(self._methods),
            "offset": self.offset,
            "convention": self.convention,
            "threshold": self.threshold,
            "scoring": "row by row" if self.row_by_row else "batch",
            "requested_providers": ["sklearn"],
            "registered_providers": ["sklearn"],
            "active_providers": ["sklearn"],
            "nodes_per_provider": None,
            "placement": "single",
            "is_fallback": False,
            "fallback_reason": None,
            "sklearn_version": sklearn.__version__,
            "metadata": {},
        }


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator
