"""Small networks and checkpoint bytes in the layouts people bring, for the loader and Hub tests."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from models import registry
from models.resnet import ArchConfig, CifarResNet, build_resnet
from models.store import save_folder

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


class Nets:
    """Builders shared by the tests (a fixture, so test modules need no import tricks)."""

    @staticmethod
    def make(depth: int = 18, width: int = 4, num_classes: int = 10, seed: int = 0, **arch) -> CifarResNet:
        """A random network with non-trivial BatchNorm statistics, in eval mode.

        Random running statistics and affine parameters make every tensor matter, so a loader that
        dropped or swapped one would change the outputs.
        """
        torch.manual_seed(seed)
        net = build_resnet(ArchConfig(depth=depth, width=width, num_classes=num_classes, **arch))
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_var.uniform_(0.5, 2.0)
                    m.running_mean.normal_(0, 0.1)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
        return net.eval()

    @staticmethod
    def torch_bytes(obj: object) -> bytes:
        """What torch.save writes, kept in memory."""
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    @staticmethod
    def assert_same_outputs(original: torch.nn.Module, loaded: torch.nn.Module, size: int = 32) -> None:
        """Both networks give bit-identical outputs on the same random images."""
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected, got = original.eval()(x), loaded(x)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=0, atol=0)

    @staticmethod
    def folder(path: Path, net: CifarResNet, method: str, **meta) -> Path:
        """A checkpoint folder in our store format (model.safetensors + config.json)."""
        save_folder(net, net.config, {"method": method, "mean": CIFAR_MEAN, "std": CIFAR_STD} | meta, path)
        return path


@pytest.fixture
def nets() -> type[Nets]:
    return Nets


@pytest.fixture
def weights_dir(tmp_path, monkeypatch) -> Path:
    """An empty models/weights stand-in, so `bundled:` tests never see (or touch) the real folders."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(registry, "WEIGHTS_DIR", folder)
    return folder
