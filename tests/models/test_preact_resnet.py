"""Pre-activation ResNets and Wide ResNets: shapes, the options a state dict cannot show, and the layers read."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from models.preact_resnet import PreActBlock, PreActResNet
from models.resnet import ArchConfig, build_resnet, resnet_layers

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
BASE = {"depth": 18, "width": 4, "preact": True}


def randomised(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics, so a block's two inputs (raw and pre-activated) differ clearly."""
    torch.manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.bias.normal_(0, 0.5)
    return net.eval()


def test_build_resnet_gives_a_pre_activation_network_for_a_preact_config():
    net = build_resnet(ArchConfig(**BASE))
    assert isinstance(net, PreActResNet) and isinstance(net.layer1[0], PreActBlock)
    assert "bn1.weight" not in net.state_dict()  # no stem BatchNorm


@pytest.mark.parametrize(
    ("fields", "shape"),
    [
        ({}, (2, 10)),
        ({"num_classes": 0}, (2, 32)),
        ({"final_norm": True, "stride_on_second": True, "conv_bias": True}, (2, 10)),
        ({"depth": 14, "stages": (2, 2, 2), "width": 8, "stem_width": 2, "num_classes": 0}, (2, 32)),
    ],
    ids=["resnet18", "features", "meliketoy-like", "wide"],
)
def test_forward_shapes(fields, shape):
    with torch.no_grad():
        assert build_resnet(ArchConfig(**(BASE | fields))).eval()(X).shape == shape


def test_the_shortcut_input_changes_the_output_with_the_same_weights():
    pre = randomised(build_resnet(ArchConfig(**BASE)))
    raw = build_resnet(ArchConfig(**BASE, shortcut_input="raw")).eval()
    raw.load_state_dict(pre.state_dict())
    with torch.no_grad():
        assert not torch.allclose(pre(X), raw(X), atol=1e-4)


def test_which_conv_strides_changes_the_output_but_not_the_weights():
    first = randomised(build_resnet(ArchConfig(**BASE)))
    second = build_resnet(ArchConfig(**BASE, stride_on_second=True)).eval()
    second.load_state_dict(first.state_dict())  # the same names and shapes
    with torch.no_grad():
        assert not torch.allclose(first(X), second(X), atol=1e-4)


def test_an_identity_block_adds_its_input_to_its_branch():
    block = PreActBlock(4, 4, 1, ArchConfig(**BASE)).eval()
    assert block.shortcut is None
    with torch.no_grad():
        block.conv2.weight.zero_()  # no branch: the block passes its input through
        x = torch.randn(2, 4, 8, 8)
        torch.testing.assert_close(block(x), x)


def test_a_projection_block_downsamples_and_widens():
    block = PreActBlock(4, 8, 2, ArchConfig(**BASE)).eval()
    assert block.shortcut is not None and block.shortcut.stride == (2, 2)
    with torch.no_grad():
        assert block(torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)


@pytest.mark.parametrize("final_norm", [False, True])
def test_every_layer_read_is_a_node_and_the_output_node_is_the_sum(final_norm):
    config = ArchConfig(**BASE, final_norm=final_norm)
    net = randomised(build_resnet(config))
    layers = dict(resnet_layers(config))
    assert ("final norm" in layers) == final_norm
    _, nodes = get_graph_node_names(net)
    assert set(layers.values()) <= set(nodes)
    wanted = {layers["layer1.1 residual"]: "res", layers["layer1.1 output"]: "out", layers["layer1.0 output"]: "in"}
    with torch.no_grad():
        got = create_feature_extractor(net, wanted)(X)
    torch.testing.assert_close(got["out"], got["res"] + got["in"])  # no ReLU after the addition


def test_canonical_parameter_names():
    keys = build_resnet(ArchConfig(**BASE, final_norm=True)).state_dict().keys()
    assert {"conv1.weight", "layer1.0.bn1.weight", "layer2.0.shortcut.weight", "bn.weight", "fc.weight"} <= keys
    assert "layer1.0.shortcut.weight" not in keys
