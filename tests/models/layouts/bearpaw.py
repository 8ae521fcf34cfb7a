"""Layout fixtures for bearpaw/pytorch-classification.

A widely used CIFAR trainer (cifar.py) with fb.resnet.torch-style CIFAR nets. The PreResNet is
written here from reading models/cifar/preresnet.py: stem conv without BN, pre-activation blocks
whose 1x1 downsample (no BN) reads the RAW block input, final `bn` + ReLU, AvgPool2d(8), head
`fc`. cifar.py always wraps in DataParallel and saves {'epoch', 'state_dict', 'acc', 'best_acc',
'optimizer'} to checkpoint.pth.tar (model_best.pth.tar is a copy). Facts: bearpaw.md.
"""

from __future__ import annotations

import io
from collections import OrderedDict

import torch
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn

CODEBASE = "bearpaw/pytorch-classification"
REPO = "https://github.com/bearpaw/pytorch-classification"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)

SAVE_AS_CUDA = True  # cifar.py: model = DataParallel(model).cuda()


def _conv3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = _conv3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3(planes, planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        y = self.conv1(self.relu(self.bn1(x)))
        y = self.conv2(self.relu(self.bn2(y)))
        skip = x if self.downsample is None else self.downsample(x)  # raw input, not the pre-activated one
        return y + skip


class PreResNet(nn.Module):
    def __init__(self, depth, num_classes=10):
        super().__init__()
        assert (depth - 2) % 6 == 0
        n = (depth - 2) // 6
        self.inplanes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.layer1 = self._stage(16, n, 1)
        self.layer2 = self._stage(32, n, 2)
        self.layer3 = self._stage(64, n, 2)
        self.bn = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, num_classes)

    def _stage(self, planes, count, stride):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False))
        blocks = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        blocks += [BasicBlock(planes, planes) for _ in range(1, count)]
        return nn.Sequential(*blocks)

    def features(self, x):
        y = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        y = self.relu(self.bn(y))
        return self.avgpool(y).view(y.size(0), -1)

    def forward(self, x):
        return self.fc(self.features(x))


def _save(obj) -> bytes:
    buffer = io.BytesIO()
    entry = (-10_000, lambda storage: "cuda:0", lambda storage, location: None)
    registry = torch.serialization._package_registry
    if SAVE_AS_CUDA:
        registry.insert(0, entry)
    try:
        torch.save(obj, buffer)
    finally:
        if SAVE_AS_CUDA:
            registry.remove(entry)
    return buffer.getvalue()


def save_checkpoint(module: nn.Module) -> bytes:
    """cifar.py save_checkpoint(): DataParallel state dict + plain SGD (momentum 0.9, wd 1e-4 per TRAINING.md)."""
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    opt.step()
    for group in opt.param_groups:
        group["lr"] = 0.001  # adjust_learning_rate() after both schedule steps (81, 122), gamma 0.1
    state = {
        "epoch": 164,
        "state_dict": OrderedDict(("module." + k, v) for k, v in module.state_dict().items()),
        "acc": 94.91,
        "best_acc": 95.02,
        "optimizer": opt.state_dict(),
    }
    return _save(state)


def _build() -> nn.Module:
    torch.manual_seed(71)
    return randomise_bn(PreResNet(110, 10), seed=71)


def logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(x)


LAYOUTS: list[Layout] = [
    Layout(
        name="bearpaw-preresnet110",
        codebase=CODEBASE,
        filename="checkpoint.pth.tar",
        arch="preresnet110",
        build=_build,
        save=save_checkpoint,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "{'epoch','state_dict','acc','best_acc','optimizer'}; keys 'module.'-prefixed; cuda:0. "
            "Pre-activation: stem conv1 has no BN; per block bn1->relu->conv1->bn2->relu->conv2; "
            "downsample.0 is a lone 1x1 conv on the RAW input (kuangliu's preact applies its shortcut to the "
            "pre-activated input); final norm is 'bn' (not bn1/bn_final), head 'fc'. 18 blocks per stage."
        ),
        source_urls=(
            f"{REPO}/blob/master/models/cifar/preresnet.py",
            f"{REPO}/blob/master/cifar.py",
            f"{REPO}/blob/master/TRAINING.md",
        ),
    ),
]
