from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import IsolationForest

from engines import ModelLoadError, load_model


class _Custom:
    """A type skops does not trust by default."""

    def __init__(self) -> None:
        self.value = 1


def test_skops_round_trip(tmp_path: Path, iforest: IsolationForest, rng_data: np.ndarray) -> None:
    path = tmp_path / "det.skops"
    sio.dump(iforest, path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.score_samples(rng_data), iforest.score_samples(rng_data))


def test_untrusted_skops_types_are_listed_and_refused(tmp_path: Path) -> None:
    path = tmp_path / "custom.skops"
    sio.dump({"payload": _Custom()}, path)
    with pytest.raises(ModelLoadError, match=r"not trusted by default: \[.*_Custom'\]") as err:
        load_model(path)
    assert "pass trusted=[...] with the ones you accept (CLI: --trusted TYPE, repeatable)" in str(
        err.value
    )
    trusted = sio.get_untrusted_types(file=path)
    assert load_model(path, trusted=trusted)["payload"].value == 1


def test_pickles_need_explicit_trust(tmp_path: Path, iforest: IsolationForest) -> None:
    pkl = tmp_path / "det.pkl"
    pkl.write_bytes(pickle.dumps(iforest))
    job = tmp_path / "det.joblib"
    joblib.dump(iforest, job)
    for path in (pkl, job):
        with pytest.raises(ModelLoadError, match="arbitrary code") as err:
            load_model(path)
        assert "pass trust_pickle=True (CLI: --trust-pickle)" in str(err.value)
        with pytest.warns(UserWarning, match="only do this for files you created"):
            assert isinstance(load_model(path, trust_pickle=True), IsolationForest)


@pytest.mark.filterwarnings("ignore:loading .* with pickle")  # the trust warning, tested above
@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("missing.skops", None, "no such model file"),
        ("garbage.skops", b"not a zip", "not a readable .skops file"),
        ("garbage.pkl", b"not a pickle", "could not be unpickled"),
        ("model.h5", b"x", "unknown model format"),
        ("empty.skops", b"", "is empty"),
        ("empty.pkl", b"", "is empty"),
        # a pickled instance of a class in a module that is not importable here
        (
            "theirs.pkl",
            b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x0cnot_a_module"
            b"\x94\x8c\x02AE\x94\x93\x94)\x81\x94.",
            "make 'not_a_module' importable",
        ),
    ],
)
def test_bad_files(tmp_path: Path, name: str, payload: bytes | None, message: str) -> None:
    path = tmp_path / name
    if payload is not None:
        path.write_bytes(payload)
    with pytest.raises(ModelLoadError, match=message):
        load_model(path, trust_pickle=True)


