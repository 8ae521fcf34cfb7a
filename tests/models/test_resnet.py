"""The ResNets CKA Lens rebuilds: their configs, forward shapes and the layers the study reads."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from models.errors import ArchitectureError
from models.resnet import ArchConfig, PadShortcut, build_resnet, resnet_layers

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def run(config: ArchConfig, x: torch.Tensor = X) -> torch.Tensor:
    with torch.no_grad():
        return build_resnet(config).eval()(x)


@pytest.mark.parametrize(
    ("config", "shape"),
    [
        (ArchConfig(depth=18, width=4), (2, 10)),
        (ArchConfig(depth=18, width=4, num_classes=0), (2, 32)),  # pooled features: 8 x width
        (ArchConfig(depth=50, width=2, num_classes=0), (2, 64)),  # bottleneck: 4 x 8 x width
        (ArchConfig(depth=20, width=4, stages=(3, 3, 3), num_classes=0), (2, 16)),  # 3 stages: 4 x width
        (ArchConfig(depth=20, width=4, stages=(3, 3, 3), shortcut="pad", num_classes=7), (2, 7)),
    ],
    ids=["resnet18", "resnet18-features", "resnet50", "resnet20", "resnet20-pad"],
)
def test_forward_shapes(config, shape):
    assert run(config).shape == shape


@pytest.mark.parametrize(
    ("config", "dim"),
    [
        (ArchConfig(depth=18, width=4), 32),
        (ArchConfig(depth=50, width=2), 64),
        (ArchConfig(depth=20, width=4, stages=(3, 3, 3)), 16),
    ],
)
def test_the_classifier_reads_the_feature_dim(config, dim):
    assert config.feature_dim == dim == build_resnet(config).fc.in_features


def test_the_study_reads_the_stem_two_layers_per_block_then_pooled_and_logits():
    config = ArchConfig(depth=18, width=4)
    names = [name for name, _ in resnet_layers(config)]
    blocks = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert names == [
        "stem",
        *(f"{blk} {part}" for blk in blocks for part in ("residual", "output")),
        "pooled",
        "logits",
    ]
    assert [name for name, _ in resnet_layers(ArchConfig(depth=18, width=4, num_classes=0))][-1] == "pooled"


@pytest.mark.parametrize(
    ("config", "residual", "output", "stem"),
    [
        (ArchConfig(depth=18, width=4), "bn2", "relu_1", "relu"),
        (ArchConfig(depth=50, width=2), "bn3", "relu_2", "relu"),
        (ArchConfig(depth=18, width=4, stem="imagenet"), "bn2", "relu_1", "maxpool"),
        (ArchConfig(depth=18, width=4, stem_pool=True), "bn2", "relu_1", "maxpool"),
    ],
)
def test_every_layer_read_is_a_node_of_the_traced_network(config, residual, output, stem):
    layers = dict(resnet_layers(config))
    assert layers["stem"] == stem and layers["layer2.1 residual"] == f"layer2.1.{residual}"
    assert layers["layer2.1 output"] == f"layer2.1.{output}"
    _, nodes = get_graph_node_names(build_resnet(config).eval())
    assert set(layers.values()) <= set(nodes)


def test_a_block_output_is_the_relu_of_its_residual_plus_its_input():
    """The nodes read are the ones the names promise: output = relu(residual + shortcut)."""
    net = build_resnet(ArchConfig(depth=18, width=4)).eval()
    layers = dict(resnet_layers(net.config))
    nodes = {"layer1.0.relu_1": "in", layers["layer1.1 residual"]: "res", layers["layer1.1 output"]: "out"}
    with torch.no_grad():
        got = create_feature_extractor(net, nodes)(X)
    torch.testing.assert_close(got["out"], torch.relu(got["res"] + got["in"]))


def test_feature_map_sizes_per_stem():
    def stem_size(config: ArchConfig) -> int:
        with torch.no_grad():
            out = create_feature_extractor(build_resnet(config).eval(), {dict(resnet_layers(config))["stem"]: "s"})(X)
        return out["s"].shape[-1]

    assert stem_size(ArchConfig(depth=18, width=4)) == 32
    assert stem_size(ArchConfig(depth=18, width=4, stem_padding=2)) == 34  # solo-learn's padding grows the map
    assert stem_size(ArchConfig(depth=18, width=4, stem_pool=True)) == 16
    assert stem_size(ArchConfig(depth=18, width=4, stem="imagenet")) == 8


def test_the_pad_shortcut_subsamples_and_adds_zero_channels_on_both_sides():
    x = torch.randn(1, 4, 6, 6)
    out = PadShortcut(4, 10, 2)(x)
    assert out.shape == (1, 10, 3, 3)
    torch.testing.assert_close(out[:, 3:7], x[:, :, ::2, ::2])
    assert out[:, :3].abs().sum() == 0 and out[:, 7:].abs().sum() == 0
    assert not any(True for _ in PadShortcut(4, 10, 2).parameters())


def test_a_pad_shortcut_network_has_no_shortcut_weights():
    keys = build_resnet(ArchConfig(depth=20, width=4, stages=(3, 3, 3), shortcut="pad")).state_dict()
    assert not any("downsample" in k for k in keys)
    assert any("downsample" in k for k in build_resnet(ArchConfig(depth=20, width=4, stages=(3, 3, 3))).state_dict())


def test_torchvisions_parameter_names():
    keys = build_resnet(ArchConfig(depth=18, width=4)).state_dict().keys()
    assert {
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "fc.weight",
    } <= keys


@pytest.mark.parametrize(
    ("config", "name"),
    [
        (ArchConfig(depth=18, width=64), "resnet18"),
        (ArchConfig(depth=18, width=16), "resnet18-w16"),
        (ArchConfig(depth=56, width=16, stages=(9, 9, 9)), "resnet56"),
        (ArchConfig(depth=18, width=64, preact=True), "preact-resnet18"),
        (ArchConfig(depth=14, width=64, stages=(2, 2, 2), stem_width=16, preact=True), "wrn-16-4"),
    ],
)
def test_names(config, name):
    assert config.name == name


def test_stem_kinds():
    assert ArchConfig(depth=18).stem_kind == "cifar"
    assert ArchConfig(depth=18, stem_pool=True).stem_kind == "cifar-maxpool"
    assert ArchConfig(depth=18, stem="imagenet").stem_kind == "imagenet"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"depth": 19}, "depth must be one of"),
        ({"depth": 18, "stages": (2, 2)}, "stages must be 3 or 4 positive block counts"),
        ({"depth": 16, "stages": (2, 2, 2)}, r"depth 16 does not match \(2, 2, 2\) blocks per stage"),
        ({"stem": "vit"}, "stem must be 'cifar' or 'imagenet'"),
        ({"width": 0}, "width must be >= 1"),
        ({"shortcut": "identity"}, "shortcut must be one of"),
        ({"depth": 50, "preact": True}, "pre-activation bottleneck ResNets are not supported"),
    ],
)
def test_impossible_configs_are_refused_with_the_reason(fields, message):
    with pytest.raises(ArchitectureError, match=message):
        ArchConfig(**fields)
