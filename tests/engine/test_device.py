"""hls_tune/engine/device.py: which device `auto` means and the mixed precision it gets."""

from __future__ import annotations

import pytest
import torch

from hls_tune.engine.device import amp_dtype, resolve_device
from hls_tune.errors import ConfigError


def test_device_auto_is_cpu_without_a_gpu_and_cuda_without_one_is_an_error():
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda:0")


def test_amp_auto_means_bf16_on_cuda_and_off_on_cpu():
    assert amp_dtype("auto", torch.device("cpu")) is None
    assert amp_dtype("auto", torch.device("cuda")) is torch.bfloat16
    assert amp_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert amp_dtype("off", torch.device("cuda")) is None
