"""A user's model pair, loaded and validated once before any work (``run``, ``check``, A/B)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines import EngineConfig, EngineError, OnnxEngine, SklearnEngine
from engines.persistence import load_model_and_sha256
from harness.cases.user import UserModel
from harness.cases.userdata import DataError, load_rows

__all__ = ["LoadedUserModel", "UserModelError", "load_user_model"]

#: Rows generated when the user gives no data: enough for batch 10,000 without tiling.
GENERATED_ROWS = 10_000
_PICKLES = (".pkl", ".pickle", ".joblib")


class UserModelError(ValueError):
    """The user's model, reference or data cannot be used as given (a usage error, exit 2)."""


@dataclasses.dataclass(frozen=True)
class LoadedUserModel:
    """What the benchmarks and the parity checks need of a user's pair."""

    user: UserModel
    model_path: Path | None  # the .onnx file; None for a scikit-learn run
    estimator: Any  # the reference, or the model itself for a .skops run
    estimator_sha256: str | None
    estimator_name: str | None
    n_features: int
    offset: float | None  # the reference's offset_: derives score_samples from scores
    method: str  # what is timed on every side: the same method everywhere
    rows: npt.NDArray[np.float32] = dataclasses.field(repr=False)
    fixed_batch: int | None = None  # the .onnx graph's fixed batch size (OnnxEngine.fixed_batch)

    @property
    def parity(self) -> str:
        """How this model's answers are vouched for in the results: "paired" with a reference
        (the verdict of the pair's checks, where they ran, is the run's ``harness.parity``
        block; this row was timed before it), "unchecked" without one."""
        if self.model_path is None:
            return "reference"
        return "unchecked" if self.user.reference is None else "paired"

    def distinct_rows(self, batch_size: int) -> int:
        """How many different rows a batch of ``batch_size`` holds: a batch is the rows tiled
        (``harness.timing.prepare.Runner.batch``), so data with fewer rows repeats them."""
        return len(np.unique(self.rows[:batch_size], axis=0))

    def repeated_rows(self, batch_sizes: Sequence[int]) -> str | None:
        """One line where the largest batch repeats rows (the data has fewer distinct rows),
        whose timing may not represent varied data; None where every row differs."""
        largest = max(batch_sizes)
        distinct = self.distinct_rows(largest)
        if distinct >= largest:
            return None
        what = f"--data {self.user.data}" if self.user.data is not None else "the generated data"
        rows = f"{distinct:,} distinct row" + ("s" if distinct > 1 else "")
        return (
            f"{what} has {rows}, fewer than the largest batch ({largest:,}): batches are its "
            "rows tiled, so larger ones repeat rows and may time differently from varied data"
        )

    @property
    def scoring(self) -> str | None:
        """How the .onnx graph scores a batch where not whole (a fixed batch size), else None."""
        if self.fixed_batch is None:
            return None
        rows = f"{self.fixed_batch} row" + ("s" if self.fixed_batch > 1 else "")
        return (
            f"in chunks of {rows}, the graph's fixed batch size: one onnxruntime run each, "
            "the last chunk padded"
        )


def _load_estimator(path: Path, user: UserModel, what: str) -> tuple[Any, str]:
    """The estimator and the sha256 of the bytes it was loaded from (one read of the file)."""
    if not path.is_file():
        raise UserModelError(f"{what} {path}: no such file")
    if path.suffix.lower() not in (".skops", *_PICKLES):
        raise UserModelError(
            f"{what} {path}: expected a .skops file (or .pkl/.joblib with --trust-pickle)"
        )
    try:
        return load_model_and_sha256(path, trusted=user.trusted, trust_pickle=user.trust_pickle)
    except EngineError as exc:
        raise UserModelError(f"{what} {path}: {exc}") from None


def _methods(engine: Any) -> frozenset[str]:
    return frozenset(engine.methods)


