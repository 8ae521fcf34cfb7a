"""Reading a ResNet's architecture off its canonically named weights."""

from __future__ import annotations

import json

import pytest
import torch

from models import load_uploaded
from models.arch_inference import candidate_signatures, infer_arch, infer_named
from models.errors import CheckpointError
from models.resnet import ArchConfig, build_resnet


def weights(config: ArchConfig) -> dict[str, torch.Tensor]:
    return build_resnet(config).state_dict()


@pytest.mark.parametrize(
    "config",
    [
        ArchConfig(depth=18, width=4),
        ArchConfig(depth=18, width=4, num_classes=0),
        ArchConfig(depth=34, width=2, num_classes=100),
        ArchConfig(depth=50, width=2),
        ArchConfig(depth=18, width=4, stem="imagenet"),
        ArchConfig(depth=20, width=4, stages=(3, 3, 3), shortcut="pad"),
        ArchConfig(depth=14, width=4, stages=(2, 2, 2)),
        ArchConfig(depth=10, width=4, stages=(1, 1, 1, 1)),
    ],
    ids=lambda c: c.name + ("-pad" if c.shortcut == "pad" else "") + f"-{c.stem}-{c.num_classes}",
)
def test_a_post_activation_networks_weights_give_back_its_config(config):
    assert infer_arch(weights(config)) == config


def test_what_the_weights_cannot_show_comes_from_the_arguments():
    config = ArchConfig(depth=18, width=4, stem_padding=2, stem_pool=True, stem_relu=False)
    assert infer_arch(weights(config), stem_padding=2, stem_pool=True, stem_relu=False) == config


def test_an_imagenet_stem_ignores_cifar_stem_choices():
    inferred = infer_arch(weights(ArchConfig(depth=18, width=4, stem="imagenet")), stem_padding=2, stem_pool=True)
    assert inferred.stem == "imagenet" and inferred.stem_padding == 1 and not inferred.stem_pool


@pytest.mark.parametrize(
    ("naming", "shortcut_input", "stride_on_second"),
    [("kuangliu", "pre", False), ("bearpaw", "raw", False), ("meliketoy", "raw", True)],
)
def test_a_pre_activation_naming_sets_what_its_forward_pass_does(naming, shortcut_input, stride_on_second):
    config = ArchConfig(depth=18, width=4, preact=True, final_norm=True)
    inferred = infer_arch(weights(config), preact=naming)
    assert inferred.preact and inferred.final_norm and inferred.width == 4
    assert inferred.shortcut_input == shortcut_input and inferred.stride_on_second == stride_on_second
    assert naming in inferred.dialect.lower()


def test_a_wide_resnet_is_wider_than_its_stem():
    config = ArchConfig(depth=14, width=16, stages=(2, 2, 2), stem_width=4, preact=True)
    inferred = infer_arch(weights(config), preact="kuangliu")
    assert (inferred.width, inferred.stem_width, inferred.stages) == (16, 4, (2, 2, 2))
    assert inferred.name == "wrn-16-4"


def test_a_stem_that_is_not_rgb_is_refused_with_its_shape():
    tensors = weights(ArchConfig(depth=18, width=4))
    tensors["conv1.weight"] = torch.zeros(4, 1, 3, 3)
    with pytest.raises(CheckpointError, match=r"conv1.weight has shape \(4, 1, 3, 3\), not \(width, 3, k, k\)"):
        infer_arch(tensors)


def test_an_unknown_stem_kernel_is_refused():
    tensors = weights(ArchConfig(depth=18, width=4))
    tensors["conv1.weight"] = torch.zeros(4, 3, 5, 5)
    with pytest.raises(CheckpointError, match="conv1 is 5x5"):
        infer_arch(tensors)
    tensors["conv1.weight"] = torch.zeros(4, 3, 7, 7)
    with pytest.raises(CheckpointError, match="conv1 is 7x7"):
        infer_arch(tensors, preact="kuangliu")  # no pre-activation network has the ImageNet stem


