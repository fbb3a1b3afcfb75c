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
    with pytest.raises(ModelLoadError, match=r"not trusted by default: \[.*_Custom'\]"):
        load_model(path)
    trusted = sio.get_untrusted_types(file=path)
    assert load_model(path, trusted=trusted)["payload"].value == 1


def test_pickles_need_explicit_trust(tmp_path: Path, iforest: IsolationForest) -> None:
    pkl = tmp_path / "det.pkl"
    pkl.write_bytes(pickle.dumps(iforest))
    job = tmp_path / "det.joblib"
    joblib.dump(iforest, job)
    for path in (pkl, job):
        with pytest.raises(ModelLoadError, match="arbitrary code"):
            load_model(path)
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
    from engines.persistence import file_sha256

    manifest = save_model(iforest, tmp_path / "models" / "detector", onnx=True)
    folder = tmp_path / "models"
    assert sorted(p.name for p in folder.iterdir()) == [
        "detector.onnx",
        "detector.skops",
        "manifest.json",
    ]
    on_disk = json.loads((folder / "manifest.json").read_text())
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


def test_project_detectors_load_from_skops(tmp_path: Path, rng_data: np.ndarray) -> None:
    from engines import PCAReconstructionDetector, save_model

    detector = PCAReconstructionDetector(n_components=2).fit(rng_data)
    save_model(detector, tmp_path / "pca.skops")
    np.testing.assert_array_equal(
        load_model(tmp_path / "pca.skops").score_samples(rng_data), detector.score_samples(rng_data)
    )


def test_torch_detector_is_not_pickled_into_skops(tmp_path: Path) -> None:
    from engines import UnsupportedModelError, save_model
    from harness.zoo import fitted

    with pytest.raises(UnsupportedModelError, match="deploy the autoencoder as ONNX"):
        save_model(fitted("autoencoder"), tmp_path / "ae")
