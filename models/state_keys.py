"""State dict key names -> torchvision key names: the online backbone found, wrappers stripped, heads dropped.

Checkpoints in the wild hold the same ResNet in many ways: behind DDP's `module.` or Lightning's `model.`,
under `backbone.`, `encoder.`, `encoder_q.` or `f.`, as an `nn.Sequential` of a ResNet's children
(`f.0.weight`, `backbone.4.0.conv1.weight`), next to momentum/key copies of itself, queues, projection and
prediction heads under any name, and with kuangliu-style `shortcut`/`linear` names. This module finds the
online backbone, maps it to torchvision's names, keeps a classifier that fits CIFAR and drops the rest,
saying what it dropped, so the network can be rebuilt and loaded strictly.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch

from models.errors import CheckpointError

_READ_DTYPES = {torch.float16, torch.bfloat16, torch.float32, torch.float64}  # weights; integer buffers pass as is

STEM_KEY, FIRST_BLOCK_KEY = "conv1.weight", "layer1.0.conv1.weight"
SUPPORTED_ARCHS = (
    "ResNets at any width: torchvision/timm ResNet-18/34/50/101/152 (CIFAR 3x3 or ImageNet 7x7 stem), the 3-stage "
    "CIFAR ResNet-20/32/44/56/110, pre-activation ResNets and Wide ResNets"
)
# Parts of a prefix that mark a copy of the network that is not the one trained by gradient descent.
COPY_WORDS = ("momentum", "encoder_k", "key_encoder", "teacher", "target", "ema", "_k.")
CLASSIFIER_NAMES = ("fc", "linear", "classifier")
PROJECTION_FC = "fc (an MLP projection head)"
THOP_COUNTERS = ("total_ops", "total_params")
THOP = "thop profiler counters"  # total_ops/total_params buffers the thop FLOP counter leaves on every module
NOT_HEADS = ("fc", "linear", "classifier", THOP)  # dropped without saying anything about the training method
IMAGENET_CLASSES = 1000  # a head this wide was trained on (or left from) ImageNet: it cannot classify CIFAR images
_STAGE_KEY = re.compile(r"^(?P<prefix>.*?)(?P<index>\d+)\.0\.conv1\.weight$")


@dataclass(frozen=True)
class Normalised:
    """Canonically named backbone (+ fc) tensors and what was done to get them."""

    tensors: dict[str, torch.Tensor]
    notes: tuple[str, ...]
    prefix: str  # the prefix of the backbone's keys ("" if none)
    dropped: tuple[str, ...]  # top-level names of what was dropped (heads, copies, queues), sorted
    stem_pool: bool | None  # a max-pool after the stem, where the layout shows it (a Sequential); None: unknown
    dropped_keys: tuple[str, ...] = ()  # every key of the file that was dropped, as the file names it
    stem_relu: bool = True  # False: a Sequential of a ResNet's children without the ReLU module (lightly)
    preact: str = ""  # pre-activation blocks: whose naming the keys follow ("kuangliu", "bearpaw", ...); "": none
    sibling: str = ""  # a classifier found beside the backbone rather than in it ('module.fc'), else ""


def normalise_keys(state: dict[str, torch.Tensor]) -> Normalised:
    """Find the online backbone and map it to canonical names; keep a fitting classifier; drop the rest."""
    state = {_unnest(key): tensor for key, tensor in state.items()}
    prefix, positions = find_backbone(state)
    kept: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}  # kept name -> the file's key
    dropped: Counter[str] = Counter()
    dropped_keys: list[str] = []
    for key, tensor in state.items():
        if key.startswith(prefix):
            name = _positional(key[len(prefix) :], positions) if positions else key[len(prefix) :]
            if name is not None and not _is_head(name):
                kept[name], origin[name] = tensor, key
                continue
        dropped_keys.append(key)
        dropped[THOP if key.rsplit(".", 1)[-1] in THOP_COUNTERS else _group(key, prefix)] += 1
    notes = []
    if prefix:
        notes.append(f"took the backbone from the keys under '{prefix}'")
    if positions:
        notes.append(
            f"mapped the Sequential of a ResNet's children under '{prefix}' to torchvision's names by position"
        )
    kept, sibling = _sibling_classifier(state, prefix, kept, dropped, origin)
    from_file = set(origin.values())
    dropped_keys = [k for k in dropped_keys if k not in from_file]
    if sibling:
        notes.append(f"kept '{sibling}' as the classifier of the backbone")
    if "encoder_q." in prefix and any(k.startswith("fc.") for k in kept):  # MoCo's fc is its embedding head
        notes.append("dropped encoder_q's fc: MoCo's embedding head, not a classifier")
        dropped[PROJECTION_FC] += sum(k.startswith("fc.") for k in kept)
        kept = _without_fc(kept, origin, dropped_keys)
    kept = _fitting_classifier(kept, dropped, notes, origin, dropped_keys)
    if any(_is_copy(name) for name in dropped):
        notes.append("chose the online network: momentum/key copies of the backbone were dropped on purpose")
    if dropped:
        notes.append("dropped: " + ", ".join(f"{name} ({n} tensors)" for name, n in sorted(dropped.items())))
    preact = _preact_naming(kept)
    kept, renamed = _canonical(kept, bool(preact))
    if renamed:
        notes.append(f"renamed {renamed} keys to CKA Lens's canonical names (shortcut, classifier, final norm)")
    kept = _merged_split_norms(kept, notes)
    stem_pool = None if not positions else positions["pool"]
    return Normalised(
        kept,
        tuple(notes),
        prefix,
        tuple(sorted(dropped)),
        stem_pool,
        tuple(dropped_keys),
        stem_relu=not positions or positions["relu"],
        preact=preact,
        sibling=sibling,
    )


def _unnest(key: str) -> str:
    """xternalz's Wide ResNet nests each stage's blocks: 'block1.layer.0.conv1' -> 'layer1.0.conv1'."""
    return re.sub(r"(^|\.)block([1-4])\.layer\.", r"\1layer\2.", key)


def _without_fc(kept: dict, origin: dict, dropped_keys: list[str]) -> dict:
    dropped_keys.extend(origin[k] for k in kept if k.startswith("fc.") and k in origin)
    return {k: v for k, v in kept.items() if not k.startswith("fc.")}


def _preact_naming(tensors: dict[str, torch.Tensor]) -> str:
    """'' for a post-activation ResNet; else whose pre-activation naming the keys follow.

    A pre-activation block normalises its input, so its bn1 has the width of conv1's input, not output; a
    stage's first block, where the two differ, tells. The naming then tells what the weights cannot: which
    input the projection shortcut reads and which conv strides (see models.preact_resnet).
    """
    for stage in range(1, 5):
        bn, conv = tensors.get(f"layer{stage}.0.bn1.weight"), tensors.get(f"layer{stage}.0.conv1.weight")
        if bn is None or conv is None or conv.shape[0] == conv.shape[1]:
            continue
        if bn.numel() != conv.shape[1]:
            return ""
        if "conv1.bias" in tensors:
            return "meliketoy"
        if any(".convShortcut." in k for k in tensors):
            return "xternalz"
        if any(".downsample." in k for k in tensors):
            return "bearpaw"
        return "kuangliu"
    return ""


def _canonical(tensors: dict[str, torch.Tensor], preact: bool) -> tuple[dict[str, torch.Tensor], int]:
    """Codebases' names -> CKA Lens's: torchvision's for post-activation ResNets (kuangliu's 'shortcut' and
    'linear' become 'downsample' and 'fc'); models.preact_resnet's for pre-activation ones."""
    out, renamed = {}, 0
    for name, tensor in tensors.items():
        new = "fc." + name[len("linear.") :] if name.startswith("linear.") else name
        if preact:
            new = re.sub(r"\.(shortcut|downsample|convShortcut)(\.0)?\.", ".shortcut.", new)
            new = "bn." + new[len("bn1.") :] if new.startswith("bn1.") else new  # the final norm, in these nets
        else:
            new = new.replace(".shortcut.", ".downsample.")
        renamed += new != name
        out[new] = tensor
    return out, renamed


