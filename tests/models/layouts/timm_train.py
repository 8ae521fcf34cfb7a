"""Layout fixtures for checkpoints written by timm's train.py.

timm's ResNet (timm/models/resnet.py) is re-written here in plain torch with the same module
names (conv1, bn1, act1, maxpool, layer1-4 of BasicBlock{conv1, bn1, drop_block, act1, aa, conv2,
bn2, act2, downsample}, global_pool, fc), so state-dict keys equal torchvision's. The file is what
timm.utils.CheckpointSaver._save writes (v0.9 - v1.0.x): {'epoch', 'arch', 'state_dict',
'optimizer', 'version': 2, 'args': argparse.Namespace, ['state_dict_ema'], ['amp_scaler'], 'metric'}.

timm has no CIFAR stem option, so two layouts:
* timm-resnet18-cifar-stem: conv1 swapped for 3x3/s1/p1 and maxpool for Identity after
  create_model (what CIFAR users of timm do by hand); args.model still says 'resnet18'.
* timm-resnet18-imagenet-stem: `train.py --model resnet18 --dataset torch/cifar10 --img-size 32`
  unmodified: 7x7/s2/p3 conv + 3x3/s2 max-pool on 32x32 inputs.
Facts: timm_train.md.
"""

from __future__ import annotations

import argparse
import io
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn

CODEBASE = "huggingface/pytorch-image-models"
REPO = "https://github.com/huggingface/pytorch-image-models"
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # timm.data.IMAGENET_DEFAULT_MEAN: used when --mean is not given
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

SAVE_AS_CUDA = True  # train.py trains on args.device ('cuda'); the saver does not move tensors to CPU


# --------------------------------------------------------------------------- network (timm names)


