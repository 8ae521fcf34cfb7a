"""Untrained networks: an architecture exactly as our training code starts it, before any step is taken.

A trained CKA is read against what the architecture and the input give on their own (the floor, core.floors).
training/train.py seeds torch's generator with the run's seed and then builds the network with
models.resnet.build_resnet (SimCLR's projector is built after the backbone, so it takes nothing from the
backbone's draws): `untrained_model(info, K)` is the network seed K's training started from. The stem and
normalisation are the trained network's, so the floor differs from it only in the weights.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from models.loaded import LoadedModel, ModelInfo, NamedArch
from models.named import build_named
from models.resnet import build_resnet

UNTRAINED = "untrained"  # the method an untrained network reports


def untrained_key(info: ModelInfo, seed: int) -> str:
    """The identity of an untrained network: 'untrained:ARCH#seed=K', ARCH naming everything that changes the
    draws (a classifier is built before the convolutions are re-drawn, so with and without one differ)."""
    arch = info.arch
    head = f"/classes={arch.num_classes}" if arch.num_classes else "/no-head"
    if isinstance(arch, NamedArch):
        return f"untrained:{arch.name}{head}#seed={seed}"
    return f"untrained:{arch.name}{head},{arch.stem_kind},padding={arch.stem_padding}#seed={seed}"


def untrained_model(info: ModelInfo, seed: int) -> LoadedModel:
    """`info`'s architecture initialised as training seed `seed` initialises it, in eval mode, read with `info`'s
    normalisation (and input size). An architecture named for a library is drawn by the library's own initialisation
    under the seed (models.named.build_named); its layers are the trained network's. The global generator is left
    as it was."""
    named = isinstance(info.arch, NamedArch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_named(info.arch.name, info.arch.num_classes) if named else build_resnet(info.arch)
    key = untrained_key(info, seed)
    described = replace(
        info,
        method=UNTRAINED,
        source=key,
        sha256=key,
        notes=(f"untrained: initialised as training seed {seed} starts, no step taken",),
        metrics={},
        calibration=None,
        dropped=(),
    )
    return LoadedModel(module, described)
