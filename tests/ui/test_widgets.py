"""The pages' small drawing helpers, each drawn alone in a headless app: what they show and what they set."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from streamlit.testing.v1 import AppTest

import ui.widgets
from core.ceilings import Ceilings
from core.comparison import finalize, pair_terms
from core.findings import findings_table
from core.fingerprint import fingerprint
from core.options import AnalysisOptions
from core.report import report_csv, report_json
from models import ModelSpec
from models.loaded import ModelInfo
from models.resnet import ArchConfig, resnet_layers
from tests.app.support import shown
from tests.core.tiny import tiny_network, tiny_subset

ARCH = ArchConfig(depth=18, width=4, num_classes=0)
CPU = torch.device("cpu")


def draw(name: str, *args) -> AppTest:
    """A headless app whose whole page is one call of ui.widgets.<name>(*args)."""

    def page(name, *args):
        import ui.widgets

        getattr(ui.widgets, name)(*args)

    at = AppTest.from_function(page, args=(name, *args), default_timeout=30).run()
    assert not at.exception, at.exception
    return at


def result_of(n: int):
    """A (simclr) against B (supervised) on n random images in minibatches of 8."""
    subset, options = tiny_subset(n), AnalysisOptions(batch_size=8, permutations=2, probes=False, invariance=False)
    fa, fb = (
        fingerprint(tiny_network(seed, name), subset, options, torch.device("cpu"))
        for seed, name in ((0, "a"), (1, "b"))
    )
    return finalize(fa, fb, pair_terms(fa, fb, torch.device("cpu")), subset.spec, with_readouts=False)


@pytest.fixture(scope="module")
def result():
    return result_of(40)


def info(**changes) -> ModelInfo:
    fields = {
        "arch": ARCH,
        "stem": "cifar",
        "method": "simclr",
        "mean": (0.49139, 0.48215, 0.44653),
        "std": (0.2, 0.2, 0.2),
        "num_classes": 0,
        "source": "file:/runs/a",
        "sha256": "0123456789abcdef" * 4,
        "notes": ("took the backbone from the keys under 'backbone.'", "dropped: projector (4 tensors)"),
        "metrics": {"knn_accuracy": 0.6124, "epochs": 200.0},
        "layers": tuple(resnet_layers(ARCH)),
    }
    return ModelInfo(**(fields | changes))


def test_the_model_card_is_a_table_headed_by_the_source():
    at = draw("model_card", info(), "Model A")
    text = at.markdown[0].value
    lines = text.splitlines()
    assert lines[0] == "#### Model A" and lines[1] == "| source | `file:/runs/a` |" and lines[2] == "|---|---|"
    assert "| architecture | resnet18-w4, cifar stem (padding 1); no classifier: pooled features |" in text
    assert (
        "| weights sha256 | `0123456789abcdef…`, of the tensors loaded (names, shapes, values): one network, one "
        "digest, whatever file holds it |"
    ) in text
    assert "| reported by its source | knn accuracy 61.2%, epochs 200 |" in text
    assert "| normalisation | mean (0.4914, 0.4822, 0.4465), std (0.2, 0.2, 0.2) |" in text
    assert "| layers read | 18 (stem … pooled) |" in text
    assert "| measured here | not measured (no CIFAR-10 test images) |" in text
    assert shown(at.caption[0].value) == (
        "Loader notes: took the backbone from the keys under 'backbone.'; dropped: projector (4 tensors)."
    )


def test_a_classifier_is_named_with_its_width():
    arch = ArchConfig(depth=18, width=4)
    at = draw("model_card", info(arch=arch, num_classes=10, layers=tuple(resnet_layers(arch)), notes=()), "B")
    assert "; 10-way classifier (fc) |" in at.markdown[0].value and "19 (stem … logits)" in at.markdown[0].value
    assert len(at.caption) == 0  # no loader notes, no caption


def test_the_caption_says_what_was_measured_on_what(result):
    at = draw("result_caption", result)
    caption = at.caption[0].value
    assert caption.startswith("A = `test:a`, B = `test:b` · 40 test images (10 classes × 4, subset seed 0)")
    assert "debiased linear CKA over minibatches of 8" in caption
    assert len(at.info) == 0  # five minibatches: an interval is drawn


def test_too_few_minibatches_for_an_interval_are_explained(result):
    at = draw("result_caption", result_of(24))
    message = at.info[0].value
    assert "24 images in minibatches of 8 make 3" in message and "at most 4 images" in message


def test_a_missing_ceiling_is_said_plainly_for_its_side_only(result):
    at = draw("ceiling_notes", result, Ceilings(a=result, note_b="no other seed of supervised is bundled"))
    assert [shown(c.value) for c in at.caption] == [
        "No ceiling for B (supervised): no other seed of supervised is bundled. "
        "The sidebar can name another seed of its method."
    ]


def test_the_verdict_table_has_one_row_per_finding(result):
    at = draw("verdict_table", result, Ceilings())
    expected = findings_table(result, Ceilings())
    table = at.table[0].value
    assert list(table.columns) == ["finding", "the study reported", "this pair shows", "verdict"]
    assert list(table["finding"]) == [f.key for f in expected]
    assert list(table["verdict"]) == [f.verdict for f in expected]


def test_choices_are_shown_and_applied_to_the_spec():
    at = draw("choice_form", ModelSpec.parse("file:/runs/a#pool=yes"), info(), "a")
    assert [(s.label, s.value) for s in at.selectbox] == [
        ("Max-pool after the 3x3 stem", True),
        ("Stem padding", None),
        ("Input normalisation", None),
    ]
    at.selectbox[1].set_value(2)
    at.button[0].click().run()
    assert at.session_state["sb_a"] == "file:/runs/a#pool=yes,padding=2"


def test_an_imagenet_stem_has_no_stem_choices():
    arch = ArchConfig(depth=18, width=4, stem="imagenet", num_classes=0)
    at = draw(
        "choice_form",
        ModelSpec.parse("file:/runs/a"),
        info(arch=arch, stem="imagenet", layers=tuple(resnet_layers(arch))),
        "b",
    )
    assert [s.disabled for s in at.selectbox] == [True, True, False]
    assert at.button[0].label == "Apply to model B"


def test_use_buttons_make_the_spec_model_a_or_b():
    at = draw("use_buttons", ModelSpec.parse("hub:someone/resnet"))
    assert [b.label for b in at.button] == ["Use as model A", "Use as model B"]
    at.button[1].click().run()
    assert at.session_state["sb_b"] == "hub:someone/resnet"


class Column:
    """Records what a page column is asked to draw."""

    def __init__(self, drawn: list) -> None:
        self.drawn = drawn

    def download_button(self, label, data, file_name, mime, **kwargs) -> None:
        self.drawn.append((label, data, file_name, mime))


def test_downloads_hold_the_report_as_csv_and_json_named_after_the_pair(result, monkeypatch):
    drawn: list = []
    monkeypatch.setattr(ui.widgets, "st", SimpleNamespace(columns=lambda n: [Column(drawn) for _ in range(n)]))
    renamed, ceilings = replace(result, model_a=replace(result.model_a, source="bundled:a b/c")), Ceilings(b=result)
    ui.widgets.download_buttons(renamed, ceilings)
    (csv_label, csv, csv_name, csv_mime), (json_label, body, json_name, json_mime) = drawn
    name = "cka-bundled_a_b_c-vs-test_b"  # both sources, made safe for a file name
    assert (csv_label, csv_name, csv_mime) == ("Download CSV", f"{name}.csv", "text/csv")
    assert (json_label, json_name, json_mime) == ("Download JSON", f"{name}.json", "application/json")
    assert csv == report_csv(renamed, ceilings)
    assert json.loads(body) == report_json(renamed, ceilings)
