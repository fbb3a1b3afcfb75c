from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import LocalOutlierFactor

from engines import (
    EngineConfig,
    ExportValidationError,
    OnnxEngine,
    SklearnEngine,
    Tolerance,
    UnsupportedModelError,
    export,
    read_metadata,
)
from engines.export import default_tolerance
from engines.metadata import LABEL_CONVENTION_KEY, decode_metadata
from engines.tolerance import compare_outputs
from harness.cases.zoo import cases, exported, fitted

# `engines.export` is also the name of the function the package exports: fetch the module.
export_module = importlib.import_module("engines.export")
CPU1 = EngineConfig(provider="cpu", intra_op_threads=1)
FAST = cases("fast")
ROUND_TRIPS = [
    pytest.param(case.name, exporter, id=f"{case.name}-{exporter}")
    for case in FAST
    for exporter in case.exporters
]
UNSUPPORTED = [
    pytest.param(case.name, exporter, reason, id=f"{case.name}-{exporter}")
    for case in FAST
    for exporter, reason in case.unsupported.items()
    if exporter != "torch"
]


@pytest.mark.parametrize(("name", "exporter"), ROUND_TRIPS)
def test_round_trip_matches_the_estimator(name: str, exporter: str) -> None:
    case = next(c for c in FAST if c.name == name)
    report = exported(name, exporter)
    assert report.exporter == exporter
    assert report.validation is not None
    assert report.validation.passed
    engine = OnnxEngine(report.model, CPU1)
    reference = SklearnEngine(fitted(name))
    X = case.data().X_test
    bound = case.tolerance(exporter) or default_tolerance(reference.estimator, exporter)
    answers = {"label": "predict", "decision_function": "decision_function"}
    checked = 0
    for output in ("label", "decision_function", "score_samples"):
        method = answers.get(output, output)
        if method in reference.methods:
            assert method in engine.methods, f"{name}/{exporter} cannot answer {method}"
            result = compare_outputs(
                output, getattr(engine, method)(X), getattr(reference, method)(X), bound
            )
            assert result.passed, result
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize(("name", "exporter", "reason"), UNSUPPORTED)
def test_unsupported_pairs_say_why(name: str, exporter: str, reason: str) -> None:
    assert reason
    with pytest.raises(UnsupportedModelError):
        export(fitted(name), exporter=exporter, validate=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "exporter"), ROUND_TRIPS)
def test_output_contract(name: str, exporter: str) -> None:
    model = exported(name, exporter).model
    outputs = {o.name: o for o in model.graph.output}
    assert set(outputs) <= {"label", "decision_function", "score_samples"}
    metadata = decode_metadata({p.key: p.value for p in model.metadata_props})
    if metadata.get(LABEL_CONVENTION_KEY, "sklearn") == "pyod":
        # PyOD's detectors answer labels 0/1 and decision_function only.
        assert set(outputs) == {"label", "decision_function"}
    else:
        assert "score_samples" in outputs
    for out in outputs.values():
        dims = out.type.tensor_type.shape.dim
        assert len(dims) == 1, f"{out.name} must be 1-D [N]"
    if "label" in outputs:
        assert outputs["label"].type.tensor_type.elem_type == onnx.TensorProto.INT64
    (x,) = model.graph.input
    assert x.name == "X"
    batch, width = x.type.tensor_type.shape.dim
    assert not batch.dim_value  # dynamic batch
    (case,) = cases(names=[name])
    assert width.dim_value == case.data().X_train.shape[1]
    assert model.ir_version <= 10


def test_metadata_round_trip(tmp_path: Path, rng_data: np.ndarray) -> None:
    frame = pd.DataFrame(rng_data, columns=["a", "b", "c", "d"])
    forest = IsolationForest(n_estimators=5, contamination=0.1, random_state=0).fit(frame)
    path = tmp_path / "m.onnx"
    report = export(forest, path=path, metadata={"version": "1.0.0"})
    assert report.path == path
    import hashlib

    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    meta = read_metadata(path)
    assert meta["version"] == "1.0.0"
    assert meta["estimator"] == "IsolationForest"
    assert meta["hyperparameters"]["n_estimators"] == 5
    assert meta["n_features"] == 4
    assert meta["feature_names"] == ["a", "b", "c", "d"]
    assert meta["dtype"] == "float32"
    assert meta["offset"] == pytest.approx(forest.offset_)
    assert meta["contamination"] == 0.1
    assert {"scikit-learn", "onnx", "onnxruntime", "skl2onnx", "engines"} <= set(meta["versions"])
    assert len(meta["source_sha256"]) == 64
    assert meta["exported_at"].endswith("+00:00")
    assert meta["exporter"] == "native"
    assert meta["validation"]["passed"] is True
    assert OnnxEngine(path, CPU1).info()["metadata"] == meta
    # feature names travel: a DataFrame in another column order is answered right
    engine = OnnxEngine(path, CPU1)
    np.testing.assert_array_equal(
        engine.predict(frame[["d", "c", "b", "a"]]), forest.predict(frame)
    )


