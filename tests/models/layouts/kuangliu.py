"""Layout fixtures for kuangliu/pytorch-cifar.

Networks are re-written here from reading models/resnet.py and models/preact_resnet.py;
module names, registration order and forward match theirs so state-dict keys and outputs are
the same. File structures follow main.py (see kuangliu.md for the facts and source lines).
"""

from __future__ import annotations

import contextlib
import io
import sys
import types
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

try:  # imported as part of a package
    from .spec import Layout, randomise_bn
except ImportError:  # imported with this folder on sys.path
    from spec import Layout, randomise_bn

CODEBASE = "kuangliu/pytorch-cifar"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
REPO = "https://github.com/kuangliu/pytorch-cifar"

# main.py runs the net on CUDA (wrapped in DataParallel), so every tensor in a real file is tagged
# "cuda:0". Flip to False to write CPU-tagged files instead.
SAVE_AS_CUDA = True


# --------------------------------------------------------------------------- networks


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()  # empty (identity, no keys) unless the shape changes
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes * self.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * self.expansion),
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        wide = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)  # stride on the 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, wide, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(wide)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != wide:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, wide, 1, stride=stride, bias=False),
                nn.BatchNorm2d(wide),
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes: int = 10):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)  # CIFAR stem, no max-pool
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._stage(block, 64, num_blocks[0], 1)
        self.layer2 = self._stage(block, 128, num_blocks[1], 2)
        self.layer3 = self._stage(block, 256, num_blocks[2], 2)
        self.layer4 = self._stage(block, 512, num_blocks[3], 2)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def _stage(self, block, planes, count, stride):
        blocks = []
        for s in [stride] + [1] * (count - 1):
            blocks.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*blocks)

    def features(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.layer4(self.layer3(self.layer2(self.layer1(y))))
        return F.avg_pool2d(y, 4).flatten(1)  # fixed 4x4 window: only right for 32x32 inputs

    def forward(self, x):
        return self.linear(self.features(x))


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        # Only created when needed: the attribute is absent (not an empty Sequential) otherwise.
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes * self.expansion, 1, stride=stride, bias=False))

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        skip = self.shortcut(pre) if hasattr(self, "shortcut") else x  # projection sees the pre-activated input
        y = self.conv1(pre)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + skip


class PreActResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes: int = 10):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)  # no stem BN
        self.layer1 = self._stage(block, 64, num_blocks[0], 1)
        self.layer2 = self._stage(block, 128, num_blocks[1], 2)
        self.layer3 = self._stage(block, 256, num_blocks[2], 2)
        self.layer4 = self._stage(block, 512, num_blocks[3], 2)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def _stage(self, block, planes, count, stride):
        blocks = []
        for s in [stride] + [1] * (count - 1):
            blocks.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*blocks)

    def features(self, x):
        y = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        # No final BN + ReLU before pooling in this codebase (unlike the paper's pre-act net).
        return F.avg_pool2d(y, 4).flatten(1)

    def forward(self, x):
        return self.linear(self.features(x))


def resnet18() -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2])


def resnet50() -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3])


def preact_resnet18() -> PreActResNet:
    return PreActResNet(PreActBlock, [2, 2, 2, 2])


# --------------------------------------------------------------------------- saving helpers


def _save(obj, legacy: bool = False) -> bytes:
    """torch.save into memory; tensors tagged cuda:0 like a file written from a GPU run."""
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


_MISSING = object()


@contextlib.contextmanager
def pretend_module(path: str, **classes):
    """Make `classes` importable as `path.<name>` for the duration (pickle writes/reads class paths).

    Restores sys.modules and the classes' __module__ afterwards, so nothing leaks into the
    process (CKA Lens has its own `models` package; the fake one must never stay installed).
    """
    parts = path.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    saved = {n: sys.modules.get(n, _MISSING) for n in names}
    saved_modules = {c: cls.__module__ for c, cls in classes.items()}
    try:
        for i, n in enumerate(names):
            sys.modules[n] = types.ModuleType(n)
            sys.modules[n].__file__ = __file__  # lets the legacy writer find class source, as old files have it
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


class _OldBackend:
    """Stands in for the `_backend` attribute every nn.Module had before PyTorch 1.x removed it.

    Old THNNFunctionBackend pickled itself as a call to torch.nn.backends.thnn._get_thnn_function_backend,
    which modern torch still keeps for exactly this purpose.
    """

    def __reduce__(self):
        import torch.nn.backends.thnn as thnn

        return (thnn._get_thnn_function_backend, ())


def _as_2017_module(module: nn.Module) -> nn.Module:
    """A copy that looks like a PyTorch 0.2/0.3 module: `_backend` set, no num_batches_tracked."""
    import copy

    old = copy.deepcopy(module)
    for m in old.modules():
        m.__dict__["_backend"] = _OldBackend()
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m._buffers.pop("num_batches_tracked", None)
    return old


