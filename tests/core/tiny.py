"""A tiny network that fits the engine's Network protocol, and a tiny subset of random images, for fast engine tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.data import Subset, SubsetSpec, normalize
from core.network import RGB, ModelIdentity

MEAN: RGB = (0.5, 0.5, 0.5)
STD: RGB = (0.25, 0.25, 0.25)
# (readable name, torch.fx node) of the layers read: two convolutions, the flattened map and the logits
LAYERS = (("conv", "1"), ("down", "3"), ("flat", "5"), ("logits", "6"))


@dataclass(frozen=True)
class TinyNetwork:
    """Conv-ReLU-Conv-ReLU-Pool-Flatten-Linear (any image size, 8x8 in most tests), in eval mode."""

    module: nn.Module
    identity: ModelIdentity
    layers: tuple[tuple[str, str], ...] = LAYERS
    mean: RGB = MEAN
    std: RGB = STD


def tiny_network(seed: int, name: str = "a", dead: bool = False) -> TinyNetwork:
    """A random tiny network; `dead`: its second convolution outputs zeros after the ReLU (a constant layer)."""
    torch.manual_seed(seed)
    module = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64, 5),
    )
    if dead:
        with torch.no_grad():
            module[2].weight.zero_()
            module[2].bias.fill_(-1.0)
    identity = ModelIdentity(f"test:{name}", f"{seed:064x}", "simclr" if seed % 2 == 0 else "supervised", "tiny")
    return TinyNetwork(module.eval(), identity)


def tiny_subset(n: int = 24, seed: int = 0, size: int = 8) -> Subset:
    """`n` random uint8 images (size x size) with labels cycling through the ten classes."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 10
    return Subset(SubsetSpec(per_class=max(1, n // 10), seed=seed), images, labels, np.arange(n), "random")


def features(network: TinyNetwork, images: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's output for `images`, computed directly by running the module's children in turn."""
    x = normalize(images, network.mean, network.std)
    out = {}
    with torch.no_grad():
        for index, child in enumerate(network.module):
            x = child(x)
            out[str(index)] = x.double()
    return [out[node] for _, node in network.layers]
