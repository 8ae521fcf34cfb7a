"""Layout fixtures for facebookresearch/moco (facts and sources in facebookresearch_moco.md).

Official main_moco.py: MoCo(base_encoder=torchvision model) with `encoder_q`, `encoder_k` (same
torchvision network, num_classes=dim, so `fc` is the projection: Linear for v1, Sequential
(Linear, ReLU, Linear) for v2 --mlp), buffers `queue` (dim x K) and `queue_ptr`. Only DDP is
supported, so state_dict keys start with 'module.'. File checkpoint_{epoch:04d}.pth.tar holding
{'epoch': epoch + 1, 'arch', 'state_dict', 'optimizer'}.
Here the structure is kept and the size made CIFAR-like: resnet18 and K=4096 (the official default
is resnet50, K=65536); torchvision's ImageNet stem is unchanged, as in main_moco.py.

The repo's own CIFAR-10 demo (colab/moco_cifar10_demo.ipynb on the colab-notebook branch) is the
third layout: ModelMoCo whose encoders are ModelBase, a positional nn.Sequential `net` (3x3 stem,
no max-pool, Flatten inserted before fc), saved as model_last.pth {'epoch','state_dict','optimizer'}.
Written from scratch; only names, shapes and constants follow the codebase.
"""

from __future__ import annotations

import copy

import torch
import torchvision
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn, to_bytes

REPO = "https://github.com/facebookresearch/moco"
AT = f"{REPO}/blob/87e36d3"  # 2020-11, before the tree was emptied in 2026
DEMO = f"{REPO}/blob/colab-notebook/colab/moco_cifar10_demo.ipynb"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def _seeded(seed: int, make):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def _sgd_state(module: nn.Module, lr: float, weight_decay: float) -> dict:
    """SGD(momentum 0.9) state after one step on a copy; frozen key-encoder params get no state."""
    twin = copy.deepcopy(module)
    params = list(twin.parameters())
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(1)
    for p in params:
        if p.requires_grad:
            p.grad = torch.randn(p.shape, generator=g) * 1e-3
    optimizer.step()
    return optimizer.state_dict()


def _torchvision_pooled(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    for name in ("layer1", "layer2", "layer3", "layer4"):
        h = getattr(net, name)(h)
    return torch.flatten(net.avgpool(h), 1)


def _unit_queue(dim: int, size: int) -> torch.Tensor:
    return nn.functional.normalize(torch.randn(dim, size), dim=0)


# ------------------------------------------------------------------ official MoCo (moco/builder.py)


class MoCo(nn.Module):
    def __init__(
        self, base_encoder, dim: int = 128, K: int = 65536, m: float = 0.999, T: float = 0.07, mlp: bool = False
    ):
        super().__init__()
        self.K, self.m, self.T = K, m, T
        self.encoder_q = base_encoder(num_classes=dim)
        self.encoder_k = base_encoder(num_classes=dim)
        if mlp:
            width = self.encoder_q.fc.weight.shape[1]
            self.encoder_q.fc = nn.Sequential(nn.Linear(width, width), nn.ReLU(), self.encoder_q.fc)
            self.encoder_k.fc = nn.Sequential(nn.Linear(width, width), nn.ReLU(), self.encoder_k.fc)
        for q, k in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=False):
            k.data.copy_(q.data)
            k.requires_grad = False
        self.register_buffer("queue", _unit_queue(dim, K))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def forward(self, im_q, im_k):  # training needs DDP all_gather; only the pieces used here
        raise NotImplementedError("fixture: use encoder_q directly")


def _moco(seed: int, mlp: bool) -> nn.Module:
    def make():
        model = MoCo(torchvision.models.resnet18, dim=128, K=4096, m=0.999, T=0.2 if mlp else 0.07, mlp=mlp)
        # after training the key encoder is an EMA of the query encoder, not a copy: perturb it
        with torch.no_grad():
            for k in model.encoder_k.parameters():
                k.add_(torch.randn_like(k) * 0.01)
        model.queue_ptr[0] = 1024
        return model

    model = _seeded(seed, make)
    randomise_bn(model.encoder_q, seed=seed)
    randomise_bn(model.encoder_k, seed=seed + 1000)
    return model.eval()


