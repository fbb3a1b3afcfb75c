"""Engine variants: one type for what runs a case, spelled as rows and ids spell it."""

from __future__ import annotations

import pytest

from harness.cases.variants import EngineVariant
from harness.cases.zoo import cases
from harness.checks.targets import engines_for
from harness.results.schema import short_provider
from harness.timing.points import Selection
from harness.timing.prepare import build_points


@pytest.mark.parametrize(
    "name",
    [
        "sklearn",
        "torch-eager",
        "fallback",
        "onnx-native",
        "onnx-skl2onnx",
        "onnx-torch-int8",
        "onnx-user",
    ],
)
def test_every_spelling_round_trips(name: str) -> None:
    assert str(EngineVariant.parse(name)) == name


def test_fields_not_string_parts() -> None:
    variant = EngineVariant.parse("onnx-torch-int8")
    assert (variant.kind, variant.exporter, variant.quantized) == ("onnx", "torch", True)
    assert EngineVariant.parse("sklearn").exporter is None


@pytest.mark.parametrize("name", ["onnx", "onnx-", "onnx-torch-fp16", "torch", "tflite-x", ""])
def test_unknown_spellings_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        EngineVariant.parse(name)


def test_inconsistent_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="names its exporter"):
        EngineVariant("onnx")
    with pytest.raises(ValueError, match="names its exporter"):
        EngineVariant("sklearn", "native")
    with pytest.raises(ValueError, match="only an ONNX graph is quantized"):
        EngineVariant("fallback", quantized=True)
    with pytest.raises(ValueError, match="unknown engine kind"):
        EngineVariant("tflite")  # type: ignore[arg-type]


def test_suites_and_benchmarks_spell_variants_the_same_way() -> None:
    (case,) = cases(names=["autoencoder"])
    assert engines_for(case) == ["onnx-torch", "onnx-torch-int8", "fallback"]
    points = build_points(Selection(profile="full", cases=("autoencoder",), batch_sizes=(1,)))
    engines = {p.engine for p in points}
    assert engines == {"sklearn", "onnx-torch", "onnx-torch-int8", "torch-eager"}
    assert {p.exporter for p in points} == {None, "torch"}


def test_short_provider_names() -> None:
    assert short_provider("CPUExecutionProvider") == "cpu"
    assert short_provider("TensorrtExecutionProvider") == "tensorrt"
    assert short_provider("OpenVINOExecutionProvider") == "OpenVINOExecutionProvider"
