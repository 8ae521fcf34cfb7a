"""A loaded network and what is known about it: the types every checkpoint source produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from core.network import RGB, InputConfig, ModelIdentity
from models.calibration import Calibration
from models.resnet import ArchConfig

CIFAR_SIZE = (32, 32)  # the ResNets CKA Lens rebuilds read CIFAR images as they are


@dataclass(frozen=True)
class NamedArch:
    """An architecture a library builds by name (`timm:vit_tiny_patch16_224`, `torchvision:resnet18`), as loaded:
    what ModelInfo holds where a ResNet's ArchConfig would be."""

    name: str  # 'timm:NAME' or 'torchvision:NAME'
    num_classes: int  # 0: the classifier was left out, the module returns pooled features

    stem = "named"  # no CIFAR stem to choose (a max-pool, a padding): these networks are read as they are built
    stem_kind = "named"

    @property
    def library(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def model_name(self) -> str:
        return self.name.split(":", 1)[1]


@dataclass(frozen=True)
class SourceHints:
    """What a source knows besides the weights: config.json fields or registry metadata (None = unknown)."""

    method: str | None = None
    mean: RGB | None = None
    std: RGB | None = None
    stem_padding: int | None = None
    stem_pool: bool | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    origin: str = ""  # "config.json", "the registry" or "your choice", for notes
    arch: str | None = None  # an architecture named for the weights ('timm:NAME', 'torchvision:NAME'; '#arch=')
    input: InputConfig | None = None  # the input form a source states (timm's pretrained_cfg), else the arch's

    def merged_over(self, fallback: SourceHints) -> SourceHints:
        """These hints, with gaps filled from `fallback` (config.json over registry, say)."""
        return SourceHints(
            method=self.method or fallback.method,
            mean=self.mean or fallback.mean,
            std=self.std or fallback.std,
            stem_padding=self.stem_padding if self.stem_padding is not None else fallback.stem_padding,
            stem_pool=self.stem_pool if self.stem_pool is not None else fallback.stem_pool,
            metrics=fallback.metrics | self.metrics,
            notes=fallback.notes + self.notes,
            origin=self.origin or fallback.origin,
            arch=self.arch or fallback.arch,
            input=self.input or fallback.input,
        )


@dataclass(frozen=True)
class ModelInfo:
    """Everything the app shows or needs about a loaded network besides the module itself."""

    arch: ArchConfig | NamedArch  # a ResNet CKA Lens rebuilds, or an architecture a library builds by name
    stem: str  # "cifar", "cifar-maxpool" or "imagenet" (ArchConfig.stem_kind); "named" for a NamedArch
    method: str  # "simclr", "supervised", another method named by config.json, or "unknown"
    mean: RGB  # input normalisation the network was trained with
    std: RGB
    num_classes: int  # 0: the module returns pooled features
    source: str  # the spec it was loaded from ("hub:...", "file:...", "bundled:...", "upload:NAME")
    sha256: str  # hex digest of the weight file's bytes
    notes: tuple[str, ...]  # what the loader did (prefix stripped, heads dropped, cast, defaults used)
    metrics: dict[str, float] = field(hash=False)  # from the card/config when known (not hashed: a dict)
    layers: tuple[tuple[str, str], ...]  # (readable name, torch.fx node): resnet_layers(arch), or found in the graph
    calibration: Calibration | None = None  # the measured accuracy and the evidence for unstated choices
    dropped: tuple[str, ...] = ()  # every tensor of the file left out on purpose (heads, copies), as the file names it
    input: InputConfig | None = None  # size and interpolation a named architecture takes images at (None: CIFAR's
    # 32 x 32 as they are, with `mean` and `std`: every ResNet CKA Lens rebuilds)

    @property
    def input_config(self) -> InputConfig:
        """How images are put to this network: resized to its input size, normalised with its mean and std."""
        if self.input is not None:
            return InputConfig(self.input.size, self.input.interpolation, self.mean, self.std, self.input.crop_pct)
        return InputConfig(CIFAR_SIZE, "bilinear", self.mean, self.std)

    @property
    def label(self) -> str:
        """A short human label, e.g. 'simclr resnet50 (hub:edadaltocg/resnet50_simclr_cifar10)'."""
        return f"{self.method} {self.arch.name} ({self.source})"


@dataclass(frozen=True)
class LoadedModel:
    """A network in eval mode taking normalised images, with its description.

    Supervised networks return logits; self-supervised ones return pooled backbone features (their
    projector was dropped). The module is put in eval mode and its 4-D weights in the channels-last layout here,
    once, before anything shares it: the feature extractor's private copy then shares the weights instead of
    holding a converted second copy (core.features.private_copy).
    """

    module: nn.Module
    info: ModelInfo

    def __post_init__(self) -> None:
        self.module.eval().to(memory_format=torch.channels_last)

    @property
    def layers(self) -> tuple[tuple[str, str], ...]:
        return self.info.layers

    @property
    def mean(self) -> RGB:
        return self.info.mean

    @property
    def std(self) -> RGB:
        return self.info.std

    @property
    def input(self) -> InputConfig:
        return self.info.input_config

    @property
    def identity(self) -> ModelIdentity:
        """What a result records about this network (core.network.Network)."""
        info = self.info
        if isinstance(info.arch, NamedArch):
            reading = f"input {info.input_config.text}"
        else:
            mean, std = (",".join(f"{v:.4f}" for v in values) for values in (info.mean, info.std))
            reading = f"{info.stem} stem, padding {info.arch.stem_padding}; mean {mean}; std {std}"
        return ModelIdentity(info.source, info.sha256, info.method, info.arch.name, reading)
