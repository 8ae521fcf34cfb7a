"""Layout fixture for p3i0t/SimCLR-CIFAR10 (facts and sources in p3i0t_simclr_cifar10.md).

models.SimCLR: `enc` is a torchvision ResNet (resnet18 default, resnet34 allowed) with conv1 swapped
for a 3x3/s1/p1 conv, maxpool and fc set to nn.Identity; `projector` is Linear(512,2048)-ReLU-
Linear(2048,128) with biases. simclr.py saves the bare state_dict as simclr_<backbone>_epoch<N>.pt.
No input normalisation anywhere (ToTensor only).
Written from scratch; only names, shapes and constants follow the codebase.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn, to_bytes

REPO = "https://github.com/p3i0t/SimCLR-CIFAR10"
AT = f"{REPO}/blob/2f449c2"


class SimCLR(nn.Module):
    def __init__(self, base_encoder=torchvision.models.resnet18, projection_dim: int = 128):
        super().__init__()
        self.enc = base_encoder()
        self.feature_dim = self.enc.fc.in_features
        self.enc.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)  # same slot, so key order is unchanged
        self.enc.maxpool = nn.Identity()
        self.enc.fc = nn.Identity()
        self.projection_dim = projection_dim
        self.projector = nn.Sequential(nn.Linear(self.feature_dim, 2048), nn.ReLU(), nn.Linear(2048, projection_dim))

    def forward(self, x):
        feature = self.enc(x)
        return feature, self.projector(feature)


def build() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(50)
        model = SimCLR(torchvision.models.resnet18, 128)
    return randomise_bn(model, seed=50)


def save(module: nn.Module) -> bytes:
    return to_bytes(module.state_dict())


def reference(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.enc(x)  # fc is Identity: flatten(avgpool(layer4)), 512-d


LAYOUTS: list[Layout] = [
    Layout(
        name="p3i0t-simclr-resnet18",
        codebase="p3i0t/SimCLR-CIFAR10",
        filename="simclr_resnet18_epoch1000.pt",
        arch="resnet18",
        build=build,
        save=save,
        reference=reference,
        output="features",
        method="simclr",
        stem="cifar",
        stem_padding=1,
        dropped=("projector",),
        mean=None,
        std=None,
        notes=(
            "Bare state_dict: 'enc.<torchvision resnet18 names>' with enc.conv1.weight 64x3x3x3 (3x3 s1 p1), "
            "max-pool replaced by nn.Identity (no keys), no enc.fc.* (Identity); projector.0 (2048x512+bias), "
            "projector.2 (128x2048+bias). The shapes alone do not reveal that the max-pool is gone: a loader "
            "that rebuilds torchvision resnet18 and only swaps conv1 keeps a max-pool the model never had. "
            "No normalisation (ToTensor only, in pre-training and linear eval). Hydra writes the config "
            "beside the file, nothing else is pickled."
        ),
        source_urls=(f"{AT}/models.py", f"{AT}/simclr.py", f"{AT}/simclr_lin.py", f"{AT}/simclr_config.yml"),
    ),
]
