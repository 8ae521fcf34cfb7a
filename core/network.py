"""What the engine needs of a network: a small typed protocol, and the identity a result records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ContractError

RGB = tuple[float, float, float]  # one value per input channel
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")  # resize interpolations (torch.nn.functional.interpolate's modes)


@dataclass(frozen=True)
class InputConfig:
    """How a network takes its images: the size it was trained at, how images are resized to it, and the
    normalisation. CIFAR's 32 x 32 images are resized to `size` with `interpolation`, then normalised: both
    networks of a comparison see the same images, each in its own input form."""

    size: tuple[int, int] | None  # (height, width) in pixels; None: the images' own size (no resize)
    interpolation: str  # one of INTERPOLATIONS
    mean: RGB  # per channel, of [0, 1] pixel values
    std: RGB
    crop_pct: float | None = None  # the centre-crop fraction of its evaluation transform, where known (shown only:
    # CIFAR images are whole objects, so they are resized whole, never cropped)

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ContractError(f"interpolation must be one of {INTERPOLATIONS}, not {self.interpolation!r}")

    @property
    def text(self) -> str:
        """'224x224 bicubic; mean 0.5000,0.5000,0.5000; std 0.5000,0.5000,0.5000' (the size 'as given' when None)."""
        size = f"{self.size[0]}x{self.size[1]}" if self.size else "as given"
        mean, std = (",".join(f"{v:.4f}" for v in values) for values in (self.mean, self.std))
        return f"{size} {self.interpolation}; mean {mean}; std {std}"


def preprocess(images: torch.Tensor, config: InputConfig) -> torch.Tensor:
    """uint8 or [0, 1] float images (N x 3 x H x W) -> float32 at the network's input size, normalised.

    The resize happens on [0, 1] values before normalising (as torchvision's and timm's transforms do: resize the
    image, then ToTensor and Normalize); bicubic overshoot is clamped back to [0, 1] as it is in an 8-bit image.
    Images already at the input size are only normalised, exactly as before input sizes existed.
    """
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    if config.size is not None and tuple(x.shape[-2:]) != tuple(config.size):
        smooth = config.interpolation != "nearest"
        extra = {"align_corners": False, "antialias": x.shape[-1] > config.size[1]} if smooth else {}
        x = F.interpolate(x, size=config.size, mode=config.interpolation, **extra)
        if config.interpolation == "bicubic":
            x = x.clamp_(0.0, 1.0)
    m = torch.tensor(config.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(config.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


@dataclass(frozen=True)
class ModelIdentity:
    """What a result says about a model: enough to know exactly which weights were compared."""

    source: str  # the spec it was loaded from ("bundled:...", "hub:...", "upload:NAME", ...)
    sha256: str  # hex digest of the weights: of the tensors loaded, whatever file held them
    method: str  # training method, e.g. "simclr" or "supervised"
    arch: str  # architecture name, e.g. "resnet18-w16"
    # how the weights were read where they cannot say: stem and input normalisation (same file, other reading:
    # another network)
    reading: str = ""

    @property
    def key(self) -> str:
        """What caches of features and results are keyed by: the weights and how they were read."""
        return f"{self.sha256}|{self.reading}"


class Network(Protocol):
    """A network the engine can read: a module in eval mode taking normalised images, and its layers.

    Anything with these attributes will do (models.LoadedModel is one); the engine never changes the
    module, so one network may be shared by several analyses at once.
    """

    @property
    def module(self) -> nn.Module: ...

    @property
    def layers(self) -> tuple[tuple[str, str], ...]: ...  # (readable name, torch.fx node) in depth order

    @property
    def mean(self) -> RGB: ...  # the input normalisation the network was trained with

    @property
    def std(self) -> RGB: ...

    @property
    def identity(self) -> ModelIdentity: ...

    # and, where it has one, `input: InputConfig`: the size, interpolation and normalisation it takes images in
    # (`input_of`); without one, images are read at their own size with `mean` and `std`


def input_of(network: Network) -> InputConfig:
    """The network's input form: its `input` where it has one, else its own images' size with its mean and std."""
    config = getattr(network, "input", None)
    return config if config is not None else InputConfig(None, "bilinear", network.mean, network.std)