def test_validation_failure_reports_the_numbers(
    monkeypatch: pytest.MonkeyPatch, rng_data: np.ndarray
) -> None:
    forest = IsolationForest(n_estimators=20, random_state=0).fit(rng_data)
    impostor = IsolationForest(n_estimators=20, random_state=1).fit(rng_data)
    real = export_module.native_to_onnx
    monkeypatch.setattr(export_module, "native_to_onnx", lambda model, **kw: real(impostor, **kw))
    with pytest.raises(ExportValidationError, match=r"max_abs_err=.*first bad row") as info:
        export(forest, validation_data=rng_data)
    assert info.value.summary["max_abs_err"] > 1e-3


def test_validation_default_rows_cover_outliers(iforest: IsolationForest) -> None:
    rows = export_module.validation_rows(iforest, 4, n=400)
    assert rows.shape == (400, 4)
    labels = iforest.predict(rows.astype(np.float32))
    assert (labels == -1).any()
    assert (labels == 1).any()


def test_lof_without_novelty_is_explained(rng_data: np.ndarray) -> None:
    lof = LocalOutlierFactor(n_neighbors=5).fit(rng_data)
    with pytest.raises(UnsupportedModelError, match="novelty=True"):
        export(lof)


def test_unsupported_estimator_lists_what_is_supported(rng_data: np.ndarray) -> None:
    model = LinearRegression().fit(rng_data, rng_data[:, 0])
    with pytest.raises(
        UnsupportedModelError, match=r"supported estimators are \[.*IsolationForest"
    ):
        export(model)


def test_argument_errors(iforest: IsolationForest) -> None:
    with pytest.raises(UnsupportedModelError, match="not fitted"):
        export(IsolationForest())
    with pytest.raises(ValueError, match="n_features=5 but the model was fitted on 4"):
        export(iforest, n_features=5)
    with pytest.raises(ValueError, match="float32 or float64"):
        export(iforest, dtype="int32")
    with pytest.raises(ValueError, match="exporter must be"):
        export(iforest, exporter="tf2onnx")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedModelError, match="torch models use"):
        export(iforest, exporter="torch")


def test_float64_skl2onnx_isolation_forest_is_refused_with_its_reason(
    iforest: IsolationForest,
) -> None:
    with pytest.raises(UnsupportedModelError, match="skl2onnx cannot convert IsolationForest"):
        export(iforest, exporter="skl2onnx", dtype="float64", validate=False)


def test_custom_tolerance_is_applied(iforest: IsolationForest, rng_data: np.ndarray) -> None:
    report = export(iforest, validation_data=rng_data, tolerance=Tolerance(1.0, 0.0, 1e-12))
    assert report.validation is not None
    assert report.validation.max_abs_err <= 1e-12


def test_stored_rows_are_the_rows_the_model_keeps_in_input_space(rng_data: np.ndarray) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    svm = OneClassSVM(nu=0.2).fit(rng_data)
    rows = export_module.stored_rows(svm)
    assert rows is not None
    assert np.array_equal(rows, svm.support_vectors_)
    lof = LocalOutlierFactor(novelty=True).fit(rng_data)
    assert export_module.stored_rows(lof, n=10).shape == (10, rng_data.shape[1])
    piped = make_pipeline(StandardScaler(), OneClassSVM(nu=0.2)).fit(rng_data * 100 + 5)
    back = export_module.stored_rows(piped)
    assert back is not None
    kept = piped[-1].support_vectors_
    assert np.allclose(piped[0].transform(back), kept)  # mapped back through the scaler
    from sklearn.mixture import GaussianMixture

    mixture = GaussianMixture(2, random_state=0).fit(rng_data)
    centres = export_module.stored_rows(mixture)
    assert centres is not None
    assert np.array_equal(centres, mixture.means_)  # a mixture keeps no rows: its means
    assert export_module.stored_rows(IsolationForest(n_estimators=5).fit(rng_data)) is None
