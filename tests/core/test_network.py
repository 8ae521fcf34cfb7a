"""The identity a result records about a network, and the protocol the engine reads a network through."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core.features import FeatureExtractor
from core.network import ModelIdentity
from tests.core.tiny import tiny_network


def test_the_key_tells_apart_the_same_weights_read_two_ways():
    plain = ModelIdentity("file:x", "ab" * 32, "simclr", "resnet18")
    other_reading = dataclasses.replace(plain, reading="cifar stem, padding 2")
    assert plain.key == f"{'ab' * 32}|"
    assert other_reading.key != plain.key and other_reading.key.startswith("ab" * 32)


def test_the_key_ignores_where_the_weights_came_from():
    """The same bytes read the same way are one cache entry, whichever spec named them."""
    one = ModelIdentity("bundled:x", "cd" * 32, "simclr", "resnet18", "r")
    two = ModelIdentity("file:/elsewhere/x", "cd" * 32, "simclr", "resnet18", "r")
    assert one.key == two.key and one != two


def test_an_identity_is_frozen():
    identity = ModelIdentity("file:x", "0" * 64, "supervised", "resnet18")
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.sha256 = "1" * 64


def test_any_object_with_the_protocols_attributes_is_read_by_the_engine():
    """A plain dataclass (no base class) with module, layers, mean, std and identity is a network to the engine."""
    net = tiny_network(0)
    extractor = FeatureExtractor(net.module, net.layers, torch.device("cpu"))
    out = extractor(torch.randn(2, 3, 8, 8))
    assert [tuple(f.shape) for f in out] == [(2, 4, 8, 8), (2, 4, 4, 4), (2, 64), (2, 5)]
