"""State dict key names -> torchvision key names: the backbone found, wrappers stripped, heads dropped.

Checkpoints in the wild wrap the same ResNet in different ways (DDP's `module.`, Lightning's
`model.`, solo-learn's `backbone.`, heads next to the backbone, kuangliu-style `shortcut`/`linear`
names). This module undoes those wrappings, so the network can be rebuilt and loaded strictly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from models.errors import CheckpointError

WRAPPER_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "_orig_mod.")
SELF_SUPERVISED_HEADS = ("projector", "projection_head", "prototypes", "predictor", "prediction_head")
HEAD_NAMES = SELF_SUPERVISED_HEADS + ("classifier",)  # `fc` is not a head to drop: it is the supervised output
STEM_KEY, FIRST_BLOCK_KEY = "conv1.weight", "layer1.0.conv1.weight"
SUPPORTED_ARCHS = "torchvision/timm-style ResNet-18, ResNet-34 and ResNet-50 (CIFAR 3x3 or ImageNet 7x7 stem)"


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
