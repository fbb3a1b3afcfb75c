"""The engine contract shared by every runtime: prepare once, run many."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["METHODS", "Engine", "Metrics"]

#: The three answers every anomaly-detection engine may give.
METHODS: tuple[str, ...] = ("predict", "score_samples", "decision_function")


@dataclasses.dataclass(frozen=True, slots=True)
class Metrics:
    """Timing of the last call: wall-clock latency and throughput."""

    latency_ms: float
    samples_per_s: float
    n_rows: int


class Engine(abc.ABC):
    """An anomaly detector ready to answer, in the conventions of the model it serves.

    ``convention`` says which answers an engine gives; it is the model's, never the engine's
    choice, so every engine serving one model (scikit-learn, ONNX, a fallback pair) answers
    in the same one:

    * ``"sklearn"`` (scikit-learn's detectors, this project's exports): ``predict`` gives int64
      -1 (anomaly) / 1 (normal); ``score_samples`` is higher for more normal rows;
      ``decision_function`` is ``score_samples - offset`` and negative for anomalies.
    * ``"pyod"`` (PyOD's detectors and their exports): ``predict`` gives int64 1 (outlier) /
      0 (inlier), 1 exactly where ``decision_function > threshold`` (PyOD's ``threshold_``);
      ``decision_function`` is PyOD's raw anomaly score, higher for more abnormal rows.
      ``score_samples`` is not answered (MethodUnavailableError, absent from ``methods``):
      PyOD has no normality score, and inventing one (``-decision_function``) would look like
      scikit-learn's while meaning something else (no offset relates it to the labels).

    Counting anomalies is ``(predict(X) == -1).sum()`` under "sklearn" and
    ``(predict(X) == 1).sum()`` under "pyod": check ``engine.convention`` before comparing
    labels across engines.
    """

    #: Short engine kind, e.g. "onnx" or "sklearn".
    kind: str = "engine"
    #: "sklearn" or "pyod" (see the class docstring).
    convention: str = "sklearn"
    #: (start, end, n_rows) of the last call, in perf_counter seconds: stored raw on the hot path,
    #: turned into Metrics only when asked for.
    _timing: tuple[float, float, int] | None = None

    @property
    def last_metrics(self) -> Metrics | None:
        """Latency and throughput of the last call (None before the first, or when disabled)."""
        if self._timing is None:
            return None
        start, end, n = self._timing
        elapsed = end - start
        return Metrics(elapsed * 1e3, n / elapsed if elapsed > 0 else 0.0, n)

    @property
    @abc.abstractmethod
    def methods(self) -> frozenset[str]:
        """The subset of METHODS this model can answer."""

    @property
    @abc.abstractmethod
    def n_features(self) -> int | None:
        """Input width the model expects, when known."""

    @abc.abstractmethod
    def predict(self, X: Any) -> npt.NDArray[np.int64]:
        """Labels: -1 anomaly, 1 normal ("pyod": 1 outlier, 0 inlier)."""

    @abc.abstractmethod
    def score_samples(self, X: Any) -> npt.NDArray[np.floating[Any]]:
        """Normality score, higher is more normal."""

    @abc.abstractmethod
    def decision_function(self, X: Any) -> npt.NDArray[np.floating[Any]]:
        """score_samples - offset: negative means anomaly ("pyod": higher = more abnormal)."""

    @abc.abstractmethod
    def info(self) -> dict[str, Any]:
        """What this engine is, what it runs and where it really runs."""

    def __repr__(self) -> str:
        width = getattr(self, "_n_features", None)
        return f"<{type(self).__name__} kind={self.kind!r} n_features={width}>"