def build_v2() -> nn.Module:
    return _moco(40, mlp=True)


def build_v1() -> nn.Module:
    return _moco(41, mlp=False)


def _save_official(module: nn.Module, epochs: int) -> bytes:
    return to_bytes(
        {
            "epoch": epochs,  # the code stores epoch + 1 in checkpoint_{epoch:04d}.pth.tar
            "arch": "resnet18",
            "state_dict": {f"module.{k}": v for k, v in module.state_dict().items()},  # DDP
            "optimizer": _sgd_state(module, lr=0.03, weight_decay=1e-4),
        }
    )


def save_v2(module: nn.Module) -> bytes:
    return _save_official(module, 200)


def save_v1(module: nn.Module) -> bytes:
    return _save_official(module, 200)


def reference_official(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return _torchvision_pooled(module.encoder_q, x)


# ------------------------------------------------------------------ CIFAR-10 demo notebook


class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d that, in training, normalises `num_splits` chunks of the batch separately (simulated
    multi-GPU BN); in eval it is a plain BatchNorm2d. Same parameters and buffers as BatchNorm2d."""

    def __init__(self, num_features: int, num_splits: int, **kw):
        super().__init__(num_features, **kw)
        self.num_splits = num_splits

    def forward(self, x):
        if not (self.training or not self.track_running_stats):
            return super().forward(x)
        n, c, h, w = x.shape
        s = self.num_splits
        mean = self.running_mean.repeat(s)
        var = self.running_var.repeat(s)
        y = nn.functional.batch_norm(
            x.view(-1, c * s, h, w),
            mean,
            var,
            self.weight.repeat(s),
            self.bias.repeat(s),
            True,
            self.momentum,
            self.eps,
        ).view(n, c, h, w)
        self.running_mean.data.copy_(mean.view(s, c).mean(dim=0))
        self.running_var.data.copy_(var.view(s, c).mean(dim=0))
        return y


class ModelBase(nn.Module):
    def __init__(self, feature_dim: int = 128, arch: str = "resnet18", bn_splits: int = 8):
        super().__init__()

        def norm(c):
            return SplitBatchNorm(c, bn_splits) if bn_splits > 1 else nn.BatchNorm2d(c)

        trunk = getattr(torchvision.models, arch)(num_classes=feature_dim, norm_layer=norm)
        parts = []
        for name, child in trunk.named_children():
            if name == "conv1":
                child = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            if isinstance(child, nn.MaxPool2d):
                continue
            if isinstance(child, nn.Linear):
                parts.append(nn.Flatten(1))
            parts.append(child)
        self.net = nn.Sequential(*parts)  # 0 conv1 1 bn1 2 relu 3-6 layer1-4 7 avgpool 8 flatten 9 fc

    def forward(self, x):
        return self.net(x)


class ModelMoCo(nn.Module):
    def __init__(self, dim=128, K=4096, m=0.99, T=0.1, arch="resnet18", bn_splits=8, symmetric=False):
        super().__init__()
        self.K, self.m, self.T, self.symmetric = K, m, T, symmetric
        self.encoder_q = ModelBase(dim, arch, bn_splits)
        self.encoder_k = ModelBase(dim, arch, bn_splits)
        for q, k in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=False):
            k.data.copy_(q.data)
            k.requires_grad = False
        self.register_buffer("queue", _unit_queue(dim, K))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))


def build_demo() -> nn.Module:
    def make():
        model = ModelMoCo()  # notebook defaults: dim 128, K 4096, m 0.99, T 0.1, resnet18, bn_splits 8
        with torch.no_grad():
            for k in model.encoder_k.parameters():
                k.add_(torch.randn_like(k) * 0.01)
        model.queue_ptr[0] = 512
        return model

    model = _seeded(42, make)
    randomise_bn(model.encoder_q, seed=42)
    randomise_bn(model.encoder_k, seed=1042)
    return model.eval()


def save_demo(module: nn.Module) -> bytes:
    # single GPU, no wrapper; args go to args.json beside it, not into the file
    return to_bytes(
        {
            "epoch": 200,
            "state_dict": module.state_dict(),
            "optimizer": _sgd_state(module, lr=0.06, weight_decay=5e-4),
        }
    )


def reference_demo(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.flatten(module.encoder_q.net[:8](x), 1)  # up to avgpool + flatten, before net.9 (fc)


_OFFICIAL = (
    "Dict {'epoch','arch','state_dict','optimizer'}; state_dict keys 'module.encoder_q.<torchvision>', "
    "'module.encoder_k.<torchvision>' (the momentum/key encoder: drop it, the online encoder is encoder_q), "
    "'module.queue' (128x4096 here, 128x65536 by default) and 'module.queue_ptr' (int64 [1]). torchvision "
    "ImageNet stem (7x7 s2 p3 + max-pool) unchanged; ImageNet mean/std in main_moco.py. The repo's "
    "main_lincls.py keeps only 'module.encoder_q.*' minus 'module.encoder_q.fc*' and strips "
    "'module.encoder_q.'. Size made CIFAR-like: resnet18, K=4096 (official default resnet50, K=65536). "
)

LAYOUTS: list[Layout] = [
    Layout(
        name="moco-v2-resnet18-ddp",
        codebase="facebookresearch/moco",
        filename="checkpoint_0199.pth.tar",
        arch="resnet18",
        build=build_v2,
        save=save_v2,
        reference=reference_official,
        output="features",
        method="moco",
        stem="imagenet",
        stem_padding=3,
        dropped=("module.encoder_q.fc", "module.encoder_k", "module.queue", "module.queue_ptr"),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        notes=_OFFICIAL + "v2 (--mlp): encoder_q.fc.0 (512x512+bias), fc.2 (128x512+bias).",
        source_urls=(f"{AT}/moco/builder.py", f"{AT}/main_moco.py", f"{AT}/main_lincls.py"),
    ),
    Layout(
        name="moco-v1-resnet18-ddp",
        codebase="facebookresearch/moco",
        filename="checkpoint_0199.pth.tar",
        arch="resnet18",
        build=build_v1,
        save=save_v1,
        reference=reference_official,
        output="features",
        method="moco",
        stem="imagenet",
        stem_padding=3,
        dropped=("module.encoder_q.fc", "module.encoder_k", "module.queue", "module.queue_ptr"),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        notes=_OFFICIAL + "v1 (no --mlp): encoder_q.fc is a single Linear 128x512 with bias, which looks "
        "exactly like a 128-class classifier head: it is the projection and must be dropped.",
        source_urls=(f"{AT}/moco/builder.py", f"{AT}/main_moco.py", f"{AT}/main_lincls.py"),
    ),
    Layout(
        name="moco-cifar10-demo-resnet18",
        codebase="facebookresearch/moco",
        filename="model_last.pth",
        arch="resnet18",
        build=build_demo,
        save=save_demo,
        reference=reference_demo,
        output="features",
        method="moco",
        stem="cifar",
        stem_padding=1,
        dropped=("encoder_q.net.9", "encoder_k", "queue", "queue_ptr"),
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        notes=(
            "Official CIFAR-10 demo notebook. Dict {'epoch','state_dict','optimizer'} (no 'arch'), no 'module.' "
            "prefix. Encoders are positional: encoder_q.net.0 conv1 3x3 s1 p1, net.1 bn1 (SplitBatchNorm, "
            "same keys as BatchNorm2d), net.2 relu, no max-pool, net.3-net.6 layer1-4 (torchvision "
            "BasicBlock names, 'downsample'), net.7 avgpool, net.8 Flatten, net.9 = the 128x512 projection "
            "Linear (not named fc). queue 128x4096, queue_ptr. The notebook's kNN monitor uses the "
            "128-d net.9 output; the pooled 512-d backbone feature is net.7."
        ),
        source_urls=(DEMO,),
    ),
]