def test_save_model_writes_skops_onnx_and_manifest(
    tmp_path: Path, iforest: IsolationForest, rng_data: np.ndarray
) -> None:
    import json

    from engines import OnnxEngine, save_model
    from engines.persistence import file_sha256, manifest_path_for

    manifest = save_model(iforest, tmp_path / "models" / "detector", onnx=True)
    folder = tmp_path / "models"
    assert sorted(p.name for p in folder.iterdir()) == [
        "detector.manifest.json",
        "detector.onnx",
        "detector.skops",
    ]
    assert manifest_path_for(folder / "detector.onnx") == folder / "detector.manifest.json"
    on_disk = json.loads((folder / "detector.manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    for name, digest in manifest["files"].items():
        assert file_sha256(folder / name) == digest
    assert manifest["exporter"] == "native"
    assert manifest["validation"]["passed"] is True
    loaded = load_model(folder / "detector.skops")
    np.testing.assert_array_equal(loaded.predict(rng_data), iforest.predict(rng_data))
    np.testing.assert_array_equal(
        OnnxEngine(folder / "detector.onnx").predict(rng_data), iforest.predict(rng_data)
    )


def test_two_models_in_one_folder_keep_their_own_manifests(
    tmp_path: Path, iforest: IsolationForest, rng_data: np.ndarray
) -> None:
    import json

    from engines import save_model
    from engines.persistence import file_sha256

    other = IsolationForest(n_estimators=5, random_state=1).fit(rng_data)
    first = save_model(iforest, tmp_path / "a.skops")
    second = save_model(other, tmp_path / "b.v2")  # a dot in the stem is kept, not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.manifest.json",
        "a.skops",
        "b.v2.manifest.json",
        "b.v2.skops",
    ]
    assert json.loads((tmp_path / "a.manifest.json").read_text())["files"] == first["files"]
    assert json.loads((tmp_path / "b.v2.manifest.json").read_text())["files"] == second["files"]
    assert first["files"] == {"a.skops": file_sha256(tmp_path / "a.skops")}
    assert second["files"] == {"b.v2.skops": file_sha256(tmp_path / "b.v2.skops")}


_METRICS: list[tuple[str, dict[str, object]]] = [
    ("euclidean", {}),
    ("manhattan", {}),
    ("minkowski", {"p": 3}),
    ("chebyshev", {}),
    ("mahalanobis", {"metric_params": {"VI": np.eye(5)}}),  # KDTree has none: not with kd_tree
]


@pytest.mark.parametrize(
    ("algorithm", "metric", "params"),
    [
        (algorithm, metric, params)
        for algorithm in ("kd_tree", "ball_tree", "auto")
        for metric, params in _METRICS
        if not (algorithm == "kd_tree" and metric == "mahalanobis")
    ],
)
def test_neighbour_structures_are_trusted(
    tmp_path: Path, algorithm: str, metric: str, params: dict[str, object]
) -> None:
    from sklearn.neighbors import LocalOutlierFactor

    from engines import save_model
    from engines.persistence import DEFAULT_TRUSTED

    X = np.random.default_rng(0).normal(size=(120, 5))  # <= 15 features: "auto" builds a tree
    lof = LocalOutlierFactor(
        n_neighbors=10, novelty=True, algorithm=algorithm, metric=metric, **params
    ).fit(X)
    save_model(lof, tmp_path / "lof")
    untrusted = set(sio.get_untrusted_types(file=tmp_path / "lof.skops"))
    assert untrusted, "the tree and its metric are not trusted by skops itself"
    assert untrusted <= DEFAULT_TRUSTED
    loaded = load_model(tmp_path / "lof.skops")
    np.testing.assert_array_equal(loaded.score_samples(X), lof.score_samples(X))
    np.testing.assert_array_equal(loaded.predict(X[:20] * 3), lof.predict(X[:20] * 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trusted_names_match_what_skops_reports(dtype: type[np.floating]) -> None:
    from sklearn.neighbors import BallTree, KDTree, NearestNeighbors

    from engines.persistence import DEFAULT_TRUSTED

    X = np.random.default_rng(0).normal(size=(30, 3)).astype(dtype)
    objects = [KDTree(X), BallTree(X), NearestNeighbors(algorithm="ball_tree").fit(X > 0)]
    objects.append(NearestNeighbors(algorithm="ball_tree", metric="jaccard").fit(X > 0))
    objects.append(NearestNeighbors(algorithm="ball_tree", metric="haversine").fit(X[:, :2]))
    for obj in objects:
        assert set(sio.get_untrusted_types(data=sio.dumps(obj))) <= DEFAULT_TRUSTED


def test_every_trusted_name_is_a_real_type() -> None:
    import importlib
    import importlib.util

    from engines.persistence import DEFAULT_TRUSTED

    optional = ("lightgbm", "xgboost", "pyod")  # extras: their names are checked where installed
    for name in DEFAULT_TRUSTED:
        module, _, attr = name.rpartition(".")
        if module.startswith(optional) and importlib.util.find_spec(module.split(".")[0]) is None:
            continue
        assert isinstance(getattr(importlib.import_module(module), attr), type), name


def test_a_python_callable_metric_is_still_refused(tmp_path: Path) -> None:
    from sklearn.neighbors import NearestNeighbors

    X = np.random.default_rng(0).normal(size=(30, 3))
    model = NearestNeighbors(algorithm="ball_tree", metric=_l1).fit(X)
    sio.dump(model, tmp_path / "nn.skops")
    with pytest.raises(ModelLoadError, match=r"PyFuncDistance64.*_l1|_l1.*PyFuncDistance64"):
        load_model(tmp_path / "nn.skops")


def _l1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum())


def test_project_detectors_load_from_skops(tmp_path: Path, rng_data: np.ndarray) -> None:
    from engines import PCAReconstructionDetector, save_model

    detector = PCAReconstructionDetector(n_components=2).fit(rng_data)
    save_model(detector, tmp_path / "pca.skops")
    np.testing.assert_array_equal(
        load_model(tmp_path / "pca.skops").score_samples(rng_data), detector.score_samples(rng_data)
    )


def test_torch_detector_is_not_pickled_into_skops(tmp_path: Path) -> None:
    from engines import UnsupportedModelError, save_model
    from harness.cases.zoo import fitted

    with pytest.raises(UnsupportedModelError, match="deploy the autoencoder as ONNX"):
        save_model(fitted("autoencoder"), tmp_path / "ae")


def test_a_failed_export_leaves_no_file_behind(tmp_path: Path, rng_data: np.ndarray) -> None:
    # the .skops was written before the export failed: an orphan with no manifest
    from pyod.models.kde import KDE

    from engines import UnsupportedModelError, save_model

    with pytest.raises(UnsupportedModelError):
        save_model(KDE().fit(rng_data), tmp_path / "kde", onnx=True)
    assert list(tmp_path.iterdir()) == []
