"""Layers found in the graph: exactly the ResNet table for every ResNet CKA Lens reads, and on a zoo of families
(ResNet, ResNeXt, WRN, PreAct, VGG, MobileNetV2/V3, EfficientNet, RegNet, ConvNeXt, DeiT, Swin, DenseNet) every
residual block found, each read twice, the readings equal to forward hooks on the same modules."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torchvision.models.densenet import DenseNet
from torchvision.models.vgg import VGG, make_layers

from core.blocks import find_layers
from core.errors import ContractError
from core.features import FeatureExtractor
from core.names import OUTPUT, RESIDUAL, block, kind
from models import list_bundled
from models.named import timm_module
from models.resnet import ArchConfig, build_resnet, resnet_layers

CPU = torch.device("cpu")
STAGE = re.compile(r"stage\d+ output")  # a network without residual blocks: its stages
RESNETS = [
    ArchConfig(18, width=4),
    ArchConfig(18, width=4, num_classes=0),
    ArchConfig(50, width=4, stem="imagenet"),
    ArchConfig(20, width=4, stages=(3, 3, 3)),
    ArchConfig(18, width=4, stem_pool=True),
    ArchConfig(18, width=4, stem_relu=False),
    ArchConfig(18, width=4, shortcut="pad"),
    ArchConfig(18, width=4, preact=True),
    ArchConfig(18, width=4, preact=True, final_norm=True, shortcut_input="raw", stride_on_second=True),
    ArchConfig(14, width=16, stem_width=8, stages=(2, 2, 2), preact=True, final_norm=True),  # wrn-16-2
]


@pytest.mark.parametrize("config", RESNETS + [entry.arch for entry in list_bundled()], ids=lambda c: c.name)
def test_the_resnets_read_today_get_exactly_their_table(config):
    """Results shipped with the app are keyed by these names and nodes."""
    assert find_layers(build_resnet(config)) == tuple(resnet_layers(config))


def _vgg() -> nn.Module:
    """VGG-style: three conv stages, each ended by a max-pool (a small classifier instead of VGG's 100M-weight one)."""
    net = VGG(make_layers([8, "M", 16, "M", 32, 32, "M"]), num_classes=10, init_weights=False)
    net.avgpool, net.classifier = nn.AdaptiveAvgPool2d(1), nn.Linear(32, 10)
    return net


def _timm(name: str, **kwargs) -> nn.Module:
    return timm_module().create_model(name, pretrained=False, **kwargs)


def _has_skip(module: nn.Module) -> bool:
    return bool(getattr(module, "has_skip", False))


# family: (builder, image size, which modules are residual blocks (None: a network without any), their additions)
ZOO = {
    "resnet": (lambda: _timm("resnet10t"), 64, lambda m: type(m).__name__ == "BasicBlock", 1),
    "resnext": (lambda: _timm("resnext26ts"), 64, lambda m: type(m).__name__ == "BottleneckBlock", 1),
    "wrn": (lambda: build_resnet(RESNETS[-1]), 32, lambda m: type(m).__name__ == "PreActBlock", 1),
    "preact (timm resnetv2)": (lambda: _timm("resnetv2_18"), 64, lambda m: type(m).__name__ == "PreActBasic", 1),
    "vgg": (_vgg, 32, None, 0),
    "mobilenetv2": (lambda: _timm("mobilenetv2_035"), 64, _has_skip, 1),
    "mobilenetv3": (lambda: _timm("mobilenetv3_small_050"), 64, _has_skip, 1),
    "efficientnet": (lambda: _timm("efficientnet_lite0"), 64, _has_skip, 1),
    "regnet": (lambda: _timm("regnetx_002"), 64, lambda m: type(m).__name__ == "Bottleneck", 1),
    "convnext": (lambda: _timm("convnext_atto"), 64, lambda m: type(m).__name__ == "ConvNeXtBlock", 1),
    "deit": (
        lambda: _timm("deit_tiny_patch16_224", img_size=32, depth=4),
        32,
        lambda m: type(m).__name__ == "Block",
        2,
    ),
    "swin": (
        lambda: _timm("swin_tiny_patch4_window7_224", img_size=32, window_size=2, embed_dim=16, depths=(1, 1, 2, 1)),
        32,
        lambda m: type(m).__name__ == "SwinTransformerBlock",
        2,
    ),
    "densenet": (lambda: DenseNet(4, (2, 2, 2, 2), 8, num_classes=10), 32, None, 0),
}


class _Hooks:
    """Every module's output (and input) in one forward pass, and how often each module ran."""

    def __init__(self, module: nn.Module, images: torch.Tensor) -> None:
        self.outputs: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        handles = []
        for name, child in module.named_modules():
            handles.append(child.register_forward_hook(lambda _m, args, out, name=name: self._record(name, args, out)))
        try:
            with torch.no_grad():
                module(images)
        finally:
            for handle in handles:
                handle.remove()

    def _record(self, name: str, args: tuple, out: object) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if isinstance(out, torch.Tensor):  # a copy: a block may add its shortcut in place afterwards (timm's `x += s`)
            self.outputs[name] = out.clone()
        if args and isinstance(args[0], torch.Tensor):
            self.inputs[name] = args[0].clone()


def _streamed(
    module: nn.Module, layers: tuple[tuple[str, str], ...], images: torch.Tensor
) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Each layer as the engine reads it (FeatureExtractor.stream, as fingerprints do): right when it is made; and
    the layers whose channel axis the engine could not know (their pooled read-outs would be NaN)."""
    out: dict[str, torch.Tensor] = {}
    names = [name for name, _ in layers]
    extractor = FeatureExtractor(module, layers, CPU)
    extractor.stream(images, lambda j, f: out.__setitem__(names[j], f.clone()))
    return out, extractor.unknown_layout


@pytest.mark.parametrize("family", list(ZOO))
def test_every_residual_block_is_read_twice_as_forward_hooks_read_it(family):
    build, size, is_block, additions = ZOO[family]
    torch.manual_seed(0)
    module = build().eval()
    layers = find_layers(module)
    images = torch.randn(2, 3, size, size)
    read, unknown_layout = _streamed(module, layers, images)
    assert not unknown_layout  # every map and token layer of every family is pooled over its true positions
    hooks = _Hooks(module, images)
    nodes = dict(layers)

    channels_last = getattr(module, "output_fmt", "NCHW") == "NHWC"  # timm's declared layout of its maps

    def made(got: torch.Tensor) -> torch.Tensor:
        """A reading as the module makes it: the engine hands every map over as [N, C, H, W]."""
        return got.permute(0, 2, 3, 1) if channels_last and got.dim() == 4 else got

    def same(name: str, expected: torch.Tensor) -> None:
        """Equal up to float32 rounding at the tensor's scale (the engine's copy computes in channels-last)."""
        got = made(read[name])
        assert got.shape == expected.shape, name
        assert (got - expected).abs().max() <= 1e-5 * max(1.0, float(expected.abs().max())), name

    blocks = {block(n) for n in read if kind(n) in (RESIDUAL, OUTPUT) and not STAGE.fullmatch(n)}
    if is_block is None:  # no residual block: each stage's output, the map before its downsampling
        assert not blocks and [n for n in read if STAGE.fullmatch(n)]
    else:
        expected = {name for name, m in module.named_modules() if is_block(m)}
        assert blocks == expected and len(expected) >= 2
    for name in blocks:
        readings = [n for n in read if block(n) == name]
        assert len(readings) == 2 * additions and f"{name} output" in readings, readings
        same(f"{name} output", hooks.outputs[name])  # the block output: what the block module returns
        branches = [n for n in readings if kind(n) == RESIDUAL]
        for branch in branches:  # the residual branch: the module the graph reads it from, as its hook sees it
            if hooks.calls.get(nodes[branch]) == 1:
                same(branch, hooks.outputs[nodes[branch]])
            else:  # read off an operation, not a module (Swin's window reversal): only in a transformer block
                assert additions == 2, branch
        if additions == 2:  # a transformer block: input + attention branch = middle; middle + MLP branch = output
            attention, mlp = branches
            middle = next(n for n in readings if kind(n) == OUTPUT and n != f"{name} output")
            flat = hooks.inputs[name].flatten(1) + made(read[attention]).flatten(1)
            same(middle, flat.reshape(made(read[middle]).shape))
            total = made(read[middle]).flatten(1) + made(read[mlp]).flatten(1)
            same(f"{name} output", total.reshape(made(read[f"{name} output"]).shape))
    for name, node in layers:  # every other reading that a module makes once, as its hook sees it
        if hooks.calls.get(node) != 1:
            continue
        same(name, hooks.outputs[node].reshape(made(read[name]).shape))
    assert "logits" in read and read["logits"].shape == hooks.outputs[""].shape


def test_a_network_the_tracer_cannot_follow_is_refused_in_words():
    class Branching(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x  # data-dependent control flow: torch.fx cannot trace it

    with pytest.raises(ContractError, match="cannot be traced"):
        find_layers(Branching())
