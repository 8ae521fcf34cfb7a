"""Networks other than ResNets in the app, driven with AppTest: an upload named with the architecture picker (the
app's #arch=), an upload whose architecture is inferred from its weights, a repo in timm's Hub layout from a local
stand-in Hub with its preprocessing on the card, and the curated pairs beyond the study, offline."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from models.registry import CURATED_PAIRS
from tests.app.support import APP, shown
from tests.models.fake_hub import FakeHub, reachable_hub, timm_repo
from ui.architectures import INFER, INFER_LABEL

TIMEOUT = 300  # seconds for one script run: a cold analysis on a busy 2-core CPU
SMALL = {"per_class": "10"}


def open_models_page(params: dict[str, str]) -> AppTest:
    """The Models page opened first (no analysis runs on the way)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    return at.switch_page("pages/models.py").run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def card(at: AppTest, heading: str) -> str:
    return next(m.value for m in at.markdown if m.value.startswith(f"#### {heading}"))


def weights(model: torch.nn.Module) -> bytes:
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


def test_an_upload_named_with_the_picker_loads_as_that_architecture_and_is_compared(bundled_pair):
    import timm

    torch.manual_seed(0)
    data = weights(timm.create_model("test_vit", pretrained=False, num_classes=10))
    at = open_models_page({"per_class": "5", "batch": "10"})  # one cheap analysis, of this upload against B
    at.selectbox(key="upload_arch").set_value("timm:test_vit").run()
    at.file_uploader[0].upload("vit.safetensors", data).run()
    assert_clean(at)
    spec = "upload:vit.safetensors#arch=timm:test_vit"
    shown_card = card(at, spec)
    assert "`timm:test_vit`; 10-way classifier" in shown_card
    assert "160x160 px, bicubic resize" in shown_card and "(0.5, 0.5, 0.5)" in shown_card
    at.button(key=f"use_a_{spec}").click().run()
    assert at.selectbox(key="sb_a").value == spec
    assert at.selectbox(key="arch_a").value == "timm:test_vit"  # the sidebar's picker follows the spec
    at.switch_page("pages/overview.py").run()
    assert_clean(at)
    assert any(f"A = `{spec}`" in c.value for c in at.caption)


def test_a_picker_that_cannot_change_lists_only_what_it_shows(bundled_pair):
    """The bundled pair is what it is: its pickers are disabled and list one option, not every timm model; the
    upload form's picker lists them all."""
    at = open_models_page(SMALL)
    assert_clean(at)
    for key in ("arch_a", "arch_b"):
        assert at.selectbox(key=key).disabled and at.selectbox(key=key).options == [INFER_LABEL]
    upload = at.selectbox(key="upload_arch")
    assert not upload.disabled and len(upload.options) > 1000 and "timm:vit_tiny_patch16_224" in upload.options


def test_an_upload_of_a_common_architecture_is_inferred_and_said_on_its_card(bundled_pair):
    import timm

    torch.manual_seed(0)
    data = weights(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10))
    at = open_models_page(SMALL)
    assert at.selectbox(key="upload_arch").value == INFER  # "infer from the weights" comes first
    at.file_uploader[0].upload("mystery.pt", data).run()
    assert_clean(at)
    shown_card = card(at, "upload:mystery.pt")
    assert "`timm:vit_tiny_patch16_224`; 10-way classifier" in shown_card and "224x224 px, bicubic" in shown_card
    notes = " ".join(c.value for c in at.caption)
    assert "architecture inferred from the weights" in shown(notes)


@pytest.fixture
def stand_in_hub(bundled_pair, tmp_path, monkeypatch) -> Iterator[FakeHub]:
    """The local stand-in Hub (tests/models/fake_hub.py) and its CDN, with an empty cache, reachable."""
    with reachable_hub(monkeypatch, tmp_path) as fake:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as huggingface_hub read it at import, perhaps offline
        yield fake


def test_a_timm_hub_repo_shows_its_preprocessing_on_its_card(stand_in_hub, tmp_path):
    _, files = timm_repo(tmp_path, interpolation="bilinear")
    stand_in_hub.add("timm/test_vit.r160_in1k", files)
    at = open_models_page(SMALL)
    at.text_input[0].input("timm/test_vit.r160_in1k").run()
    assert_clean(at)
    shown_card = card(at, "hub:timm/test_vit.r160_in1k")
    assert "`timm:test_vit`; 10-way classifier" in shown_card
    assert "160x160 px, bilinear resize" in shown_card  # the repo's config.json, not timm's own bicubic
    assert "mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5)" in shown_card


def test_the_curated_pairs_are_offered_and_offline_say_the_hub_cannot_be_reached(bundled_pair):
    at = open_models_page(SMALL)
    title, spec_a, spec_b, _ = CURATED_PAIRS[0]
    pair_card = card(at, title)
    assert spec_a.text in pair_card and spec_b.text in pair_card and "dino" in pair_card
    at.button(key=f"pair_{title}").click().run()
    assert (at.selectbox(key="sb_a").value, at.selectbox(key="sb_b").value) == (spec_a.text, spec_b.text)
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 2 and all("cannot be reached" in e for e in errors)
    assert not any(re.search(r"\b(HF|CKA_LENS)_[A-Z_]+", e) for e in errors)
