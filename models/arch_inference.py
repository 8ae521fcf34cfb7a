"""Depth, width, stem and classes of a ResNet, read from its (torchvision-named) weights."""

from __future__ import annotations

import re

import torch

from models.errors import CheckpointError
from models.resnet import BLOCKS_PER_STAGE, ArchConfig
from models.state_keys import STEM_KEY, SUPPORTED_ARCHS

_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def infer_arch(tensors: dict[str, torch.Tensor], stem_padding: int = 1, stem_pool: bool = False) -> ArchConfig:
    """Depth from blocks per stage and block type, width and stem from conv1, classes from fc."""
    conv1 = tensors[STEM_KEY]
    if conv1.ndim != 4 or conv1.shape[1] != 3 or conv1.shape[2] != conv1.shape[3]:
        raise CheckpointError(
            f"conv1.weight has shape {tuple(conv1.shape)}, not (width, 3, k, k) for RGB input; "
            f"CKA Lens loads {SUPPORTED_ARCHS}."
        )
    kernel = conv1.shape[2]
    if kernel not in (3, 7):
        raise CheckpointError(
            f"conv1 is {kernel}x{kernel}; CKA Lens knows the CIFAR stem (3x3) and the ImageNet stem (7x7)."
        )
    fc = tensors.get("fc.weight")
    return ArchConfig(
        depth=infer_depth(tensors),
        width=int(conv1.shape[0]),
        stem="cifar" if kernel == 3 else "imagenet",
        stem_padding=stem_padding if kernel == 3 else 1,
        stem_pool=stem_pool and kernel == 3,
        num_classes=int(fc.shape[0]) if fc is not None and fc.ndim == 2 else 0,
    )


def infer_depth(tensors: dict[str, torch.Tensor]) -> int:
    """18/34/50 from the number of blocks per stage (layerN.M) and the block type (conv3 = Bottleneck)."""
    counts = [0, 0, 0, 0]
    for key in tensors:
        match = _BLOCK_KEY.match(key)
        if match:
            stage, index = int(match.group(1)) - 1, int(match.group(2))
            counts[stage] = max(counts[stage], index + 1)
    bottleneck = "layer1.0.conv3.weight" in tensors
    block = "Bottleneck" if bottleneck else "BasicBlock"
    for depth, blocks in BLOCKS_PER_STAGE.items():
        if tuple(counts) == blocks and (depth >= 50) == bottleneck:
            return depth
    known = {
        (2, 2, 2, 2, False): "ResNet-18",
        (3, 4, 6, 3, False): "ResNet-34",
        (3, 4, 6, 3, True): "ResNet-50",
        (3, 4, 23, 3, True): "ResNet-101",
        (3, 8, 36, 3, True): "ResNet-152",
        (3, 3, 3, 0, False): "ResNet-20",
    }
    name = known.get((*counts, bottleneck))
    found = f"a {name}" if name else f"a ResNet with {tuple(counts)} {block}s per stage"
    raise CheckpointError(f"This checkpoint is {found}; CKA Lens loads {SUPPORTED_ARCHS}.")
