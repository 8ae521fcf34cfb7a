"""What the engine needs of a network: a small typed protocol, and the identity a result records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import nn

RGB = tuple[float, float, float]  # one value per input channel


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
