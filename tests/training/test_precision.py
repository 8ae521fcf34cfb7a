"""How training computes on each device: bf16 autocast where native, and the memory format."""

from __future__ import annotations

import pytest
import torch

from training.precision import bf16_native, training_format

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def cpu_features(monkeypatch, avx512_bf16: bool, amx: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


def test_cuda_always_trains_in_bf16(monkeypatch):
    cpu_features(monkeypatch, False, False)
    assert bf16_native(CUDA)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "native"), [(True, False, True), (False, True, True), (False, False, False)]
)
def test_a_cpu_trains_in_bf16_only_with_native_support(monkeypatch, avx512_bf16, amx, native):
    cpu_features(monkeypatch, avx512_bf16, amx)
    assert bf16_native(CPU) is native


def test_other_devices_never_use_bf16(monkeypatch):
    cpu_features(monkeypatch, True, True)
    assert not bf16_native(torch.device("meta"))


@pytest.mark.parametrize(
    ("capability", "expected"),
    [("AVX512", torch.channels_last), ("AVX512_BF16", torch.channels_last), ("AVX2", torch.contiguous_format)],
)
def test_channels_last_on_avx512_cpus_only(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert training_format(CPU) == expected


def test_channels_last_on_cuda_whatever_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert training_format(CUDA) == torch.channels_last
