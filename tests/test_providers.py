"""Execution provider choice: DirectML, then CUDA, then CPU, with clear errors when one is asked for and absent."""

import pytest

from qwen3asr_plugin.engine.errors import Qwen3ASRError
from qwen3asr_plugin.engine.providers import choose_providers

CPU = "CPUExecutionProvider"
ALL = ["DmlExecutionProvider", "CUDAExecutionProvider", CPU]


def names(result):
    return [name for name, _ in result]


def test_auto_prefers_directml_then_cuda_then_cpu():
    assert names(choose_providers(None, available=ALL)) == ["DmlExecutionProvider", CPU]
    assert names(choose_providers("auto", available=["CUDAExecutionProvider", CPU])) == [
        "CUDAExecutionProvider",
        CPU,
    ]
    assert names(choose_providers(None, available=[CPU])) == [CPU]


def test_override_and_device_index():
    result = choose_providers("cuda", device_index=1, available=ALL)
    assert result == [("CUDAExecutionProvider", {"device_id": 1}), (CPU, {})]
    assert names(choose_providers("cpu", available=ALL)) == [CPU]
    assert names(choose_providers("directml", available=ALL)) == ["DmlExecutionProvider", CPU]


def test_missing_provider_is_a_clear_error():
    with pytest.raises(Qwen3ASRError, match="onnxruntime-gpu"):
        choose_providers("cuda", available=[CPU])
    with pytest.raises(Qwen3ASRError, match="no GPU"):
        choose_providers("gpu", available=[CPU])
    with pytest.raises(Qwen3ASRError, match="unknown device"):
        choose_providers("tpu", available=[CPU])


def test_this_machine_runs_on_cpu():
    assert names(choose_providers(None))[-1] == CPU
