"""The record every layout fixture fills in."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class Layout:
    name: str  # short unique id, e.g. "kuangliu-resnet18-old-ckpt"
    codebase: str  # "kuangliu/pytorch-cifar"
    filename: str  # the file name the codebase writes, e.g. "ckpt.pth"
    arch: str  # e.g. "resnet18", "preact-resnet18", "resnet20-optionA", "wrn-16-8"
    build: Callable[
        [], nn.Module
    ]  # the network exactly as the codebase defines it (seeded, eval mode, random BN stats)
    save: Callable[[nn.Module], bytes]  # the file's bytes, with the same structure the codebase saves
    reference: Callable[
        [nn.Module, torch.Tensor], torch.Tensor
    ]  # logits or pooled backbone features for a normalised batch
    output: str  # "logits" (a classifier head matching the dataset is kept) or "features" (pooled backbone features)
    # the method name expected: supervised, simclr, byol, moco, supcon, barlow_twins, swav, dino, ...,
    # or "self-supervised (method unknown)" / "unknown" where the file cannot tell
    method: str
    stem: str  # "cifar" (3x3 s1, no pool), "cifar-maxpool" (3x3 s1 + maxpool), "imagenet" (7x7 s2 + maxpool)
    stem_padding: int  # conv1 padding
    dropped: tuple[
        str, ...
    ]  # key prefixes in the saved state that are heads / momentum encoders / queues, i.e. deliberately dropped
    mean: tuple[float, float, float] | None  # input normalisation the codebase trains with (None: no normalisation)
    std: tuple[float, float, float] | None
    notes: str = ""  # anything special (whole pickled module, Namespace args, DataParallel prefix, ...)
    source_urls: tuple[str, ...] = field(default_factory=tuple)  # where in the public source each fact was read


def randomise_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm running statistics, so a wrong mapping cannot pass by accident."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return module.eval()


def to_bytes(obj) -> bytes:
    """torch.save into memory (the zip format torch uses by default)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
