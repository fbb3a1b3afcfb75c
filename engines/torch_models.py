"""A PyTorch autoencoder anomaly detector with scikit-learn's conventions."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

try:
    import torch
except ImportError as exc:  # torch is the optional `torch` extra
    raise ImportError(
        "engines.torch_models needs PyTorch: pip install 'onnx-anomaly-harness[torch]'"
    ) from exc

__all__ = ["AutoencoderDetector", "ReconstructionError"]


class ReconstructionError(torch.nn.Module):
    """Standardise, encode, decode, and return the per-row mean squared reconstruction error."""

    def __init__(self, n_features: int, hidden: Sequence[int], mean: Any, scale: Any) -> None:
        super().__init__()
        nn = torch.nn
        sizes = [n_features, *hidden]
        layers: list[Any] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.Tanh()]
        back = sizes[::-1]
        for i, (a, b) in enumerate(itertools.pairwise(back)):
            layers.append(nn.Linear(a, b))
            if i < len(back) - 2:
                layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: Any) -> Any:
        z = (x - self.mean) / self.scale
        return ((self.net(z) - z) ** 2).mean(dim=1)


class AutoencoderDetector(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Anomaly score = reconstruction error of a small MLP autoencoder.

    ``score_samples`` is minus the per-row reconstruction error; ``offset_`` is minus the
    error threshold chosen at fit time as the (1 - contamination) quantile of the training
    errors, so ``decision_function`` and ``predict`` follow scikit-learn's signs.

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(256, 6)).astype(np.float32)
        >>> det = AutoencoderDetector(hidden=(4, 2), epochs=5).fit(X)
        >>> det.predict(X[:2]).shape
        (2,)
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (16, 4),
        epochs: int = 60,
        learning_rate: float = 1e-2,
        batch_size: int = 256,
        contamination: float = 0.05,
        random_state: int = 0,
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.contamination = contamination
        self.random_state = random_state

    def fit(self, X: npt.ArrayLike, y: Any = None) -> AutoencoderDetector:
        if not 0.0 < self.contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {self.contamination}")
        data = validate_data(self, X, dtype=np.float32)
        torch.manual_seed(self.random_state)
        scale = data.std(axis=0)
        scale[scale == 0] = 1.0
        self.module_ = ReconstructionError(data.shape[1], self.hidden, data.mean(axis=0), scale)
        optimiser = torch.optim.Adam(self.module_.parameters(), lr=self.learning_rate)
        tensor = torch.from_numpy(np.ascontiguousarray(data))
        generator = torch.Generator().manual_seed(self.random_state)
        self.module_.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(tensor), generator=generator)
            for start in range(0, len(tensor), self.batch_size):
                batch = tensor[order[start : start + self.batch_size]]
                optimiser.zero_grad()
                loss = self.module_(batch).mean()
                loss.backward()
                optimiser.step()
        self.module_.eval()
        errors = self._errors(data)
        self.threshold_ = float(np.quantile(errors, 1.0 - self.contamination))
        self.offset_ = -self.threshold_
        return self

    def _errors(self, data: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        with torch.no_grad():
            out = self.module_(torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)))
        return np.asarray(out.numpy(), dtype=np.float64)

    def score_samples(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Minus the reconstruction error: higher is more normal."""
        check_is_fitted(self, "module_")
        return -self._errors(validate_data(self, X, reset=False, dtype=np.float32))

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """score_samples - offset_ (= threshold - error): negative for anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """-1 for anomalies, 1 for normal rows."""
        return np.where(self.decision_function(X) < 0, -1, 1).astype(np.int64)
