"""The up-front memory estimate: what it counts, and that it no longer grows with n once fingerprints spill."""

from __future__ import annotations

from dataclasses import replace

import torch

from core import settings
from core.memory import estimate_bytes, layer_shapes
from core.options import AnalysisOptions
from models.resnet import ArchConfig, build_resnet, resnet_layers


class _Network:
    """The two attributes layer_shapes reads of a network."""

    def __init__(self, width: int) -> None:
        arch = ArchConfig(depth=18, width=width, num_classes=10)
        self.module, self.layers = build_resnet(arch).eval(), tuple(resnet_layers(arch))


def test_the_estimate_is_flat_in_n_once_fingerprints_spill_and_grows_without_the_bound(monkeypatch):
    """Two full-width ResNet-18s, batch 250: from 10,000 to 50,000 images the estimate stays put at the default
    bound (each fingerprint keeps 256 MB; the probe of the widest layer reads it a batch at a time), and grows
    by gigabytes when nothing spills."""
    shapes = [layer_shapes(_Network(64), torch.device("cpu"))] * 2
    options = AnalysisOptions(batch_size=250)
    monkeypatch.delenv(settings.SPILL_MB, raising=False)
    flat = [estimate_bytes(shapes, n, options) for n in (10_000, 50_000)]
    assert flat[0] == flat[1] < 1.5e9
    monkeypatch.setenv(settings.SPILL_MB, "1e6")
    growing = [estimate_bytes(shapes, n, options) for n in (10_000, 50_000)]
    assert growing[1] - growing[0] > 4e9  # what the fingerprints kept in memory before (rows + probe features)
    assert estimate_bytes(shapes, 50_000, replace(options, probes=False)) < growing[1] - 3e9
