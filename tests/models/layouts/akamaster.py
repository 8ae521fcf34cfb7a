"""Layout fixtures for akamaster/pytorch_resnet_cifar10.

The network is written here from reading resnet.py: 6n+2 layers, three stages of 16/32/64
channels, option A shortcuts (stride-2 subsampling + zero channel padding, no weights) made with
a LambdaLayer, head named `linear`. Files follow trainer.py and the shipped pretrained_models/*.th
(inspected: legacy format, {'best_prec1', 'state_dict'}, 'module.' keys, no num_batches_tracked,
cuda:0 storages). Facts: akamaster.md.
"""

from __future__ import annotations

import io
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn

CODEBASE = "akamaster/pytorch_resnet_cifar10"
REPO = "https://github.com/akamaster/pytorch_resnet_cifar10"
# trainer.py normalises CIFAR-10 with the ImageNet statistics.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

SAVE_AS_CUDA = True  # trainer.py: model = DataParallel(...).cuda(); the shipped .th files hold cuda:0 storages


# --------------------------------------------------------------------------- network


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.lambd = fn

    def forward(self, x):
        return self.lambd(x)


def _pad_shortcut(planes: int):
    extra = planes // 4

    def shortcut(x):
        # keep every other row/column, then add `extra` zero channels on each side
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, extra, extra), "constant", 0)

    return shortcut


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, option="A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                self.shortcut = LambdaLayer(_pad_shortcut(planes))  # parameter-free: no keys at all
            elif option == "B":
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, num_blocks, num_classes=10, option="A"):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, num_blocks[0], 1, option)
        self.layer2 = self._stage(32, num_blocks[1], 2, option)
        self.layer3 = self._stage(64, num_blocks[2], 2, option)
        self.linear = nn.Linear(64, num_classes)

    def _stage(self, planes, count, stride, option):
        blocks = []
        for s in [stride] + [1] * (count - 1):
            blocks.append(BasicBlock(self.in_planes, planes, s, option))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def features(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.layer3(self.layer2(self.layer1(y)))
        return F.avg_pool2d(y, y.size()[3]).flatten(1)  # global average (window = feature-map width)

    def forward(self, x):
        return self.linear(self.features(x))


def resnet20(option="A") -> ResNet:
    return ResNet([3, 3, 3], option=option)


def resnet56(option="A") -> ResNet:
    return ResNet([9, 9, 9], option=option)


# --------------------------------------------------------------------------- saving


def _save(obj, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    entry = (-10_000, lambda storage: "cuda:0", lambda storage, location: None)
    registry = torch.serialization._package_registry
    if SAVE_AS_CUDA:
        registry.insert(0, entry)
    try:
        torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    finally:
        if SAVE_AS_CUDA:
            registry.remove(entry)
    return buffer.getvalue()


def _dp_state(module: nn.Module, drop_batches_tracked: bool = False) -> OrderedDict:
    out = OrderedDict()
    for k, v in module.state_dict().items():
        if drop_batches_tracked and k.endswith("num_batches_tracked"):
            continue
        out["module." + k] = v
    return out


def save_pretrained_th(module: nn.Module) -> bytes:
    """pretrained_models/resnet20-12fca82f.th: legacy format, 2 keys, no epoch, no num_batches_tracked."""
    return _save({"best_prec1": 91.78000183105469, "state_dict": _dp_state(module, True)}, legacy=True)


def save_checkpoint_th(module: nn.Module) -> bytes:
    """trainer.py's periodic save (every --save-every epochs) to save_dir/checkpoint.th."""
    return _save({"epoch": 191, "state_dict": _dp_state(module), "best_prec1": 93.39})


def save_model_th(module: nn.Module) -> bytes:
    """trainer.py's every-epoch save to save_dir/model.th (no 'epoch')."""
    return _save({"state_dict": _dp_state(module), "best_prec1": 92.16})


def _built(factory, seed: int, **kw):
    def build() -> nn.Module:
        torch.manual_seed(seed)
        return randomise_bn(factory(**kw), seed=seed)

    return build


def logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(x)


_RESNET = f"{REPO}/blob/master/resnet.py"
_TRAINER = f"{REPO}/blob/master/trainer.py"
_PRETRAINED = f"{REPO}/tree/master/pretrained_models"
_README = f"{REPO}/blob/master/README.md"

_COMMON = (
    "Option A shortcut: x[:, :, ::2, ::2] then zero-pad planes//4 channels on each side (no weights, so "
    "layer2.0/layer3.0 have no shortcut keys at all). Head 'linear' 64->10. Normalised with ImageNet "
    "mean/std. Keys 'module.'-prefixed (DataParallel); tensors tagged cuda:0."
)

LAYOUTS: list[Layout] = [
    Layout(
        name="akamaster-resnet20-pretrained-th",
        codebase=CODEBASE,
        filename="resnet20-12fca82f.th",
        arch="resnet20-optionA",
        build=_built(resnet20, 31),
        save=save_pretrained_th,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "Mirrors the shipped file: legacy (non-zip) torch format, {'best_prec1': float, 'state_dict': "
            "OrderedDict} only, 97 keys (no num_batches_tracked: saved by PyTorch < 0.4.1). " + _COMMON
        ),
        source_urls=(_PRETRAINED, _RESNET, _README),
    ),
    Layout(
        name="akamaster-resnet56-checkpoint-th",
        codebase=CODEBASE,
        filename="checkpoint.th",
        arch="resnet56-optionA",
        build=_built(resnet56, 32),
        save=save_checkpoint_th,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes="trainer.py checkpoint.th: {'epoch', 'state_dict', 'best_prec1'} (zip format, with num_batches_tracked). "
        + _COMMON,
        source_urls=(_TRAINER, _RESNET),
    ),
    Layout(
        name="akamaster-resnet20-optionB-model-th",
        codebase=CODEBASE,
        filename="model.th",
        arch="resnet20-optionB",
        build=_built(resnet20, 33, option="B"),
        save=save_model_th,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "Option B (1x1 conv + BN projection as shortcut.0/shortcut.1) exists in resnet.py but trainer.py "
            "never selects it: only a user who edited the default gets this. Saved like trainer.py's model.th: "
            "{'state_dict', 'best_prec1'}, no 'epoch'. Keys 'module.'-prefixed; cuda:0; ImageNet mean/std."
        ),
        source_urls=(_RESNET, _TRAINER),
    ),
]
