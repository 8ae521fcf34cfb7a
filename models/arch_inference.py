"""Depth, width, stem, block kind and classes of a ResNet, read from its canonically named weights."""

from __future__ import annotations

import re

import torch

from models.errors import ArchitectureError, CheckpointError
from models.resnet import ArchConfig
from models.state_keys import STEM_KEY, SUPPORTED_ARCHS

_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")
# Blocks per stage of the published 4-stage ResNets (ResNet-10, -18, -34; -50, -101, -152); 3-stage CIFAR ResNets
# and Wide ResNets have the same number n in each stage.
STANDARD_BASIC = {(1, 1, 1, 1), (2, 2, 2, 2), (3, 4, 6, 3)}
STANDARD_BOTTLENECK = {(3, 4, 6, 3), (3, 4, 23, 3), (3, 8, 36, 3)}
# What a pre-activation checkpoint's naming tells about what its weights cannot show:
# (the projection shortcut reads the pre-activated input, the block's second conv strides, whose forward pass)
PREACT_NAMINGS = {
    "kuangliu": (True, False, "kuangliu/pytorch-cifar's PreActResNet"),
    "xternalz": (True, False, "xternalz/WideResNet-pytorch"),
    "bearpaw": (False, False, "bearpaw/pytorch-classification's PreResNet"),
    "meliketoy": (False, True, "meliketoy/wide-resnet.pytorch"),
}


def infer_arch(
    tensors: dict[str, torch.Tensor],
    stem_padding: int = 1,
    stem_pool: bool = False,
    stem_relu: bool = True,
    preact: str = "",
) -> ArchConfig:
    """Stages from the blocks per stage, block kind from conv3, widths and stem from conv1, classes from fc."""
    conv1 = tensors[STEM_KEY]
    if conv1.ndim != 4 or conv1.shape[1] != 3 or conv1.shape[2] != conv1.shape[3]:
        raise CheckpointError(
            f"conv1.weight has shape {tuple(conv1.shape)}, not (width, 3, k, k) for RGB input; "
            f"CKA Lens loads {SUPPORTED_ARCHS}."
        )
    kernel = conv1.shape[2]
    if kernel not in (3, 7) or (preact and kernel != 3):
        raise CheckpointError(
            f"conv1 is {kernel}x{kernel}; CKA Lens knows the CIFAR stem (3x3) and, for post-activation ResNets, "
            "the ImageNet stem (7x7)."
        )
    stages = _stages(tensors)
    bottleneck = "layer1.0.conv3.weight" in tensors
    # a pre-activation Wide ResNet's stages are wider than its stem; a post-activation ResNet's first stage is as
    # wide as its stem (ResNeXt and torchvision's wide_resnet50_2 are not, and are refused with their shapes)
    width = int(tensors["layer1.0.conv1.weight"].shape[0] if preact else conv1.shape[0])
    fc = tensors.get("fc.weight")
    shortcut_input, stride_on_second, dialect = PREACT_NAMINGS.get(preact, (True, False, ""))
    try:
        return ArchConfig(
            depth=(3 if bottleneck else 2) * sum(stages) + 2,
            width=width,
            stem="cifar" if kernel == 3 else "imagenet",
            stem_padding=stem_padding if kernel == 3 else 1,
            stem_pool=stem_pool and kernel == 3,
            num_classes=int(fc.shape[0]) if fc is not None and fc.ndim == 2 else 0,
            stages=stages,
            stem_width=int(conv1.shape[0]) if conv1.shape[0] != width else 0,
            stem_relu=stem_relu,
            shortcut="pad" if not preact and _padded_shortcut(tensors, len(stages)) else "conv",
            preact=bool(preact),
            shortcut_input="pre" if shortcut_input else "raw",
            final_norm=bool(preact) and "bn.weight" in tensors,
            conv_bias=bool(preact) and "conv1.bias" in tensors,
            stride_on_second=stride_on_second,
            dialect=dialect,
        )
    except ArchitectureError as err:
        raise CheckpointError(
            f"This checkpoint is a ResNet CKA Lens cannot rebuild ({err}); it loads {SUPPORTED_ARCHS}."
        ) from None


def _stages(tensors: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """Blocks per stage from the layerS.B keys: 3 or 4 consecutive stages, or a clear refusal."""
    counts = [0, 0, 0, 0]
    for key in tensors:
        match = _BLOCK_KEY.match(key)
        if match:
            stage, index = int(match.group(1)) - 1, int(match.group(2))
            counts[stage] = max(counts[stage], index + 1)
    stages = tuple(counts[:3] if counts[3] == 0 else counts)
    bottleneck = "layer1.0.conv3.weight" in tensors
    standard = STANDARD_BOTTLENECK if bottleneck else STANDARD_BASIC
    if 0 in stages or (len(stages) == 4 and stages not in standard) or (len(stages) == 3 and len(set(stages)) > 1):
        raise CheckpointError(
            f"This checkpoint has a ResNet with {tuple(counts)} {'Bottleneck' if bottleneck else 'BasicBlock'}s per "
            "stage, which no standard ResNet has (ResNet-18: (2, 2, 2, 2); the 3-stage CIFAR ResNets: n in each): "
            f"blocks may be missing from the file. CKA Lens loads {SUPPORTED_ARCHS}."
        )
    return stages


def _padded_shortcut(tensors: dict[str, torch.Tensor], stages: int) -> bool:
    """A stage whose first block changes the width with no shortcut weights: zero-padding shortcuts (option A)."""
    for stage in range(2, stages + 1):
        first = tensors[f"layer{stage}.0.conv1.weight"]
        if first.shape[0] != first.shape[1] and not any(k.startswith(f"layer{stage}.0.downsample.") for k in tensors):
            return True
    return False