def test_missing_blocks_are_named_as_a_layout_no_resnet_has():
    tensors = {k: v for k, v in weights(ArchConfig(depth=18, width=4)).items() if not k.startswith("layer3.1.")}
    with pytest.raises(CheckpointError, match=r"\(2, 2, 1, 2\) BasicBlocks per stage, which no standard ResNet has"):
        infer_arch(tensors)


def test_three_stages_of_unequal_length_are_refused():
    tensors = weights(ArchConfig(depth=20, width=4, stages=(3, 3, 3)))
    tensors = {k: v for k, v in tensors.items() if not k.startswith("layer2.2.")}
    with pytest.raises(CheckpointError, match=r"\(3, 2, 3, 0\) BasicBlocks"):
        infer_arch(tensors)


# --- architectures by name, from keys and shapes ---------------------------------------------------------------------


def _timm_state(name: str, **kwargs) -> dict[str, torch.Tensor]:
    import timm

    return timm.create_model(name, pretrained=False, **kwargs).state_dict()


@pytest.mark.parametrize("classes", [10, 0])
def test_a_vit_is_inferred_with_its_classes(classes):
    inferred = infer_named(_timm_state("vit_tiny_patch16_224", num_classes=classes))
    assert (inferred.arch, inferred.num_classes) == ("timm:vit_tiny_patch16_224", classes)
    assert "inferred from the weights" in inferred.note and "timm:vit_tiny_patch16_224" in inferred.note


def test_a_wrapper_prefix_is_stripped_and_said():
    state = {f"module.{k}": v for k, v in _timm_state("vit_tiny_patch16_224", num_classes=10).items()}
    inferred = infer_named(state)
    assert inferred.arch == "timm:vit_tiny_patch16_224"
    assert set(inferred.tensors) == {k.removeprefix("module.") for k in state}
    assert "under 'module.'" in inferred.note


def test_a_torchvision_network_is_told_from_timms():
    import torchvision

    state = torchvision.models.mobilenet_v3_large(num_classes=10).state_dict()
    assert infer_named(state).arch == "torchvision:mobilenet_v3_large"


def test_one_wrong_shape_or_missing_tensor_matches_nothing():
    state = _timm_state("vit_tiny_patch16_224", num_classes=10)
    assert infer_named(state | {"pos_embed": torch.zeros(1, 50, 192)}) is None
    assert infer_named({k: v for k, v in state.items() if k != "blocks.11.mlp.fc2.weight"}) is None


def test_a_resnet_is_left_to_the_resnet_reader():
    assert infer_named(weights(ArchConfig(depth=18, width=4))) is None


def test_two_fitting_candidates_are_never_decided_between():
    """DeiT-Ti's weights are ViT-Ti/16's tensor for tensor: with both listed, the file names no architecture."""
    candidates = ("timm:vit_tiny_patch16_224", "timm:deit_tiny_patch16_224")
    with pytest.raises(CheckpointError, match=r"fit timm:vit_tiny_patch16_224 and timm:deit_tiny_patch16_224.*#arch="):
        infer_named(_timm_state("vit_tiny_patch16_224"), candidates=candidates)


def test_signatures_are_kept_on_disk_for_the_next_process(tmp_path):
    built = candidate_signatures(tmp_path, ("timm:vit_tiny_patch16_224",))
    (file,) = tmp_path.glob("architectures-timm*.json")
    saved = json.loads(file.read_text())
    assert list(saved) == ["timm:vit_tiny_patch16_224"]
    assert saved["timm:vit_tiny_patch16_224"]["head"] == {"head.weight": [192], "head.bias": []}
    assert len(built[0].body) == len(_timm_state("vit_tiny_patch16_224")) - 2


def test_an_upload_of_a_common_architecture_loads_as_it_and_says_it_was_inferred():
    import timm
    from safetensors.torch import save

    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10).eval()
    loaded = load_uploaded(save(net.state_dict()), "mystery.safetensors")
    info = loaded.info
    assert (info.arch.name, info.num_classes, info.input_config.size) == ("timm:vit_tiny_patch16_224", 10, (224, 224))
    assert any(note.startswith("architecture inferred from the weights") for note in info.notes)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), net(x))
