"""Checkpoint layouts of self-supervised / Lightning / mmengine CIFAR-10 ResNet codebases.

Research fixtures (see ssl_checkpoints.md for the facts and the public source paths).  Every network
is written here in plain torch from reading the codebases; nothing is copied.  ``save`` reproduces
the structure each codebase writes.  Objects of libraries that are not installed (lightning,
omegaconf, mmengine, solo-learn, kuangliu's ``models`` package, torchvision class paths, numpy-1.x
function paths) are tiny stand-ins registered under the library's real module path only while
pickling, so the file names exactly the globals a real file names.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import functools
import math
import sys
import types
import typing

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn, to_bytes

SOLO = "https://github.com/vturrisi/solo-learn/blob/{rev}/{path}"
LIGHTLY = "https://github.com/lightly-ai/lightly/blob/master/{path}"
PL = "https://github.com/Lightning-AI/pytorch-lightning/blob/{rev}/{path}"

CIFAR_SOLO_MEAN, CIFAR_SOLO_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
KUANGLIU_MEAN, KUANGLIU_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
MMPRETRAIN_MEAN = (125.307 / 255, 122.961 / 255, 113.8575 / 255)
MMPRETRAIN_STD = (51.5865 / 255, 50.847 / 255, 51.255 / 255)


# =============================================================================================
# stand-in registration


@contextlib.contextmanager
def as_module_paths(objects: dict[str, object]):
    """Make ``pickle`` find each object under the given dotted path while the block runs.

    Leaf modules are fake ``types.ModuleType`` objects (a real module already in ``sys.modules``
    under that name is put back afterwards); missing parents are created and removed again."""
    saved: dict[str, object] = {}
    created: list[str] = []
    fakes: dict[str, types.ModuleType] = {}
    try:
        for full, obj in objects.items():
            module_path, _, name = full.rpartition(".")
            if module_path not in fakes:
                parts = module_path.split(".")
                for i in range(1, len(parts)):
                    parent = ".".join(parts[:i])
                    if parent not in sys.modules:
                        sys.modules[parent] = types.ModuleType(parent)
                        created.append(parent)
                if module_path in sys.modules and module_path not in saved:
                    saved[module_path] = sys.modules[module_path]
                fake = types.ModuleType(module_path)
                fakes[module_path] = fake
                sys.modules[module_path] = fake
                if module_path not in saved:
                    created.append(module_path)
            setattr(fakes[module_path], name, obj)
            obj.__module__ = module_path
            obj.__qualname__ = name
        yield
    finally:
        for path in reversed(created):
            sys.modules.pop(path, None)
        for path, module in saved.items():
            sys.modules[path] = module


def _save_with(objects: dict[str, object], payload) -> bytes:
    with as_module_paths(objects):
        return to_bytes(payload)


# =============================================================================================
# plain-torch networks


class TVBasicBlock(nn.Module):
    """torchvision-style BasicBlock: conv1 bn1 relu conv2 bn2 downsample."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class TVResNet(nn.Module):
    """torchvision-style ResNet-18 (ImageNet stem: 7x7/2 conv, 3x3/2 max-pool)."""

    def __init__(self, num_classes: int = 1000, layers=(2, 2, 2, 2)):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._stage(64, layers[0], 1)
        self.layer2 = self._stage(128, layers[1], 2)
        self.layer3 = self._stage(256, layers[2], 2)
        self.layer4 = self._stage(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        seq = [TVBasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        seq += [TVBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*seq)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tv_resnet18_cifar(padding: int) -> TVResNet:
    """torchvision resnet18 with the usual CIFAR surgery: conv1 3x3/1, maxpool and fc Identity."""
    net = TVResNet()
    net.conv1 = nn.Conv2d(3, 64, 3, 1, padding, bias=False)  # keeps conv1's place in _modules
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


class SplitBatchNorm(nn.BatchNorm2d):
    """lightly's SplitBatchNorm: running stats of size C * num_splits; eval uses the first C
    entries, which after ``train(False)`` hold the mean over the splits."""

    def __init__(self, num_features: int, num_splits: int):
        super().__init__(num_features)
        self.num_splits = num_splits
        self.register_buffer("running_mean", torch.zeros(num_features * num_splits))
        self.register_buffer("running_var", torch.ones(num_features * num_splits))

    def train(self, mode: bool = True):
        if self.training and not mode:
            c, s = self.num_features, self.num_splits
            self.running_mean = self.running_mean.view(s, c).mean(0).repeat(s)
            self.running_var = self.running_var.view(s, c).mean(0).repeat(s)
        return super().train(mode)

    def forward(self, x):
        if self.training:
            n, c, h, w = x.shape
            return F.batch_norm(
                x.view(-1, c * self.num_splits, h, w),
                self.running_mean,
                self.running_var,
                self.weight.repeat(self.num_splits),
                self.bias.repeat(self.num_splits),
                True,
                self.momentum,
                self.eps,
            ).view(n, c, h, w)
        c, s = self.num_features, self.num_splits
        # equals lightly's eval path once a model loaded in train mode is switched to eval
        mean = self.running_mean.view(s, c).mean(0)
        var = self.running_var.view(s, c).mean(0)
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)


def _norm(c: int, splits: int) -> nn.Module:
    return SplitBatchNorm(c, splits) if splits > 0 else nn.BatchNorm2d(c)


class ShortcutBlock(nn.Module):
    """kuangliu / lightly BasicBlock: conv1 bn1 conv2 bn2 shortcut (functional ReLU)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, splits: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = _norm(planes, splits)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _norm(planes, splits)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), _norm(planes, splits))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ShortcutResNet(nn.Module):
    """kuangliu / lightly ResNet-18: conv1 3x3/1 pad 1, bn1, layer1-4, linear; F.relu after bn1,
    avg_pool2d(4) in forward (so ``children()`` holds no ReLU and no pooling)."""

    def __init__(self, num_classes: int = 10, splits: int = 0):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = _norm(64, splits)
        self.layer1 = self._stage(64, 1, splits)
        self.layer2 = self._stage(128, 2, splits)
        self.layer3 = self._stage(256, 2, splits)
        self.layer4 = self._stage(512, 2, splits)
        self.linear = nn.Linear(512, num_classes)

    def _stage(self, planes, stride, splits):
        blocks = []
        for s in (stride, 1):
            blocks.append(ShortcutBlock(self.in_planes, planes, s, splits))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.view(out.size(0), -1))


def _perturb(module: nn.Module, seed: int) -> nn.Module:
    """Momentum / teacher copies differ from the online network after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return module


def _pooled(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return backbone(x).flatten(1)


# =============================================================================================
# Lightning checkpoint structure


def _progress(n: int, keys=("ready", "started", "processed", "completed")) -> dict:
    return {"total": {k: n for k in keys}, "current": {k: n for k in keys}}


def lightning_loops(epochs: int, steps_per_epoch: int, val_batches: int, v19: bool = False) -> dict:
    """Approximation of Lightning's ``loops`` entry (all plain ints / bools / dicts).  Key names
    follow Lightning 2.x (``epoch_loop.automatic_optimization``) or 1.9 (``epoch_loop.batch_loop``)."""
    steps = epochs * steps_per_epoch
    batch = dict(_progress(steps_per_epoch), is_last_batch=True)
    step_prog = _progress(steps, ("ready", "completed"))
    optim = {"optimizer": {"step": step_prog, "zero_grad": _progress(steps, ("ready", "started", "completed"))}}
    if v19:
        opt_loop = {
            "epoch_loop.batch_loop.state_dict": {},
            "epoch_loop.batch_loop.optimizer_loop.state_dict": {},
            "epoch_loop.batch_loop.optimizer_loop.optim_progress": dict(optim, optimizer_position=1),
            "epoch_loop.batch_loop.manual_loop.state_dict": {},
            "epoch_loop.batch_loop.manual_loop.optim_step_progress": step_prog,
        }
    else:
        opt_loop = {
            "epoch_loop.automatic_optimization.state_dict": {},
            "epoch_loop.automatic_optimization.optim_progress": optim,
            "epoch_loop.manual_optimization.state_dict": {},
            "epoch_loop.manual_optimization.optim_step_progress": step_prog,
        }
    fit = {
        "state_dict": {},
        "epoch_loop.state_dict": {"_batches_that_stepped": steps},
        "epoch_loop.batch_progress": batch,
        "epoch_loop.scheduler_progress": _progress(steps, ("ready", "completed")),
        **opt_loop,
        "epoch_loop.val_loop.state_dict": {},
        "epoch_loop.val_loop.batch_progress": dict(_progress(val_batches), is_last_batch=True),
        "epoch_progress": _progress(epochs),
    }
    ev = {"state_dict": {}, "batch_progress": dict(_progress(0), is_last_batch=False)}
    return {"fit_loop": fit, "validate_loop": ev, "test_loop": copy.deepcopy(ev), "predict_loop": copy.deepcopy(ev)}


def sgd_like_state(
    module: nn.Module,
    groups: list[tuple[str | None, list[str], dict]],
    defaults: dict,
    *,
    buffers: bool = True,
    buffer_key: str = "momentum_buffer",
) -> dict:
    """An optimizer ``state_dict()``: param groups index parameters in order, state per index."""
    named = dict(module.named_parameters())
    param_groups, state, idx = [], {}, 0
    for name, prefixes, overrides in groups:
        ids = []
        for pname, p in named.items():
            if any(pname.startswith(pre) for pre in prefixes):
                if buffers and p.requires_grad:
                    state[idx] = {buffer_key: torch.zeros_like(p)}
                ids.append(idx)
                idx += 1
        group = dict(defaults, **overrides)
        if name is not None:
            group["name"] = name
        group["params"] = ids
        param_groups.append(group)
    return {"state": state, "param_groups": param_groups}


TORCH_SGD_DEFAULTS = dict(
    lr=0.1,
    momentum=0.9,
    dampening=0,
    weight_decay=5e-4,
    nesterov=False,
    maximize=False,
    foreach=None,
    differentiable=False,
    fused=None,
)
SOLO_LARS_DEFAULTS = dict(
    lr=1.0,
    momentum=0.9,
    dampening=0,
    weight_decay=1e-5,
    nesterov=False,
    eta=0.02,
    eps=1e-8,
    clip_lr=True,
    exclude_bias_n_norm=True,
)


def warmup_cosine_state(base_lrs: list[float], last_epoch: int, warmup: float, max_epochs: float) -> dict:
    """``state_dict()`` of solo-learn's (or bolts') LinearWarmupCosineAnnealingLR (a torch
    _LRScheduler: its __dict__ minus the optimizer)."""
    return {
        "warmup_epochs": warmup,
        "max_epochs": max_epochs,
        "warmup_start_lr": 3e-5,
        "eta_min": 0.0,
        "base_lrs": base_lrs,
        "last_epoch": last_epoch,
        "verbose": False,
        "_step_count": last_epoch + 1,
        "_get_lr_called_within_step": False,
        "_last_lr": [0.0 for _ in base_lrs],
    }


GRAD_SCALER_STATE = {
    "scale": 65536.0,
    "growth_factor": 2.0,
    "backoff_factor": 0.5,
    "growth_interval": 2000,
    "_growth_tracker": 1234,
}


# =============================================================================================
# solo-learn


def _mlp(*spec) -> nn.Sequential:
    return nn.Sequential(*spec)


class SoloMethod(nn.Module):
    """The modules a solo-learn method registers, in registration order (state_dict order)."""

    def __init__(self, method: str, old: bool = False, momentum_classifier: bool = False, queue_size: int = 4096):
        super().__init__()
        b = "encoder" if old else "backbone"
        self.method, self.old, self.backbone_attr = method, old, b
        setattr(self, b, tv_resnet18_cifar(padding=2))
        self.classifier = nn.Linear(512, 10)
        momentum = method in ("byol", "dino", "mocov2plus")
        if momentum:
            setattr(self, "momentum_" + b, _perturb(tv_resnet18_cifar(padding=2), 11))
            if momentum_classifier:
                self.momentum_classifier = nn.Linear(512, 10)
        if method in ("simclr", "supcon"):  # proj_hidden_dim 2048, proj_output_dim 256
            self.projector = _mlp(nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 256))
        elif method == "byol":
            hid, out = (4096, 256)
            self.projector = _mlp(nn.Linear(512, hid), nn.BatchNorm1d(hid), nn.ReLU(), nn.Linear(hid, out))
            self.momentum_projector = _perturb(
                _mlp(nn.Linear(512, hid), nn.BatchNorm1d(hid), nn.ReLU(), nn.Linear(hid, out)), 12
            )
            self.predictor = _mlp(nn.Linear(out, 4096), nn.BatchNorm1d(4096), nn.ReLU(), nn.Linear(4096, out))
        elif method == "barlow_twins":
            self.projector = _mlp(
                nn.Linear(512, 2048),
                nn.BatchNorm1d(2048),
                nn.ReLU(),
                nn.Linear(2048, 2048),
                nn.BatchNorm1d(2048),
                nn.ReLU(),
                nn.Linear(2048, 2048),
            )
        elif method == "swav":
            self.projector = _mlp(nn.Linear(512, 2048), nn.BatchNorm1d(2048), nn.ReLU(), nn.Linear(2048, 128))
            with _quiet():
                self.prototypes = nn.utils.weight_norm(nn.Linear(128, 3000, bias=False))
            self.prototypes.weight_g.data.fill_(1)
            # registered in on_train_start: (2, queue_size // world_size, proj_output_dim)
            self.register_buffer("queue", torch.zeros(2, 3840, 128))
        elif method == "dino":
            self.head = DinoHead(512, 4096, 2048, 256)
            self.momentum_head = _perturb(DinoHead(512, 4096, 2048, 256), 13)
            self.dino_loss_func = DinoLossBuffers(4096)
        elif method == "mocov2plus":
            self.projector = _mlp(nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 256))
            self.momentum_projector = _perturb(_mlp(nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 256)), 14)
            self.register_buffer("queue", F.normalize(torch.randn(2, 256, queue_size), dim=1))
            self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        elif method == "simsiam":
            self.projector = _mlp(
                nn.Linear(512, 2048, bias=False),
                nn.BatchNorm1d(2048),
                nn.ReLU(),
                nn.Linear(2048, 2048, bias=False),
                nn.BatchNorm1d(2048),
                nn.ReLU(),
                nn.Linear(2048, 2048),
                nn.BatchNorm1d(2048, affine=False),
            )
            self.projector[6].bias.requires_grad = False
            self.predictor = _mlp(
                nn.Linear(2048, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 2048)
            )
        else:
            raise ValueError(method)

    @property
    def backbone_module(self) -> nn.Module:
        return getattr(self, self.backbone_attr)


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class DinoHead(nn.Module):
    """solo-learn DINOHead (use_bn_in_head False, num_layers 3): mlp + weight-normed last_layer."""

    def __init__(self, in_dim, num_prototypes, hidden, bottleneck):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, bottleneck)
        )
        with _quiet():
            self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck, num_prototypes, bias=False))
        self.last_layer.weight_g.data.fill_(1)


