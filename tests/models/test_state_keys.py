"""Checkpoint key layouts -> canonical names: each known layout renamed and normalised gives back the original."""

from __future__ import annotations

import re

import pytest
import torch

from models.errors import CheckpointError
from models.resnet import ArchConfig, build_resnet
from models.state_keys import find_backbone, normalise_keys, not_a_resnet_message


def state(**arch) -> dict[str, torch.Tensor]:
    """A tiny network's state dict, each tensor distinct (so a swapped tensor is seen)."""
    torch.manual_seed(0)
    out = build_resnet(ArchConfig(**({"depth": 18, "width": 4} | arch))).state_dict()
    return {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in out.items()}


def assert_same(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


def test_canonical_names_pass_through_unchanged():
    original = state()
    out = normalise_keys(original)
    assert_same(out.tensors, original)
    assert out.prefix == "" and out.notes == () and out.dropped == () and out.preact == ""


@pytest.mark.parametrize("prefix", ["module.", "model.backbone.", "encoder."])
def test_a_wrapper_prefix_is_stripped(prefix):
    original = state()
    out = normalise_keys({prefix + k: v for k, v in original.items()})
    assert_same(out.tensors, original)
    assert out.prefix == prefix and f"took the backbone from the keys under '{prefix}'" in out.notes


def sequential(original: dict[str, torch.Tensor], first: int, prefix: str) -> dict[str, torch.Tensor]:
    """nn.Sequential(*resnet.children()) names: conv1 -> 0, bn1 -> 1, layerK -> first + K - 1 (no fc)."""

    def rename(key: str) -> str:
        key = re.sub(r"^conv1\.", "0.", key)
        key = re.sub(r"^bn1\.", "1.", key)
        return re.sub(r"^layer([1-4])\.", lambda m: f"{first + int(m.group(1)) - 1}.", key)

    return {prefix + rename(k): v for k, v in original.items() if not k.startswith("fc.")}


@pytest.mark.parametrize(
    ("first", "pool", "relu"),
    [(4, True, True), (3, False, True), (2, False, False)],  # conv, bn, relu, maxpool | conv, bn, relu | conv, bn
)
def test_a_sequential_of_a_resnets_children_maps_back_by_position(first, pool, relu):
    original = {k: v for k, v in state(num_classes=0).items()}
    out = normalise_keys(sequential(original, first, "backbone."))
    assert_same(out.tensors, original)
    assert out.prefix == "backbone." and out.stem_pool is pool and out.stem_relu is relu
    assert any("by position" in note for note in out.notes)


def test_kuangliu_shortcut_and_linear_names_become_torchvisions():
    original = state()
    renamed = {k.replace(".downsample.", ".shortcut.").replace("fc.", "linear."): v for k, v in original.items()}
    out = normalise_keys(renamed)
    assert_same(out.tensors, original)
    assert any(note.startswith("renamed") for note in out.notes)


def test_the_online_network_is_kept_and_the_momentum_copy_dropped():
    original = state(num_classes=0)
    layout = {f"encoder_q.{k}": v for k, v in original.items()}
    layout |= {f"encoder_k.{k}": v.clone() + 1 for k, v in original.items()}
    layout["queue"] = torch.zeros(16, 8)
    out = normalise_keys(layout)
    assert_same(out.tensors, original)
    assert out.prefix == "encoder_q." and "encoder_k" in out.dropped and "queue" in out.dropped
    assert any("momentum/key copies" in note for note in out.notes)
    assert set(out.dropped_keys) == {k for k in layout if not k.startswith("encoder_q.")}


def test_a_projection_head_beside_the_backbone_is_dropped_and_named():
    original = state(num_classes=0)
    layout = {f"backbone.{k}": v for k, v in original.items()}
    layout |= {"projector.0.weight": torch.randn(16, 32), "projector.2.weight": torch.randn(8, 16)}
    out = normalise_keys(layout)
    assert_same(out.tensors, original)
    assert "projector" in out.dropped and "dropped: projector (2 tensors)" in out.notes


def test_a_classifier_beside_the_backbone_is_kept_as_its_fc():
    original = state()
    layout = {f"module.encoder.{k}": v for k, v in original.items() if not k.startswith("fc.")}
    layout |= {"module.fc.weight": original["fc.weight"], "module.fc.bias": original["fc.bias"]}
    out = normalise_keys(layout)
    assert_same(out.tensors, original)
    assert out.sibling == "module.fc" and "kept 'module.fc' as the classifier of the backbone" in out.notes


def test_an_imagenet_head_is_dropped_because_it_cannot_classify_cifar():
    original = state(num_classes=0)
    out = normalise_keys(original | {"fc.weight": torch.randn(1000, 32), "fc.bias": torch.randn(1000)})
    assert_same(out.tensors, original)
    assert any("1000-way ImageNet head" in note for note in out.notes)
    assert set(out.dropped_keys) == {"fc.weight", "fc.bias"}


def test_profiler_counters_are_dropped():
    original = state()
    out = normalise_keys(original | {"total_ops": torch.zeros(1), "layer1.0.total_params": torch.zeros(1)})
    assert_same(out.tensors, original)
    assert "thop profiler counters" in out.dropped


def test_split_batchnorm_statistics_are_averaged_over_the_splits():
    original = state()
    layout = dict(original)
    mean, var = original["bn1.running_mean"], original["bn1.running_var"]
    layout["bn1.running_mean"] = torch.cat([mean - 1, mean + 1])  # two splits around the mean
    layout["bn1.running_var"] = torch.cat([var, var + 2])
    out = normalise_keys(layout)
    torch.testing.assert_close(out.tensors["bn1.running_mean"], mean)
    torch.testing.assert_close(out.tensors["bn1.running_var"], var + 1)
    assert any("SplitBatchNorm" in note and "2 splits" in note for note in out.notes)


def test_pre_activation_namings_are_recognised_and_renamed():
    original = state(preact=True)
    out = normalise_keys(original)
    assert out.preact == "kuangliu"
    assert_same(out.tensors, original)
    bearpaw = {k.replace(".shortcut.", ".downsample.0."): v for k, v in original.items()}
    out = normalise_keys(bearpaw)
    assert out.preact == "bearpaw"
    assert_same(out.tensors, original)


def test_find_backbone_prefers_the_shortest_online_prefix():
    original = state(num_classes=0)
    layout = {f"model.{k}": v for k, v in original.items()} | {f"model.teacher.{k}": v for k, v in original.items()}
    assert find_backbone(layout) == ("model.", None)


@pytest.mark.parametrize(
    ("keys", "guess"),
    [
        (["features.0.weight", "features.2.weight", "classifier.weight"], "VGG/MobileNet/DenseNet"),
        (["blocks.0.attn.qkv.weight", "head.weight"], "a transformer"),
    ],
)
def test_something_other_than_a_resnet_is_named(keys, guess):
    layout = {k: torch.zeros(2, 2) for k in keys}
    with pytest.raises(CheckpointError, match=guess):
        find_backbone(layout)
    assert not_a_resnet_message(layout).startswith("This checkpoint is not a ResNet")


def test_the_message_lists_the_first_keys_in_natural_order():
    layout = {f"features.{i}.weight": torch.zeros(1) for i in (10, 2, 1, 3, 0)}
    message = not_a_resnet_message(layout)
    assert "found 'features.0.weight', 'features.1.weight', 'features.2.weight', 'features.3.weight' ... (5 keys)" in (
        message
    )
