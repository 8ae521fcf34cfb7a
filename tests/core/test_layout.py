"""Every map leaves the feature path channels first and every 3-D output as tokens [N, T, C], its channel axis read
from the network's own operations, so pooling averages the true positions; an output whose layout cannot be known
is said to be, never guessed."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.models.swin_transformer import SwinTransformer

from core.blocks import find_layers, tracer_kwargs
from core.cka import centred_rows
from core.comparison import finalize, pair_terms
from core.errors import ResultFileError
from core.features import FeatureExtractor
from core.fingerprint import READOUT_TERMS, fingerprint, spatial_mean
from core.layout import hooked_channel_axis
from core.network import ModelIdentity
from core.options import AnalysisOptions
from core.probes import pool_features
from core.result import from_json_dict, to_json_dict
from core.store import Store, fingerprint_key
from models.named import timm_module
from tests.core.tiny import MEAN, STD, tiny_subset

CPU = torch.device("cpu")


def _timm_swin() -> nn.Module:
    """timm's Swin-T, shrunk (32 px, 2 x 2 windows, width 16): maps [N, H, W, C], as its `output_fmt` says."""
    torch.manual_seed(0)
    return (
        timm_module()
        .create_model(
            "swin_tiny_patch4_window7_224",
            pretrained=False,
            img_size=32,
            window_size=2,
            embed_dim=16,
            depths=(1, 1, 2, 1),
        )
        .eval()
    )


def _torchvision_swin() -> nn.Module:
    """torchvision's Swin, shrunk the same way: its stages end in a permute to [N, H, W, C] and a LayerNorm."""
    torch.manual_seed(0)
    return SwinTransformer([4, 4], 16, [1, 1, 2, 1], [1, 1, 2, 2], [2, 2], num_classes=10).eval()


def _streamed(module: nn.Module, layers, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], FeatureExtractor]:
    out: dict[str, torch.Tensor] = {}
    names = [name for name, _ in layers]
    extractor = FeatureExtractor(module, layers, CPU)
    extractor.stream(images, lambda j, f: out.__setitem__(names[j], f.clone()))
    return out, extractor