class DinoLossBuffers(nn.Module):
    """solo-learn's DINOLoss is an nn.Module attribute ``dino_loss_func`` with a ``center`` buffer."""

    def __init__(self, num_prototypes):
        super().__init__()
        self.register_buffer("center", torch.randn(1, num_prototypes) * 0.01)


def _solo_build(method: str, *, old: bool = False, momentum_classifier: bool = False, channels_last: bool = True):
    def build() -> nn.Module:
        torch.manual_seed(0)
        model = SoloMethod(method, old=old, momentum_classifier=momentum_classifier)
        if channels_last:  # main_pretrain: make_contiguous(model); model.to(memory_format=torch.channels_last)
            model = model.to(memory_format=torch.channels_last)
        return randomise_bn(model)

    return build


def _solo_groups(model: SoloMethod) -> list[tuple[str | None, list[str], dict]]:
    b = model.backbone_attr
    groups = [(b, [b + "."], {}), ("classifier", ["classifier."], {"lr": 0.1, "weight_decay": 0})]
    if hasattr(model, "momentum_classifier"):
        groups.append(("momentum_classifier", ["momentum_classifier."], {"lr": 0.1, "weight_decay": 0}))
    extra = {
        "swav": ["projector", "prototypes"],
        "dino": ["head"],
        "byol": ["projector", "predictor"],
        "simsiam": ["projector", "predictor"],
    }.get(model.method, ["projector"])
    for name in extra:
        groups.append((None if model.old else name, [name + "."], {}))
    return groups