@cache
def load_user_model(user: UserModel) -> LoadedUserModel:
    """Load and cross-check model, reference and data; raise UserModelError with one line.

    Example:
        >>> loaded = load_user_model(UserModel(Path("m.onnx"), Path("m.skops")))  # doctest: +SKIP
    """
    path = user.model
    if not path.is_file():
        raise UserModelError(f"--model {path}: no such file")
    suffix = path.suffix.lower()
    if suffix != ".onnx" and suffix != ".skops" and suffix not in _PICKLES:
        raise UserModelError(f"--model {path}: expected an .onnx or .skops file, got {suffix!r}")
    if suffix != ".onnx" and user.reference is not None:
        raise UserModelError(
            f"--model {path} is already a scikit-learn model: --reference applies to an "
            ".onnx --model"
        )
    ref_path = path if suffix != ".onnx" else user.reference
    estimator, sha = (
        (None, None) if ref_path is None else _load_estimator(ref_path, user, "--reference")
    )
    width: int | None = None
    methods: frozenset[str] | None = None
    names: list[str] | None = None
    estimator_name: str | None = None
    offset: float | None = None
    fixed_batch: int | None = None
    dtype = np.dtype(np.float32)  # what the rows are kept as: the graph's input type
    if estimator is not None:
        try:
            reference = SklearnEngine(estimator, collect_metrics=False)
        except EngineError as exc:
            raise UserModelError(f"{ref_path}: {exc}") from None
        width, methods = reference.n_features, _methods(reference)
        names = _names(estimator)
        final = _final_step(estimator)
        estimator_name = type(final).__name__
        raw_offset = getattr(final, "offset_", None)
        if isinstance(raw_offset, int | float | np.number):
            offset = float(raw_offset)
    model_path = path if suffix == ".onnx" else None
    if model_path is not None:
        config = EngineConfig(provider="cpu", intra_op_threads=1, collect_metrics=False)
        try:
            onnx_engine = OnnxEngine(model_path, config, offset=offset)
        except EngineError as exc:
            raise UserModelError(f"--model {path}: {exc}") from None
        onnx_width = onnx_engine.n_features
        dtype = onnx_engine.input_dtype
        if width is not None and onnx_width is not None and onnx_width != width:
            raise UserModelError(
                f"--model {path} takes {onnx_width} features but --reference {ref_path} "
                f"takes {width}: they are not a pair"
            )
        width = onnx_width if onnx_width is not None else width
        fixed_batch = onnx_engine.fixed_batch
        onnx_methods = _methods(onnx_engine)
        methods = onnx_methods if methods is None else methods & onnx_methods
        meta_names = onnx_engine.metadata.get("feature_names")
        if names is None and isinstance(meta_names, list):
            names = [str(n) for n in meta_names]
        if estimator_name is None and onnx_engine.metadata.get("estimator"):
            estimator_name = str(onnx_engine.metadata["estimator"])
    methods = methods or frozenset()
    for method in ("score_samples", "decision_function", "predict"):
        if method in methods:
            break
    else:
        raise UserModelError(
            f"--model {path} and its reference have no scoring method in common "
            f"(model answers {sorted(methods) or 'nothing'})"
        )
    if user.n_features is not None and width is not None and user.n_features != width:
        raise UserModelError(f"--n-features {user.n_features}, but the model takes {width}")
    width = width if width is not None else user.n_features
    if user.data is not None:
        try:
            rows = load_rows(user.data, n_features=width, feature_names=names, dtype=dtype)
        except DataError as exc:
            raise UserModelError(str(exc)) from None
        width = rows.shape[1]
    elif width is None:
        raise UserModelError(f"the input width of {path} is unknown: pass --data or --n-features")
    else:
        rows = np.random.default_rng(0).normal(size=(GENERATED_ROWS, width)).astype(dtype)
    return LoadedUserModel(
        user=user,
        model_path=model_path,
        estimator=estimator,
        estimator_sha256=sha,
        estimator_name=estimator_name,
        n_features=int(width),
        offset=offset,
        method=method,
        rows=rows,
        fixed_batch=fixed_batch,
    )


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def _names(estimator: Any) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]