def _stage_outputs(module: nn.Module, stages: list[str], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each stage module's output as its forward hook sees it (channels last in both Swins)."""
    seen: dict[str, torch.Tensor] = {}
    modules = dict(module.named_modules())
    handles = [modules[s].register_forward_hook(lambda _m, _i, o, s=s: seen.__setitem__(s, o.clone())) for s in stages]
    try:
        with torch.no_grad():
            module(images)
    finally:
        for handle in handles:
            handle.remove()
    return seen


# family: (builder, its stage modules, the reading of each stage's last block output)
SWINS = {
    "timm": (
        _timm_swin,
        [f"layers.{k}" for k in range(4)],
        [f"layers.{k}.blocks.{b} output" for k, b in enumerate((0, 0, 1, 0))],
    ),
    "torchvision": (
        _torchvision_swin,
        [f"features.{k}" for k in (1, 3, 5, 7)],
        [f"features.{k}.{b} output" for k, b in zip((1, 3, 5, 7), (0, 0, 1, 0), strict=True)],
    ),
}


@pytest.mark.parametrize("family", list(SWINS))
def test_each_swin_stage_is_pooled_over_its_true_spatial_axes(family):
    build, stages, readings = SWINS[family]
    module = build()
    if family == "timm":
        assert module.output_fmt == "NHWC"  # what the module itself says of its maps
    layers = find_layers(module)
    images = torch.randn(2, 3, 32, 32)
    read, extractor = _streamed(module, layers, images)
    truth = _stage_outputs(module, stages, images)
    assert not extractor.unknown_layout
    for stage, name in zip(stages, readings, strict=True):
        made = truth[stage]  # [N, H, W, C]
        got = read[name]
        assert got.shape == made.permute(0, 3, 1, 2).shape, name  # handed over channels first
        torch.testing.assert_close(spatial_mean(got), made.mean((1, 2)), rtol=1e-5, atol=1e-5)
        grid = F.adaptive_avg_pool2d(made.permute(0, 3, 1, 2), 2).flatten(1)
        torch.testing.assert_close(pool_features(got), grid, rtol=1e-5, atol=1e-5)


def test_a_channels_first_network_is_handed_over_exactly_as_the_network_makes_it():
    torch.manual_seed(0)
    module = timm_module().create_model("resnet10t", pretrained=False).eval()
    layers = find_layers(module)
    images = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    read, extractor = _streamed(module, layers, images)
    graph = create_feature_extractor(
        FeatureExtractor(module, layers, CPU)._prepared.module, {n: n for _, n in layers}, tracer_kwargs=tracer_kwargs()
    )
    with torch.inference_mode():
        direct = graph(images)
    assert not extractor.unknown_layout
    for name, node in layers:
        assert torch.equal(read[name], direct[node]), name  # to the bit: no permute, no copy of another layout


class _Block1d(nn.Module):
    """A residual block of a sequence network: x + BatchNorm1d(Conv1d(x)), then a ReLU; [N, C, L] in and out."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=1)
        self.norm = nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.norm(self.conv(x)))


class _Sequence1d(nn.Module):
    """Images cut into 4 x 4 patches flattened to a sequence [N, C, L] (channels first, never transposed), two
    residual Conv1d blocks, the mean over L, a classifier. `untraceable`: a data-dependent branch that torch.fx
    cannot follow, so that the network is read through forward hooks."""

    def __init__(self, untraceable: bool = False) -> None:
        super().__init__()
        self.untraceable = untraceable
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.blocks = nn.Sequential(_Block1d(8), _Block1d(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2)
        if self.untraceable and float(x.abs().max()) < 0:  # never taken; torch.fx cannot trace the test
            x = -x
        return self.head(self.blocks(x).mean(2))


@pytest.mark.parametrize("path", ["traced", "hooked"])
def test_a_sequence_made_channels_first_is_pooled_over_its_positions(path):
    torch.manual_seed(0)
    module = _Sequence1d(untraceable=path == "hooked").eval()
    for norm in (module.blocks[0].norm, module.blocks[1].norm):  # running statistics that change the values
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
    blocks = ["blocks.0", "blocks.1"]
    if path == "traced":
        layers = find_layers(module)
    else:  # read through hooks on modules: each block's Conv1d, its BatchNorm1d (the residual branch), the block
        readings = (("conv", ".conv"), ("residual", ".norm"), ("output", ""))
        layers = tuple((f"{b} {r}", b + m) for b in blocks for r, m in readings)
    nodes = dict(layers)
    images = torch.randn(4, 3, 16, 16)
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    read, extractor = _streamed(module, layers, images)
    # read in eval mode, the network left as it was (a failed trace once left the hooked copy in training mode:
    # batch statistics read, and the running statistics it shares with the network updated)
    assert all(torch.equal(v, weights[k]) for k, v in module.state_dict().items())
    truth = _stage_outputs(module, ["embed"] + blocks + [f"{b}.{m}" for b in blocks for m in ("conv", "norm")], images)
    made = {f"{b} residual": truth[nodes[f"{b} residual"]] for b in blocks}
    if path == "traced":  # the graph says what each block does
        assert not extractor.unknown_layout
        made |= {f"{b} output": truth[b] for b in blocks}
        made["stem"] = truth["embed"].flatten(2)  # the first block's input: the flattened patches
    else:  # through hooks only a module's kind says its layout: a block of the network's own says nothing
        assert extractor.unknown_layout == {f"{b} output" for b in blocks}
        made |= {f"{b} conv": truth[nodes[f"{b} conv"]] for b in blocks}
    for name, sequence in made.items():
        assert sequence.shape == (4, 8, 16), name  # as made: 8 channels, 16 positions
        got = read[name]
        assert got.shape == (4, 16, 8), name  # handed over as tokens [N, T, C]
        torch.testing.assert_close(spatial_mean(got), sequence.mean(2), rtol=1e-5, atol=1e-5)
        first_and_rest = torch.cat([sequence[:, :, 0], sequence[:, :, 1:].mean(2)], 1)
        torch.testing.assert_close(pool_features(got), first_and_rest, rtol=1e-5, atol=1e-5)
        # CKA's flattened reading: the transpose reorders every image's feature columns the same way, which leaves
        # the linear and the RBF Gram as they are
        for kernel in ("linear", "rbf"):
            rows = centred_rows([got], kernel=kernel)
            torch.testing.assert_close(rows, centred_rows([sequence], kernel=kernel), rtol=1e-4, atol=1e-6)


def test_read_through_hooks_a_modules_kind_and_the_rank_of_its_output_give_its_channel_axis():
    assert hooked_channel_axis(nn.LayerNorm(8), 3) == 2 and hooked_channel_axis(nn.LayerNorm(8), 4) == 3
    assert hooked_channel_axis(nn.Linear(8, 8), 2) == 1 and hooked_channel_axis(nn.LayerNorm((4, 8)), 3) is None
    for module in (nn.Conv1d(8, 8, 3), nn.BatchNorm1d(8), nn.AvgPool1d(2), nn.AdaptiveAvgPool1d(1), nn.MaxPool1d(2)):
        assert hooked_channel_axis(module, 3) == 1, module
    assert hooked_channel_axis(nn.BatchNorm1d(8), 2) == 1  # on vectors [N, C] as well
    embed = timm_module().layers.PatchEmbed(img_size=32, patch_size=8, in_chans=3, embed_dim=8)
    assert embed(torch.randn(1, 3, 32, 32)).shape == (1, 16, 8)  # [N, L, C], though it declares NCHW
    assert hooked_channel_axis(embed, 3) is None  # a declared 4-D format says nothing of a 3-D output
    assert hooked_channel_axis(embed, 4) == 1
    channels_last = timm_module().layers.PatchEmbed(img_size=32, patch_size=8, embed_dim=8, output_fmt="NHWC")
    assert hooked_channel_axis(channels_last, 4) == 3


def test_a_vits_tokens_are_handed_over_as_the_network_makes_them():
    torch.manual_seed(0)
    module = (
        timm_module()
        .create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=24, depth=2)
        .eval()
    )
    layers = find_layers(module)
    nodes = dict(layers)
    images = torch.randn(2, 3, 32, 32)
    read, extractor = _streamed(module, layers, images)
    modules = dict(module.named_modules())
    hooked = [n for n in read if nodes[n] in modules and read[n].dim() == 3]  # every token reading of a module
    blocks = ["blocks.0", "blocks.1"]
    truth = _stage_outputs(module, blocks + [nodes[n] for n in hooked], images)
    assert not extractor.unknown_layout
    made = {f"{b} output": truth[b] for b in blocks} | {n: truth[nodes[n]] for n in hooked}
    assert len(made) >= 6  # both block outputs, both blocks' two branches, the final norm
    for name, tokens in made.items():
        assert tokens.shape == (2, 17, 24), name  # the class token and 16 patches, 24 channels
        got = read[name]
        assert got.shape == tokens.shape, name  # as made: tokens [N, T, C]
        torch.testing.assert_close(got, tokens, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(spatial_mean(got), tokens.mean(1), rtol=1e-5, atol=1e-5)
        class_and_rest = torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], 1)
        torch.testing.assert_close(pool_features(got), class_and_rest, rtol=1e-5, atol=1e-5)


def test_a_mixers_token_mixing_branch_is_pooled_over_its_tokens():
    """An MLP-Mixer mixes tokens with Linear layers over the last axis of [N, C, T], then transposes back: the
    channels stay at axis 1 through those layers, so the branch is tokens [N, T, C], handed over as made."""
    torch.manual_seed(0)
    mixer = timm_module().models.MlpMixer(num_classes=10, img_size=32, patch_size=8, num_blocks=2, embed_dim=24)
    module = mixer.eval()
    images = torch.randn(2, 3, 32, 32)
    read, extractor = _streamed(module, find_layers(module), images)
    truth = _stage_outputs(module, ["stem", "blocks.0"], images)
    assert not extractor.unknown_layout
    for k, given in enumerate((truth["stem"], truth["blocks.0"])):  # each block's input
        block = module.blocks[k]
        with torch.no_grad():
            mixed = block.mlp_tokens(block.norm1(given).transpose(1, 2)).transpose(1, 2)
        got = read[f"blocks.{k} mlp_tokens branch"]
        assert got.shape == mixed.shape == (2, 16, 24)  # 16 patches, 24 channels
        torch.testing.assert_close(got, mixed, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(spatial_mean(got), mixed.mean(1), rtol=1e-5, atol=1e-5)


class _Rotate(nn.Module):
    """An operation whose effect on the layout the engine does not know (a rotation of two axes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rot90(x, 1, (1, 2))


@dataclass(frozen=True)
class _Net:
    module: nn.Module
    identity: ModelIdentity
    layers: tuple[tuple[str, str], ...]
    mean: tuple = MEAN
    std: tuple = STD


# output rank: (a network that rotates two axes of a layer's output, the layers read: a convolution's output,
# the rotated one, the logits)
ROTATING = {
    "map": (
        lambda: nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), _Rotate(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
        ),
        (("conv", "1"), ("rotated", "2"), ("logits", "5")),
    ),
    "sequence": (  # [N, C, L] after a Conv1d, rotated to [N, L, C] by an operation the engine does not know
        lambda: nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.Flatten(2),
            nn.Conv1d(8, 8, 3, padding=1),
            _Rotate(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        ),
        (("conv", "2"), ("rotated", "3"), ("logits", "6")),
    ),
}


@pytest.mark.parametrize("rank", list(ROTATING))
def test_an_output_of_unknowable_layout_is_said_to_be_and_its_pooled_readouts_are_nan(tmp_path, rank):
    torch.manual_seed(0)
    build, layers = ROTATING[rank]
    net = _Net(build().eval(), ModelIdentity(f"test:rot-{rank}", "0" * 64, "supervised", "rot"), layers)
    options = AnalysisOptions(batch_size=8, permutations=0, probes=True, invariance=True)
    fp = fingerprint(net, tiny_subset(16, size=8), options, CPU)
    assert fp.unknown_layout == ("rotated",)
    pooled_rows = [READOUT_TERMS.index(t) for t in ("pooled_cross", "pooled_self_x", "pooled_self_t")]
    for terms in fp.batch_readouts:
        assert terms[pooled_rows, 1].isnan().all() and terms[pooled_rows][:, [0, 2]].isfinite().all()
    assert all(part.isnan().all() for part in fp.pooled[1]) and all(part.isfinite().all() for part in fp.pooled[0])
    assert fp.inv_cross[1].isfinite() and fp.label_hsic[1].isfinite()  # flattened CKA needs no layout
    store = Store(tmp_path, 10**8)
    key = fingerprint_key(net.identity.key, tiny_subset(16, size=8).spec, options)
    store.put_fingerprint(key, fp)
    assert Store(tmp_path, 10**8).fingerprint(key).unknown_layout == ("rotated",)  # a cached one says so too
    same_net = replace(net, layers=(layers[0], layers[2]))
    assert fingerprint(same_net, tiny_subset(16, size=8), options, CPU).unknown_layout == ()


class _Tokens(nn.Module):
    """A map [N, C, H, W] as tokens [N, T, C], as a ViT's patch embedding makes them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class _MeanTokens(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1)


def test_a_result_names_each_models_token_layers_and_layers_of_unknown_layout_and_reads_them_back(tmp_path):
    """What the pages need to say what a token layer's readings hold and why a pooled read-out is missing: from the
    layers' outputs as the network makes them, through a cached fingerprint and the result file; a file written
    before results held them opens with none."""
    torch.manual_seed(0)
    tokens = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _Tokens(), nn.LayerNorm(8), _MeanTokens(), nn.Linear(8, 10))
    layers = (("conv", "0"), ("tokens", "2"), ("logits", "4"))
    vit_like = _Net(tokens.eval(), ModelIdentity("test:tokens", "1" * 64, "supervised", "tokens"), layers)
    build, rotated = ROTATING["map"]
    odd = _Net(build().eval(), ModelIdentity("test:rot", "0" * 64, "supervised", "rot"), rotated)
    options = AnalysisOptions(batch_size=8, permutations=0, probes=False, invariance=False)
    subset = tiny_subset(16, size=8)
    fa, fb = (fingerprint(net, subset, options, CPU) for net in (vit_like, odd))
    assert (fa.tokens, fb.tokens) == (("tokens",), ())
    store = Store(tmp_path, 10**8)
    key = fingerprint_key(vit_like.identity.key, subset.spec, options)
    store.put_fingerprint(key, fa)
    assert Store(tmp_path, 10**8).fingerprint(key).tokens == ("tokens",)  # a cached one says so too
    result = finalize(fa, fb, pair_terms(fa, fb, CPU), subset.spec, with_readouts=False)
    fields = ("tokens_a", "tokens_b", "unknown_layout_a", "unknown_layout_b")
    assert [getattr(result, f) for f in fields] == [("tokens",), (), (), ("rotated",)]
    data = json.loads(json.dumps(to_json_dict(result)))
    back = from_json_dict(data)
    assert [getattr(back, f) for f in fields] == [("tokens",), (), (), ("rotated",)]
    older = from_json_dict({k: v for k, v in data.items() if k not in fields})
    assert [getattr(older, f) for f in fields] == [(), (), (), ()]
    with pytest.raises(ResultFileError, match="its unknown_layout_b is not a list of that model's layers"):
        from_json_dict(data | {"unknown_layout_b": ["tokens"]})  # a layer of A, not of B
