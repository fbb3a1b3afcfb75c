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
