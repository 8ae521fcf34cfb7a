"""Layout fixtures for sthalles/SimCLR (see sthalles_simclr.md for the facts and where they were read).

Two real layouts:
  * current code (2021-01 refactor onwards): ResNetSimCLR keeps the torchvision ResNet whole under
    `backbone`, its `fc` swapped for Linear-ReLU-Linear; file checkpoint_XXXX.pth.tar holding
    {'epoch', 'arch', 'state_dict', 'optimizer'}.
  * 2020 code: ResNetSimCLR with `features` = nn.Sequential of the torchvision ResNet's children
    minus fc (so the max-pool stays at index 3 and layer1 is `features.4`), heads `l1`, `l2`;
    file model.pth holding the bare state_dict.
All code below is written from scratch; only names, shapes and constants follow the codebase.
"""

from __future__ import annotations

import copy

import torch
import torchvision
from torch import nn

try:  # imported as a package module or straight from this folder
    from .spec import Layout, randomise_bn, to_bytes
except ImportError:  # pragma: no cover
    from spec import Layout, randomise_bn, to_bytes

REPO = "https://github.com/sthalles/SimCLR"
NEW = f"{REPO}/blob/1848fc934ad844ae630e6c452300433fe99acfd9"
OLD = f"{REPO}/blob/e8a690a"  # last commit before the 2021-01 refactor (2020-06-19)


def _seeded(seed: int, make):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def _optimizer_state(module: nn.Module, make_optimizer) -> dict:
    """An optimizer state_dict after one step, taken on a copy so `module` itself is untouched."""
    twin = copy.deepcopy(module)
    params = list(twin.parameters())
    optimizer = make_optimizer(params)
    g = torch.Generator().manual_seed(1)
    for p in params:
        if p.requires_grad:
            p.grad = torch.randn(p.shape, generator=g) * 1e-3
    optimizer.step()
    return optimizer.state_dict()


