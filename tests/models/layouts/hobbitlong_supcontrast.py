"""Layout fixtures for HobbitLong/SupContrast (facts and sources in hobbitlong_supcontrast.md).

networks/resnet_big.py defines its own CIFAR ResNet (conv1 3x3 s1 p1, no max-pool, residual branch
called `shortcut`), wrapped as SupConResNet (`encoder` + `head`) or SupCEResNet (`encoder` + `fc`).
util.save_model writes {'opt': argparse.Namespace, 'model': state_dict, 'optimizer': SGD state,
'epoch': int} to ckpt_epoch_<N>.pth / last.pth. With more than one GPU, main_supcon.py wraps only
the encoder in DataParallel (keys 'encoder.module.*'), main_ce.py wraps the whole model
('module.encoder.*', 'module.fc.*'). main_supcon's opt.method ('SupCon' or 'SimCLR') is the only
place the file says which loss trained it; main_ce's opt has no `method` at all.
Written from scratch; only names, shapes and constants follow the codebase.
"""

from __future__ import annotations

import argparse
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn, to_bytes

REPO = "https://github.com/HobbitLong/SupContrast"
AT = f"{REPO}/blob/66a8fe53880d6a1084b2e4e0db0a019024d6d41a"

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)


def _seeded(seed: int, make):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


# ---------------------------------------------------------------- the network (resnet_big.py)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        else:
            self.shortcut = nn.Sequential()  # empty: identity, no keys

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks_per_stage=(2, 2, 2, 2), in_channel: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channel, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        width_in = 64
        for index, (width, count) in enumerate(zip((64, 128, 256, 512), blocks_per_stage, strict=False)):
            first_stride = 1 if index == 0 else 2
            blocks = []
            for b in range(count):
                blocks.append(BasicBlock(width_in, width, first_stride if b == 0 else 1))
                width_in = width
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))  # no max-pool
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return torch.flatten(self.avgpool(h), 1)


class SupConResNet(nn.Module):
    def __init__(self, feat_dim: int = 128):
        super().__init__()
        self.encoder = ResNet()
        self.head = nn.Sequential(nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Linear(512, feat_dim))

    def forward(self, x):
        return F.normalize(self.head(self.encoder(x)), dim=1)


class SupCEResNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.encoder = ResNet()
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.fc(self.encoder(x))


# ---------------------------------------------------------------- what the scripts write


def _sgd_state(module: nn.Module, lr: float) -> dict:
    """SGD(momentum=0.9, weight_decay=1e-4) state_dict after one step, taken on a copy."""
    twin = copy.deepcopy(module)
    params = list(twin.parameters())
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(1)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    optimizer.step()
    return optimizer.state_dict()


def _warm_fields(lr: float, epochs: int, cosine: bool) -> dict:
    # parse_option(): batch_size > 256 forces warm-up
    eta_min = lr * (0.1**3)
    warmup_to = eta_min + (lr - eta_min) * (1 + math.cos(math.pi * 10 / epochs)) / 2 if cosine else lr
    return {"warmup_from": 0.01, "warm_epochs": 10, "warmup_to": warmup_to}


def supcon_opt(method: str, temp: float, syncbn: bool) -> argparse.Namespace:
    """The Namespace main_supcon.parse_option() returns for the README command lines (resnet18)."""
    lr, epochs, bsz = 0.5, 1000, 1024
    o = argparse.Namespace(
        print_freq=10,
        save_freq=50,
        batch_size=bsz,
        num_workers=16,
        epochs=epochs,
        learning_rate=lr,
        lr_decay_epochs=[700, 800, 900],
        lr_decay_rate=0.1,
        weight_decay=1e-4,
        momentum=0.9,
        model="resnet18",
        dataset="cifar10",
        mean=None,
        std=None,
        data_folder="./datasets/",
        size=32,
        method=method,
        temp=temp,
        cosine=True,
        syncBN=syncbn,
        warm=True,
        trial="0",
    )
    o.model_path = "./save/SupCon/cifar10_models"
    o.tb_path = "./save/SupCon/cifar10_tensorboard"
    o.model_name = f"{method}_cifar10_resnet18_lr_{lr}_decay_0.0001_bsz_{bsz}_temp_{temp}_trial_0_cosine_warm"
    for k, v in _warm_fields(lr, epochs, True).items():
        setattr(o, k, v)
    o.tb_folder = f"{o.tb_path}/{o.model_name}"
    o.save_folder = f"{o.model_path}/{o.model_name}"
    return o


def supce_opt() -> argparse.Namespace:
    """The Namespace main_ce.parse_option() returns for the README command line (resnet18)."""
    lr, epochs, bsz = 0.8, 500, 1024
    o = argparse.Namespace(
        print_freq=10,
        save_freq=50,
        batch_size=bsz,
        num_workers=16,
        epochs=epochs,
        learning_rate=lr,
        lr_decay_epochs=[350, 400, 450],
        lr_decay_rate=0.1,
        weight_decay=1e-4,
        momentum=0.9,
        model="resnet18",
        dataset="cifar10",
        cosine=True,
        syncBN=True,
        warm=True,
        trial="0",
    )
    o.data_folder = "./datasets/"
    o.model_path = "./save/SupCon/cifar10_models"
    o.tb_path = "./save/SupCon/cifar10_tensorboard"
    o.model_name = f"SupCE_cifar10_resnet18_lr_{lr}_decay_0.0001_bsz_{bsz}_trial_0_cosine_warm"
    for k, v in _warm_fields(lr, epochs, True).items():
        setattr(o, k, v)
    o.tb_folder = f"{o.tb_path}/{o.model_name}"
    o.save_folder = f"{o.model_path}/{o.model_name}"
    o.n_cls = 10
    return o


