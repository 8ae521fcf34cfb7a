"""Every map leaves the feature path channels first, its channel axis read from the network's own operations, so
spatial pooling averages the true spatial axes; a map whose layout cannot be known is said to be, never guessed."""

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
from core.comparison import finalize, pair_terms
from core.errors import ResultFileError
from core.features import FeatureExtractor
from core.fingerprint import READOUT_TERMS, fingerprint, spatial_mean
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


class _Rotate(nn.Module):
    """An operation whose effect on the layout the engine does not know (a rotation of two axes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rot90(x, 1, (1, 2))


@dataclass(frozen=True)
class _Net:
    module: nn.Module
    identity: ModelIdentity
    layers: tuple[tuple[str, str], ...] = (("conv", "1"), ("rotated", "2"), ("logits", "5"))
    mean: tuple = MEAN
    std: tuple = STD


def test_a_map_of_unknowable_layout_is_said_to_be_and_its_pooled_readouts_are_nan(tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), _Rotate(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    )
    net = _Net(module.eval(), ModelIdentity("test:rot", "0" * 64, "supervised", "rot"))
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
    same_net = replace(net, layers=(("conv", "1"), ("logits", "5")))
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
    rotating = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), _Rotate(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    )
    odd = _Net(rotating.eval(), ModelIdentity("test:rot", "0" * 64, "supervised", "rot"))
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