class SelectAdaptivePool2d(nn.Module):
    """Parameter-free: global average pool then flatten (timm's 'avg' pool_type with flatten)."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x):
        return self.flatten(self.pool(x))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.drop_block = nn.Identity()
        self.act1 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = None
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.drop_path = None

    def forward(self, x):
        skip = x if self.downsample is None else self.downsample(x)
        y = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
        y = self.bn2(self.conv2(y))
        return self.act2(y + skip)


class ResNet(nn.Module):
    def __init__(self, layers=(2, 2, 2, 2), num_classes=10, cifar_stem=False, drop_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), layers, strict=False)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != planes:
                down = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride=stride, padding=0, bias=False), nn.BatchNorm2d(planes)
                )
            blocks = [BasicBlock(inplanes, planes, stride, down)] + [
                BasicBlock(planes, planes) for _ in range(1, count)
            ]
            inplanes = planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_features = 512
        self.global_pool = SelectAdaptivePool2d()
        self.fc = nn.Linear(512, num_classes)
        if cifar_stem:  # the usual hand edit after timm.create_model(...)
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()

    def forward_features(self, x):
        y = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(y))))

    def forward_head(self, x, pre_logits=False):
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------- saving


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


def train_args(**overrides) -> argparse.Namespace:
    """The Namespace train.py pickles: argparse defaults (v1.0.x) + the values train.py adds + overrides."""
    a = dict(
        # dataset
        data=None,
        data_dir="./data",
        dataset="torch/cifar10",
        train_split="train",
        val_split="validation",
        train_num_samples=None,
        val_num_samples=None,
        dataset_download=True,
        class_map="",
        input_img_mode=None,
        input_key=None,
        target_key=None,
        dataset_trust_remote_code=False,
        # model
        model="resnet18",
        pretrained=False,
        pretrained_path=None,
        initial_checkpoint="",
        resume="",
        no_resume_opt=False,
        num_classes=10,
        gp=None,
        img_size=32,
        in_chans=None,
        input_size=None,
        crop_pct=None,
        mean=None,
        std=None,
        interpolation="",
        batch_size=128,
        validation_batch_size=None,
        channels_last=False,
        fuser="",
        grad_accum_steps=1,
        grad_checkpointing=False,
        fast_norm=False,
        model_kwargs={},
        head_init_scale=None,
        head_init_bias=None,
        torchcompile_mode=None,
        torchscript=False,
        torchcompile=None,
        # device
        device="cuda",
        amp=False,
        amp_dtype="float16",
        amp_impl="native",
        model_dtype=None,
        no_ddp_bb=False,
        synchronize_step=False,
        local_rank=0,
        device_modules=None,
        # optimizer
        opt="sgd",
        opt_eps=None,
        opt_betas=None,
        momentum=0.9,
        weight_decay=2e-5,
        clip_grad=None,
        clip_mode="norm",
        layer_decay=None,
        opt_kwargs={},
        # schedule
        sched="cosine",
        sched_on_updates=False,
        lr=None,
        lr_base=0.1,
        lr_base_size=256,
        lr_base_scale="",
        lr_noise=None,
        lr_noise_pct=0.67,
        lr_noise_std=1.0,
        lr_cycle_mul=1.0,
        lr_cycle_decay=0.5,
        lr_cycle_limit=1,
        lr_k_decay=1.0,
        warmup_lr=1e-5,
        min_lr=0,
        epochs=300,
        epoch_repeats=0.0,
        start_epoch=None,
        decay_milestones=[90, 180, 270],
        decay_epochs=90,
        warmup_epochs=5,
        warmup_prefix=False,
        cooldown_epochs=0,
        patience_epochs=10,
        decay_rate=0.1,
        # augmentation / regularisation
        no_aug=False,
        train_crop_mode=None,
        scale=[0.08, 1.0],
        ratio=[3.0 / 4.0, 4.0 / 3.0],
        hflip=0.5,
        vflip=0.0,
        color_jitter=0.4,
        color_jitter_prob=None,
        grayscale_prob=None,
        gaussian_blur_prob=None,
        aa=None,
        aug_repeats=0,
        aug_splits=0,
        jsd_loss=False,
        bce_loss=False,
        bce_sum=False,
        bce_target_thresh=None,
        bce_pos_weight=None,
        reprob=0.0,
        remode="pixel",
        recount=1,
        resplit=False,
        mixup=0.0,
        cutmix=0.0,
        cutmix_minmax=None,
        mixup_prob=1.0,
        mixup_switch_prob=0.5,
        mixup_mode="batch",
        mixup_off_epoch=0,
        smoothing=0.1,
        train_interpolation="random",
        drop=0.0,
        drop_connect=None,
        drop_path=None,
        drop_block=None,
        # batch norm
        bn_momentum=None,
        bn_eps=None,
        sync_bn=False,
        dist_bn="reduce",
        split_bn=False,
        # EMA
        model_ema=False,
        model_ema_force_cpu=False,
        model_ema_decay=0.9998,
        model_ema_warmup=False,
        # misc
        seed=42,
        worker_seeding="all",
        log_interval=50,
        recovery_interval=0,
        checkpoint_hist=10,
        workers=4,
        save_images=False,
        pin_mem=False,
        no_prefetcher=False,
        output="",
        experiment="",
        eval_metric="top1",
        tta=0,
        use_multi_epochs_loader=False,
        log_wandb=False,
        wandb_project=None,
        wandb_tags=[],
        wandb_resume_id="",
        # set by train.py after parsing
        prefetcher=True,
        distributed=False,
        world_size=1,
        rank=0,
    )
    a.update(overrides)
    if a["lr"] is None:  # train.py: lr = lr_base * global_batch / lr_base_size ('sgd' -> linear scaling)
        a["lr"] = a["lr_base"] * a["batch_size"] * a["world_size"] * a["grad_accum_steps"] / a["lr_base_size"]
    return argparse.Namespace(**a)


def _optimizer_state(module: nn.Module, args: argparse.Namespace) -> dict:
    """timm create_optimizer_v2('sgd'): torch SGD, nesterov=True, two groups (no-decay first)."""
    no_decay, decay = [], []
    for name, p in module.named_parameters():
        q = p.detach().clone().requires_grad_(True)
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(q)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": args.weight_decay}]
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=True)
    g = torch.Generator().manual_seed(0)
    for group in opt.param_groups:
        for q in group["params"]:
            q.grad = torch.randn(q.shape, generator=g) * 1e-3
    opt.step()
    state = opt.state_dict()
    for group in state["param_groups"]:
        group["initial_lr"] = args.lr  # timm schedulers record it
    return state


def _ema_state(module: nn.Module) -> OrderedDict:
    """EMA weights: close to, but not equal to, the live weights (a loader must pick one on purpose)."""
    g = torch.Generator().manual_seed(1)
    out = OrderedDict()
    for k, v in module.state_dict().items():
        out[k] = v + torch.randn(v.shape, generator=g) * 0.01 if v.is_floating_point() else v.clone()
    return out


def save_cifar_stem(module: nn.Module) -> bytes:
    args = train_args(
        model="resnet18",
        epochs=200,
        batch_size=128,
        lr_base=0.1,
        weight_decay=5e-4,
        smoothing=0.0,
        mean=list(CIFAR_MEAN),
        std=list(CIFAR_STD),
        model_ema=True,
        warmup_epochs=5,
        experiment="cifar10-resnet18",
        output="./output/train",
    )
    state = {
        "epoch": 187,
        "arch": args.model,
        "state_dict": module.state_dict(),  # get_state_dict unwraps DDP/compile: no prefix
        "optimizer": _optimizer_state(module, args),
        "version": 2,
        "args": args,
        "state_dict_ema": _ema_state(module),
        "metric": 95.27,
    }
    return _save(state)


def save_imagenet_stem(module: nn.Module) -> bytes:
    args = train_args(model="resnet18", epochs=100, batch_size=256, amp=True, img_size=32)
    state = {
        "epoch": 97,
        "arch": args.model,
        "state_dict": module.state_dict(),
        "optimizer": _optimizer_state(module, args),
        "version": 2,
        "args": args,
        # NativeScaler.state_dict_key == "amp_scaler" (torch GradScaler.state_dict() fields)
        "amp_scaler": {
            "scale": 32768.0,
            "growth_factor": 2.0,
            "backoff_factor": 0.5,
            "growth_interval": 2000,
            "_growth_tracker": 1500,
        },
        "metric": 88.41,
    }
    return _save(state)


def _build(seed: int, cifar_stem: bool):
    def build() -> nn.Module:
        torch.manual_seed(seed)
        return randomise_bn(ResNet(num_classes=10, cifar_stem=cifar_stem), seed=seed)

    return build


def logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(x)


_SAVER = f"{REPO}/blob/v1.0.15/timm/utils/checkpoint_saver.py"
_TRAIN = f"{REPO}/blob/v1.0.15/train.py"
_RESNET = f"{REPO}/blob/v1.0.15/timm/models/resnet.py"
_MODEL_UTIL = f"{REPO}/blob/v1.0.15/timm/utils/model.py"
_PARAM_GROUPS = f"{REPO}/blob/v1.0.15/timm/optim/_param_groups.py"

LAYOUTS: list[Layout] = [
    Layout(
        name="timm-resnet18-cifar-stem",
        codebase=CODEBASE,
        filename="model_best.pth.tar",
        arch="resnet18",
        build=_build(61, cifar_stem=True),
        save=save_cifar_stem,
        reference=logits,
        output="logits",
        method="supervised",
        stem="cifar",
        stem_padding=1,
        dropped=(),
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        notes=(
            "timm CheckpointSaver dict: epoch, arch='resnet18' (args.model: says nothing about the edited stem), "
            "state_dict (torchvision-style keys, no prefix), optimizer (SGD nesterov, 2 param groups), version=2, "
            "args (pickled argparse.Namespace: weights_only=True refuses it unless allow-listed; args.mean/std "
            "hold the normalisation), state_dict_ema (different weights: the reference uses 'state_dict'), "
            "metric. conv1 is 3x3 and maxpool is nn.Identity: the absence of the pool is not visible in the keys."
        ),
        source_urls=(_SAVER, _TRAIN, _RESNET, _MODEL_UTIL, _PARAM_GROUPS),
    ),
    Layout(
        name="timm-resnet18-imagenet-stem-32px",
        codebase=CODEBASE,
        filename="last.pth.tar",
        arch="resnet18",
        build=_build(62, cifar_stem=False),
        save=save_imagenet_stem,
        reference=logits,
        output="logits",
        method="supervised",
        stem="imagenet",
        stem_padding=3,
        dropped=(),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        notes=(
            "Unmodified timm resnet18 trained on 32x32 CIFAR: conv1 7x7/s2/p3 + max-pool, so layer4 runs at 1x1. "
            "args.mean/std are None -> timm used the model's ImageNet defaults. With --amp the dict also has "
            "'amp_scaler'. No EMA entry. Tensors tagged cuda:0."
        ),
        source_urls=(_SAVER, _TRAIN, _RESNET, f"{REPO}/blob/v1.0.15/timm/data/constants.py"),
    ),
]