def _insert_after(state: dict, prefix: str) -> dict:
    """Keys as DataParallel on the submodule `prefix` writes them: '<prefix>.x' -> '<prefix>.module.x'."""
    out = {}
    for k, v in state.items():
        if k.startswith(prefix + "."):
            k = f"{prefix}.module.{k[len(prefix) + 1 :]}"
        out[k] = v
    return out


def build_supcon() -> nn.Module:
    return randomise_bn(_seeded(30, SupConResNet), seed=30)


def build_simclr() -> nn.Module:
    return randomise_bn(_seeded(31, SupConResNet), seed=31)


def build_supce() -> nn.Module:
    return randomise_bn(_seeded(32, lambda: SupCEResNet(10)), seed=32)


def save_supcon(module: nn.Module) -> bytes:
    # one GPU: no wrapper, keys 'encoder.*' / 'head.*'
    return to_bytes(
        {
            "opt": supcon_opt("SupCon", 0.1, False),
            "model": module.state_dict(),
            "optimizer": _sgd_state(module, 0.5),
            "epoch": 1000,
        }
    )


def save_simclr_dp(module: nn.Module) -> bytes:
    # >1 GPU: set_model() does model.encoder = DataParallel(model.encoder)
    return to_bytes(
        {
            "opt": supcon_opt("SimCLR", 0.5, True),
            "model": _insert_after(module.state_dict(), "encoder"),
            "optimizer": _sgd_state(module, 0.5),
            "epoch": 1000,
        }
    )


def save_supce_dp(module: nn.Module) -> bytes:
    # >1 GPU: main_ce.set_model() wraps the whole model, so every key starts with 'module.'
    return to_bytes(
        {
            "opt": supce_opt(),
            "model": {f"module.{k}": v for k, v in module.state_dict().items()},
            "optimizer": _sgd_state(module, 0.8),
            "epoch": 500,
        }
    )


def reference_features(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.encoder(x)


def reference_logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


_STEM = (
    "resnet_big.py ResNet: conv1 3x3 s1 p1 (64x3x3x3), bn1, relu, NO max-pool; BasicBlock residual "
    "projection is named 'shortcut' (shortcut.0 conv 1x1, shortcut.1 bn), present only in "
    "layer2.0/layer3.0/layer4.0; no torchvision 'downsample'. avgpool + flatten gives 512-d. "
    "File: {'opt': argparse.Namespace (plain str/int/float/bool/list values), 'model', "
    "'optimizer' (SGD momentum state), 'epoch'}; needs weights_only=False (or an allow-listed "
    "Namespace) to unpickle. "
)

LAYOUTS: list[Layout] = [
    Layout(
        name="supcontrast-supcon-resnet18",
        codebase="HobbitLong/SupContrast",
        filename="last.pth",
        arch="resnet18",
        build=build_supcon,
        save=save_supcon,
        reference=reference_features,
        output="features",
        method="supcon",
        stem="cifar",
        stem_padding=1,
        dropped=("head",),
        mean=MEAN,
        std=STD,
        notes=_STEM + "main_supcon.py on one GPU: keys 'encoder.*', head 'head.0' (512x512) / 'head.2' "
        "(128x512) with biases. opt.method == 'SupCon' (the supervised contrastive loss: labels used).",
        source_urls=(f"{AT}/networks/resnet_big.py", f"{AT}/main_supcon.py", f"{AT}/util.py", f"{AT}/README.md"),
    ),
    Layout(
        name="supcontrast-simclr-resnet18-dp",
        codebase="HobbitLong/SupContrast",
        filename="ckpt_epoch_1000.pth",
        arch="resnet18",
        build=build_simclr,
        save=save_simclr_dp,
        reference=reference_features,
        output="features",
        method="simclr",
        stem="cifar",
        stem_padding=1,
        dropped=("head",),
        mean=MEAN,
        std=STD,
        notes=_STEM + "main_supcon.py --method SimCLR on >1 GPU: only the encoder is DataParallel, so "
        "keys are 'encoder.module.conv1.weight' ... while the head stays 'head.0.weight'. The same "
        "SupConResNet class as SupCon; only opt.method == 'SimCLR' (and the 'SimCLR_' model_name) tells "
        "the methods apart.",
        source_urls=(f"{AT}/main_supcon.py", f"{AT}/main_linear.py", f"{AT}/util.py", f"{AT}/README.md"),
    ),
    Layout(
        name="supcontrast-supce-resnet18-dp",
        codebase="HobbitLong/SupContrast",
        filename="last.pth",
        arch="resnet18",
        build=build_supce,
        save=save_supce_dp,
        reference=reference_logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MEAN,
        std=STD,
        notes=_STEM + "main_ce.py (SupCEResNet, cross-entropy) on >1 GPU: the whole model is "
        "DataParallel, keys 'module.encoder.*' and 'module.fc.weight' (10x512) / 'module.fc.bias': a "
        "real CIFAR-10 classifier. opt has no 'method' attribute (it has n_cls=10 and a 'SupCE_' "
        "model_name).",
        source_urls=(f"{AT}/main_ce.py", f"{AT}/networks/resnet_big.py", f"{AT}/util.py", f"{AT}/README.md"),
    ),
]
