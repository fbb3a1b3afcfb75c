"""An engine that answers from a scikit-learn fallback when the ONNX model fails."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.base import Engine, Metrics
from engines.errors import (
    FallbackWarning,
    InferenceError,
    MethodUnavailableError,
    ModelLoadError,
    UnsupportedModelError,
)

__all__ = ["FallbackEngine"]

# Failures of the primary model that switch to the fallback for good: it failed to load, to
# run, or answered what a detector never answers. A caller's mistake (InputError, a method
# neither model answers) and a strict provider refusal (a configuration error) propagate and
# switch nothing; a method only the fallback answers is routed to it, call by call.
_RECOVERABLE = (ModelLoadError, UnsupportedModelError, InferenceError)


class FallbackEngine(Engine):
    """Primary engine (usually ONNX) with a scikit-learn engine behind it.

    If the primary fails to load, or fails to run, the fallback answers from then on, a
    FallbackWarning is emitted once, and ``info()`` reports ``is_fallback`` and why. A
    caller's mistake never switches: bad input raises InputError and a method neither model
    answers MethodUnavailableError, and the primary keeps answering. A method only the
    fallback answers (score_samples of a plain skl2onnx graph, say) comes from the fallback
    for that call only (warned once per method; ``info()["methods_from_fallback"]``).
    Falling back never changes the answers' convention (``Engine.convention``): a primary and
    a fallback that answer in different conventions (a PyOD export behind a scikit-learn
    estimator, say) are refused with ModelLoadError when the primary loads; ``convention`` is
    the fallback's.

    Example:
        >>> engine = FallbackEngine(lambda: OnnxEngine("m.onnx"), SklearnEngine(est))
        ... # doctest: +SKIP
    """

    kind = "fallback"

    def __init__(self, primary: Engine | Callable[[], Engine], fallback: Engine) -> None:
        self.fallback = fallback
        self.primary: Engine | None = None
        self.fallback_reason: str | None = None
        self._warned = False
        self._routed: set[str] = set()  # methods answered by the fallback for the primary
        try:
            self.primary = primary if isinstance(primary, Engine) else primary()
        except _RECOVERABLE as exc:
            self._switch(f"primary engine failed to load: {exc}")
        self.convention = fallback.convention
        if self.primary is not None:
            self._check_widths(self.primary, fallback)
            self._check_conventions(self.primary, fallback)

    @staticmethod
    def _check_conventions(primary: Engine, fallback: Engine) -> None:
        if primary.convention != fallback.convention:
            raise ModelLoadError(
                f"the primary model answers in the {primary.convention!r} convention but the "
                f"fallback in {fallback.convention!r} (labels and scores mean different things): "
                "they are not the same detector"
            )

    @staticmethod
    def _check_widths(primary: Engine, fallback: Engine) -> None:
        a, b = primary.n_features, fallback.n_features
        if a is not None and b is not None and a != b:
            raise ModelLoadError(
                f"the primary model expects {a} features but the fallback expects {b}: "
                "they are not the same detector"
            )

    def _switch(self, reason: str) -> None:
        self.fallback_reason = reason
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"answering from the fallback engine: {reason}", FallbackWarning, stacklevel=3
            )

    @property
    def is_fallback(self) -> bool:
        return self.fallback_reason is not None

    @property
    def active(self) -> Engine:
        """The engine that answers now."""
        return self.fallback if self.primary is None or self.is_fallback else self.primary

    @property
    def methods(self) -> frozenset[str]:
        return self.fallback.methods | (self.primary.methods if self.primary else frozenset())

    @property
    def n_features(self) -> int | None:
        return self.active.n_features

    @property
    def input_dtype(self) -> np.dtype[Any]:
        """The dtype the answering engine scores in (scikit-learn's: float64)."""
        return np.dtype(getattr(self.active, "input_dtype", np.float64))

    @property
    def last_metrics(self) -> Metrics | None:
        return self.active.last_metrics

    def _answer(self, method: str, X: Any) -> npt.NDArray[Any]:
        engine = self.active
        if method not in self.methods:
            primary = (
                ""
                if self.primary is None
                else f"the primary answers {sorted(self.primary.methods)}, "
            )
            raise MethodUnavailableError(
                f"neither engine answers {method}: {primary}the fallback "
                f"{sorted(self.fallback.methods)}"
            )
        if engine is self.primary and method not in engine.methods:
            if method not in self._routed:
                self._routed.add(method)
                warnings.warn(
                    f"{method} comes from the fallback engine: the primary cannot answer it "
                    f"(it answers {sorted(engine.methods)}); its other methods still answer",
                    FallbackWarning,
                    stacklevel=3,
                )
            routed: npt.NDArray[Any] = getattr(self.fallback, method)(X)
            return routed
        if engine is self.primary:
            try:
                result: npt.NDArray[Any] = getattr(engine, method)(X)
                return result
            except _RECOVERABLE as exc:
                self._switch(f"primary engine failed on {method}: {exc}")
        fallback_result: npt.NDArray[Any] = getattr(self.fallback, method)(X)
        return fallback_result

    def predict(self, X: Any) -> npt.NDArray[np.int64]:
        return self._answer("predict", X)

    def score_samples(self, X: Any) -> npt.NDArray[np.floating[Any]]:
        return self._answer("score_samples", X)

    def decision_function(self, X: Any) -> npt.NDArray[np.floating[Any]]:
        return self._answer("decision_function", X)

    def _methods_from_fallback(self) -> list[str]:
        """Methods the fallback answers while the primary answers the others."""
        if self.primary is None or self.is_fallback:
            return []
        return sorted(self.fallback.methods - self.primary.methods)

    def info(self) -> dict[str, Any]:
        info = self.active.info()
        # A provider fallback inside the primary (CUDA asked, CPU ran) is a fallback too.
        info.update(
            engine=self.kind,
            convention=self.convention,
            answering_engine=self.active.kind,
            methods_from_fallback=self._methods_from_fallback(),
            primary=None if self.primary is None else self.primary.info(),
            is_fallback=self.is_fallback or bool(info.get("is_fallback")),
            fallback_reason=self.fallback_reason or info.get("fallback_reason"),
        )
        return info