def _torchvision_pooled(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled features of a torchvision ResNet (everything up to and including avgpool)."""
    h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    for name in ("layer1", "layer2", "layer3", "layer4"):
        h = getattr(net, name)(h)
    return torch.flatten(net.avgpool(h), 1)


# --------------------------------------------------------------------------------------------
# current code: models/resnet_simclr.py + simclr.py + utils.save_checkpoint
# --------------------------------------------------------------------------------------------


class ResNetSimCLR(nn.Module):
    """torchvision ResNet under `backbone`; fc becomes Sequential(Linear(d, d), ReLU, Linear(d, out_dim))."""

    def __init__(self, base_model: str = "resnet18", out_dim: int = 128):
        super().__init__()
        maker = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}[base_model]
        self.backbone = maker(num_classes=out_dim)
        width = self.backbone.fc.in_features
        head_out = self.backbone.fc  # the original Linear(width, out_dim) ends up at fc.2
        self.backbone.fc = nn.Sequential(nn.Linear(width, width), nn.ReLU(), head_out)

    def forward(self, x):
        return self.backbone(x)


def build_current() -> nn.Module:
    # run.py defaults: --arch resnet18, --out_dim 128 (ImageNet stem left as torchvision makes it)
    return randomise_bn(_seeded(0, lambda: ResNetSimCLR("resnet18", 128)), seed=0)


def save_current(module: nn.Module) -> bytes:
    # simclr.py: Adam(lr=3e-4, weight_decay=1e-4) from run.py; saved once at the end of training
    optimizer = _optimizer_state(module, lambda ps: torch.optim.Adam(ps, lr=0.0003, weight_decay=1e-4))
    return to_bytes(
        {
            "epoch": 100,
            "arch": "resnet18",
            "state_dict": module.state_dict(),
            "optimizer": optimizer,
        }
    )


def reference_current(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return _torchvision_pooled(module.backbone, x)


# --------------------------------------------------------------------------------------------
# 2020 code: positional nn.Sequential `features` (max-pool kept), heads l1 / l2, model.pth
# --------------------------------------------------------------------------------------------


class ResNetSimCLR2020(nn.Module):
    def __init__(self, base_model: str = "resnet18", out_dim: int = 256):
        super().__init__()
        maker = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}[base_model]
        trunk = maker()
        width = trunk.fc.in_features
        kept = [child for name, child in trunk.named_children() if name != "fc"]
        self.features = nn.Sequential(*kept)  # 0 conv1, 1 bn1, 2 relu, 3 maxpool, 4-7 layer1-4, 8 avgpool
        self.l1 = nn.Linear(width, width)
        self.l2 = nn.Linear(width, out_dim)

    def forward(self, x):
        h = self.features(x).squeeze()
        z = self.l2(torch.relu(self.l1(h)))
        return h, z


def build_2020() -> nn.Module:
    # config.yaml of that version: base_model resnet18, out_dim 256
    return randomise_bn(_seeded(1, lambda: ResNetSimCLR2020("resnet18", 256)), seed=1)


def save_2020(module: nn.Module) -> bytes:
    return to_bytes(module.state_dict())  # torch.save(model.state_dict(), .../checkpoints/model.pth)


def reference_2020(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.flatten(module.features(x), 1)


LAYOUTS: list[Layout] = [
    Layout(
        name="sthalles-simclr-resnet18",
        codebase="sthalles/SimCLR",
        filename="checkpoint_0100.pth.tar",
        arch="resnet18",
        build=build_current,
        save=save_current,
        reference=reference_current,
        output="features",
        method="simclr",
        stem="imagenet",
        stem_padding=3,
        dropped=("backbone.fc",),
        mean=None,
        std=None,
        notes=(
            "Dict {'epoch','arch','state_dict','optimizer'(Adam)}; keys 'backbone.<torchvision name>'; "
            "projection head is backbone.fc.0 (512x512) / backbone.fc.2 (128x512), both with bias, so a "
            "loader must not read 'backbone.fc.*' as a classifier. Torchvision ImageNet stem (7x7 s2 p3 + "
            "max-pool) is used unchanged on 32x32 CIFAR. No input normalisation at all (ToTensor only, "
            "inputs in [0,1]); the repo's linear-eval notebook also feeds un-normalised tensors. "
            "No args are pickled (config.yml is written beside the file)."
        ),
        source_urls=(
            f"{NEW}/models/resnet_simclr.py",
            f"{NEW}/simclr.py",
            f"{NEW}/run.py",
            f"{NEW}/utils.py",
            f"{NEW}/data_aug/contrastive_learning_dataset.py",
            f"{NEW}/feature_eval/mini_batch_logistic_regression_evaluator.ipynb",
        ),
    ),
    Layout(
        name="sthalles-simclr-2020-features-sequential",
        codebase="sthalles/SimCLR",
        filename="model.pth",
        arch="resnet18",
        build=build_2020,
        save=save_2020,
        reference=reference_2020,
        output="features",
        method="simclr",
        stem="imagenet",
        stem_padding=3,
        dropped=("l1", "l2"),
        mean=None,
        std=None,
        notes=(
            "Bare state_dict. Backbone is a positional nn.Sequential: features.0 conv1 (7x7), features.1 bn1, "
            "features.3 is the (parameter-free) max-pool, so layer1..layer4 are features.4..features.7 "
            "(compare leftthomas, where the max-pool is removed and layer1 is f.3). Heads l1 (512x512) and "
            "l2 (256x512). No normalisation. That version only trained on STL10 (96x96 crops); it had no "
            "CIFAR-10 option, so a CIFAR user would have edited the dataset wrapper."
        ),
        source_urls=(
            f"{OLD}/models/resnet_simclr.py",
            f"{OLD}/simclr.py",
            f"{OLD}/config.yaml",
            f"{OLD}/data_aug/dataset_wrapper.py",
        ),
    ),
]
