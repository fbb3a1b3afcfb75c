"""Secure persistence: skops for estimators, pickle only when the caller says it is trusted."""

from __future__ import annotations

import hashlib
import io
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engines._io import DEFAULT_MAX_MODEL_BYTES, read_regular_file
from engines.errors import ModelLoadError, UnsupportedModelError

__all__ = [
    "DEFAULT_TRUSTED",
    "file_sha256",
    "load_model",
    "load_model_and_sha256",
    "manifest_path_for",
    "save_model",
]

# scikit-learn's distance metrics (sklearn.metrics._dist_metrics), both precisions; PyFunc is
# left out on purpose: it wraps a Python callable.
_DISTANCES = (
    "BrayCurtis",
    "Canberra",
    "Chebyshev",
    "Dice",
    "Euclidean",
    "Hamming",
    "Haversine",
    "Jaccard",
    "Kulsinski",
    "Mahalanobis",
    "Manhattan",
    "Matching",
    "Minkowski",
    "RogersTanimoto",
    "RussellRao",
    "SEuclidean",
    "SokalMichener",
    "SokalSneath",
)
_NEIGHBOUR_TREES = (
    *(f"sklearn.neighbors._kd_tree.KDTree{bits}" for bits in ("", "32", "64")),
    *(f"sklearn.neighbors._ball_tree.BallTree{bits}" for bits in ("", "32", "64")),
)

# The supervised scorer and the boosted classifiers it exports (extra `boost`). Their state is
# the library's own model text (LightGBM) or bytes (XGBoost), parsed by the library's loader, and
# hyperparameters; no Python callable is stored. A custom objective or metric (a function)
# would show up as its own untrusted type and still be refused. OrderedDict: LightGBM's params.
_SCORERS = (
    "engines.detectors.SupervisedScorer",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.basic.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.core.Booster",
    "collections.OrderedDict",
)

# PyOD's detectors that engines.export exports (the types skops.io.get_untrusted_types lists
# for them, PyOD 3.6): plain estimators whose fitted state is arrays and scikit-learn models.
_PYOD_DETECTORS = tuple(
    f"pyod.models.{module}.{name}"
    for module, name in (
        ("iforest", "IForest"),
        ("ocsvm", "OCSVM"),
        ("lof", "LOF"),
        ("knn", "KNN"),
        ("pca", "PCA"),
        ("hbos", "HBOS"),
        ("ecod", "ECOD"),
        ("copod", "COPOD"),
        ("mcd", "MCD"),
        ("gmm", "GMM"),
    )
)

#: Types skops does not trust out of the box but that are plain data holders of the estimators
#: this project serves: fitted tree structures, and the KDTree/BallTree with its DistanceMetric
#: that LocalOutlierFactor and NearestNeighbors store (algorithm "kd_tree", "ball_tree", or
#: "auto" on few features); the supervised scorers' boosted classifiers (_SCORERS). Anything
#: else must be trusted by the caller.
DEFAULT_TRUSTED: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "engines.detectors.PCAReconstructionDetector",
        *_PYOD_DETECTORS,
        *_SCORERS,
        *_NEIGHBOUR_TREES,
        *(
            f"sklearn.metrics._dist_metrics.{metric}Distance{bits}"
            for metric in _DISTANCES
            for bits in ("32", "64")
        ),
    }
)

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(
    path: str | Path,
    *,
    trusted: Sequence[str] | None = None,
    trust_pickle: bool = False,
    max_bytes: int = DEFAULT_MAX_MODEL_BYTES,
) -> Any:
    """Load a fitted estimator from ``.skops`` (secure) or, when trusted, ``.pkl``/``.joblib``.

    ``trusted`` lists extra type names the caller accepts from a ``.skops`` file, beyond skops'
    defaults and ``DEFAULT_TRUSTED``; any other type is refused with the full list. Pickles
    run code when loaded, so they load only with ``trust_pickle=True``. Only a regular file
    of at most ``max_bytes`` is read (ModelLoadError otherwise).

    Example:
        >>> model = load_model("models/detector.skops")  # doctest: +SKIP
    """
    return load_model_and_sha256(
        path, trusted=trusted, trust_pickle=trust_pickle, max_bytes=max_bytes
    )[0]


