"""Architectures read off a state dict: a ResNet's depth, width, stem, block kind and classes from its canonically
named weights, and, for other networks, the one common architecture whose tensor names and shapes it matches."""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from core import settings
from models.errors import ArchitectureError, CheckpointError
from models.resnet import ArchConfig
from models.state_keys import STEM_KEY, SUPPORTED_ARCHS, normalise_keys

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


# --- architectures by name, inferred from the keys and shapes of a state dict ---------------------------------------

# The short list of common architectures a state dict is matched against, as `SOURCE:NAME` specs of
# models.named. ResNets are not in it: the ResNet reader above reads any depth and width from the weights. DeiT-S
# and DeiT-Ti are left out on purpose: their weights are ViT-S/16's and ViT-Ti/16's tensor for tensor, so listing
# them would make every such file ambiguous (name DeiT with #arch=timm:deit_small_patch16_224).
NAMED_CANDIDATES = (
    "timm:vit_tiny_patch16_224",
    "timm:vit_small_patch16_224",
    "timm:vit_base_patch16_224",
    "timm:convnext_tiny",
    "timm:efficientnet_b0",
    "timm:mobilenetv3_large_100",
    "torchvision:vit_b_16",
    "torchvision:convnext_tiny",
    "torchvision:efficientnet_b0",
    "torchvision:mobilenet_v3_large",
    "torchvision:mobilenet_v2",
    "torchvision:densenet121",
    "torchvision:vgg16",
)
WRAPPER_PREFIXES = ("module.", "model.", "backbone.", "encoder.")  # DDP, Lightning, self-supervised code
_COUNTER = "num_batches_tracked"  # BatchNorm counters some exporters leave out


@dataclass(frozen=True)
class Signature:
    """One candidate's tensors: the body's names and shapes, and its classifier's names with every dimension but
    the number of classes (a checkpoint may have any number of classes, or no classifier)."""

    arch: str
    body: dict[str, tuple[int, ...]]
    head: dict[str, tuple[int, ...]]

    def classes(self, shapes: dict[str, tuple[int, ...]]) -> int | None:
        """The number of classes when `shapes` is this network's state dict (0: no classifier), else None."""
        head = {k for k in shapes if k in self.head}
        body = {k: s for k, s in shapes.items() if k not in self.head}
        if body != self.body and not (
            body.keys() <= self.body.keys()
            and all(k.endswith(_COUNTER) for k in self.body.keys() - body.keys())
            and all(self.body[k] == s for k, s in body.items())
        ):
            return None
        if not head:
            return 0
        if head != self.head.keys() or any(shapes[k][1:] != self.head[k] for k in head):
            return None
        return shapes[next(k for k in sorted(head) if k.endswith("weight"))][0]


@dataclass(frozen=True)
class InferredArch:
    """The one candidate architecture a state dict fits, its classes and the tensors under the names it takes."""

    arch: str  # 'timm:NAME' or 'torchvision:NAME'
    num_classes: int  # 0: no classifier in the file
    tensors: dict[str, torch.Tensor]
    note: str  # what the card says about it


def infer_named(
    tensors: dict[str, torch.Tensor], cache_dir: Path | None = None, candidates: tuple[str, ...] = NAMED_CANDIDATES
) -> InferredArch | None:
    """The architecture of `candidates` whose keys and shapes the state dict matches exactly (a classifier of any
    width, or none, allowed; a common wrapper prefix stripped); None when none does. Two matching candidates are
    never decided between: that is a CheckpointError asking for #arch=."""
    if not tensors:
        return None
    stripped, prefix = _without_wrapper(tensors)
    shapes = {k: tuple(v.shape) for k, v in stripped.items()}
    signatures = candidate_signatures(cache_dir, candidates)
    found = [(s.arch, n) for s in signatures if (n := s.classes(shapes)) is not None]
    if not found:
        return None
    if len(found) > 1:
        names = " and ".join(arch for arch, _ in found)
        raise CheckpointError(
            f"The weights fit {names} alike, so the architecture cannot be told from them; name it: add "
            f"#arch={found[0][0]} (or the other) to the spec, or choose it in the upload form."
        )
    arch, classes = found[0]
    head = f"a {classes}-way classifier" if classes else "no classifier"
    where = f" under '{prefix}'" if prefix else ""
    note = (
        f"architecture inferred from the weights: every tensor{where} has the name and shape of {arch} ({head}), and "
        f"no other of the {len(candidates)} common architectures CKA Lens checks fits"
    )
    return InferredArch(arch, classes, stripped, note)


