"""A loaded network and what is known about it: merged hints, its label, and the identity a result records."""

from __future__ import annotations

import torch

from core.features import FeatureExtractor
from models.loaded import LoadedModel, ModelInfo, SourceHints
from models.resnet import ArchConfig, resnet_layers

ARCH = ArchConfig(depth=18, width=4, stem_padding=2)


def info(**changes) -> ModelInfo:
    fields = {
        "arch": ARCH,
        "stem": ARCH.stem_kind,
        "method": "supervised",
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.247, 0.2435, 0.2616),
        "num_classes": 10,
        "source": "file:/tmp/run",
        "sha256": "f" * 64,
        "notes": (),
        "metrics": {},
        "layers": tuple(resnet_layers(ARCH)),
    }
    return ModelInfo(**(fields | changes))


def test_hints_fill_their_gaps_from_the_fallback():
    config = SourceHints(method="simclr", stem_padding=0, metrics={"knn": 0.7}, notes=("from config",), origin="c")
    registry = SourceHints(
        method="supervised",
        mean=(0.5, 0.5, 0.5),
        stem_padding=2,
        stem_pool=True,
        metrics={"knn": 0.1, "probe": 0.8},
        notes=("from registry",),
        origin="r",
    )
    merged = config.merged_over(registry)
    assert merged.method == "simclr" and merged.mean == (0.5, 0.5, 0.5) and merged.std is None
    assert merged.stem_padding == 0  # a stated 0 is kept, not taken for a gap
    assert merged.stem_pool is True
    assert merged.metrics == {"knn": 0.7, "probe": 0.8}
    assert merged.notes == ("from registry", "from config") and merged.origin == "c"


def test_stated_false_is_not_a_gap():
    assert SourceHints(stem_pool=False).merged_over(SourceHints(stem_pool=True)).stem_pool is False
    assert SourceHints().merged_over(SourceHints(stem_pool=True, origin="r")).origin == "r"


def test_label_names_method_architecture_and_source():
    assert info().label == "supervised resnet18-w4 (file:/tmp/run)"


def test_a_loaded_model_is_in_eval_mode_with_channels_last_weights(nets):
    module = nets.make(width=4).train()
    model = LoadedModel(module, info())
    assert not model.module.training
    assert model.module.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.layers == info().layers and model.mean == info().mean and model.std == info().std


def test_the_identity_records_the_weights_and_how_they_were_read(nets):
    identity = LoadedModel(nets.make(width=4), info()).identity
    assert (identity.source, identity.sha256, identity.method, identity.arch) == (
        "file:/tmp/run",
        "f" * 64,
        "supervised",
        "resnet18-w4",
    )
    assert identity.reading == "cifar stem, padding 2; mean 0.4914,0.4822,0.4465; std 0.2470,0.2435,0.2616"


def test_the_same_weights_read_with_another_normalisation_are_another_network(nets):
    module = nets.make(width=4)
    one = LoadedModel(module, info()).identity
    other = LoadedModel(module, info(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))).identity
    assert one.sha256 == other.sha256 and one.key != other.key


def test_the_engine_reads_every_layer_of_a_loaded_model(nets):
    model = LoadedModel(nets.make(width=4), info())
    out = FeatureExtractor(model.module, model.layers, torch.device("cpu"))(torch.randn(2, 3, 32, 32))
    assert len(out) == len(model.layers) == 19 and out[-1].shape == (2, 10)
