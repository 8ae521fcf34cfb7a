"""Layout fixtures for the two common Wide-ResNet codebases.

* xternalz/WideResNet-pytorch (wideresnet.py + train.py): pre-activation WRN, keys
  block{1,2,3}.layer.N.{bn1,conv1,bn2,conv2,convShortcut}, final `bn1`, head `fc`; train.py saves
  {'epoch', 'state_dict', 'best_prec1'} with no DataParallel prefix.
* meliketoy/wide-resnet.pytorch (networks/wide_resnet.py + main.py): convs WITH bias, stride on
  the block's second conv, keys layer{1,2,3}.N.{bn1,conv1,bn2,conv2,shortcut.0}, final `bn1`,
  head `linear`; main.py pickles the WHOLE module: {'net': Wide_ResNet object, 'acc', 'epoch'}.

Both networks are re-written here from reading those files. Facts: wide_resnet.md.
"""

from __future__ import annotations

import contextlib
import io
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn

XT = "xternalz/WideResNet-pytorch"
ML = "meliketoy/wide-resnet.pytorch"
XT_REPO = "https://github.com/xternalz/WideResNet-pytorch"
ML_REPO = "https://github.com/meliketoy/wide-resnet.pytorch"
XT_MEAN = tuple(v / 255.0 for v in (125.3, 123.0, 113.9))
XT_STD = tuple(v / 255.0 for v in (63.0, 62.1, 66.7))
ML_MEAN = (0.4914, 0.4822, 0.4465)
ML_STD = (0.2023, 0.1994, 0.2010)

SAVE_AS_CUDA = True  # both scripts train with model.cuda() and save without moving to CPU


# --------------------------------------------------------------------------- xternalz network


class BasicBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride, dropRate=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.droprate = dropRate
        self.equalInOut = in_planes == out_planes
        self.convShortcut = (
            None if self.equalInOut else nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x):
        pre = self.relu1(self.bn1(x))
        y = self.relu2(self.bn2(self.conv1(pre)))
        if self.droprate > 0:
            y = F.dropout(y, p=self.droprate, training=self.training)
        y = self.conv2(y)
        # Width change: the 1x1 projection reads the PRE-ACTIVATED input; otherwise the raw input is added.
        skip = x if self.equalInOut else self.convShortcut(pre)
        return skip + y


class NetworkBlock(nn.Module):
    def __init__(self, nb_layers, in_planes, out_planes, block, stride, dropRate=0.0):
        super().__init__()
        self.layer = nn.Sequential(
            *[
                block(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, dropRate)
                for i in range(int(nb_layers))
            ]
        )

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, num_classes, widen_factor=1, dropRate=0.0):
        super().__init__()
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        assert (depth - 4) % 6 == 0
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, ch[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], BasicBlock, 1, dropRate)
        self.block2 = NetworkBlock(n, ch[1], ch[2], BasicBlock, 2, dropRate)
        self.block3 = NetworkBlock(n, ch[2], ch[3], BasicBlock, 2, dropRate)
        self.bn1 = nn.BatchNorm2d(ch[3])  # the FINAL norm, despite the name
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], num_classes)
        self.nChannels = ch[3]

    def features(self, x):
        y = self.block3(self.block2(self.block1(self.conv1(x))))
        y = self.relu(self.bn1(y))
        return F.avg_pool2d(y, 8).view(-1, self.nChannels)

    def forward(self, x):
        return self.fc(self.features(x))


# --------------------------------------------------------------------------- meliketoy network


class wide_basic(nn.Module):  # noqa: N801 - their class name; the pickle refers to it
    def __init__(self, in_planes, planes, dropout_rate, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=dropout_rate)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)  # stride here, not conv1
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=True))

    def forward(self, x):
        y = self.dropout(self.conv1(F.relu(self.bn1(x))))
        y = self.conv2(F.relu(self.bn2(y)))
        return y + self.shortcut(x)  # projection reads the RAW input


class Wide_ResNet(nn.Module):  # noqa: N801
    def __init__(self, depth, widen_factor, dropout_rate, num_classes):
        super().__init__()
        self.in_planes = 16
        assert (depth - 4) % 6 == 0
        n = (depth - 4) / 6  # a float in their code; only used through int()
        k = widen_factor
        stages = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, stages[0], 3, stride=1, padding=1, bias=True)
        self.layer1 = self._wide_layer(stages[1], n, dropout_rate, 1)
        self.layer2 = self._wide_layer(stages[2], n, dropout_rate, 2)
        self.layer3 = self._wide_layer(stages[3], n, dropout_rate, 2)
        self.bn1 = nn.BatchNorm2d(stages[3], momentum=0.9)
        self.linear = nn.Linear(stages[3], num_classes)

    def _wide_layer(self, planes, num_blocks, dropout_rate, stride):
        blocks = []
        for s in [stride] + [1] * (int(num_blocks) - 1):
            blocks.append(wide_basic(self.in_planes, planes, dropout_rate, s))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def features(self, x):
        y = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        y = F.relu(self.bn1(y))
        return F.avg_pool2d(y, 8).flatten(1)

    def forward(self, x):
        return self.linear(self.features(x))


# --------------------------------------------------------------------------- saving helpers