def _merged_split_norms(tensors: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    """lightly's SplitBatchNorm keeps running statistics per split (C * splits values) and evaluates with their
    mean: store that mean, as its eval mode does."""
    out, splits = dict(tensors), set()
    for key, tensor in tensors.items():
        if not key.endswith(".running_mean"):
            continue
        base = key[: -len("running_mean")]
        weight, var = tensors.get(base + "weight"), tensors.get(base + "running_var")
        if weight is None or var is None or weight.numel() == tensor.numel() or tensor.numel() % weight.numel():
            continue
        s = tensor.numel() // weight.numel()
        out[key] = tensor.view(s, -1).mean(0)
        out[base + "running_var"] = var.view(s, -1).mean(0)
        splits.add(s)
    if splits:
        notes.append(
            f"averaged SplitBatchNorm running statistics over {', '.join(map(str, sorted(splits)))} splits, as its "
            "eval mode does (lightly)"
        )
    return out


def find_backbone(state: dict[str, torch.Tensor]) -> tuple[str, dict | None]:
    """The prefix of the online backbone's keys, and the positional map if it is a Sequential of children.

    A torchvision-named backbone has P+'conv1.weight' and P+'layer1.0.conv1.weight'; a Sequential one has
    P+'0.weight' (an RGB convolution) and four consecutive stages P+'k.0.conv1.weight'. Copies (momentum,
    key, teacher, EMA) are passed over when an online backbone exists; the shortest prefix wins.
    """
    named = [
        key[: -len(STEM_KEY)]
        for key in state
        if key.endswith(STEM_KEY) and key[: -len(STEM_KEY)] + FIRST_BLOCK_KEY in state
    ]
    candidates: dict[str, dict | None] = {p: None for p in named if p == "" or p.endswith(".")}
    for prefix, positions in _sequential_backbones(state).items():
        candidates.setdefault(prefix, positions)
    if not candidates:
        raise CheckpointError(not_a_resnet_message(state))
    online = [p for p in candidates if not _is_copy(p)] or list(candidates)
    prefix = min(online, key=lambda p: (len(p), p))
    return prefix, candidates[prefix]


def _sequential_backbones(state: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Prefixes of nn.Sequential(*resnet.children()) backbones, with the index of each part."""
    stages: dict[str, set[int]] = {}
    for key in state:
        match = _STAGE_KEY.match(key)
        if match and (match["prefix"] == "" or match["prefix"].endswith(".")):
            stages.setdefault(match["prefix"], set()).add(int(match["index"]))
    found = {}
    for prefix, indices in stages.items():
        first = min(indices)
        stem = state.get(prefix + "0.weight")
        if not {first, first + 1, first + 2, first + 3} <= indices or stem is None or stem.ndim != 4:
            continue
        if stem.shape[1] != 3 or prefix + "1.running_mean" not in state:
            continue
        if first not in (2, 3, 4):  # conv, bn[, relu][, maxpool], layer1: anything else is another network
            continue
        # lightly builds its backbone from children() of a ResNet whose ReLU is functional: index 2 is layer1
        found[prefix] = {"first": first, "pool": first == 4, "relu": first != 2}
    return found


def _positional(name: str, positions: dict) -> str | None:
    """'4.0.conv1.weight' -> 'layer1.0.conv1.weight' in a Sequential of a ResNet's children; None if no part."""
    index, _, rest = name.partition(".")
    if not index.isdigit():
        return None
    index = int(index)
    if index == 0:
        return f"conv1.{rest}"
    if index == 1:
        return f"bn1.{rest}"
    stage = index - positions["first"]
    return f"layer{stage + 1}.{rest}" if 0 <= stage < 4 else None


def _is_copy(prefix: str) -> bool:
    return any(word in prefix for word in COPY_WORDS)


def _is_head(name: str) -> bool:
    """A key inside the backbone that is not part of it: anything outside the stem, stages and a plain fc, and
    the counters the thop profiler leaves on every module ('layer1.0.total_ops')."""
    first, last = name.split(".", 1)[0], name.rsplit(".", 1)[-1]
    if last in THOP_COUNTERS:
        return True
    return not (first in ("conv1", "bn1", "bn") or re.match(r"layer[1-4]$", first) or first in ("fc", "linear"))


def _group(key: str, prefix: str) -> str:
    """How a dropped key is named in the notes: its first part below the shared wrapper, e.g. 'projector'."""
    wrapper = prefix.split(".", 1)[0] + "." if prefix.count(".") > 1 else ""
    rest = key[len(wrapper) :] if wrapper and key.startswith(wrapper) else key
    inside = key.startswith(prefix) and prefix
    parts = rest.split(".")
    return ".".join(parts[: 2 if inside else 1]) if len(parts) > 1 else rest


def _sibling_classifier(
    state: dict[str, torch.Tensor], prefix: str, kept: dict[str, torch.Tensor], dropped: Counter, origin: dict
) -> tuple[dict[str, torch.Tensor], str]:
    """A single linear layer beside the backbone ('module.fc' beside 'module.encoder.', 'fc' beside 'f.',
    mmpretrain's 'head.fc' beside 'backbone.') is its classifier, unless self-supervised heads sit there too
    (solo-learn's online linear probe is one of its heads)."""
    has_fc = any(k.startswith(("fc.", "linear.")) for k in kept)
    if not prefix or has_fc or any(name not in (*CLASSIFIER_NAMES, "head", THOP) for name in dropped):
        return kept, ""
    wrapper = prefix.rstrip(".").rpartition(".")[0]
    wrapper = wrapper + "." if wrapper else ""
    for name in (*CLASSIFIER_NAMES, *(f"head.{n}" for n in CLASSIFIER_NAMES)):
        base = f"{wrapper}{name}."
        parts = {k[len(base) :]: v for k, v in state.items() if k.startswith(base)}
        if set(parts) == {"weight", "bias"} and parts["weight"].ndim == 2:
            dropped.pop(name.split(".")[0], None)
            origin.update({f"fc.{part}": base + part for part in parts})
            return kept | {f"fc.{part}": v for part, v in parts.items()}, base.rstrip(".")
    return kept, ""


def _fitting_classifier(
    kept: dict[str, torch.Tensor], dropped: Counter, notes: list[str], origin: dict, dropped_keys: list[str]
) -> dict[str, torch.Tensor]:
    """An fc that is an MLP (a projection head) or whose size fits no CIFAR dataset is dropped, with a note."""
    fc = {k: v for k, v in kept.items() if k.startswith(("fc.", "linear."))}
    if not fc:
        return kept
    weight = fc.get("fc.weight", fc.get("linear.weight"))
    if weight is not None and weight.ndim == 2 and weight.shape[0] < IMAGENET_CLASSES and len(fc) <= 2:
        return kept
    mlp = weight is None
    what = "an MLP projection head" if mlp else f"a {weight.shape[0]}-way ImageNet head, which cannot classify CIFAR"
    notes.append(f"dropped fc ({what}): the network's output is its pooled features")
    dropped[PROJECTION_FC if mlp else "fc"] += len(fc)
    dropped_keys.extend(origin[k] for k in fc)
    return {k: v for k, v in kept.items() if k not in fc}


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


def mismatches(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> str:
    """What keeps `tensors` from loading strictly where `expected` (a module's state_dict) is wanted: the first few
    missing, unexpected and wrongly shaped keys with their counts, '' when they fit."""
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [
        f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            parts.append(f"{len(keys)} {label} ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})")
    return "; ".join(parts)


def as_float32(tensors: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    """Refuse NaN/Inf, weight types this app does not compute with (complex, float8, quantised) and negative
    BatchNorm variances (finite, but the network's features would be NaN); cast half/bfloat16/double weights to
    float32 (the app computes in float32)."""
    out, cast = {}, set()
    for key, tensor in tensors.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and tensor.dtype not in _READ_DTYPES:
            raise CheckpointError(
                f"The weight {_quoted(key)} is {str(tensor.dtype).removeprefix('torch.')}, which CKA Lens does not "
                "read; save the weights as float32, float16 or bfloat16."
            )
        if key.endswith("running_var") and tensor.is_floating_point() and bool((tensor < 0).any()):
            raise CheckpointError(
                f"The BatchNorm variance {_quoted(key)} has negative values, so the network's features would be "
                "NaN; the checkpoint is damaged: use another one."
            )
        if tensor.is_floating_point():
            if not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(
                    f"The weight {_quoted(key)} contains NaN or infinite values, so the network would output garbage; "
                    "use a checkpoint from before training diverged."
                )
            if tensor.dtype != torch.float32:
                cast.add(str(tensor.dtype).removeprefix("torch."))
                tensor = tensor.float()
        out[key] = tensor
    if cast:
        notes.append(f"cast {', '.join(sorted(cast))} weights to float32")
    return out


def _quoted(key: str) -> str:
    """A weight's name for a message, cut short."""
    return repr(key if len(key) <= 80 else key[:77] + "...")