# --------------------------------------------------------------------------- layouts


def _built(factory, seed: int):
    def build() -> nn.Module:
        torch.manual_seed(seed)
        return randomise_bn(factory(), seed=seed)

    return build


def _data_parallel_state(module: nn.Module) -> OrderedDict:
    return OrderedDict(("module." + k, v) for k, v in module.state_dict().items())


def save_new_ckpt(module: nn.Module) -> bytes:
    """main.py since Apr 2018: {'net': DataParallel state_dict, 'acc': float, 'epoch': int}."""
    return _save({"net": _data_parallel_state(module), "acc": 95.43, "epoch": 187})


def save_legacy_whole_module(module: nn.Module) -> bytes:
    """main.py before Apr 2018: the whole (unwrapped) module pickled under 'net', old file format."""
    old = _as_2017_module(module)
    with pretend_module("models.resnet", ResNet=ResNet, BasicBlock=BasicBlock, Bottleneck=Bottleneck):
        return _save({"net": old, "acc": 93.02, "epoch": 164}, legacy=True)


def load_legacy_for_tests(data: bytes):
    """How a test can open the whole-module file here (their classes are made importable briefly)."""
    with pretend_module("models.resnet", ResNet=ResNet, BasicBlock=BasicBlock, Bottleneck=Bottleneck):
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(x)


# Layouts whose file cannot be opened by a bare torch.load here (class paths of their codebase).
LOADERS = {"kuangliu-resnet18-legacy-whole-module": load_legacy_for_tests}

_MAIN = f"{REPO}/blob/master/main.py"
_RESNET = f"{REPO}/blob/master/models/resnet.py"
_PREACT = f"{REPO}/blob/master/models/preact_resnet.py"
_OLD_MAIN = f"{REPO}/blob/e2db90b/main.py"  # last whole-module version (Jan 2018); 7f16208 switched to state_dict

LAYOUTS: list[Layout] = [
    Layout(
        name="kuangliu-resnet18-ckpt",
        codebase=CODEBASE,
        filename="ckpt.pth",
        arch="resnet18",
        build=_built(resnet18, 11),
        save=save_new_ckpt,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "{'net','acc','epoch'}; weights under 'net' (not 'state_dict'); every key starts with 'module.' "
            "(DataParallel on CUDA); tensors tagged cuda:0; head is 'linear'; identity shortcut is an empty "
            "Sequential (no keys), projection shortcut is shortcut.0 (conv) + shortcut.1 (BN). Files from "
            "Apr 2018-May 2019 have the same dict but are named ckpt.t7."
        ),
        source_urls=(_MAIN, _RESNET),
    ),
    Layout(
        name="kuangliu-preact-resnet18-ckpt",
        codebase=CODEBASE,
        filename="ckpt.pth",
        arch="preact-resnet18",
        build=_built(preact_resnet18, 12),
        save=save_new_ckpt,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "Pre-activation blocks (bn1 before conv1); no stem BN and NO final BN+ReLU before the 4x4 "
            "average pool; projection shortcut is a lone 1x1 conv (shortcut.0.weight, no BN) applied to the "
            "pre-activated input. Keys 'module.'-prefixed under 'net'."
        ),
        source_urls=(_MAIN, _PREACT),
    ),
    Layout(
        name="kuangliu-resnet50-ckpt",
        codebase=CODEBASE,
        filename="ckpt.pth",
        arch="resnet50",
        build=_built(resnet50, 13),
        save=save_new_ckpt,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "Bottleneck (expansion 4, stride on conv2); layer1.0 already has a projection shortcut "
            "(64->256, stride 1); head linear 2048->10. Keys 'module.'-prefixed under 'net'."
        ),
        source_urls=(_MAIN, _RESNET),
    ),
    Layout(
        name="kuangliu-resnet18-legacy-whole-module",
        codebase=CODEBASE,
        filename="ckpt.t7",
        arch="resnet18",
        build=_built(resnet18, 14),
        save=save_legacy_whole_module,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "Pre-Apr-2018 main.py: {'net': <models.resnet.ResNet object>, 'acc', 'epoch'} in the legacy "
            "(non-zip) torch format; the module was unwrapped from DataParallel (net.module) so it has no "
            "'module.' prefix; BN modules have no num_batches_tracked; every module carries a `_backend` "
            "(reduces to torch.nn.backends.thnn._get_thnn_function_backend). Unpickling needs a class at "
            "models.resnet.ResNet/BasicBlock: beware that CKA Lens itself has a `models.resnet` module. "
            "Use load_legacy_for_tests() to open it here."
        ),
        source_urls=(_OLD_MAIN, f"{REPO}/blob/e2db90b/models/resnet.py", f"{REPO}/commit/7f16208"),
    ),
]
