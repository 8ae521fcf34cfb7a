"""State dict keys and shapes -> torchvision key names and the ArchConfig that fits them.

Checkpoints in the wild wrap the same ResNet in different ways (DDP's `module.`, Lightning's
`model.`, solo-learn's `backbone.`, heads next to the backbone, kuangliu-style `shortcut`/`linear`
names). This module undoes those wrappings and reads depth, width, stem and classes from the weights,
so the network can be rebuilt and loaded strictly.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch

from models.errors import CheckpointError
from models.resnet import BLOCKS_PER_STAGE, ArchConfig

WRAPPER_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "_orig_mod.")
SELF_SUPERVISED_HEADS = ("projector", "projection_head", "prototypes", "predictor", "prediction_head")
HEAD_NAMES = SELF_SUPERVISED_HEADS + ("classifier",)  # `fc` is not a head to drop: it is the supervised output
STEM_KEY, FIRST_BLOCK_KEY = "conv1.weight", "layer1.0.conv1.weight"
SUPPORTED_ARCHS = "torchvision/timm-style ResNet-18, ResNet-34 and ResNet-50 (CIFAR 3x3 or ImageNet 7x7 stem)"
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


@dataclass(frozen=True)
class Normalised:
    """torchvision-named backbone (+ fc) tensors and what was done to get them."""

    tensors: dict[str, torch.Tensor]
    notes: tuple[str, ...]
    prefix: str  # the prefix stripped from the backbone keys ("" if none)
    self_supervised_heads: bool  # projector/predictor/... keys were present (and dropped)
    classifier_head: bool  # a separate `classifier.*` head was present (and dropped)


def normalise_keys(state: dict[str, torch.Tensor]) -> Normalised:
    """Strip the wrapper prefix, drop heads, rename kuangliu-style keys; not-a-ResNet -> CheckpointError."""
    prefix = find_backbone_prefix(state)
    kept: dict[str, torch.Tensor] = {}
    dropped: Counter[str] = Counter()
    renamed = 0
    for key, tensor in state.items():
        inside = key.startswith(prefix)
        name = key[len(prefix) :] if inside else key
        head = _head_name(name if inside else _strip_wrappers(name))
        if head:
            dropped[head] += 1
            continue
        if inside:
            new = _rename(name)
            renamed += new != name
            name = new
        kept[name] = tensor
    notes = []
    if prefix:
        notes.append(f"stripped the prefix '{prefix}' from the backbone keys")
    if renamed:
        notes.append(f"renamed {renamed} keys from 'shortcut'/'linear' to torchvision's 'downsample'/'fc'")
    if dropped:
        notes.append("dropped head keys: " + ", ".join(f"{h}.* ({n})" for h, n in sorted(dropped.items())))
    return Normalised(
        kept,
        tuple(notes),
        prefix,
        self_supervised_heads=any(h in SELF_SUPERVISED_HEADS or h.startswith("momentum_") for h in dropped),
        classifier_head="classifier" in dropped,
    )


def find_backbone_prefix(state: dict[str, torch.Tensor]) -> str:
    """The prefix P with P+'conv1.weight' and P+'layer1.0.conv1.weight' both present (shortest wins).

    Momentum/EMA copies ('momentum_backbone.') also match; the online backbone's prefix is shorter.
    """
    candidates = [
        key[: -len(STEM_KEY)]
        for key in state
        if key.endswith(STEM_KEY) and key[: -len(STEM_KEY)] + FIRST_BLOCK_KEY in state
    ]
    candidates = [c for c in candidates if c == "" or c.endswith(".")]
    candidates = [c for c in candidates if not _head_name(_strip_wrappers(c))] or candidates
    if not candidates:
        raise CheckpointError(not_a_resnet_message(state))
    return min(candidates, key=len)


def not_a_resnet_message(state: dict[str, torch.Tensor]) -> str:
    """Name what was found (first keys, a guess at the family) and what is supported."""
    keys = sorted(state, key=_natural)  # safetensors does not keep the saved order; sort for a stable message
    shown = ", ".join(f"'{k}'" for k in keys[:4]) + (f" ... ({len(keys)} keys)" if len(keys) > 4 else "")
    guess = ""
    if any(k.startswith("features.") for k in keys):
        guess = " (a torchvision VGG/MobileNet/DenseNet-style 'features' network)"
    elif any(".attn." in k or k.startswith("blocks.") for k in keys):
        guess = " (a transformer)"
    return (
        f"This checkpoint is not a ResNet{guess}: found {shown} but no 'conv1.weight' with "
        f"'layer1.0.conv1.weight'; CKA Lens loads {SUPPORTED_ARCHS}."
    )


def _natural(key: str) -> list:
    """Sort key putting 'features.2' before 'features.10'."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in key.split(".")]


def _strip_wrappers(name: str) -> str:
    """Remove leading wrapper prefixes ('module.model.x' -> 'x') to see what a key really is."""
    while name.startswith(WRAPPER_PREFIXES):
        name = name.split(".", 1)[1]
    return name


def _head_name(name: str) -> str:
    """'projector' for 'projector.0.weight', 'momentum_backbone' for its keys; '' if not a head."""
    first = name.split(".", 1)[0]
    return first if first in HEAD_NAMES or first.startswith("momentum_") else ""


def _rename(name: str) -> str:
    """kuangliu/pytorch-cifar names -> torchvision names (same modules, same order)."""
    name = name.replace(".shortcut.", ".downsample.")
    return "fc." + name[len("linear.") :] if name.startswith("linear.") else name


def infer_arch(tensors: dict[str, torch.Tensor], stem_padding: int = 1) -> ArchConfig:
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
    known = {(2, 2, 2, 2, False): "ResNet-18", (3, 4, 6, 3, False): "ResNet-34", (3, 4, 6, 3, True): "ResNet-50",
             (3, 4, 23, 3, True): "ResNet-101", (3, 8, 36, 3, True): "ResNet-152", (3, 3, 3, 0, False): "ResNet-20"}
    name = known.get((*counts, bottleneck))
    found = f"a {name}" if name else f"a ResNet with {tuple(counts)} {block}s per stage"
    raise CheckpointError(f"This checkpoint is {found}; CKA Lens loads {SUPPORTED_ARCHS}.")
