"""Layout fixtures for leftthomas/SimCLR (facts and sources in leftthomas_simclr.md).

Model: `f` = nn.Sequential of torchvision ResNet-50's children with conv1 swapped for a 3x3/s1/p1
conv and the max-pool and fc left out (0 conv1, 1 bn1, 2 relu, 3-6 layer1-4, 7 avgpool), `g` =
Linear(2048,512,no bias)-BN1d-ReLU-Linear(512,128). main.py saves model.state_dict() as
results/<feature_dim>_<temperature>_<k>_<batch>_<epochs>_model.pth; linear.py's Net (f + fc) is
saved as results/linear_model.pth.

Both scripts call thop.profile() on the model before training. thop (every release since 2020-01)
registers float64 buffers `total_ops` / `total_params` on every module and afterwards removes them
only from modules it has a counting rule for; modules without a rule keep them and they end up in
the saved state_dict. With the thop of the time (0.0.31, May 2020) nn.Sequential had no rule, so the
leftovers sit on the root, on every nn.Sequential (f, f.3-f.6, the downsample branches, g) and on
every torchvision Bottleneck. (thop >= 2021-03 added a rule for nn.Sequential; then only the root and
the Bottlenecks keep them; `THOP_SEQUENTIAL_HAS_RULE` below switches to that variant.)
Written from scratch; only names, shapes and constants follow the codebase.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn, to_bytes

REPO = "https://github.com/leftthomas/SimCLR"
AT = f"{REPO}/blob/cee178b6cab1efab67f8b527a0cff91c9e793f5c"
THOP = "https://github.com/Lyken17/pytorch-OpCounter/blob/d5708c9/thop/profile.py"

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)

THOP_SEQUENTIAL_HAS_RULE = False  # False: thop 0.0.31 (2020, what the repo was used with)

# module types thop 0.0.31 counts (exact type match); everything else keeps the two buffers
_THOP_COUNTED = {
    nn.ZeroPad2d,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.Linear,
    nn.Dropout,
    nn.Upsample,
    nn.UpsamplingBilinear2d,
    nn.UpsamplingNearest2d,
}


def _seeded(seed: int, make):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def _thop_leftovers(model: nn.Module) -> nn.Module:
    """What a thop.profile() call leaves behind: zero float64 buffers on modules it had no rule for."""
    counted = set(_THOP_COUNTED)
    if THOP_SEQUENTIAL_HAS_RULE:
        counted.add(nn.Sequential)
    for m in model.modules():
        if type(m) not in counted:
            m.register_buffer("total_ops", torch.zeros(1, dtype=torch.float64))
            m.register_buffer("total_params", torch.zeros(1, dtype=torch.float64))
    return model


def _encoder() -> nn.Sequential:
    parts = []
    for name, child in torchvision.models.resnet50().named_children():
        if name == "conv1":
            child = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        if isinstance(child, (nn.Linear, nn.MaxPool2d)):
            continue
        parts.append(child)
    return nn.Sequential(*parts)


class Model(nn.Module):
    def __init__(self, feature_dim: int = 128):
        super().__init__()
        self.f = _encoder()
        self.g = nn.Sequential(
            nn.Linear(2048, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Linear(512, feature_dim, bias=True),
        )

    def forward(self, x):
        feature = torch.flatten(self.f(x), start_dim=1)
        out = self.g(feature)
        return nn.functional.normalize(feature, dim=-1), nn.functional.normalize(out, dim=-1)


class Net(nn.Module):
    """linear.py: frozen f plus a 10-way fc."""

    def __init__(self, num_class: int = 10):
        super().__init__()
        self.f = Model().f
        self.fc = nn.Linear(2048, num_class, bias=True)

    def forward(self, x):
        return self.fc(torch.flatten(self.f(x), start_dim=1))


def build_pretrain() -> nn.Module:
    return randomise_bn(_thop_leftovers(_seeded(20, lambda: Model(128))), seed=20)


def build_linear() -> nn.Module:
    return randomise_bn(_thop_leftovers(_seeded(21, lambda: Net(10))), seed=21)


def save(module: nn.Module) -> bytes:
    return to_bytes(module.state_dict())  # torch.save(model.state_dict(), path): nothing else


def reference_features(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.flatten(module.f(x), start_dim=1)  # 2048-d, before the L2 normalisation


def reference_logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


_THOP_NOTE = (
    " thop leftovers: zero float64 buffers 'total_ops'/'total_params' on the root (so the very first "
    "keys of the file are 'total_ops', 'total_params'), on every nn.Sequential ('f.total_ops', "
    "'f.3.total_ops', 'f.3.0.downsample.total_ops', ...) and on every Bottleneck ('f.3.0.total_ops'); "
    "a strict load into a clean model fails on them, they carry no weights and must be ignored."
)

LAYOUTS: list[Layout] = [
    Layout(
        name="leftthomas-simclr-resnet50",
        codebase="leftthomas/SimCLR",
        filename="128_0.5_200_512_500_model.pth",
        arch="resnet50",
        build=build_pretrain,
        save=save,
        reference=reference_features,
        output="features",
        method="simclr",
        stem="cifar",
        stem_padding=1,
        dropped=("g",),
        mean=MEAN,
        std=STD,
        notes=(
            "Bare state_dict. Backbone is the positional nn.Sequential 'f': f.0 conv1 3x3 s1 p1 (64x3x3x3), "
            "f.1 bn1, f.2 relu, NO max-pool, f.3..f.6 = layer1..layer4 (torchvision Bottleneck names inside: "
            "f.3.0.conv1.weight, f.3.0.downsample.0.weight ...), f.7 avgpool. Projection head g.0 (512x2048, no "
            "bias), g.1 BatchNorm1d(512) with running stats, g.3 (128x512 + bias). ResNet-50 is the only arch."
            + _THOP_NOTE
        ),
        source_urls=(f"{AT}/model.py", f"{AT}/main.py", f"{AT}/utils.py", f"{AT}/README.md", THOP),
    ),
    Layout(
        name="leftthomas-simclr-resnet50-linear",
        codebase="leftthomas/SimCLR",
        filename="linear_model.pth",
        arch="resnet50",
        build=build_linear,
        save=save,
        reference=reference_logits,
        output="logits",
        method="simclr",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "linear.py's Net: the same positional 'f' (f.0 3x3 conv, no max-pool, f.3-f.6 layers) plus "
            "fc.weight (10x2048) / fc.bias, a linear probe trained on frozen SimCLR features; the projection "
            "head g is not in this file. Bare state_dict, thop is run on Net after the pretrained weights are "
            "loaded, so it has its own leftovers (root, f, f.3-f.6, Bottlenecks, downsample)." + _THOP_NOTE
        ),
        source_urls=(f"{AT}/linear.py", f"{AT}/model.py", f"{AT}/utils.py", THOP),
    ),
]