def _save(obj, keep_cpu: tuple[torch.Tensor, ...] = ()) -> bytes:
    """torch.save into memory, tagging tensors cuda:0 except those in keep_cpu."""
    cpu_ptrs = {t.untyped_storage().data_ptr() for t in keep_cpu}

    def tag(storage):
        return None if storage.data_ptr() in cpu_ptrs else "cuda:0"

    buffer = io.BytesIO()
    entry = (-10_000, tag, lambda storage, location: None)
    registry = torch.serialization._package_registry
    if SAVE_AS_CUDA:
        registry.insert(0, entry)
    try:
        torch.save(obj, buffer)
    finally:
        if SAVE_AS_CUDA:
            registry.remove(entry)
    return buffer.getvalue()


_MISSING = object()


@contextlib.contextmanager
def pretend_module(path: str, **classes):
    """Make `classes` importable as `path.<name>` while pickling/unpickling, then undo it."""
    parts = path.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    saved = {n: sys.modules.get(n, _MISSING) for n in names}
    saved_modules = {c: cls.__module__ for c, cls in classes.items()}
    try:
        for i, n in enumerate(names):
            sys.modules[n] = types.ModuleType(n)
            sys.modules[n].__file__ = __file__
            if i:
                setattr(sys.modules[names[i - 1]], parts[i], sys.modules[n])
        for c, cls in classes.items():
            cls.__module__ = path
            setattr(sys.modules[path], c, cls)
        yield
    finally:
        for c, cls in classes.items():
            cls.__module__ = saved_modules[c]
        for n, m in saved.items():
            if m is _MISSING:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def save_xternalz(module: nn.Module) -> bytes:
    """train.py save_checkpoint -> runs/<name>/checkpoint.pth.tar (model_best.pth.tar is a copy)."""
    return _save({"epoch": 200, "state_dict": module.state_dict(), "best_prec1": 95.19})


_ML_PATH = "networks.wide_resnet"


def save_meliketoy(module: nn.Module) -> bytes:
    """main.py test(): {'net': net.module (whole model), 'acc': 0-dim tensor, 'epoch': int}."""
    # acc = 100.*correct/total where correct accumulates predicted.eq(...).cpu().sum(): a CPU tensor
    acc = torch.tensor(9514.0) * 100.0 / 10000
    with pretend_module(_ML_PATH, Wide_ResNet=Wide_ResNet, wide_basic=wide_basic):
        return _save({"net": module, "acc": acc, "epoch": 183}, keep_cpu=(acc,))


def load_meliketoy_for_tests(data: bytes):
    with pretend_module(_ML_PATH, Wide_ResNet=Wide_ResNet, wide_basic=wide_basic):
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


LOADERS = {"meliketoy-wrn-16-8-whole-module": load_meliketoy_for_tests}


def _build_xt() -> nn.Module:
    torch.manual_seed(51)
    return randomise_bn(WideResNet(16, 10, widen_factor=8, dropRate=0.0), seed=51)


def _build_ml() -> nn.Module:
    torch.manual_seed(52)
    # main.py's default --dropout is 0.3 (scripts/*.sh pass 0); identity in eval either way
    return randomise_bn(Wide_ResNet(16, 8, 0.3, 10), seed=52)


def logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(x)


LAYOUTS: list[Layout] = [
    Layout(
        name="xternalz-wrn-16-8",
        codebase=XT,
        filename="checkpoint.pth.tar",
        arch="wrn-16-8",
        build=_build_xt,
        save=save_xternalz,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=XT_MEAN,
        std=XT_STD,
        notes=(
            "{'epoch','state_dict','best_prec1'}; NO 'module.' prefix (DataParallel line is commented out). "
            "Keys block1.layer.0.bn1 ... convShortcut (1x1, no BN) only in each stage's first block; final "
            "norm is top-level 'bn1' (after block3) and head 'fc'. Projection shortcut is applied to "
            "relu(bn1(x)), identity shortcut to raw x. Mean/std are 125.3/123.0/113.9 and 63.0/62.1/66.7 over 255."
        ),
        source_urls=(f"{XT_REPO}/blob/master/wideresnet.py", f"{XT_REPO}/blob/master/train.py"),
    ),
    Layout(
        name="meliketoy-wrn-16-8-whole-module",
        codebase=ML,
        filename="wide-resnet-16x8.t7",
        arch="wrn-16-8",
        build=_build_ml,
        save=save_meliketoy,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=ML_MEAN,
        std=ML_STD,
        notes=(
            "Whole pickled model: {'net': networks.wide_resnet.Wide_ResNet (containing wide_basic), 'acc': "
            "0-dim float tensor (CPU), 'epoch': int}; written to checkpoint/cifar10/wide-resnet-16x8.t7 "
            "(zip format despite .t7). Convs have biases (conv1.bias, layerX.Y.conv1.bias, shortcut.0.bias); "
            "stride sits on conv2; projection shortcut reads the raw input; final 'bn1' then head 'linear'. "
            "Parameters tagged cuda:0. Use load_meliketoy_for_tests() to open it here."
        ),
        source_urls=(
            f"{ML_REPO}/blob/master/networks/wide_resnet.py",
            f"{ML_REPO}/blob/master/main.py",
            f"{ML_REPO}/blob/master/config.py",
        ),
    ),
]
