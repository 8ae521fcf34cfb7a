"""The Layer similarity page's picker for deep networks: which layers each choice keeps (a view; the result is
untouched)."""

from __future__ import annotations

import pytest

from core.names import OTHER, OUTPUT, RESIDUAL, block, kind
from models.resnet import ArchConfig, resnet_layers
from tests.app.support import vit_layers
from ui.thinning import CHOICES, EVERY, KEY, MANY_LAYERS, OUTPUTS, chosen, kept, offered

VIT = vit_layers(12)  # 52 layers: stem, 12 blocks of 4 readings, final norm, pooled, logits
RESNET = tuple(name for name, _ in resnet_layers(ArchConfig(18, num_classes=10)))  # 19 layers
HEAD = ("stem", "final norm", "pooled", "logits")


def blocks_of(layers: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(block(name) for name in layers if kind(name) != OTHER))


def test_the_picker_is_offered_when_either_network_has_more_than_24_layers():
    assert len(RESNET) <= MANY_LAYERS and not offered(RESNET, RESNET)
    assert offered(VIT, RESNET) and offered(RESNET, VIT)
    assert not offered(VIT[:MANY_LAYERS], RESNET) and offered(VIT[: MANY_LAYERS + 1], RESNET)


def test_every_reading_keeps_every_layer():
    assert kept(VIT, EVERY) == VIT and kept(RESNET, EVERY) == RESNET


def test_block_outputs_only_keeps_the_outputs_and_the_stem_and_head():
    shown = kept(VIT, OUTPUTS)
    assert {kind(name) for name in shown} == {OUTPUT, OTHER}
    assert [name for name in shown if kind(name) == OUTPUT] == [name for name in VIT if kind(name) == OUTPUT]
    assert set(HEAD) <= set(shown) and len(shown) == 12 * 2 + 4  # both additions' outputs of each block
    assert not any(kind(name) == RESIDUAL for name in kept(RESNET, OUTPUTS))


@pytest.mark.parametrize(
    ("choice", "blocks"), [("every 2nd block", [0, 2, 4, 6, 8, 10, 11]), ("every 4th block", [0, 4, 8, 11])]
)
def test_every_kth_block_keeps_those_blocks_whole_the_last_block_and_the_stem_and_head(choice, blocks):
    shown = kept(VIT, choice)
    assert blocks_of(shown) == [f"blocks.{i}" for i in blocks]  # from the first, and the deepest always
    assert all(
        f"{block(name)} {r}" in shown for name in shown if kind(name) != OTHER for r in ("attention branch", "output")
    )
    assert [name for name in shown if kind(name) == OTHER] == list(HEAD)
    assert list(shown) == [name for name in VIT if name in set(shown)]  # depth order kept


def test_a_resnet_is_thinned_block_by_block():
    assert blocks_of(kept(RESNET, "every 4th block")) == ["layer1.0", "layer3.0", "layer4.1"]
    assert {"stem", "pooled", "logits"} <= set(kept(RESNET, "every 2nd block"))


@pytest.mark.parametrize("choice", CHOICES)
def test_no_choice_ever_drops_every_layer(choice):
    branches = ("blocks.0 attention branch", "blocks.0 mlp branch", "blocks.1 attention branch")
    assert kept(branches, choice)  # no stem, no outputs: block outputs only would keep nothing, so keeps all
    assert kept(("stem",), choice) == ("stem",)
    assert kept(branches, OUTPUTS) == branches


def test_a_preview_is_thinned_as_the_picker_last_chose_where_the_picker_is_offered():
    assert (
        chosen(VIT, RESNET, {KEY: OUTPUTS}) == OUTPUTS
        and chosen(RESNET, VIT, {KEY: "every 2nd block"}) == "every 2nd block"
    )
    assert chosen(VIT, RESNET, {}) == EVERY  # nothing chosen yet
    assert chosen(RESNET, RESNET, {KEY: OUTPUTS}) == EVERY  # no picker for these layers: every layer, as drawn after
    assert chosen(VIT, RESNET, {KEY: "every 3rd block"}) == EVERY  # not a choice the picker offers