def _solo_ckpt_v108(model: SoloMethod, optimizer: str = "lars") -> dict:
    """What Lightning 2.1.2 writes for solo-learn 1.0.8 (Checkpointer -> trainer.save_checkpoint)."""
    steps = 195  # 50000 / 256, drop_last
    defaults = SOLO_LARS_DEFAULTS if optimizer == "lars" else dict(TORCH_SGD_DEFAULTS, lr=0.3, weight_decay=1e-4)
    opt = sgd_like_state(model, _solo_groups(model), defaults)
    sched = warmup_cosine_state(
        [g.get("lr", defaults["lr"]) for g in opt["param_groups"]], 999 * steps, 10 * steps, 1000 * steps
    )
    return {
        "epoch": 999,
        "global_step": 1000 * steps,
        "pytorch-lightning_version": "2.1.2",
        "state_dict": model.state_dict(),
        "loops": lightning_loops(1000, steps, 40),
        "callbacks": {},  # Checkpointer/LearningRateMonitor define no state; enable_checkpointing=False
        "optimizer_states": [opt],
        "lr_schedulers": [sched],
        "MixedPrecision": dict(GRAD_SCALER_STATE),  # precision: 16-mixed
    }


def _solo_save_v108(optimizer: str = "lars"):
    def save(model: nn.Module) -> bytes:
        return to_bytes(_solo_ckpt_v108(model, optimizer))

    return save


def _solo_ref(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return _pooled(model.backbone_module, x)


# ---- solo-learn SimSiam: the scheduler's get_lr is a functools.partial around a bound method -----


class _SoloWarmupCosine(torch.optim.lr_scheduler.LRScheduler):
    """Stand-in for solo.utils.lr_scheduler.LinearWarmupCosineAnnealingLR."""

    def __init__(self, optimizer, warmup_epochs, max_epochs, warmup_start_lr=3e-5, eta_min=0.0, last_epoch=-1):
        self.warmup_epochs, self.max_epochs = warmup_epochs, max_epochs
        self.warmup_start_lr, self.eta_min = warmup_start_lr, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t = max(self.last_epoch, 0)
        if t < self.warmup_epochs:
            return [
                self.warmup_start_lr + t * (b - self.warmup_start_lr) / max(1, self.warmup_epochs - 1)
                for b in self.base_lrs
            ]
        frac = (t - self.warmup_epochs) / max(1, self.max_epochs - self.warmup_epochs)
        return [self.eta_min + 0.5 * (b - self.eta_min) * (1 + math.cos(math.pi * frac)) for b in self.base_lrs]


def _solo_static_lr(get_lr, param_group_indexes, lrs_to_replace):
    """Stand-in for solo.methods.base.static_lr."""
    lrs = get_lr()
    for idx, lr in zip(param_group_indexes, lrs_to_replace, strict=False):
        lrs[idx] = lr
    return lrs


def _solo_simsiam_save(model: nn.Module) -> bytes:
    ckpt = _solo_ckpt_v108(model, optimizer="sgd")
    # configure_optimizers: a real SGD over the learnable groups, a warmup-cosine scheduler whose
    # get_lr is replaced by partial(static_lr, get_lr=<bound get_lr>, ...) for the predictor group.
    groups = []
    for name, prefixes, overrides in _solo_groups(model):
        params = [p for n, p in model.named_parameters() if any(n.startswith(pre) for pre in prefixes)]
        groups.append(dict(overrides, name=name, params=params))
    opt = torch.optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=1e-5)
    for group in opt.param_groups:  # momentum buffers exist after the first step
        for p in group["params"]:
            if p.requires_grad:
                opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    sched = _SoloWarmupCosine(opt, warmup_epochs=10 * 195, max_epochs=1000 * 195)
    ckpt["optimizer_states"] = [opt.state_dict()]  # the same buffer tensors: storages are shared
    predictor_idx = [i for i, g in enumerate(opt.param_groups) if g["name"] == "predictor"]
    sched.get_lr = functools.partial(
        _solo_static_lr,
        get_lr=sched.get_lr,
        param_group_indexes=predictor_idx,
        lrs_to_replace=[0.05] * len(predictor_idx),
    )
    ckpt["lr_schedulers"] = [sched.state_dict()]  # Lightning: config.scheduler.state_dict()
    return _save_with(
        {
            "solo.utils.lr_scheduler.LinearWarmupCosineAnnealingLR": _SoloWarmupCosine,
            "solo.methods.base.static_lr": _solo_static_lr,
        },
        ckpt,
    )


# ---- solo-learn 1.0.2 (pytorch-lightning 1.4.7): encoder. prefix, no channels_last ----------------


def _solo_save_v102(model: nn.Module) -> bytes:
    steps = 195
    opt = sgd_like_state(model, _solo_groups(model), dict(TORCH_SGD_DEFAULTS, lr=1.0, weight_decay=1e-5))
    for g in opt["param_groups"]:  # torch 1.9-era SGD groups (LARSWrapper delegates state_dict)
        for k in ("maximize", "foreach", "differentiable", "fused"):
            g.pop(k, None)
    ckpt = {
        "epoch": 1000,  # PL 1.4 stores current_epoch + 1
        "global_step": 1000 * steps,
        "pytorch-lightning_version": "1.4.7",
        "state_dict": model.state_dict(),
        "callbacks": {},  # only callbacks returning state appear, keyed by their *type* in PL <= 1.4
        "optimizer_states": [opt],
        "lr_schedulers": [warmup_cosine_state([1.0, 0.1, 0.1, 1.0, 1.0], 999, 10, 1000)],
        "native_amp_scaling_state": dict(GRAD_SCALER_STATE),  # --precision 16 (native amp)
    }
    return to_bytes(ckpt)


# =============================================================================================
# lightly CIFAR-10 benchmark (docs/source/getting_started/benchmarks/cifar10_benchmark.py)


class ProjectionHead(nn.Module):
    """lightly ProjectionHead: a ``layers`` Sequential of Linear [BN] [act] blocks."""

    def __init__(self, blocks):
        super().__init__()
        layers = []
        for i, o, bn, act in blocks:
            layers.append(nn.Linear(i, o, bias=bn is None))
            if bn is not None:
                layers.append(bn)
            if act is not None:
                layers.append(act)
        self.layers = nn.Sequential(*layers)


