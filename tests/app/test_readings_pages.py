"""What the pages say and offer for networks that are not the study's ResNets, driven with AppTest on results
opened in the session (nothing is computed): layers paired by relative depth, token layers, layers whose pooled
read-outs are missing, and the picker that thins a deep network's layers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from streamlit.testing.v1 import AppTest

from core.result import AnalysisResult
from models.resnet import ArchConfig, resnet_layers
from tests.app.support import APP, chart_specs, figure_svgs, shown, synthetic_pair, synthetic_result, vit_layers
from ui.opened import OPENED
from ui.readings import BY_DEPTH_WORDS
from ui.thinning import KEY, NOTE, chosen, kept

RESNET = tuple(name for name, _ in resnet_layers(ArchConfig(18, num_classes=10)))
VIT = vit_layers(12)
PAIRED_BY_DEPTH = "Paired by relative depth: the two architectures share no layer names"


def opened_on(result: AnalysisResult, page: str) -> AppTest:
    """The app on `page`, showing `result` as a result file opened in this session."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[OPENED] = ("run.json", result)
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def captions(at: AppTest) -> list[str]:
    return [shown(c.value) for c in at.caption]


def frame(chart: dict, column: str):
    """The first of a chart's datasets that has `column`."""
    return next(f for f in chart["data"].values() if column in f)


@pytest.fixture
def vit_vs_resnet() -> AnalysisResult:
    return synthetic_pair(VIT, RESNET, tokens_a=VIT[:-2])


def test_layers_paired_by_relative_depth_are_said_to_be_and_each_pair_is_named(bundled_pair, vit_vs_resnet):
    at = opened_on(vit_vs_resnet, "similarity")
    assert any(c.startswith(PAIRED_BY_DEPTH) and "attention then MLP" in c for c in captions(at))
    (table,) = at.table
    pairs = table.value
    assert list(pairs["A's layer"]) == list(vit_vs_resnet.matched)
    assert list(pairs["B's layer"]) == list(vit_vs_resnet.matched_b)
    _, curve, *_ = chart_specs(at)
    assert curve["spec"]["title"]["text"] == "Matched layers: each of A's layers against B's at the same relative depth"
    points = frame(curve, "layer_b")
    assert dict(zip(points["layer"], points["layer_b"], strict=True))["blocks.11 output"] == "layer4.1 output"
    assert any(
        "the class token and the patch tokens both" in c and "A's 50, stem … final norm" in c for c in captions(at)
    )
    at.switch_page("pages/overview.py").run()
    assert BY_DEPTH_WORDS in captions(at)
    assert any(list(t.value.get("B's layer", [])) == list(vit_vs_resnet.matched_b) for t in at.table)
    (svg,) = figure_svgs(at)
    titles = [e.text for e in ET.fromstring(svg).iter() if e.tag.endswith("title")]
    assert "A vs B, A's blocks.11 output with B's layer4.1 output: CKA" in " ".join(titles)


def test_resnets_paired_by_name_get_no_table_of_pairs_and_no_picker(bundled_pair):
    at = opened_on(synthetic_result([0.9] * 8, [0.5] * 8), "similarity")
    assert any(c.startswith("Each matched layer of A against the layer of the same name in B.") for c in captions(at))
    assert not at.table and not any(box.label == "Layers shown" for box in at.selectbox)
    assert not any(c.startswith("Token layers") for c in captions(at))


def test_a_deep_network_can_be_thinned_on_the_page_without_changing_the_result(bundled_pair, vit_vs_resnet):
    at = opened_on(vit_vs_resnet, "similarity")
    picker = next(box for box in at.selectbox if box.label == "Layers shown")
    assert picker.value == "every reading" and NOTE in captions(at)
    across, curve, own_a, own_b = chart_specs(at)
    assert set(frame(across, "row")["row"]) == set(VIT) and set(frame(own_a, "row")["row"]) == set(VIT)
    picker.set_value("every 4th block").run()
    across, curve, own_a, own_b = chart_specs(at)
    thin_vit, thin_resnet = kept(VIT, "every 4th block"), kept(RESNET, "every 4th block")
    assert set(frame(across, "row")["row"]) == set(thin_vit) and set(frame(across, "col")["col"]) == set(thin_resnet)
    assert set(frame(own_a, "row")["row"]) == set(thin_vit) and set(frame(own_b, "col")["col"]) == set(thin_resnet)
    assert set(frame(curve, "layer_b")["layer"]) == set(vit_vs_resnet.matched) & set(thin_vit)
    assert {"stem", "final norm", "pooled", "logits"} <= set(frame(across, "row")["row"])
    assert across["spec"]["title"]["text"].endswith("(every 4th block shown)")
    # the choice stays in the session, where the next computation's previews read it
    assert chosen(VIT, RESNET, {KEY: at.session_state[KEY]}) == "every 4th block"
    assert at.session_state[OPENED][1] is vit_vs_resnet  # a view: the result shown is the one opened, whole


def test_the_probes_page_says_what_token_layers_read_and_why_a_pooled_readout_is_missing(bundled_pair, vit_vs_resnet):
    result = synthetic_pair(VIT, RESNET, tokens_a=VIT[:-2], unknown_layout_b=("layer3.0 output",))
    at = opened_on(result, "probes")
    assert (
        "Pooled read-outs are not drawn for B's layer3.0 output: its output's channel axis could not be worked out "
        "from the network's operations, so averaging over positions could be wrong."
    ) in captions(at)
    assert any(c.startswith("Token layers") and "averages over all tokens" in c for c in captions(at))
    plain = opened_on(vit_vs_resnet, "probes")
    assert not any(c.startswith("Pooled read-outs are not drawn") for c in captions(plain))
