"""A ViT's state dict uploaded in a real browser (Playwright + Chromium): its architecture inferred from the
weights and said on its card, then compared with model B on the overview, at a small subset (cheap: an untrained
ViT-Ti/16, 5 images per class)."""

from __future__ import annotations

import urllib.parse

import pytest
import torch
from safetensors.torch import save

from tests.app.support import CHROMIUM, CHROMIUM_ARGS, OVERVIEW_CHART
from tests.bundled import REAL_PAIR

WAIT_MS = 240_000  # a cold analysis on a busy CPU
SPEC = "upload:vit-tiny.safetensors"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]


def _vit_bytes() -> bytes:
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10)
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


@pytest.mark.slow
def test_a_vit_state_dict_uploaded_in_the_browser_is_inferred_and_compared(app_server, tiny_specs, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    query = {"classes": "0,1,2", "per_class": "4", "batch": "6"}  # 12 images: a 224 px ViT and its floors read them
    if not REAL_PAIR:  # the bundled pair is not trained yet: model B is a tiny checkpoint, named in the URL
        query |= {"a": tiny_specs["a"], "b": tiny_specs["b"]}
    base = app_server  # the shared server (tests/app/conftest.py): the upload stays in this test's own session
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/models?{urllib.parse.urlencode(query)}")
        tab = page.get_by_role("tab", name="Upload a checkpoint")
        expect(tab).to_be_visible(timeout=WAIT_MS)
        tab.click()
        chooser = page.locator('[data-testid="stFileUploader"] input[type="file"]')
        expect(chooser).to_have_count(1, timeout=WAIT_MS)
        chooser.set_input_files(
            files=[{"name": "vit-tiny.safetensors", "mimeType": "application/octet-stream", "buffer": _vit_bytes()}]
        )
        expect(page.get_by_text("architecture inferred from the weights").first).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_text("224x224 px, bicubic resize").first).to_be_visible()
        page.get_by_role("button", name="Use as model A").last.click()
        # the sidebar's note on an upload in use: model A is the upload before the page changes
        expect(page.get_by_text("is a file you uploaded").first).to_be_visible(timeout=WAIT_MS)
        page.get_by_role("link", name="Overview").click()  # within the session: its upload stays with it
        expect(page.locator(OVERVIEW_CHART).first).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_text("What this pair shows")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_text(f"A = {SPEC}").first).to_be_visible()
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        page.screenshot(path=str(tmp_path / "overview-vit.png"), full_page=True)
        browser.close()
