"""What the pages say about a result's readings: how matched layers were paired, what a token layer reads, and why
a pooled read-out is missing."""

from __future__ import annotations

from dataclasses import replace

from core.names import BY_DEPTH, BY_NAME
from models.resnet import ArchConfig, resnet_layers
from tests.app.support import synthetic_pair, synthetic_result, vit_layers
from ui.readings import (
    BY_DEPTH_WORDS,
    depth_note,
    matched_caption,
    pairing_rows,
    token_cka_note,
    token_pooled_note,
    unknown_layout_note,
)

RESNET = tuple(name for name, _ in resnet_layers(ArchConfig(18, num_classes=10)))


def test_resnets_paired_by_name_are_said_to_be_and_no_table_of_pairs_is_needed():
    result = synthetic_result([0.9] * 8, [0.5] * 8)
    assert result.matching == BY_NAME
    caption = matched_caption(result)
    assert caption.startswith("Each matched layer of A against the layer of the same name in B.")
    assert "relative depth" not in caption and depth_note(result) is None
    assert "attention then MLP" in caption and "the study's ResNets after the branch's last BatchNorm" in caption
    assert all(row["A's layer"] == row["B's layer"] for row in pairing_rows(result))


def test_a_vit_against_a_resnet_is_said_to_be_paired_by_relative_depth_with_each_pair_named():
    result = synthetic_pair(vit_layers(12), RESNET)
    assert result.matching == BY_DEPTH
    assert matched_caption(result).startswith(BY_DEPTH_WORDS) and depth_note(result) == BY_DEPTH_WORDS
    assert "share no layer names" in BY_DEPTH_WORDS and "same fraction of depth" in BY_DEPTH_WORDS
    rows = pairing_rows(result)
    assert [row["A's layer"] for row in rows] == list(result.matched)
    assert [row["B's layer"] for row in rows] == list(result.matched_b)
    pairs = {row["A's layer"]: row["B's layer"] for row in rows}
    assert pairs["stem"] == "stem" and pairs["blocks.11 output"] == "layer4.1 output"  # the deepest with the deepest


def test_token_layers_are_named_and_what_their_readings_hold_is_said_only_when_there_are_some():
    resnets = synthetic_result([0.9] * 8, [0.5] * 8)
    assert token_cka_note(resnets) is None and token_pooled_note(resnets) is None
    vit = vit_layers(2)
    result = synthetic_pair(vit, RESNET, tokens_a=vit[:-2])  # all but pooled features and logits
    cka = token_cka_note(result)
    assert "A's 10, stem … final norm" in cka and "B's" not in cka
    assert "the class token and the patch tokens both" in cka
    pooled = token_pooled_note(result)
    assert "averages over all tokens, the class token included" in pooled
    assert "the first token (a ViT's class token) beside the mean of the others" in pooled
    both = replace(result, tokens_b=("layer1.0 output",))
    assert "A's 10, stem … final norm; B's layer1.0 output" in token_cka_note(both)


def test_a_layer_whose_channel_axis_is_unknown_is_named_with_why_its_pooled_readouts_are_missing():
    result = synthetic_pair(vit_layers(2), RESNET)
    assert unknown_layout_note(result) is None
    one = replace(result, unknown_layout_b=("layer2.0 output",))
    assert unknown_layout_note(one) == (
        "Pooled read-outs are not drawn for B's layer2.0 output: its output's channel axis could not be worked out "
        "from the network's operations, so averaging over positions could be wrong."
    )
    two = replace(one, unknown_layout_a=("blocks.1 output",))
    assert unknown_layout_note(two).startswith(
        "Pooled read-outs are not drawn for A's blocks.1 output and B's layer2.0 output: their outputs' channel axes"
    )
