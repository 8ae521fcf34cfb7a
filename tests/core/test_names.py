"""What a layer name says (kind, block, stage), the shared depth order of two models, and their legend labels."""

from __future__ import annotations

import pytest

from core.names import OTHER, OUTPUT, RESIDUAL, block, kind, shared_order, side_labels, stage


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