def infer_unless_resnet(tensors: dict[str, torch.Tensor]) -> InferredArch | None:
    """infer_named for weights the ResNet reader does not take (it reads any ResNet from its weights); None for a
    ResNet, and for weights no candidate fits (the ResNet reader then says what it found)."""
    try:
        normalise_keys(tensors)
    except CheckpointError:
        return infer_named(tensors)
    return None


def _without_wrapper(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors without a wrapper prefix every key shares (DDP's 'module.', Lightning's 'model.' ...)."""
    for prefix in WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in tensors):
            return {key[len(prefix) :]: value for key, value in tensors.items()}, prefix
    return tensors, ""


def candidate_signatures(
    cache_dir: Path | None = None, candidates: tuple[str, ...] = NAMED_CANDIDATES
) -> tuple[Signature, ...]:
    """The candidates' signatures: from this process's memory, else from a JSON file in the cache folder (CKA Lens's
    download cache unless given) written for these timm and torchvision versions, else built on the meta device (no
    memory, no weights) and added to that file. Building all of them takes seconds; a match then costs a few
    dictionary comparisons."""
    folder = cache_dir or settings.download_dir()
    return _signatures(str(folder / f"architectures-{_versions()}.json"), tuple(candidates))


def _versions() -> str:
    import timm
    import torchvision

    return f"timm{timm.__version__}-torchvision{torchvision.__version__}".replace("+", "_")


@functools.lru_cache(maxsize=8)
def _signatures(path: str, candidates: tuple[str, ...]) -> tuple[Signature, ...]:
    file = Path(path)
    try:
        saved = json.loads(file.read_text())
        known = {arch: _from_json(arch, saved[arch]) for arch in candidates if arch in saved}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        saved, known = {}, {}
    missing = [arch for arch in candidates if arch not in known]
    if not missing:
        return tuple(known[arch] for arch in candidates)
    known |= {arch: _build_signature(arch) for arch in missing}
    saved = (saved if isinstance(saved, dict) else {}) | {
        s.arch: {"body": s.body, "head": s.head} for s in known.values()
    }
    try:  # a cache that cannot be written only costs the next process the same seconds
        file.parent.mkdir(parents=True, exist_ok=True)
        temporary = file.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(saved))
        temporary.replace(file)
    except OSError:
        pass
    return tuple(known[arch] for arch in candidates)


def _from_json(arch: str, saved: dict) -> Signature:
    shapes = lambda part: {k: tuple(int(d) for d in v) for k, v in saved[part].items()}  # noqa: E731
    return Signature(arch, shapes("body"), shapes("head"))


def _build_signature(arch: str) -> Signature:
    """A candidate built on the meta device: its state dict's names and shapes, its classifier's apart."""
    source, _, name = arch.partition(":")
    with torch.device("meta"):
        if source == "timm":
            import timm

            module = timm.create_model(name, pretrained=False)
            classifier = str(module.pretrained_cfg.get("classifier") or "")
        else:
            import torchvision

            module = torchvision.models.get_model(name, weights=None)
            classifier = [n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    state = module.state_dict()
    head = {k: tuple(v.shape[1:]) for k, v in state.items() if classifier and k.startswith(classifier + ".")}
    return Signature(arch, {k: tuple(v.shape) for k, v in state.items() if k not in head}, head)
