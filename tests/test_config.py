from __future__ import annotations

from pathlib import Path

import pytest

from engines import EngineConfig


def test_defaults_request_cpu_only() -> None:
    cfg = EngineConfig()
    assert cfg.provider_name == "CPUExecutionProvider"
    assert cfg.requested_providers == ["CPUExecutionProvider"]
    assert cfg.strict_provider is True
    assert cfg.collect_metrics is True


@pytest.mark.parametrize(
    ("provider", "chain"),
    [
        ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        ("CUDA", ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        (
            "tensorrt",
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        ("OpenVINOExecutionProvider", ["OpenVINOExecutionProvider", "CPUExecutionProvider"]),
    ],
)
def test_provider_chains_end_on_cpu(provider: str, chain: list[str]) -> None:
    assert EngineConfig(provider=provider).requested_providers == chain


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("intra_op_threads", -1),
        ("inter_op_threads", "2"),
        ("graph_optimization", "max"),
        ("execution_mode", "async"),
        ("engine", "torch"),
        ("provider", ""),
        ("max_chunk_rows", 0),
    ],
)
def test_bad_fields_raise_with_the_field_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        EngineConfig(**{field: value})  # type: ignore[arg-type]


def test_from_env_reads_every_variable(tmp_path: Path) -> None:
    env = {
        "ONNX_PROVIDER": "cuda",
        "ONNX_THREADS": "2",
        "ONNX_ENGINE": "SKLEARN",
        "ONNX_PROFILING": "true",
        "ONNX_MODEL_DIR": str(tmp_path),
    }
    cfg = EngineConfig.from_env(env)
    assert cfg.provider == "cuda"
    assert cfg.intra_op_threads == 2
    assert cfg.engine == "sklearn"
    assert cfg.enable_profiling is True
    assert cfg.model_dir == tmp_path


def test_from_env_empty_environment_gives_defaults() -> None:
    assert EngineConfig.from_env({}) == EngineConfig()


def test_from_env_overrides_win() -> None:
    assert EngineConfig.from_env({"ONNX_THREADS": "3"}, intra_op_threads=1).intra_op_threads == 1


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNX_THREADS", "4")
    assert EngineConfig.from_env().intra_op_threads == 4


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("ONNX_THREADS", "many", "integer >= 0"),
        ("ONNX_THREADS", "-2", "integer >= 0"),
        ("ONNX_ENGINE", "tensorflow", "sklearn"),
        ("ONNX_PROFILING", "maybe", "true"),
        ("ONNX_PROVIDER", "  ", "cuda"),
        ("ONNX_MODEL_DIR", "", "directory"),
    ],
)
def test_from_env_bad_values_name_variable_and_allowed(name: str, value: str, allowed: str) -> None:
    with pytest.raises(ValueError, match=name) as info:
        EngineConfig.from_env({name: value})
    assert allowed in str(info.value)


def test_as_dict_is_json_friendly(tmp_path: Path) -> None:
    cfg = EngineConfig(profile_path=tmp_path / "p", provider_options={"device_id": 0})
    out = cfg.as_dict()
    assert out["profile_path"] == str(tmp_path / "p")
    assert out["provider_options"] == {"device_id": 0}
    assert cfg.replace(provider="cuda").provider == "cuda"
