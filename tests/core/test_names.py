"""What a layer name says (kind, block, stage), the shared depth order of two models, and their legend labels."""

from __future__ import annotations

import pytest

from core.names import (
    BY_DEPTH,
    BY_NAME,
    OTHER,
    OUTPUT,
    RESIDUAL,
    block,
    kind,
    match_layers,
    shared_order,
    side_labels,
    stage,
)


@pytest.mark.parametrize(
    ("layer", "expected_kind", "expected_block", "expected_stage"),
    [
        ("layer2.0 residual", RESIDUAL, "layer2.0", "layer2"),
        ("layer4.1 output", OUTPUT, "layer4.1", "layer4"),
        ("layer1.10 output", OUTPUT, "layer1.10", "layer1"),
        ("stem", OTHER, "stem", "stem"),
        ("pooled", OTHER, "pooled", "pooled"),
        ("final norm", OTHER, "final", "final"),
    ],
)
def test_a_layer_name_tells_its_kind_block_and_stage(layer, expected_kind, expected_block, expected_stage):
    assert kind(layer) == expected_kind
    assert block(layer) == expected_block
    assert stage(layer) == expected_stage


def test_shared_order_keeps_a_then_appends_what_only_b_has():
    a = ("stem", "layer1.0 residual", "layer1.0 output", "pooled")
    b = ("stem", "layer1.0 residual", "layer1.0 output", "pooled", "logits")
    assert shared_order(a, b) == [*a, "logits"]
    assert shared_order(b, a) == list(b)  # nothing of A's is missing from B's
    assert shared_order(("x",), ("y", "x", "z")) == ["x", "y", "z"]


def test_side_labels_stay_distinct_when_both_models_share_a_method():
    assert side_labels("simclr", "supervised") == ("A (simclr)", "B (supervised)")
    left, right = side_labels("simclr", "simclr")
    assert left != right and "simclr" in left and "simclr" in right


@pytest.mark.parametrize(
    ("layer", "expected_kind", "expected_block", "expected_stage"),
    [
        ("blocks.3 attention branch", RESIDUAL, "blocks.3", "blocks"),
        ("blocks.3 attention output", OUTPUT, "blocks.3", "blocks"),
        ("blocks.3 mlp branch", RESIDUAL, "blocks.3", "blocks"),
        ("stages.1.blocks.2 output", OUTPUT, "stages.1.blocks.2", "stages.1.blocks"),
        ("stage2 output", OUTPUT, "stage2", "stage2"),
    ],
)
def test_the_names_of_other_architectures_tell_the_same(layer, expected_kind, expected_block, expected_stage):
    assert (kind(layer), block(layer), stage(layer)) == (expected_kind, expected_block, expected_stage)


def test_resnets_of_other_depths_are_matched_by_name_as_always():
    a = ("stem", "layer1.0 residual", "layer1.0 output", "layer1.1 residual", "layer1.1 output", "pooled")
    b = ("stem", "layer1.0 residual", "layer1.0 output", "pooled", "logits")
    assert match_layers(a, b) == ([(0, 0), (1, 1), (2, 2), (5, 3)], BY_NAME)


def test_architectures_sharing_no_block_are_paired_by_relative_depth_within_each_kind():
    vit = ("stem", *(f"blocks.{k} {r}" for k in range(4) for r in ("attention branch", "output")), "pooled", "logits")
    resnet = ("stem", "layer1.0 residual", "layer1.0 output", "layer2.0 residual", "layer2.0 output", "pooled")
    pairs, how = match_layers(vit, resnet)
    named = [(vit[i], resnet[j]) for i, j in pairs]
    assert how == BY_DEPTH
    assert named == [
        ("stem", "stem"),
        ("blocks.0 attention branch", "layer1.0 residual"),
        ("blocks.0 output", "layer1.0 output"),
        ("blocks.3 attention branch", "layer2.0 residual"),
        ("blocks.3 output", "layer2.0 output"),
        ("pooled", "pooled"),
    ]
    assert shared_order(vit, resnet) == list(vit)  # no shared axis: each keeps its own
