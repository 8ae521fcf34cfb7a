"""What the weights cannot say, measured: a max-pool after a 3x3 stem, the stem's padding, the input normalisation.

None of the three is in a state dict. Where the source does not say (config.json, a checkpoint's settings, the
registry, a person's choice), each open choice's candidates are scored on a fixed sample of CIFAR-10 test
images: classifier accuracy for a network with a 10-way head, leave-one-out kNN accuracy of the pooled
features otherwise. A candidate replaces the default only when it beats it by more than two standard errors
of the difference; the scores are kept as evidence for the model card.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from core import settings
from core.data import CIFAR10_MEAN, CIFAR10_STD, load_split, normalize
from core.errors import DataError
from core.network import RGB
from models.resnet import ArchConfig

NORMALISATIONS: dict[str, tuple[RGB, RGB]] = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar10-0.2023": (CIFAR10_MEAN, (0.2023, 0.1994, 0.2010)),  # the other CIFAR-10 std in common use
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
CHOICES = ("stem_pool", "stem_padding", "normalisation")
KNN_K = 10
SAMPLE_SEED = 0


@dataclass(frozen=True)
class Calibration:
    """The measurement behind a loaded network's unstated choices, shown on its model card."""

    measure: str  # "classifier accuracy" or "kNN accuracy (k=10, leave-one-out, pooled features)"
    images: int  # CIFAR-10 test images measured on
    accuracy: float  # the chosen network's score
    chance: float
    scores: tuple[tuple[str, float], ...] = ()  # each candidate tried ("max-pool after the stem: yes", 0.83)
    measured: tuple[str, ...] = ()  # which of CHOICES were open and decided by the scores
    warning: str = ""  # near chance: the network probably did not load as it was trained

    @property
    def summary(self) -> str:
        return f"{self.accuracy:.1%} {self.measure} on {self.images} CIFAR-10 test images (chance {self.chance:.0%})"


def normalisation_name(mean: RGB, std: RGB) -> str:
    """The NORMALISATIONS name of (mean, std), or 'custom'."""
    for name, (m, s) in NORMALISATIONS.items():
        if np.allclose(m, mean, atol=5e-4) and np.allclose(s, std, atol=5e-4):
            return name
    return "custom"


@lru_cache(maxsize=2)
def _sample(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels, _ = load_split("test")
    keep = np.random.default_rng(SAMPLE_SEED).permutation(len(labels))[:count]
    chosen = torch.from_numpy(np.ascontiguousarray(images[keep].transpose(0, 3, 1, 2)))
    return chosen, torch.from_numpy(labels[keep])


def sample() -> tuple[torch.Tensor, torch.Tensor] | None:
    """The fixed calibration images (uint8, N x 3 x 32 x 32) and labels; None when there are none to use."""
    count = settings.calibration_images()
    if count == 0:
        return None
    try:
        return _sample(count)
    except DataError:
        return None


def score(module: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: RGB, std: RGB, classify: bool) -> float:
    """Accuracy of a 10-way classifier, or leave-one-out kNN accuracy of the features fc receives."""
    captured: list[torch.Tensor] = []
    hook = module.fc.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    try:
        with torch.inference_mode():
            out = module(normalize(images, mean, std))
    finally:
        hook.remove()
    if classify:
        return float((out.argmax(1) == labels).float().mean())
    features = nn.functional.normalize(captured[0].flatten(1).float(), dim=1)
    similarity = features @ features.T
    similarity.fill_diagonal_(-math.inf)
    neighbours = labels[similarity.topk(min(KNN_K, len(labels) - 1), dim=1).indices]
    votes = torch.nn.functional.one_hot(neighbours, int(labels.max()) + 1).sum(1)
    return float((votes.argmax(1) == labels).float().mean())


def calibrate(
    module: nn.Module,
    build: Callable[[ArchConfig], nn.Module],
    arch: ArchConfig,
    mean: RGB,
    std: RGB,
    open_choices: tuple[str, ...],
) -> tuple[ArchConfig, RGB, RGB, nn.Module, Calibration | None]:
    """Decide the open choices by measurement and measure the result; `module` is the network for `arch`, and
    `build(candidate)` gives the same weights in another candidate's structure.

    Structure first (max-pool x padding, under the starting normalisation), then the normalisation under the
    chosen structure. Returns the chosen arch, mean, std, module and the evidence (None without images).
    """
    data = sample()
    if data is None:
        return arch, mean, std, module, None
    images, labels = data
    classify = arch.num_classes == 10
    chance = 1 / 10
    n = len(labels)
    tried: list[tuple[str, float]] = []

    informative = chance + 3 * math.sqrt(chance * (1 - chance) / n)  # below it: indistinguishable from chance

    def better(best: float, default: float) -> bool:
        """Clearly above the default and clearly above chance: noise in an untrained network decides nothing."""
        spread = math.sqrt(max(best * (1 - best) + default * (1 - default), 1e-12) / n)
        return best - default > 2 * spread and best > informative

    current = score(module, images, labels, mean, std, classify)
    structure = [c for c in ("stem_pool", "stem_padding") if c in open_choices and arch.stem == "cifar"]
    if structure:
        pools = (False, True) if "stem_pool" in structure else (arch.stem_pool,)
        paddings = (1, 2) if "stem_padding" in structure else (arch.stem_padding,)
        start, best = arch, (current, arch, module)
        for pool in pools:
            for padding in paddings:
                candidate = replace(arch, stem_pool=pool, stem_padding=padding)
                net = module if candidate == start else build(candidate)
                value = current if candidate == start else score(net, images, labels, mean, std, classify)
                tried.append((f"stem: {'max-pool, ' if pool else ''}padding {padding}", value))
                if value > best[0]:
                    best = (value, candidate, net)
        if better(best[0], current):
            current, arch, module = best
    if "normalisation" in open_choices:
        start_name = normalisation_name(mean, std)
        best_norm = (current, mean, std)
        for name, (m, s) in NORMALISATIONS.items():
            value = current if name == start_name else score(module, images, labels, m, s, classify)
            tried.append((f"normalisation: {name}", value))
            if value > best_norm[0]:
                best_norm = (value, m, s)
        if better(best_norm[0], current):
            current, mean, std = best_norm
    warning = ""
    if current < informative:
        warning = (
            f"{current:.1%} on {n} CIFAR-10 test images is near chance ({chance:.0%}): this network probably did "
            "not load as it was trained (or was not trained on CIFAR-10 images)"
        )
    measure = "classifier accuracy" if classify else f"kNN accuracy (k={KNN_K}, leave-one-out, pooled features)"
    measured = tuple(c for c in CHOICES if c in open_choices and (c == "normalisation" or c in structure))
    return arch, mean, std, module, Calibration(measure, n, current, chance, tuple(tried), measured, warning)
