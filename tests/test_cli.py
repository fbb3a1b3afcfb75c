from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engines import __version__
from harness.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: harness" in capsys.readouterr().err


def test_providers_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers"]) == 0
    out = capsys.readouterr().out
    assert "CPUExecutionProvider" in out
    cpu_line = next(line for line in out.splitlines() if line.startswith("CPUExecutionProvider"))
    assert cpu_line.split()[1:3] == ["yes", "yes"]


def test_providers_json_never_claims_cuda_on_this_build(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["providers"]}
    assert rows["CPUExecutionProvider"]["usable"] is True
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert rows["CUDAExecutionProvider"]["usable"] is False
        assert "not installed" in rows["CUDAExecutionProvider"]["reason"]


def test_python_dash_m_harness() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert __version__ in done.stdout


def test_provider_listed_but_not_loadable_is_diagnosed(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime-gpu without CUDA libraries lists CUDA; the reason says what is missing."""
    import onnxruntime as ort

    from engines import providers

    available = [*ort.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    monkeypatch.setattr(providers, "_nvidia_driver_present", lambda: True)
    assert "libraries failed to load" in providers.diagnose_provider("CUDAExecutionProvider")
    monkeypatch.setattr(providers, "_nvidia_driver_present", lambda: False)
    assert "no NVIDIA GPU or driver" in providers.diagnose_provider("CUDAExecutionProvider")
    assert "not installed" in providers.diagnose_provider("TensorrtExecutionProvider")