def load_model_and_sha256(
    path: str | Path,
    *,
    trusted: Sequence[str] | None = None,
    trust_pickle: bool = False,
    max_bytes: int = DEFAULT_MAX_MODEL_BYTES,
) -> tuple[Any, str]:
    """``load_model``, and the sha256 of the very bytes the estimator was loaded from.

    The file is read once: a file replaced while loading cannot give one model's estimator
    with another's hash.

    Example:
        >>> model, sha256 = load_model_and_sha256("models/detector.skops")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"no such model file: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".skops", *_PICKLE_SUFFIXES):
        raise ModelLoadError(
            f"{path}: unknown model format {suffix!r}; expected .skops (or .pkl/.joblib with "
            "trust_pickle=True, CLI: --trust-pickle)"
        )
    if suffix in _PICKLE_SUFFIXES and not trust_pickle:
        raise ModelLoadError(
            f"refusing to load {path}: pickle files run arbitrary code when loaded. Convert it "
            "to .skops (engines.save_model), or, if you created the file yourself, pass "
            "trust_pickle=True (CLI: --trust-pickle)"
        )
    data = read_regular_file(path, max_bytes=max_bytes, what="model file")
    if not data:
        raise ModelLoadError(f"{path} is empty (0 bytes); save the model again")
    sha256 = hashlib.sha256(data).hexdigest()
    if suffix == ".skops":
        return _load_skops(path, data, trusted), sha256
    warnings.warn(
        f"loading {path} with pickle: only do this for files you created yourself",
        UserWarning,
        stacklevel=3,
    )
    return _load_pickle(path, data), sha256


def _load_skops(path: Path, data: bytes, trusted: Sequence[str] | None) -> Any:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable .skops file: {exc}") from exc
    refused = sorted(set(untrusted) - DEFAULT_TRUSTED - set(trusted or ()))
    if refused:
        raise ModelLoadError(
            f"{path} contains types that are not trusted by default: {refused}. Inspect them, "
            "then pass trusted=[...] with the ones you accept (CLI: --trusted TYPE, repeatable)"
        )
    try:
        return sio.loads(data, trusted=list(untrusted))
    except Exception as exc:
        raise ModelLoadError(f"{path} could not be loaded by skops: {exc}") from exc


def _load_pickle(path: Path, data: bytes) -> Any:
    try:
        if path.suffix.lower() == ".joblib":
            import joblib

            return joblib.load(io.BytesIO(data))
        return pickle.loads(data)
    except ModuleNotFoundError as exc:  # the pickled class lives in the user's own module
        raise ModelLoadError(
            f"{path} could not be unpickled: {exc}. A pickle holds the name of its class's "
            f"module, not its code: make {exc.name!r} importable (run from the folder that "
            "holds it with PYTHONPATH=., or install it)"
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"{path} could not be unpickled: {exc}") from exc


def save_model(
    model: Any,
    path: str | Path,
    *,
    onnx: bool = False,
    exporter: str = "auto",
    validation_data: Any = None,
) -> dict[str, Any]:
    """Save a fitted estimator as ``<stem>.skops`` (and ``.onnx``) with ``<stem>.manifest.json``.

    The manifest lists each file with its sha256 and the library versions, so a deployment can
    check it serves what was validated; each saved model has its own, so several models can
    share a folder. Returns the manifest.

    Example:
        >>> save_model(detector, "models/detector", onnx=True)["files"]  # doctest: +SKIP
        {'detector.skops': '…', 'detector.onnx': '…'}
        >>> sorted(p.name for p in Path("models").iterdir())  # doctest: +SKIP
        ['detector.manifest.json', 'detector.onnx', 'detector.skops']
    """
    import json

    import skops.io as sio

    from engines._io import atomic_write_bytes
    from engines.export import export
    from engines.metadata import library_versions

    if type(model).__name__ == "AutoencoderDetector":
        raise UnsupportedModelError(
            "skops cannot persist torch modules securely: deploy the autoencoder as ONNX with "
            "engines.export(model, path='ae.onnx'), or save model.module_.state_dict() with torch"
        )
    base = Path(path)
    if base.suffix in (".skops", ".onnx"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    payload = sio.dumps(model)  # everything that can fail comes before the first file written
    report = None
    if onnx:
        report = export(
            model,
            path=base.with_name(base.name + ".onnx"),
            exporter=exporter,  # type: ignore[arg-type]
            validation_data=validation_data,
        )
    skops_path = atomic_write_bytes(base.with_name(base.name + ".skops"), payload)
    files[skops_path.name] = file_sha256(skops_path)
    manifest: dict[str, Any] = {"estimator": type(model).__name__, "files": files}
    if report is not None:
        assert report.path is not None
        files[report.path.name] = report.sha256
        manifest["exporter"] = report.exporter
        manifest["validation"] = None if report.validation is None else report.validation.as_dict()
    manifest["versions"] = {k: v for k, v in library_versions().items() if v is not None}
    manifest_path = manifest_path_for(base)
    atomic_write_bytes(manifest_path, json.dumps(manifest, indent=2, default=str).encode())
    return manifest


def manifest_path_for(path: str | Path) -> Path:
    """Where save_model writes the manifest of ``path`` (``.skops``/``.onnx`` file or stem).

    Example:
        >>> manifest_path_for("models/detector.skops")
        PosixPath('models/detector.manifest.json')
    """
    base = Path(path)
    if base.suffix in (".skops", ".onnx"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".manifest.json")