class MemoryBank(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.register_buffer("bank", torch.randn(*size), persistent=False)
        self.register_buffer("bank_ptr", torch.zeros(1, dtype=torch.long), persistent=False)


class NTXentLossLike(nn.Module):
    def __init__(self, memory_bank_size):
        super().__init__()
        self.memory_bank = MemoryBank((128, memory_bank_size))


class LightlyMoco(nn.Module):
    def __init__(self):
        super().__init__()
        resnet = ShortcutResNet(num_classes=10, splits=8)
        self.backbone = nn.Sequential(*list(resnet.children())[:-1], nn.AdaptiveAvgPool2d(1))
        self.projection_head = ProjectionHead([(512, 512, None, nn.ReLU()), (512, 128, None, None)])
        self.backbone_momentum = _perturb(copy.deepcopy(self.backbone), 21)
        self.projection_head_momentum = _perturb(copy.deepcopy(self.projection_head), 22)
        self.criterion = NTXentLossLike(4096)


def _lightly_moco_build() -> nn.Module:
    torch.manual_seed(0)
    model = randomise_bn(LightlyMoco())  # .eval() has collated the split statistics
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a checkpoint written during training holds distinct per-split stats
        for m in model.modules():
            if isinstance(m, SplitBatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def _lightly_moco_save(model: nn.Module) -> bytes:
    steps = 390  # 50000 // 128, drop_last
    state_key = (
        "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, "
        "'every_n_epochs': 1, 'train_time_interval': None}"
    )
    path = "/benchmark_logs/cifar10/version_0/Moco/checkpoints/epoch=199-step=78000.ckpt"
    groups = [(None, ["backbone.", "projection_head."], {})]
    opt = sgd_like_state(model, groups, dict(TORCH_SGD_DEFAULTS, lr=0.06, weight_decay=5e-4))
    ckpt = {
        "epoch": 199,
        "global_step": 200 * steps,
        "pytorch-lightning_version": "1.9.5",
        "state_dict": model.state_dict(),
        "loops": lightning_loops(200, steps, 79, v19=True),
        "callbacks": {
            state_key: {
                "monitor": None,
                "best_model_score": None,
                "best_model_path": path,
                "current_score": None,
                "dirpath": "/benchmark_logs/cifar10/version_0/Moco/checkpoints",
                "best_k_models": {},
                "kth_best_model_path": "",
                "kth_value": torch.tensor(float("inf")),
                "last_model_path": "",
            }
        },
        "optimizer_states": [opt],
        "lr_schedulers": [
            {
                "T_max": 200,
                "eta_min": 0,
                "base_lrs": [0.06],
                "last_epoch": 200,
                "verbose": False,
                "_step_count": 201,
                "_get_lr_called_within_step": False,
                "_last_lr": [0.0],
            }
        ],
    }
    return to_bytes(ckpt)


def _lightly_ref(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return _pooled(model.backbone, x)


# =============================================================================================
# Lightning: hyper_parameters holding an argparse.Namespace (pytorch-lightning 1.4.x)


class ArgsSimCLR(nn.Module):
    """``def __init__(self, args): self.save_hyperparameters()`` research module: an ``encoder``
    (torchvision resnet18, CIFAR stem pad 1, maxpool/fc Identity) and a ``projector``."""

    def __init__(self):
        super().__init__()
        self.encoder = tv_resnet18_cifar(padding=1)
        self.projector = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128))


class _PLModelCheckpoint:
    """Stand-in for pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint: in PL <= 1.4 the
    ``callbacks`` dict is keyed by the callback *class*, so only the class reference is pickled."""


def _args_namespace_build() -> nn.Module:
    torch.manual_seed(0)
    return randomise_bn(ArgsSimCLR())


ARGS = argparse.Namespace(
    arch="resnet18",
    dataset="cifar10",
    data_dir="./data",
    batch_size=512,
    num_workers=8,
    max_epochs=500,
    lr=0.5,
    weight_decay=1e-6,
    temperature=0.5,
    feat_dim=128,
    gpus=1,
    precision=16,
    seed=42,
    mean=list(CIFAR_SOLO_MEAN),
    std=list(CIFAR_SOLO_STD),
)


def _args_namespace_save(model: nn.Module) -> bytes:
    opt = sgd_like_state(model, [(None, [""], {})], dict(TORCH_SGD_DEFAULTS, lr=0.5, weight_decay=1e-6))
    for g in opt["param_groups"]:
        for k in ("maximize", "foreach", "differentiable", "fused"):
            g.pop(k, None)
    ckpt = {
        "epoch": 500,
        "global_step": 48500,
        "pytorch-lightning_version": "1.4.9",
        "state_dict": model.state_dict(),
        "callbacks": {
            _PLModelCheckpoint: {
                "monitor": "val_loss",
                "best_model_score": torch.tensor(4.1875),
                "best_model_path": "/runs/lightning_logs/version_3/checkpoints/epoch=487-step=47335.ckpt",
                "current_score": torch.tensor(4.1901),
                "dirpath": "/runs/lightning_logs/version_3/checkpoints",
            }
        },
        "optimizer_states": [opt],
        "lr_schedulers": [
            {
                "T_max": 500,
                "eta_min": 0,
                "base_lrs": [0.5],
                "last_epoch": 500,
                "_step_count": 501,
                "verbose": False,
                "_get_lr_called_within_step": False,
                "_last_lr": [0.0],
            }
        ],
        "native_amp_scaling_state": dict(GRAD_SCALER_STATE),
        "hparams_name": "kwargs",
        "hyper_parameters": {"args": copy.copy(ARGS)},
    }
    return _save_with({"pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint": _PLModelCheckpoint}, ckpt)


def _encoder_ref(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return _pooled(model.encoder, x)


# =============================================================================================
# Lightning + Hydra: hyper_parameters is an omegaconf DictConfig (Lightning 2.x)


class _OCMetadata:
    """Stand-in for omegaconf.base.Metadata (a dataclass, pickled as NEWOBJ + BUILD(__dict__))."""

    def __init__(self, key):
        self.ref_type = typing.Any
        self.object_type = None
        self.optional = True
        self.key = key
        self.flags = {}
        self.flags_root = False
        self.resolver_cache = collections.defaultdict(dict)


class _OCContainerMetadata(_OCMetadata):
    """Stand-in for omegaconf.base.ContainerMetadata."""

    def __init__(self, key, object_type):
        super().__init__(key)
        self.object_type = object_type
        self.key_type = typing.Any
        self.element_type = typing.Any


class _OCAnyNode:
    """Stand-in for omegaconf.nodes.AnyNode (pickled state: _metadata, _parent, _val)."""

    def __init__(self, value, key, parent):
        self._metadata = _OCMetadata(key)
        self._parent = parent
        self._val = value


class _OCDictConfig:
    """Stand-in for omegaconf.dictconfig.DictConfig (pickled state: _metadata, _parent, _content)."""

    def __init__(self, content: dict, key=None, parent=None, flags=None):
        self._metadata = _OCContainerMetadata(key, dict)
        if flags:
            self._metadata.flags = dict(flags)
        self._parent = parent
        self._content = {k: _oc_wrap(v, k, self) for k, v in content.items()}


class _OCListConfig:
    """Stand-in for omegaconf.listconfig.ListConfig."""

    def __init__(self, content: list, key=None, parent=None):
        self._metadata = _OCContainerMetadata(key, list)
        self._parent = parent
        self._content = [_oc_wrap(v, i, self) for i, v in enumerate(content)]


def _oc_wrap(value, key, parent):
    if isinstance(value, dict):
        return _OCDictConfig(value, key, parent)
    if isinstance(value, (list, tuple)):
        return _OCListConfig(list(value), key, parent)
    return _OCAnyNode(value, key, parent)


OMEGACONF_STANDINS = {
    "omegaconf.dictconfig.DictConfig": _OCDictConfig,
    "omegaconf.listconfig.ListConfig": _OCListConfig,
    "omegaconf.nodes.AnyNode": _OCAnyNode,
    "omegaconf.base.Metadata": _OCMetadata,
    "omegaconf.base.ContainerMetadata": _OCContainerMetadata,
}

HYDRA_CFG = {
    "method": "vicreg",
    "seed": 5,
    "backbone": {"name": "resnet18", "cifar_stem": True},
    "method_kwargs": {
        "proj_hidden_dim": 2048,
        "proj_output_dim": 2048,
        "sim_loss_weight": 25.0,
        "var_loss_weight": 25.0,
        "cov_loss_weight": 1.0,
    },
    "data": {"dataset": "cifar10", "num_classes": 10, "mean": list(CIFAR_SOLO_MEAN), "std": list(CIFAR_SOLO_STD)},
    "optimizer": {"name": "lars", "lr": 0.3, "weight_decay": 1e-4, "batch_size": 256},
    "trainer": {"max_epochs": 400, "precision": "16-mixed", "devices": [0]},
}


class HydraVICReg(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = tv_resnet18_cifar(padding=1)
        self.projector = nn.Sequential(
            nn.Linear(512, 2048),
            nn.BatchNorm1d(2048),
            nn.ReLU(),
            nn.Linear(2048, 2048),
            nn.BatchNorm1d(2048),
            nn.ReLU(),
            nn.Linear(2048, 2048),
        )


def _hydra_build() -> nn.Module:
    torch.manual_seed(0)
    return randomise_bn(HydraVICReg())


def _hydra_save(model: nn.Module) -> bytes:
    cfg = _OCDictConfig(HYDRA_CFG, flags={"struct": False})
    opt = sgd_like_state(
        model,
        [("backbone", ["backbone."], {}), ("projector", ["projector."], {})],
        dict(SOLO_LARS_DEFAULTS, lr=0.3, weight_decay=1e-4),
    )
    state_key = (
        "ModelCheckpoint{'monitor': 'val/loss', 'mode': 'min', 'every_n_train_steps': 0, "
        "'every_n_epochs': 1, 'train_time_interval': None}"
    )
    best = torch.tensor(-11.25)
    ckpt = {
        "epoch": 399,
        "global_step": 400 * 195,
        "pytorch-lightning_version": "2.2.1",
        "state_dict": model.state_dict(),
        "loops": lightning_loops(400, 195, 40),
        "callbacks": {
            state_key: {
                "monitor": "val/loss",
                "best_model_score": best,
                "best_model_path": "outputs/ckpt/epoch_391.ckpt",
                "current_score": torch.tensor(-11.2),
                "dirpath": "outputs/ckpt",
                "best_k_models": {"outputs/ckpt/epoch_391.ckpt": best},
                "kth_best_model_path": "outputs/ckpt/epoch_391.ckpt",
                "kth_value": best,
                "last_model_path": "outputs/ckpt/last.ckpt",
            }
        },
        "optimizer_states": [opt],
        "lr_schedulers": [warmup_cosine_state([0.3, 0.3], 399 * 195, 10 * 195, 400 * 195)],
        "MixedPrecision": dict(GRAD_SCALER_STATE),
        "hparams_name": "cfg",
        "hyper_parameters": cfg,
        "hparams_type": _OCDictConfig,
    }
    return _save_with(OMEGACONF_STANDINS, ckpt)


def _backbone_ref(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return _pooled(model.backbone, x)


# =============================================================================================
# ashleve/lightning-hydra-template: `net` (a whole nn.Module) and functools.partial optimizer /
# scheduler inside hyper_parameters; here with `net: _target_: torchvision.models.resnet18`.


class TemplateLitModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = TVResNet(num_classes=10)
        self.criterion = nn.CrossEntropyLoss()


class _TVResNetStandin(TVResNet):
    """Pickled as torchvision.models.resnet.ResNet (the real class is not used: plain torch only)."""


class _TVBasicBlockStandin(TVBasicBlock):
    """Pickled as torchvision.models.resnet.BasicBlock."""


def _template_build() -> nn.Module:
    torch.manual_seed(0)
    model = TemplateLitModule()
    model.net.__class__ = _TVResNetStandin
    for m in model.net.modules():
        if type(m) is TVBasicBlock:
            m.__class__ = _TVBasicBlockStandin
    return randomise_bn(model)


def _template_save(model: nn.Module) -> bytes:
    hp = {
        "net": model.net,  # save_hyperparameters(logger=False) keeps the instantiated module
        "optimizer": functools.partial(torch.optim.Adam, lr=0.001, weight_decay=0.0),
        "scheduler": functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="min", factor=0.1, patience=10),
        "compile": False,
    }
    opt = sgd_like_state(
        model,
        [(None, ["net."], {})],
        dict(
            lr=0.001,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=0.0,
            amsgrad=False,
            maximize=False,
            foreach=None,
            capturable=False,
            differentiable=False,
            fused=None,
        ),
        buffers=False,
    )
    for i, p in enumerate(model.parameters()):
        opt["state"][i] = {
            "step": torch.tensor(15640.0),
            "exp_avg": torch.zeros_like(p),
            "exp_avg_sq": torch.zeros_like(p),
        }
    best = torch.tensor(0.9123)
    ckpt = {
        "epoch": 39,
        "global_step": 15640,
        "pytorch-lightning_version": "2.1.3",
        "state_dict": model.state_dict(),
        "loops": lightning_loops(40, 391, 79),
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val/acc', 'mode': 'max', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
            "'train_time_interval': None}": {
                "monitor": "val/acc",
                "best_model_score": best,
                "best_model_path": "logs/train/runs/2024-01-01_00-00-00/checkpoints/epoch_037.ckpt",
                "current_score": torch.tensor(0.9101),
                "dirpath": "logs/train/runs/2024-01-01_00-00-00/checkpoints",
                "best_k_models": {"logs/train/runs/2024-01-01_00-00-00/checkpoints/epoch_037.ckpt": best},
                "kth_best_model_path": "logs/train/runs/2024-01-01_00-00-00/checkpoints/epoch_037.ckpt",
                "kth_value": best,
                "last_model_path": "logs/train/runs/2024-01-01_00-00-00/checkpoints/last.ckpt",
            },
            "EarlyStopping{'monitor': 'val/acc', 'mode': 'max'}": {
                "wait_count": 2,
                "stopped_epoch": 0,
                "best_score": best,
                "patience": 100,
            },
        },
        "optimizer_states": [opt],
        "lr_schedulers": [
            {
                "factor": 0.1,
                "min_lrs": [0],
                "patience": 10,
                "cooldown": 0,
                "cooldown_counter": 0,
                "mode": "min",
                "threshold": 1e-4,
                "threshold_mode": "rel",
                "best": 0.31,
                "num_bad_epochs": 2,
                "mode_worse": float("inf"),
                "eps": 1e-8,
                "last_epoch": 40,
                "_last_lr": [0.001],
            }
        ],
        "hparams_name": "kwargs",
        "hyper_parameters": hp,
    }
    return _save_with(
        {
            "torchvision.models.resnet.ResNet": _TVResNetStandin,
            "torchvision.models.resnet.BasicBlock": _TVBasicBlockStandin,
        },
        ckpt,
    )


def _logits_net(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.net(x)


# =============================================================================================
# mmpretrain ResNet_CIFAR via mmengine Runner.save_checkpoint


class MMBasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)  # build_norm_layer(..., postfix=1) -> "bn1"
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = nn.Identity()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.drop_path(self.bn2(self.conv2(out)))
        return self.relu(out + identity)


class MMResNetCIFAR(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        cin = 64
        for i, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            self.add_module(
                f"layer{i + 1}", nn.Sequential(MMBasicBlock(cin, cout, stride, down), MMBasicBlock(cout, cout))
            )
            cin = cout

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return (x,)  # out_indices=(3,)


class MMLinearHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(512, 10)


class MMImageClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.data_preprocessor = MMDataPreprocessor()
        self.backbone = MMResNetCIFAR()
        self.neck = nn.AdaptiveAvgPool2d(1)  # GlobalAveragePooling: no parameters
        self.head = MMLinearHead()


class MMDataPreprocessor(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([125.307, 122.961, 113.8575]).view(-1, 1, 1), False)
        self.register_buffer("std", torch.tensor([51.5865, 50.847, 51.255]).view(-1, 1, 1), False)


def _mm_build() -> nn.Module:
    torch.manual_seed(0)
    return randomise_bn(MMImageClassifier())


def _mm_ref(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        feats = model.backbone(x)[-1]
        return model.head.fc(model.neck(feats).flatten(1))


class _HistoryBuffer:
    """Stand-in for mmengine.logging.history_buffer.HistoryBuffer (instance dict: max_length,
    _log_history, _count_history; the statistics registry is a class attribute, not pickled)."""

    def __init__(self, log_history, count_history, max_length=1000000):
        self.max_length = max_length
        self._log_history = _Np1Array(np.asarray(log_history, dtype=np.float64))
        self._count_history = _Np1Array(np.asarray(count_history, dtype=np.int64))


def _np1_reconstruct(subtype, shape, dtype):
    """Stand-in for numpy.core.multiarray._reconstruct (numpy 1.x path; only referenced, never called)."""
    raise RuntimeError("stand-in")


class _Np1Array:
    """Pickles a real array the way numpy 1.x does (numpy.core.multiarray._reconstruct, numpy.ndarray,
    numpy.dtype); numpy 2 would write numpy._core.multiarray._reconstruct instead."""

    def __init__(self, arr: np.ndarray):
        self.arr = np.ascontiguousarray(arr)

    def __reduce__(self):
        a = self.arr
        return (_np1_reconstruct, (np.ndarray, (0,), b"b"), (1, a.shape, a.dtype, False, a.tobytes()))


def _mm_save(model: nn.Module) -> bytes:
    iters = 200 * 391
    scalars = collections.OrderedDict()
    for key, vals in {
        "train/lr": [0.001] * 4,
        "train/loss": [0.012, 0.011, 0.013, 0.010],
        "train/time": [0.031] * 4,
        "train/data_time": [0.002] * 4,
        "val/accuracy/top1": [94.93],
    }.items():
        scalars[key] = _HistoryBuffer(vals, [1] * len(vals))
    runtime = collections.OrderedDict(
        cfg="model = dict(type='ImageClassifier', backbone=dict(type='ResNet_CIFAR', depth=18, ...))",
        seed=1325484511,
        experiment_name="resnet18_8xb16_cifar10_20240101_000000",
        mmengine_version="0.10.3",
        loop_stage="train",
        epoch=200,
        iter=iters,
        max_epochs=200,
        max_iters=iters,
        dataset_meta={
            "classes": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
        },
        last_ckpt="work_dirs/resnet18_8xb16_cifar10/epoch_199.pth",
    )
    resumed = collections.OrderedDict((k, True) for k in list(scalars) + list(runtime))
    sd = model.state_dict()  # an OrderedDict carrying _metadata, as weights_to_cpu keeps it
    opt = sgd_like_state(model, [(None, [""], {})], dict(TORCH_SGD_DEFAULTS, lr=0.1, weight_decay=1e-4))
    for g in opt["param_groups"]:
        g["initial_lr"] = 0.1
    ckpt = {
        "meta": {
            "epoch": 200,
            "iter": iters,
            "cfg": runtime["cfg"],
            "seed": runtime["seed"],
            "experiment_name": runtime["experiment_name"],
            "time": "20240101_120000",
            "mmengine_version": "0.10.3",
            "dataset_meta": runtime["dataset_meta"],
        },
        "state_dict": sd,
        "message_hub": {"log_scalars": scalars, "runtime_info": runtime, "resumed_keys": resumed},
        "optimizer": opt,
        "param_schedulers": [
            {
                "milestones": collections.Counter({100: 1, 150: 1}),
                "gamma": 0.1,
                "param_name": "lr",
                "begin": 0,
                "end": 1000000000,
                "by_epoch": True,
                "global_iter": iters,
                "verbose": False,
                "last_step": 200,
                "base_values": [0.1],
                "_global_step": 200,
                "_get_value_called_within_step": False,
                "_last_value": [0.001],
            }
        ],
    }
    return _save_with(
        {
            "mmengine.logging.history_buffer.HistoryBuffer": _HistoryBuffer,
            "numpy.core.multiarray._reconstruct": _np1_reconstruct,
        },
        ckpt,
    )


# =============================================================================================
# whole pickled nn.Module: kuangliu/pytorch-cifar ResNet18 inside DataParallel, torch.save(net)


class KLBasicBlock(ShortcutBlock):
    """Pickled as models.resnet.BasicBlock."""


class KLResNet(ShortcutResNet):
    """Pickled as models.resnet.ResNet."""


def _kl_build() -> nn.Module:
    torch.manual_seed(0)
    net = KLResNet(num_classes=10)
    for m in net.modules():
        if type(m) is ShortcutBlock:
            m.__class__ = KLBasicBlock
    return randomise_bn(net)


def _kl_save(net: nn.Module) -> bytes:
    dp = nn.DataParallel(net)  # main.py wraps the net when device == 'cuda'
    dp.dim, dp.device_ids, dp.output_device = 0, [0], 0  # what a GPU run stores
    dp.src_device_obj = torch.device("cuda", 0)
    return _save_with({"models.resnet.ResNet": KLResNet, "models.resnet.BasicBlock": KLBasicBlock}, dp)


def _kl_ref(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


# =============================================================================================

_SOLO_SRC = (
    SOLO.format(rev="master", path="solo/methods/base.py"),
    SOLO.format(rev="master", path="solo/backbones/resnet/__init__.py"),
    SOLO.format(rev="master", path="solo/utils/checkpointer.py"),
    SOLO.format(rev="master", path="main_pretrain.py"),
    SOLO.format(rev="master", path="solo/data/pretrain_dataloader.py"),
    PL.format(rev="2.1.2", path="src/lightning/pytorch/trainer/connectors/checkpoint_connector.py"),
)


def _solo_layout(name, method, expected, filename, notes, extra_src=(), dropped=(), save=None, optimizer="lars"):
    return Layout(
        name=name,
        codebase="vturrisi/solo-learn",
        filename=filename,
        arch="resnet18",
        build=_solo_build(method),
        save=save or _solo_save_v108(optimizer),
        reference=_solo_ref,
        output="features",
        method=expected,
        stem="cifar",
        stem_padding=2,
        dropped=("classifier.",) + tuple(dropped),
        mean=CIFAR_SOLO_MEAN,
        std=CIFAR_SOLO_STD,
        notes=notes,
        source_urls=_SOLO_SRC + tuple(extra_src),
    )


LAYOUTS: list[Layout] = [
    _solo_layout(
        "solo-simclr-backbone",
        "simclr",
        "simclr",
        "simclr-cifar10-offline-k4q2x7z8-ep=999.ckpt",
        "solo-learn 1.0.8 / Lightning 2.1.2 .ckpt. backbone.* = torchvision resnet18, conv1 3x3/1 pad 2 "
        "(32x32 -> 34x34 maps), maxpool Identity, fc Identity. No hyper_parameters key (solo never calls "
        "save_hyperparameters). Conv weights are channels_last (non-contiguous). Keys alone are identical to "
        "supcon; the method is only in the file name (cfg.name) or the args.json next to it.",
        extra_src=(SOLO.format(rev="master", path="solo/methods/simclr.py"),),
        dropped=("projector.",),
    ),
    Layout(
        name="solo-byol-encoder-v102",
        codebase="vturrisi/solo-learn",
        filename="byol-cifar10-2q3h8sdf-ep=999.ckpt",
        arch="resnet18",
        build=_solo_build("byol", old=True, momentum_classifier=True, channels_last=False),
        save=_solo_save_v102,
        reference=_solo_ref,
        output="features",
        method="byol",
        stem="cifar",
        stem_padding=2,
        dropped=(
            "classifier.",
            "momentum_classifier.",
            "momentum_encoder.",
            "projector.",
            "momentum_projector.",
            "predictor.",
        ),
        mean=CIFAR_SOLO_MEAN,
        std=CIFAR_SOLO_STD,
        notes="solo-learn 1.0.0-1.0.2 (Sept 2021, pytorch-lightning 1.4.7): online network is encoder.*, the EMA "
        "copy momentum_encoder.* (same shapes, different weights: picking it gives wrong features). "
        "No loops key, native_amp_scaling_state instead of MixedPrecision, epoch = current_epoch + 1. "
        "Method from predictor + momentum_encoder (BYOL) or the file name.",
        source_urls=(
            SOLO.format(rev="1.0.2", path="solo/methods/base.py"),
            SOLO.format(rev="1.0.2", path="solo/methods/byol.py"),
            SOLO.format(rev="1.0.2", path="bash_files/pretrain/cifar/byol.sh"),
            PL.format(rev="1.4.7", path="pytorch_lightning/trainer/connectors/checkpoint_connector.py"),
        ),
    ),
    _solo_layout(
        "solo-barlow",
        "barlow_twins",
        "barlow_twins",
        "barlow_twins-cifar10-offline-m3b8a1r5-ep=999.ckpt",
        "projector Linear-BN-ReLU-Linear-BN-ReLU-Linear (2048). vicreg's projector has exactly the same keys and "
        "shapes, so only the file name tells barlow_twins from vicreg.",
        extra_src=(SOLO.format(rev="master", path="solo/methods/barlow_twins.py"),),
        dropped=("projector.",),
    ),
    _solo_layout(
        "solo-swav-prototypes",
        "swav",
        "swav",
        "swav-cifar10-offline-s7w1a9v3-ep=999.ckpt",
        "prototypes is weight_norm(Linear(128, 3000, bias=False)): keys prototypes.weight_g (3000,1) and "
        "prototypes.weight_v (3000,128), no prototypes.weight. queue (2, 3840, 128) is a buffer registered in "
        "on_train_start, so a freshly built SwAV has no such key (strict load fails).",
        extra_src=(SOLO.format(rev="master", path="solo/methods/swav.py"),),
        dropped=("projector.", "prototypes.", "queue"),
    ),
    _solo_layout(
        "solo-dino",
        "dino",
        "dino",
        "dino-cifar10-offline-d1n0o4x6-ep=999.ckpt",
        "head/momentum_head: mlp (Linear 512-2048, GELU, Linear 2048-2048, GELU, Linear 2048-256) and "
        "last_layer weight_g/weight_v (4096 prototypes); dino_loss_func.center (1, 4096) is in the state_dict "
        "because DINOLoss is an nn.Module attribute. momentum_backbone.* is the teacher.",
        extra_src=(
            SOLO.format(rev="master", path="solo/methods/dino.py"),
            SOLO.format(rev="master", path="solo/losses/dino.py"),
        ),
        dropped=("head.", "momentum_head.", "momentum_backbone.", "dino_loss_func."),
    ),
    _solo_layout(
        "solo-mocov2plus-queue",
        "mocov2plus",
        "moco",
        "mocov2plus-cifar10-offline-q5u2e7o1-ep=999.ckpt",
        "MoCo v2+: momentum_backbone, projector/momentum_projector (Linear-ReLU-Linear), buffers queue "
        "(2, 256, K) and queue_ptr (1,) int64, which come first in the state_dict (own buffers precede "
        "children). The cifar script uses queue_size 32768 (67 MB); the fixture uses 4096. optimizer sgd.",
        extra_src=(SOLO.format(rev="master", path="solo/methods/mocov2plus.py"),),
        dropped=("queue", "queue_ptr", "momentum_backbone.", "projector.", "momentum_projector."),
        optimizer="sgd",
    ),
    _solo_layout(
        "solo-supcon",
        "supcon",
        "supcon",
        "supcon-cifar10-offline-u8p3c2n6-ep=999.ckpt",
        "Supervised contrastive: same modules and shapes as simclr (projector Linear-ReLU-Linear); only the file "
        "name says supcon. Still a self-supervised-style backbone with a 10-way online classifier.",
        extra_src=(SOLO.format(rev="master", path="solo/methods/supcon.py"),),
        dropped=("projector.",),
        optimizer="sgd",
    ),
    _solo_layout(
        "solo-simsiam-partial-lr",
        "simsiam",
        "simsiam",
        "simsiam-cifar10-offline-p9s2i4m7-ep=999.ckpt",
        "SimSiam's predictor group is static_lr, so configure_optimizers assigns scheduler.get_lr = "
        "functools.partial(solo.methods.base.static_lr, get_lr=<bound method of the scheduler>, ...). "
        "Lightning saves scheduler.state_dict() (its __dict__), so lr_schedulers[0]['get_lr'] pickles "
        "functools.partial, solo.methods.base.static_lr, builtins.getattr and the whole scheduler object "
        "(solo.utils.lr_scheduler.LinearWarmupCosineAnnealingLR) including its torch.optim.sgd.SGD with the "
        "Parameters and a collections.defaultdict(builtins.dict) state. Plain weights_only load refuses it.",
        extra_src=(
            SOLO.format(rev="master", path="solo/methods/simsiam.py"),
            SOLO.format(rev="master", path="solo/utils/lr_scheduler.py"),
        ),
        dropped=("projector.", "predictor."),
        save=_solo_simsiam_save,
        optimizer="sgd",
    ),
    Layout(
        name="lightly-cifar10-moco-splitbn",
        codebase="lightly-ai/lightly",
        filename="epoch=199-step=78000.ckpt",
        arch="lightly-resnet18",
        build=_lightly_moco_build,
        save=_lightly_moco_save,
        reference=_lightly_ref,
        output="features",
        method="moco",
        stem="cifar",
        stem_padding=1,
        dropped=("projection_head.", "backbone_momentum.", "projection_head_momentum."),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        notes="lightly's own ResNetGenerator('resnet-18', num_splits=8) (not torchvision): backbone = "
        "Sequential(*children[:-1], AdaptiveAvgPool2d(1)) -> backbone.0 conv1, backbone.1 bn1, backbone.2-5 "
        "layer1-4 (blocks: conv1 bn1 conv2 bn2 shortcut.0/.1), backbone.6 pool. The stem ReLU is functional "
        "in ResNet.forward, so the Sequential has NO ReLU after bn1. SplitBatchNorm: running_mean/var have "
        "C*8 entries; lightly's eval (load in train mode, then .eval()) uses the mean over the 8 splits. "
        "Memory bank buffers are non-persistent (absent). pytorch-lightning 1.9.x .ckpt with a "
        "ModelCheckpoint state. Keys show momentum copies and no prediction head -> moco.",
        source_urls=(
            LIGHTLY.format(path="docs/source/getting_started/benchmarks/cifar10_benchmark.py"),
            LIGHTLY.format(path="lightly/models/resnet.py"),
            LIGHTLY.format(path="lightly/models/batchnorm.py"),
            LIGHTLY.format(path="lightly/models/modules/heads.py"),
            LIGHTLY.format(path="lightly/models/modules/memory_bank.py"),
            LIGHTLY.format(path="lightly/transforms/utils.py"),
        ),
    ),
    Layout(
        name="lightning-args-namespace",
        codebase="Lightning research pattern: __init__(self, args) + save_hyperparameters()",
        filename="epoch=499-step=48499.ckpt",
        arch="resnet18",
        build=_args_namespace_build,
        save=_args_namespace_save,
        reference=_encoder_ref,
        output="features",
        method="self-supervised (method unknown)",
        stem="cifar",
        stem_padding=1,
        dropped=("projector.",),
        mean=CIFAR_SOLO_MEAN,
        std=CIFAR_SOLO_STD,
        notes="pytorch-lightning 1.4.9: hyper_parameters == {'args': argparse.Namespace(...)} (hparams_name "
        "'kwargs'); callbacks keyed by the ModelCheckpoint *class* (PL <= 1.4), so the file pickles "
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint as a dict key. encoder = torchvision "
        "resnet18 with conv1 3x3/1 pad 1, maxpool/fc Identity. Nothing in the file names the method. "
        "mean/std are read from args (fixture choice).",
        source_urls=(
            PL.format(rev="1.4.9", path="pytorch_lightning/trainer/connectors/checkpoint_connector.py"),
            PL.format(rev="1.4.9", path="pytorch_lightning/trainer/callback_hook.py"),
            PL.format(rev="1.4.9", path="pytorch_lightning/utilities/parsing.py"),
        ),
    ),
    Layout(
        name="lightning-hydra-dictconfig",
        codebase="Lightning + Hydra pattern: save_hyperparameters(cfg)",
        filename="last.ckpt",
        arch="resnet18",
        build=_hydra_build,
        save=_hydra_save,
        reference=_backbone_ref,
        output="features",
        method="vicreg",
        stem="cifar",
        stem_padding=1,
        dropped=("projector.",),
        mean=CIFAR_SOLO_MEAN,
        std=CIFAR_SOLO_STD,
        notes="Lightning 2.x stores an omegaconf Container as is: hyper_parameters is the DictConfig (pickles "
        "omegaconf.dictconfig.DictConfig, omegaconf.base.ContainerMetadata, omegaconf.base.Metadata, "
        "omegaconf.nodes.AnyNode, omegaconf.listconfig.ListConfig, typing.Any, builtins.dict, "
        "collections.defaultdict) and hparams_type is the DictConfig class itself; hparams_name 'cfg'. "
        "cfg.method == 'vicreg' is the only method signal.",
        source_urls=(
            PL.format(rev="master", path="src/lightning/pytorch/trainer/connectors/checkpoint_connector.py"),
            PL.format(rev="master", path="src/lightning/pytorch/core/mixins/hparams_mixin.py"),
            "https://github.com/omry/omegaconf/blob/master/omegaconf/basecontainer.py",
            "https://github.com/omry/omegaconf/blob/master/omegaconf/base.py",
        ),
    ),
    Layout(
        name="lightning-hydra-template-net-in-hparams",
        codebase="ashleve/lightning-hydra-template",
        filename="epoch_037.ckpt",
        arch="resnet18",
        build=_template_build,
        save=_template_save,
        reference=_logits_net,
        output="logits",
        method="supervised",
        stem="imagenet",
        stem_padding=3,
        dropped=(),
        mean=None,
        std=None,
        notes="LitModule.__init__(net, optimizer, scheduler, compile) calls save_hyperparameters(logger=False): "
        "hyper_parameters holds the whole `net` nn.Module (pickled again, sharing storages with state_dict) "
        "and functools.partial(torch.optim.adam.Adam, ...) / partial(ReduceLROnPlateau, ...) from hydra "
        "_partial_: true. Here net: _target_: torchvision.models.resnet18, num_classes 10 (ImageNet stem on "
        "32x32). Weights under net.*. Normalisation lives in the user's datamodule: not in the file.",
        source_urls=(
            "https://github.com/ashleve/lightning-hydra-template/blob/main/src/models/mnist_module.py",
            "https://github.com/ashleve/lightning-hydra-template/blob/main/configs/model/mnist.yaml",
            "https://github.com/ashleve/lightning-hydra-template/blob/main/configs/callbacks/default.yaml",
            PL.format(rev="master", path="src/lightning/pytorch/utilities/parsing.py"),
        ),
    ),
    Layout(
        name="mmpretrain-resnet18-cifar-mmengine",
        codebase="open-mmlab/mmpretrain (mmengine Runner)",
        filename="epoch_200.pth",
        arch="mmpretrain-resnet18-cifar",
        build=_mm_build,
        save=_mm_save,
        reference=_mm_ref,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=MMPRETRAIN_MEAN,
        std=MMPRETRAIN_STD,
        notes="ImageClassifier(ResNet_CIFAR depth 18, GlobalAveragePooling, LinearClsHead 10): keys backbone.conv1, "
        "backbone.bn1, backbone.layerN.M.{conv1,bn1,conv2,bn2,downsample.0/1}, head.fc. data_preprocessor "
        "mean/std are non-persistent (0-255 scale: 125.307,122.961,113.8575 / 51.5865,50.847,51.255). "
        "Checkpoint: meta, state_dict, message_hub {log_scalars: HistoryBuffer objects holding numpy "
        "arrays, runtime_info, resumed_keys}, optimizer, param_schedulers (milestones is a "
        "collections.Counter). Arrays are pickled with numpy 1.x paths (numpy.core.multiarray).",
        source_urls=(
            "https://github.com/open-mmlab/mmengine/blob/main/mmengine/runner/runner.py",
            "https://github.com/open-mmlab/mmengine/blob/main/mmengine/logging/message_hub.py",
            "https://github.com/open-mmlab/mmengine/blob/main/mmengine/logging/history_buffer.py",
            "https://github.com/open-mmlab/mmpretrain/blob/main/mmpretrain/models/backbones/resnet_cifar.py",
            "https://github.com/open-mmlab/mmpretrain/blob/main/mmpretrain/models/backbones/resnet.py",
            "https://github.com/open-mmlab/mmpretrain/blob/main/configs/_base_/datasets/cifar10_bs16.py",
        ),
    ),
    Layout(
        name="kuangliu-whole-module-dataparallel",
        codebase="kuangliu/pytorch-cifar (torch.save(net))",
        filename="model.pth",
        arch="resnet18",
        build=_kl_build,
        save=_kl_save,
        reference=_kl_ref,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=KUANGLIU_MEAN,
        std=KUANGLIU_STD,
        notes="The whole DataParallel(ResNet18()) object pickled (PyTorch tutorial 'save entire model'): globals "
        "torch.nn.parallel.data_parallel.DataParallel, models.resnet.ResNet, models.resnet.BasicBlock, "
        "torch.nn.modules.{conv.Conv2d,batchnorm.BatchNorm2d,container.Sequential,linear.Linear}, "
        "torch.device (src_device_obj cuda:0). Weights live in module._modules['module'] ... _parameters; "
        "keys as state_dict() would give: module.conv1.weight, module.layer1.0.shortcut..., module.linear.",
        source_urls=(
            "https://github.com/kuangliu/pytorch-cifar/blob/master/models/resnet.py",
            "https://github.com/kuangliu/pytorch-cifar/blob/master/main.py",
            "https://github.com/pytorch/tutorials/blob/main/beginner_source/saving_loading_models.py",
        ),
    ),
]
