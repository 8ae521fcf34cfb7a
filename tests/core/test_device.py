"""Choosing the compute device, and waiting for its queued work."""

from __future__ import annotations

import pytest
import torch

from core.device import pick_device, synchronize
from core.errors import OptionsError


def test_auto_is_cuda_exactly_when_cuda_is_available():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device().type == pick_device("auto").type


def test_cpu_is_always_given():
    assert pick_device("cpu") == torch.device("cpu")


def test_cuda_asked_for_without_a_device_says_what_to_use(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(OptionsError, match="no CUDA device is available; use auto or cpu"):
        pick_device("cuda")
    assert pick_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "mps", "CUDA", ""])
def test_other_names_are_refused_with_the_choices(name):
    with pytest.raises(OptionsError, match=f"device must be auto, cpu or cuda, not {name!r}"):
        pick_device(name)


def test_waiting_on_the_cpu_never_touches_cuda(monkeypatch):
    def refuse(*args):
        raise AssertionError("torch.cuda.synchronize was called for a CPU device")

    monkeypatch.setattr(torch.cuda, "synchronize", refuse)
    synchronize(torch.device("cpu"))


def test_waiting_on_a_cuda_device_synchronises_it(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    synchronize(torch.device("cuda", 0))
    assert calls == [torch.device("cuda", 0)]
