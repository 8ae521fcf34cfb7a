"""Checkpoints in the exact layouts that public CIFAR-10 codebases save load as the networks they came from.

Each layout (tests/models/layouts/) builds the source network as its codebase defines it, with random
weights and BatchNorm statistics, and writes the file as its training script does. Faithful means: the
network CKA Lens rebuilds gives the same outputs (logits, or pooled features where the head is dropped)
on the same input, and the method and stem are named right. Layouts the loader cannot read faithfully yet
are listed in NOT_YET with the reason, and reported as expected failures (strict: one that starts to pass
must be moved out of the list).
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import torch

from models import CheckpointError, load_uploaded
from tests.models import layouts

LAYOUTS = [
    layout
    for module in pkgutil.iter_modules(layouts.__path__)
    if module.name != "spec"
    for layout in importlib.import_module(f"{layouts.__name__}.{module.name}").LAYOUTS
]
UNKNOWN = ("self-supervised (method unknown)", "unknown")
# Files that say how they were trained (settings saved beside the weights, or keys only one method has): the
# name must be exact. Elsewhere it must be the true name or an honest "unknown", never another method's name.
TELLS = {
    "moco-v2-resnet18-ddp",
    "moco-v1-resnet18-ddp",
    "moco-cifar10-demo-resnet18",  # query and key encoders, queue
    "supcontrast-supcon-resnet18",
    "supcontrast-simclr-resnet18-dp",  # opt.method in the pickled Namespace
    "lightning-hydra-dictconfig",  # method in the pickled config
    "solo-dino",  # the centre of DINO's loss
}
ARCHITECTURE = "architecture not supported yet: "
NOT_YET: dict[str, str] = {
    "akamaster-resnet20-pretrained-th": ARCHITECTURE + "3-stage CIFAR ResNet (6n+2), zero-padding shortcuts",
    "akamaster-resnet56-checkpoint-th": ARCHITECTURE + "3-stage CIFAR ResNet (6n+2), zero-padding shortcuts",
    "akamaster-resnet20-optionB-model-th": ARCHITECTURE + "3-stage CIFAR ResNet (6n+2), 1x1 shortcuts",
    "chenyaofo-resnet20-release-pt": ARCHITECTURE + "3-stage CIFAR ResNet (6n+2)",
    "chenyaofo-resnet56-training-checkpoint": ARCHITECTURE + "3-stage CIFAR ResNet (6n+2)",
    "bearpaw-preresnet110": ARCHITECTURE + "3-stage pre-activation ResNet",
    "kuangliu-preact-resnet18-ckpt": ARCHITECTURE + "pre-activation ResNet",
    "xternalz-wrn-16-8": ARCHITECTURE + "Wide ResNet",
    "meliketoy-wrn-16-8-whole-module": ARCHITECTURE + "Wide ResNet",
    "lightly-cifar10-moco-splitbn": ARCHITECTURE + "lightly's own ResNet (no ReLU module after the stem)",
    "mmpretrain-resnet18-cifar-mmengine": "mmpretrain's key names (norm1, head.fc) are not mapped yet",
    "huyvnphan-resnet18-state-dict": "a max-pool after a 3x3 stem is not in the weights: needs calibration",
    "huyvnphan-resnet18-lightning-ckpt": "a max-pool after a 3x3 stem is not in the weights: needs calibration",
    "kuangliu-resnet18-legacy-whole-module": "a PyTorch < 1.6 whole pickled module cannot be opened weights-only",
    "leftthomas-simclr-resnet50-linear": "a linear probe on a SimCLR backbone is named supervised: nothing says so",
}


def test_the_table_covers_enough_layouts_and_codebases():
    assert len(LAYOUTS) >= 28 and len({layout.codebase for layout in LAYOUTS}) >= 12
    assert len({layout.name for layout in LAYOUTS}) == len(LAYOUTS)
    assert set(NOT_YET) <= {layout.name for layout in LAYOUTS}


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param(layout, marks=pytest.mark.xfail(reason=NOT_YET[layout.name], strict=True))
        if layout.name in NOT_YET
        else layout
        for layout in LAYOUTS
    ],
    ids=lambda layout: layout.name,
)
def test_a_public_checkpoint_loads_as_the_network_it_came_from(layout):
    torch.manual_seed(0)
    source = layout.build()
    data = layout.save(source)
    try:
        loaded = load_uploaded(data, layout.filename)
    except CheckpointError as refused:
        pytest.fail(f"refused: {refused}")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = layout.reference(source, x), loaded.module(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    if layout.name in TELLS or layout.method == "supervised":
        assert loaded.info.method == layout.method
    else:
        assert loaded.info.method in (layout.method, *UNKNOWN)
    assert loaded.info.stem == layout.stem
    if layout.stem != "imagenet":  # the 7x7 stem's padding is fixed; a CIFAR stem's is not in the weights
        assert loaded.info.arch.stem_padding == layout.stem_padding
