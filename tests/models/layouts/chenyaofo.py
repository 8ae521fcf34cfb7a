"""Layout fixtures for chenyaofo/pytorch-cifar-models.

The network is written here from reading pytorch_cifar_models/resnet.py (CifarResNet: a
torchvision-style ResNet cut down to 3 stages of 16/32/64 channels, 1x1 conv + BN downsample,
head `fc`). Two files: the released cifar10_resnet20-4118986f.pt (bare state dict, loaded with
load_state_dict_from_url) and the training checkpoint that chenyaofo/image-classification-codebase
(the trainer the repo's Colab notebook uses) writes: checkpoint.pt / best_checkpoint.pt with
{'model', 'optimizer', 'scheduler', 'metrics'}. Facts: chenyaofo.md.
"""

from __future__ import annotations

import io
import warnings
from collections import OrderedDict

import torch
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn

CODEBASE = "chenyaofo/pytorch-cifar-models"
REPO = "https://github.com/chenyaofo/pytorch-cifar-models"
TRAINER = "https://github.com/chenyaofo/image-classification-codebase"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)

SAVE_AS_CUDA = True  # training checkpoints come from a GPU run; the released .pt could not be inspected (written CPU)


# --------------------------------------------------------------------------- network


def _conv3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = _conv3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + skip)


class CifarResNet(nn.Module):
    def __init__(self, layers, num_classes=10):
        super().__init__()
        self.inplanes = 16
        self.conv1 = _conv3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._stage(16, layers[0], 1)
        self.layer2 = self._stage(32, layers[1], 2)
        self.layer3 = self._stage(64, layers[2], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)

    def _stage(self, planes, count, stride):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        blocks = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        blocks += [BasicBlock(planes, planes) for _ in range(1, count)]
        return nn.Sequential(*blocks)

    def features(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.layer3(self.layer2(self.layer1(y)))
        return torch.flatten(self.avgpool(y), 1)

    def forward(self, x):
        return self.fc(self.features(x))


def cifar10_resnet20() -> CifarResNet:
    return CifarResNet([3, 3, 3])


def cifar10_resnet56() -> CifarResNet:
    return CifarResNet([9, 9, 9])


# --------------------------------------------------------------------------- saving


def _save(obj, cuda: bool) -> bytes:
    buffer = io.BytesIO()
    entry = (-10_000, lambda storage: "cuda:0", lambda storage, location: None)
    registry = torch.serialization._package_registry
    if cuda:
        registry.insert(0, entry)
    try:
        torch.save(obj, buffer)
    finally:
        if cuda:
            registry.remove(entry)
    return buffer.getvalue()


def save_release_pt(module: nn.Module) -> bytes:
    """cifar10_resnet20-4118986f.pt: a bare state dict (the hub entry calls model.load_state_dict on it)."""
    return _save(OrderedDict(module.state_dict()), cuda=False)


def save_training_checkpoint(module: nn.Module) -> bytes:
    """torchutils StateCheckPoint.save: {name: obj.state_dict() for model/optimizer/scheduler} + 'metrics'."""
    epochs = 200
    base_lr = 0.1  # conf/cifar10.conf lr 0.1 scaled by batch 256 / basic_bs 256
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    # CustomSGD without bn_weight_decay -> one plain param group
    opt = torch.optim.SGD(params, base_lr, momentum=0.9, dampening=0, weight_decay=5e-4, nesterov=True)
    g = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    opt.step()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in range(1, epochs + 1):  # engine.py calls scheduler.step(epoch) at the start of each epoch
            sched.step(epoch)
    metrics = {}
    for phase in ("train", "eval"):
        for name, base in (("lr", base_lr), ("loss", 0.3), ("top1_acc", 0.9), ("top5_acc", 0.99)):
            metrics[f"{phase}/{name}"] = [float(base) for _ in range(epochs)]
    checkpoint = {
        "model": module.state_dict(),  # the unwrapped model: no 'module.' prefix
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "metrics": metrics,
    }
    return _save(checkpoint, cuda=SAVE_AS_CUDA)


def _built(factory, seed: int):
    def build() -> nn.Module:
        torch.manual_seed(seed)
        return randomise_bn(factory(), seed=seed)

    return build


def logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(x)


_RESNET = f"{REPO}/blob/master/pytorch_cifar_models/resnet.py"
_README = f"{REPO}/blob/master/README.md"
_COLAB = f"{REPO}/blob/master/colab/start_on_colab.ipynb"
_CONF = f"{TRAINER}/blob/master/conf/cifar10.conf"
_MAIN = f"{TRAINER}/blob/master/codebase/main.py"
_SAVER = "https://github.com/chenyaofo/torchutils/blob/master/common.py"

LAYOUTS: list[Layout] = [
    Layout(
        name="chenyaofo-resnet20-release-pt",
        codebase=CODEBASE,
        filename="cifar10_resnet20-4118986f.pt",
        arch="resnet20",
        build=_built(cifar10_resnet20, 41),
        save=save_release_pt,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "Bare state dict, no prefix. Same depth/widths as akamaster resnet20 but the shortcut is a "
            "projection: layer2.0.downsample.0 (1x1 conv, stride 2) + downsample.1 (BN), and the head is "
            "'fc' (not 'linear'). Key set identical to bearpaw/pytorch-classification's resnet-20."
        ),
        source_urls=(_RESNET, _README),
    ),
    Layout(
        name="chenyaofo-resnet56-training-checkpoint",
        codebase=CODEBASE,
        filename="best_checkpoint.pt",
        arch="resnet56",
        build=_built(cifar10_resnet56, 42),
        save=save_training_checkpoint,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "Written by image-classification-codebase (torchutils StateCheckPoint): weights under 'model' "
            "(not 'state_dict'/'net'), plus 'optimizer', 'scheduler' (CosineAnnealingLR) and 'metrics' "
            "(dict of per-epoch float lists: train/lr, train/loss, train/top1_acc, ..., eval/top5_acc). "
            "No prefix (model unwrapped before saving). cuda:0 tensors. If use_compile were on, keys would "
            "gain '_orig_mod.' (unwarp_module does not unwrap torch.compile)."
        ),
        source_urls=(_COLAB, _CONF, _MAIN, _SAVER, _RESNET),
    ),
]
