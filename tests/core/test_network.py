"""The identity a result records about a network, and the protocol the engine reads a network through."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from core.data import normalize
from core.features import FeatureExtractor
from core.network import InputConfig, ModelIdentity, input_of, preprocess
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


def test_images_at_the_networks_own_size_are_only_normalised_bit_for_bit():
    """Today's 32 px ResNets read exactly what they read before networks had input sizes."""
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    config = InputConfig((32, 32), "bilinear", (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    assert torch.equal(preprocess(images, config), normalize(images, config.mean, config.std))
    assert torch.equal(
        preprocess(images, InputConfig(None, "bicubic", config.mean, config.std)),
        normalize(images, config.mean, config.std),
    )


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_images_are_resized_to_the_input_size_then_normalised(mode):
    images = torch.rand(2, 3, 32, 32)
    config = InputConfig((48, 64), mode, (0.5, 0.4, 0.3), (0.2, 0.3, 0.4))
    resized = F.interpolate(images, size=(48, 64), mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
    resized = resized.clamp(0, 1) if mode == "bicubic" else resized
    mean, std = torch.tensor(config.mean).view(1, 3, 1, 1), torch.tensor(config.std).view(1, 3, 1, 1)
    assert torch.allclose(preprocess(images, config), (resized - mean) / std, atol=1e-6)


def test_a_network_without_an_input_form_reads_images_as_given_with_its_mean_and_std():
    net = tiny_network(0)
    assert input_of(net) == InputConfig(None, "bilinear", net.mean, net.std)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        InputConfig((32, 32), "lanczos", net.mean, net.std)
