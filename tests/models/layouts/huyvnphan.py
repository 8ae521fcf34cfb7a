"""Layout fixtures for huyvnphan/PyTorch_CIFAR10.

The network is written here from reading cifar10_models/resnet.py (a torchvision ResNet with the
first conv changed to 3x3/s1/p1 but the 3x3/s2 max-pool KEPT). Two files: the shipped
state_dicts/resnet18.pt (plain state dict) and the PyTorch Lightning 1.1 .ckpt that train.py's
ModelCheckpoint writes (weights under 'state_dict' with a 'model.' prefix). Facts: huyvnphan.md.
"""

from __future__ import annotations

import contextlib
import io
import sys
import types
from collections import OrderedDict

import torch
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn

CODEBASE = "huyvnphan/PyTorch_CIFAR10"
REPO = "https://github.com/huyvnphan/PyTorch_CIFAR10"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2471, 0.2435, 0.2616)  # data.py since Jan 2021; README said (0.2023, 0.1994, 0.2010) until Feb 2021

# The Lightning checkpoint is written from the GPU (tensors tagged cuda:0). How the shipped .pt
# files were tagged could not be checked (they are downloaded from Box, not in the repository),
# so they are written CPU-tagged.
SAVE_AS_CUDA = True


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


class ResNet(nn.Module):
    def __init__(self, layers, num_classes=10):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)  # was 7x7/s2/p3
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # still there: 32x32 -> 16x16
        self.layer1 = self._stage(64, layers[0], 1)
        self.layer2 = self._stage(128, layers[1], 2)
        self.layer3 = self._stage(256, layers[2], 2)
        self.layer4 = self._stage(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _stage(self, planes, count, stride):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        blocks = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        blocks += [BasicBlock(planes, planes) for _ in range(1, count)]
        return nn.Sequential(*blocks)

    def features(self, x):
        y = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        y = self.layer4(self.layer3(self.layer2(self.layer1(y))))  # layer4 output is 2x2 for 32x32 input
        return torch.flatten(self.avgpool(y), 1)

    def forward(self, x):
        return self.fc(self.features(x))


def resnet18() -> ResNet:
    return ResNet([2, 2, 2, 2])


# --------------------------------------------------------------------------- saving helpers


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


class ModelCheckpoint:
    """Stand-in for pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint.

    Lightning 1.1 keys the checkpoint's 'callbacks' dict by the callback CLASS itself, so the file
    holds a pickled reference to this class path: opening it needs pytorch_lightning importable
    (or an unpickler that stubs unknown classes).
    """


_CALLBACK_PATH = "pytorch_lightning.callbacks.model_checkpoint"

HPARAMS = {  # vars(args) from train.py's argparse defaults (train.py --classifier resnet18)
    "data_dir": "/data/huy/cifar10",
    "download_weights": 0,
    "test_phase": 0,
    "dev": 0,
    "logger": "tensorboard",
    "classifier": "resnet18",
    "pretrained": 0,
    "precision": 32,
    "batch_size": 256,
    "max_epochs": 100,
    "num_workers": 8,
    "gpu_id": "3",
    "learning_rate": 0.01,
    "weight_decay": 0.01,
}


def _sgd_state(module: nn.Module, lr: float, weight_decay: float) -> dict:
    """A real SGD(momentum=0.9, nesterov=True) state_dict after one step, without touching `module`."""
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    opt.step()
    state = opt.state_dict()
    for group in state["param_groups"]:
        group["initial_lr"] = lr  # added by the _LRScheduler subclass (WarmupCosineLR)
    return state


def save_state_dict_pt(module: nn.Module) -> bytes:
    """cifar10_models/state_dicts/resnet18.pt: a bare state dict, keys exactly as the network's."""
    return _save(OrderedDict(module.state_dict()), cuda=False)


def save_lightning_ckpt(module: nn.Module) -> bytes:
    """What ModelCheckpoint(monitor='acc/val', mode='max') writes with pytorch-lightning 1.1.0."""
    steps_per_epoch = 50000 // HPARAMS["batch_size"]  # drop_last=True
    total = steps_per_epoch * HPARAMS["max_epochs"]
    score = torch.tensor(93.0689)
    checkpoint = {
        "epoch": 100,
        "global_step": total,
        "pytorch-lightning_version": "1.1.0",
        "callbacks": {
            ModelCheckpoint: {
                "monitor": "acc/val",
                "best_model_score": score,
                "best_model_path": f"cifar10/resnet18/version_0/checkpoints/epoch=99-step={total - 1}.ckpt",
                "current_score": score.clone(),
            }
        },
        "optimizer_states": [_sgd_state(module, HPARAMS["learning_rate"], HPARAMS["weight_decay"])],
        "lr_schedulers": [
            {
                "warmup_epochs": total * 0.3,
                "max_epochs": total,
                "warmup_start_lr": 1e-8,
                "eta_min": 1e-8,
                "base_lrs": [HPARAMS["learning_rate"]],
                "last_epoch": total,
                "_step_count": total + 1,
                "verbose": False,
                "_get_lr_called_within_step": False,
                "_last_lr": [1e-8],
            }
        ],
        # The LightningModule holds the classifier as `self.model`; its metrics keep no persistent state.
        "state_dict": OrderedDict(("model." + k, v) for k, v in module.state_dict().items()),
        "hparams_name": "hparams",
        "hyper_parameters": dict(HPARAMS),
    }
    with pretend_module(_CALLBACK_PATH, ModelCheckpoint=ModelCheckpoint):
        return _save(checkpoint, cuda=SAVE_AS_CUDA)


def load_ckpt_for_tests(data: bytes):
    """Open the Lightning file here (pytorch_lightning is not installed): stub the callback class."""
    with pretend_module(_CALLBACK_PATH, ModelCheckpoint=ModelCheckpoint):
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


LOADERS = {"huyvnphan-resnet18-lightning-ckpt": load_ckpt_for_tests}


def _build() -> nn.Module:
    torch.manual_seed(21)
    return randomise_bn(resnet18(), seed=21)


def _build2() -> nn.Module:
    torch.manual_seed(22)
    return randomise_bn(resnet18(), seed=22)


def logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(x)


_RESNET = f"{REPO}/blob/master/cifar10_models/resnet.py"
_DATA = f"{REPO}/blob/master/data.py"
_TRAIN = f"{REPO}/blob/master/train.py"
_MODULE = f"{REPO}/blob/master/module.py"
_README = f"{REPO}/blob/master/README.md"
_PL = "https://github.com/Lightning-AI/pytorch-lightning/blob/1.1.0/pytorch_lightning/trainer/connectors/checkpoint_connector.py"
_PL_CB = "https://github.com/Lightning-AI/pytorch-lightning/blob/1.1.0/pytorch_lightning/trainer/callback_hook.py"

LAYOUTS: list[Layout] = [
    Layout(
        name="huyvnphan-resnet18-state-dict",
        codebase=CODEBASE,
        filename="resnet18.pt",
        arch="resnet18",
        build=_build,
        save=save_state_dict_pt,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar-maxpool",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "Bare state dict with torchvision key names (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0/1, fc). "
            "conv1 is 3x3 stride 1 padding 1, but the max-pool (3x3, stride 2, padding 1) is still applied "
            "after the stem: indistinguishable by keys/shapes from a no-pool CIFAR ResNet-18. Std is "
            "(0.2471, 0.2435, 0.2616), not the usual 0.2023 triple."
        ),
        source_urls=(_RESNET, _DATA, _README, f"{REPO}/commit/7a6e1f9"),
    ),
    Layout(
        name="huyvnphan-resnet18-lightning-ckpt",
        codebase=CODEBASE,
        filename="epoch=99-step=19499.ckpt",
        arch="resnet18",
        build=_build2,
        save=save_lightning_ckpt,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar-maxpool",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=(
            "PL 1.1.0 checkpoint: epoch, global_step, pytorch-lightning_version, callbacks (dict keyed by the "
            "ModelCheckpoint CLASS -> unpickling needs pytorch_lightning or a stub), optimizer_states, "
            "lr_schedulers, state_dict ('model.'-prefixed keys), hparams_name='hparams', hyper_parameters "
            "(plain dict of argparse values). Tensors tagged cuda:0. Same maxpool stem as the .pt file. "
            "Use load_ckpt_for_tests() to open it here."
        ),
        source_urls=(_TRAIN, _MODULE, _RESNET, _PL, _PL_CB),
    ),
]
