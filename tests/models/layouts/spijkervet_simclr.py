"""Layout fixtures for Spijkervet/SimCLR (facts and sources in spijkervet_simclr.md).

SimCLR(encoder, projection_dim, n_features): `encoder` is a torchvision ResNet whose fc is an
Identity (no parameters, so no `encoder.fc.*` keys), `projector` is Linear-ReLU-Linear without
biases. main.py saves the bare state_dict as checkpoint_<epoch>.tar; only DataParallel is unwrapped
by save_model, so a multi-node DistributedDataParallel run writes `module.`-prefixed keys.
The CIFAR stem helper (modify_resnet_model) exists in the repo but is never called on master.
Written from scratch; only names, shapes and constants follow the codebase.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn, to_bytes

REPO = "https://github.com/Spijkervet/SimCLR"
AT = f"{REPO}/blob/2738efae85b3ca1b70b7919c5d7a7837d9d75235"


def _seeded(seed: int, make):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


class Identity(nn.Module):
    """Parameter-free pass-through (the repo's own Identity class, not nn.Identity)."""

    def forward(self, x):
        return x


class SimCLR(nn.Module):
    def __init__(self, encoder: nn.Module, projection_dim: int, n_features: int):
        super().__init__()
        self.encoder = encoder
        self.n_features = n_features
        self.encoder.fc = Identity()
        self.projector = nn.Sequential(
            nn.Linear(n_features, n_features, bias=False),
            nn.ReLU(),
            nn.Linear(n_features, projection_dim, bias=False),
        )

    def forward(self, x_i, x_j):
        h_i, h_j = self.encoder(x_i), self.encoder(x_j)
        return h_i, h_j, self.projector(h_i), self.projector(h_j)


def _make(seed: int) -> nn.Module:
    def make():
        encoder = torchvision.models.resnet18()  # get_resnet("resnet18"), no stem change
        return SimCLR(encoder, projection_dim=64, n_features=encoder.fc.in_features)  # config.yaml: projection_dim 64

    return randomise_bn(_seeded(seed, make), seed=seed)


def build_plain() -> nn.Module:
    return _make(10)


def build_ddp() -> nn.Module:
    return _make(11)


def save_plain(module: nn.Module) -> bytes:
    return to_bytes(module.state_dict())


def save_ddp(module: nn.Module) -> bytes:
    # DistributedDataParallel is not a DataParallel subclass, so save_model stores the wrapper's
    # state_dict, i.e. every key gains the wrapper's `module.` attribute name.
    return to_bytes({f"module.{k}": v for k, v in module.state_dict().items()})


def reference(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.encoder(x)  # fc is Identity, so this is flatten(avgpool(layer4)), 512-d


_COMMON_NOTES = (
    "Bare state_dict: encoder.<torchvision resnet18 names> (no encoder.fc.*, fc is a parameter-free "
    "Identity), projector.0.weight (512x512) and projector.2.weight (64x512), no biases. ImageNet stem "
    "(7x7 s2 p3 + max-pool): main.py builds the encoder with get_resnet(), and modify_resnet_model "
    "(3x3 stem, no max-pool) is imported but never called on master. No Normalize in any transform "
    "(ToTensor only). Defaults train and evaluate at image_size 224 (CIFAR images resized up), so "
    "features on 32x32 inputs are valid but not what the training saw."
)

LAYOUTS: list[Layout] = [
    Layout(
        name="spijkervet-simclr-resnet18",
        codebase="Spijkervet/SimCLR",
        filename="checkpoint_100.tar",
        arch="resnet18",
        build=build_plain,
        save=save_plain,
        reference=reference,
        output="features",
        method="simclr",
        stem="imagenet",
        stem_padding=3,
        dropped=("projector",),
        mean=None,
        std=None,
        notes=_COMMON_NOTES + " Single GPU / DataParallel run (DataParallel is unwrapped before saving).",
        source_urls=(
            f"{AT}/simclr/simclr.py",
            f"{AT}/simclr/modules/resnet.py",
            f"{AT}/simclr/modules/resnet_hacks.py",
            f"{AT}/simclr/modules/identity.py",
            f"{AT}/simclr/modules/transformations/simclr.py",
            f"{AT}/model.py",
            f"{AT}/main.py",
            f"{AT}/config/config.yaml",
            f"{AT}/linear_evaluation.py",
        ),
    ),
    Layout(
        name="spijkervet-simclr-resnet18-ddp",
        codebase="Spijkervet/SimCLR",
        filename="checkpoint_100.tar",
        arch="resnet18",
        build=build_ddp,
        save=save_ddp,
        reference=reference,
        output="features",
        method="simclr",
        stem="imagenet",
        stem_padding=3,
        dropped=("module.projector",),
        mean=None,
        std=None,
        notes=_COMMON_NOTES
        + " Multi-node run (--nodes > 1): the model is wrapped in DistributedDataParallel and save_model "
        "only unwraps torch.nn.DataParallel, so every key starts with 'module.'.",
        source_urls=(f"{AT}/model.py", f"{AT}/main.py", f"{AT}/simclr/simclr.py"),
    ),
]
