"""The model-case zoo: named, frozen cases shared by the parity and benchmark suites."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from functools import cache
from types import MappingProxyType
from typing import Any, Literal

from sklearn.covariance import EllipticEnvelope
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import SGDOneClassSVM
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from engines import ExportReport, PCAReconstructionDetector, QuantizeReport, Tolerance, export
from engines.detectors import SupervisedScorer
from harness.cases.datasets import Dataset, load_dataset

__all__ = ["CASES", "EXPORTERS", "ModelCase", "cases", "exported", "fitted", "quantized"]

Profile = Literal["fast", "regular", "large"]
EXPORTERS: tuple[str, ...] = ("native", "skl2onnx", "torch", "onnxmltools")
_PROFILE_ORDER = {"fast": 0, "regular": 1, "large": 2}
_PREFERENCE = ("native", "torch", "skl2onnx", "onnxmltools")  # ModelCase.best_exporter

NO_NATIVE = "no native exporter for this estimator: skl2onnx's graph is used"
NOT_SKLEARN = "not a scikit-learn estimator"


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclasses.dataclass(frozen=True)
class ModelCase:
    """A detector on a dataset, the exporters that apply, and how close they must answer.

    ``unsupported`` maps an exporter to the reason it cannot handle the case; those pairs are
    listed (and reported) but never run. ``tolerances`` overrides the default per exporter.
    """

    name: str
    factory: Callable[[], Any] = dataclasses.field(repr=False)
    dataset: str
    exporters: tuple[str, ...]
    unsupported: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerances: Mapping[str, Tolerance] = dataclasses.field(default_factory=dict)
    #: "engine:check" -> why it fails upstream; the parity suite runs these as strict xfails.
    known_gaps: Mapping[str, str] = dataclasses.field(default_factory=dict)
    profile: Profile = "fast"
    description: str = ""
    #: The first ``harness run`` profile that times this case: variants of a detector on
    #: further data sets are timed by the full profile only, so the quick one stays quick.
    benchmark: Literal["quick", "full"] = "quick"
    #: Modules the detector itself needs beyond the base install (PyOD, LightGBM, XGBoost);
    #: its exporters' own are added (``missing``).
    needs: tuple[str, ...] = ()

    def missing(self) -> list[str]:
        """The modules this case needs that are not installed here (an extra of the wheel)."""
        wanted = [*self.needs, *(m for e in self.exporters for m in _EXPORTER_NEEDS.get(e, ()))]
        return [m for m in dict.fromkeys(wanted) if importlib.util.find_spec(m) is None]

    def __post_init__(self) -> None:
        object.__setattr__(self, "unsupported", _frozen(self.unsupported))
        object.__setattr__(self, "tolerances", _frozen(self.tolerances))
        object.__setattr__(self, "known_gaps", _frozen(self.known_gaps))
        unknown = set(self.exporters) | set(self.unsupported)
        if unknown - set(EXPORTERS):
            raise ValueError(f"{self.name}: unknown exporters {sorted(unknown - set(EXPORTERS))}")
        if overlap := set(self.exporters) & set(self.unsupported):
            raise ValueError(f"{self.name}: {sorted(overlap)} both supported and unsupported")

    def data(self) -> Dataset:
        return load_dataset(self.dataset)

    @property
    def best_exporter(self) -> str:
        """The exporter timed and used behind the fallback engine: native first, then torch,
        skl2onnx, onnxmltools."""
        return next(
            e for e in ("native", "torch", "skl2onnx", "onnxmltools") if e in self.exporters
        )

    def tolerance(self, exporter: str) -> Tolerance | None:
        """The case's own bound for ``exporter`` (None: the exporter's default)."""
        return self.tolerances.get(exporter)


#: Modules an exporter needs beyond the base install.
_EXPORTER_NEEDS: dict[str, tuple[str, ...]] = {
    "torch": ("torch", "onnxscript"),
    "onnxmltools": ("onnxmltools",),
}


def available(chosen: list[ModelCase]) -> tuple[list[ModelCase], list[ModelCase]]:
    """(the cases whose modules are installed, the others)."""
    ok = [c for c in chosen if not c.missing()]
    return ok, [c for c in chosen if c.missing()]


def _lightgbm_scorer() -> Any:
    from lightgbm import LGBMClassifier

    classifier = LGBMClassifier(
        n_estimators=100, num_leaves=15, n_jobs=1, random_state=0, verbose=-1
    )
    return SupervisedScorer(classifier, threshold=0.5, anomaly_class=-1)


def _xgboost_scorer() -> Any:
    from xgboost import XGBClassifier

    classifier = XGBClassifier(n_estimators=100, max_depth=4, n_jobs=1, random_state=0)
    return SupervisedScorer(classifier, threshold=0.5, anomaly_class=-1)


def _autoencoder() -> Any:
    from engines.torch_models import AutoencoderDetector

    return AutoencoderDetector(hidden=(128, 32), epochs=30, random_state=0)


_BOTH = ("native", "skl2onnx")
_SKL2ONNX_NAN = (
    "skl2onnx's IsolationForest ignores scikit-learn's missing-value routing: rows with NaN "
    "get other scores and labels (minimal input: one row, one NaN)"
)
# NaN is drawn in errors_match only (harness.checks.targets): one cause, one expected failure.
_SKL2ONNX_FOREST_GAPS = {"onnx-skl2onnx:errors_match": _SKL2ONNX_NAN}


def _gaps(reason: str, **checks: tuple[str, ...]) -> dict[str, str]:
    """{"engine:check": reason} for the checks listed per engine (keyword = engine, _ for -)."""
    return {f"{engine.replace('_', '-')}:{c}": reason for engine, cs in checks.items() for c in cs}


_INT8_BATCH = (
    "dynamic int8 quantizes activations with per-batch scales: a row's answer depends on the "
    "batch it comes in"
)
_SKL_ONLY = {"native": NO_NATIVE, "torch": NOT_SKLEARN}
_BOOSTED = "a gradient-boosted classifier wrapped as a scorer: converted by onnxmltools only"
_SCORER_ONLY = {"native": _BOOSTED, "skl2onnx": _BOOSTED, "torch": NOT_SKLEARN}
_TREE_TORCH = {"torch": NOT_SKLEARN}


def _pyod(module: str, name: str, **params: Any) -> Callable[[], Any]:
    """A PyOD detector factory: PyOD is imported when the case is fitted, not when listed."""

    def factory() -> Any:
        return getattr(importlib.import_module(f"pyod.models.{module}"), name)(**params)

    return factory


_PYOD_ONLY = {
    "skl2onnx": "a PyOD detector: exported by engines' native PyOD graphs only",
    "torch": NOT_SKLEARN,
}
# telemetry-dense: telemetry without its constant columns (a covariance must be full rank).
_PYOD_DATASETS = {
    "telemetry": "",
    "telemetry-dense": "",
    "breast_cancer": "-bc",
    "digits": "-digits",
}
_ALONE = "; scores each row alone (PyOD ranks a batch jointly)"


def _pyod_cases(
    stem: str,
    factory: Callable[[], Any],
    description: str,
    datasets: tuple[str, ...] = ("telemetry", "breast_cancer", "digits"),
    fast: bool = True,
) -> tuple[ModelCase, ...]:
    """One case per data set ("pyod-knn", "pyod-knn-bc", ...); "fast" on telemetry only."""
    return tuple(
        ModelCase(
            f"pyod-{stem}{_PYOD_DATASETS[dataset]}",
            factory,
            dataset,
            ("native",),
            _PYOD_ONLY,
            profile="fast" if fast and dataset.startswith("telemetry") else "regular",
            description=f"{description}, on {dataset}",
            benchmark="quick" if dataset.startswith("telemetry") else "full",
            needs=("pyod",),
        )
        for dataset in datasets
    )


_PYOD_CASES: tuple[ModelCase, ...] = (
    *_pyod_cases("iforest", _pyod("iforest", "IForest", random_state=0), "PyOD IForest, 100 trees"),
    *_pyod_cases("ocsvm", _pyod("ocsvm", "OCSVM"), "PyOD OCSVM, rbf kernel"),
    # Not on digits: integer pixels tie neighbour distances, and LOF's score depends on which
    # tied row is chosen (0.6% apart measured).
    *_pyod_cases(
        "lof", _pyod("lof", "LOF"), "PyOD LOF, 20 neighbours", ("telemetry", "breast_cancer")
    ),
    *_pyod_cases("knn", _pyod("knn", "KNN"), "PyOD KNN, distance to the 5th neighbour"),
    *_pyod_cases(
        "knn-mean", _pyod("knn", "KNN", method="mean"), "PyOD KNN, mean of 5", ("telemetry",)
    ),
    *_pyod_cases(
        "knn-median",
        _pyod("knn", "KNN", method="median", n_neighbors=6),
        "PyOD KNN, median of 6",
        ("telemetry",),
    ),
    # 5 components: all of them would include constant columns' zero-variance components,
    # which PyOD's weighted PCA divides by (threshold_ nan).
    *_pyod_cases("pca", _pyod("pca", "PCA", n_components=5), "PyOD PCA, 5 components"),
    # numba compiles HBOS's scoring on first use: ~15 s per process and input dtype.
    *_pyod_cases("hbos", _pyod("hbos", "HBOS"), "PyOD HBOS, 10 bins", fast=False),
    *_pyod_cases(
        "hbos-auto",
        _pyod("hbos", "HBOS", n_bins="auto"),
        "PyOD HBOS, bins per feature",
        ("telemetry",),
        fast=False,
    ),
    # On telemetry-dense: PyOD's skewness of a constant, non-zero column warns of
    # catastrophic cancellation on every fit.
    *_pyod_cases(
        "ecod",
        _pyod("ecod", "ECOD"),
        "PyOD ECOD" + _ALONE,
        ("telemetry-dense", "breast_cancer", "digits"),
        fast=False,
    ),
    *_pyod_cases(
        "copod",
        _pyod("copod", "COPOD"),
        "PyOD COPOD" + _ALONE,
        ("telemetry-dense", "breast_cancer", "digits"),
        fast=False,
    ),
    *_pyod_cases(
        "mcd",
        _pyod("mcd", "MCD", random_state=0),
        "PyOD MCD, squared Mahalanobis distance",
        ("telemetry-dense", "breast_cancer"),
    ),
    *_pyod_cases(
        "gmm", _pyod("gmm", "GMM", n_components=2, random_state=0), "PyOD GMM, 2 components"
    ),
)

CASES: tuple[ModelCase, ...] = (
    ModelCase(
        "iforest-100",
        lambda: IsolationForest(n_estimators=100, random_state=0),
        "telemetry",
        _BOTH,
        _TREE_TORCH,
        known_gaps=_SKL2ONNX_FOREST_GAPS,
        description="IsolationForest, 100 trees, contamination auto",
    ),
    ModelCase(
        "iforest-300",
        lambda: IsolationForest(n_estimators=300, random_state=0),
        "telemetry",
        _BOTH,
        _TREE_TORCH,
        profile="regular",
        description="IsolationForest, 300 trees, contamination auto",
    ),
    ModelCase(
        "iforest-300-c05",
        lambda: IsolationForest(n_estimators=300, contamination=0.05, random_state=0),
        "telemetry",
        _BOTH,
        _TREE_TORCH,
        profile="regular",
        description="IsolationForest, 300 trees, contamination 0.05",
    ),
    ModelCase(
        "iforest-mf05",
        lambda: IsolationForest(n_estimators=100, max_features=0.5, random_state=0),
        "telemetry",
        ("native",),
        {"skl2onnx": "skl2onnx refuses max_features < 1.0", **_TREE_TORCH},
        description="IsolationForest, max_features 0.5",
    ),
    ModelCase(
        "iforest-bootstrap",
        lambda: IsolationForest(n_estimators=100, bootstrap=True, max_samples=0.5, random_state=0),
        "breast_cancer",
        _BOTH,
        _TREE_TORCH,
        known_gaps=_SKL2ONNX_FOREST_GAPS,
        description="IsolationForest, bootstrap, max_samples 0.5, on breast_cancer",
    ),
    ModelCase(
        "scaler-iforest",
        lambda: make_pipeline(StandardScaler(), IsolationForest(n_estimators=100, random_state=0)),
        "telemetry",
        _BOTH,
        _TREE_TORCH,
        known_gaps=_SKL2ONNX_FOREST_GAPS,
        description="StandardScaler + IsolationForest pipeline",
    ),
    ModelCase(
        "ocsvm-rbf",
        lambda: OneClassSVM(kernel="rbf", gamma="scale", nu=0.05),
        "telemetry",
        _BOTH,
        _TREE_TORCH,
        description="OneClassSVM, rbf kernel (native: float64 kernel graph; skl2onnx: float32)",
    ),
    ModelCase(
        "sgd-ocsvm",
        lambda: make_pipeline(StandardScaler(), SGDOneClassSVM(nu=0.05, random_state=0)),
        "telemetry",
        ("skl2onnx",),
        _SKL_ONLY,
        description="StandardScaler + SGDOneClassSVM",
    ),
    ModelCase(
        "lof-novelty",
        lambda: LocalOutlierFactor(n_neighbors=20, novelty=True),
        "telemetry",
        _BOTH,
        _TREE_TORCH,
        description="LocalOutlierFactor(novelty=True), 20 neighbours",
    ),
    ModelCase(
        "gmm-full",
        lambda: GaussianMixture(n_components=4, covariance_type="full", random_state=0),
        "telemetry-dense",
        _BOTH,
        _TREE_TORCH,
        description="GaussianMixture, 4 components, full covariance (score_samples only)",
    ),
    ModelCase(
        "gmm-diag",
        lambda: GaussianMixture(n_components=3, covariance_type="diag", random_state=0),
        "digits",
        _BOTH,
        _TREE_TORCH,
        # Fitted on float32 digits, scikit-learn scores float32 rows in float32: its
        # log-likelihood terms cancel, off by ~28 eps of the answer on the test rows; the
        # derived bounds measure that (ParityTarget.conditioning) instead of declaring a gap.
        description="GaussianMixture, 3 components, diagonal covariance, on digits",
    ),
    ModelCase(
        "bgmm-tied",
        lambda: BayesianGaussianMixture(
            n_components=3, covariance_type="tied", max_iter=500, random_state=0
        ),
        "telemetry-dense",
        _BOTH,
        _TREE_TORCH,
        description="BayesianGaussianMixture, tied covariance",
    ),
    ModelCase(
        "elliptic-envelope",
        lambda: EllipticEnvelope(contamination=0.05, random_state=0),
        "telemetry-dense",
        ("native",),
        {"skl2onnx": "skl2onnx has no EllipticEnvelope converter", **_TREE_TORCH},
        description="EllipticEnvelope (minimum covariance determinant)",
    ),
    ModelCase(
        "pca-recon",
        lambda: PCAReconstructionDetector(n_components=4, contamination=0.05),
        "telemetry",
        ("native",),
        {
            "skl2onnx": "skl2onnx has no PCA inverse_transform, so no reconstruction score",
            **_TREE_TORCH,
        },
        description="PCA reconstruction-error detector (engines.PCAReconstructionDetector)",
    ),
    ModelCase(
        "autoencoder",
        _autoencoder,
        "telemetry-dense",
        ("torch",),
        {"native": "a torch module: exported by torch.onnx", "skl2onnx": NOT_SKLEARN},
        profile="regular",
        known_gaps={"onnx-torch-int8:batch_invariance": _INT8_BATCH},
        description="MLP autoencoder (torch), reconstruction error with a contamination threshold",
    ),
    *_PYOD_CASES,
    ModelCase(
        "iforest-w1",
        lambda: IsolationForest(n_estimators=300, random_state=0),
        "w1",
        _BOTH,
        _TREE_TORCH,
        profile="large",
        description="W1: IsolationForest(300) on 10,000 x 25 standard normal",
    ),
    ModelCase(
        "lgbm-scorer",
        _lightgbm_scorer,
        "breast_cancer-labelled",
        ("onnxmltools",),
        _SCORER_ONLY,
        profile="regular",  # fast once bench/conformance pick "onnxmltools" as a best exporter
        description="LightGBM classifier (100 trees) as a supervised scorer: p(malignant) > 0.5",
        needs=("lightgbm",),
    ),
    ModelCase(
        "xgb-scorer",
        _xgboost_scorer,
        "breast_cancer-labelled",
        ("onnxmltools",),
        _SCORER_ONLY,
        profile="regular",  # fast once bench/conformance pick "onnxmltools" as a best exporter
        description="XGBoost classifier (100 trees) as a supervised scorer: p(malignant) > 0.5",
        needs=("xgboost",),
    ),
)

_BY_NAME = {case.name: case for case in CASES}


def cases(profile: Profile = "large", names: list[str] | None = None) -> list[ModelCase]:
    """Cases up to ``profile`` (fast < regular < large), optionally only ``names``."""
    if names:
        missing = [n for n in names if n not in _BY_NAME]
        if missing:
            raise KeyError(f"unknown cases {missing}; known: {sorted(_BY_NAME)}")
        return [_BY_NAME[n] for n in names]
    limit = _PROFILE_ORDER[profile]
    return [c for c in CASES if _PROFILE_ORDER[c.profile] <= limit]


@cache
def fitted(name: str) -> Any:
    """The case's detector fitted on its dataset's training rows (once per process)."""
    case = _BY_NAME[name]
    data = case.data()
    if data.y_train is not None:  # supervised scorers learn from labelled training rows
        return case.factory().fit(data.X_train, data.y_train)
    return case.factory().fit(data.X_train)


@cache
def exported(name: str, exporter: str, dtype: str = "float32") -> ExportReport:
    """The case exported by ``exporter`` and validated on its test rows (once per process)."""
    case = _BY_NAME[name]
    if exporter in case.unsupported:
        raise ValueError(f"{name}: {exporter} does not apply ({case.unsupported[exporter]})")
    return export(
        fitted(name),
        exporter=exporter,  # type: ignore[arg-type]
        dtype=dtype,
        validation_data=case.data().X_test,
        tolerance=case.tolerance(exporter),
    )


@cache
def quantized(name: str, exporter: str) -> tuple[bytes | None, QuantizeReport]:
    """The case's export quantized to dynamic int8 (once per process): the int8 model, None
    where quantization skipped it (the report says why), and the report with the int8 graph's
    parity against fp32 on the case's test rows. The parity suite and the benchmarks share it."""
    import tempfile
    from pathlib import Path

    from engines import quantize

    rows = _BY_NAME[name].data().X_test[:512]
    with tempfile.TemporaryDirectory(prefix="harness-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(exported(name, exporter).model.SerializeToString())
        report = quantize(source, target, "dynamic-int8", parity_data=rows)
        return (None if report.skipped else target.read_bytes()), report
