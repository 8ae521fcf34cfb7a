"""Issue 26, items 3 and 6, in a real browser: a one-class subset is refused in the page's words, and an upload
measured near chance is named, with its card, at the top of the analysis pages, above everything else.

One server for the module, measuring uploads on 64 test images as a served app does (the suite skips it). The
subset stays refused throughout, so no page computes an analysis: the check costs a server start and an upload.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core import settings
from tests.app.support import CHROMIUM, CHROMIUM_ARGS, streamlit_server

WAIT_MS = 120_000  # a page on a busy 2-core machine, loading the bundled pair for the Models page's cards
NAME = "near-chance.safetensors"
BANNER = f"Model A (upload:{NAME}) may not be the network it claims to be."
REFUSAL = "The CIFAR-10 subset cannot be used: choose at least 2 classes (only cat is chosen)"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]


@pytest.fixture(scope="module")
def server():
    with streamlit_server(env={settings.CALIBRATION_IMAGES: "64"}) as base:
        yield base


@pytest.mark.slow
def test_a_near_chance_upload_is_named_above_a_refused_one_class_subset(server, tiny_specs, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    upload = tmp_path / NAME  # random weights: a 10-way classifier at chance
    shutil.copy(Path(tiny_specs["b"].removeprefix("file:")) / "model.safetensors", upload)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server}/models?classes=3")
        page.get_by_role("tab", name="Upload a checkpoint").click(timeout=WAIT_MS)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(upload))
        page.get_by_role("button", name="Use as model A").click(timeout=WAIT_MS)
        # the sidebar's note on an upload in use: model A is the upload before the page changes
        expect(page.get_by_text("is a file you uploaded").first).to_be_visible(timeout=WAIT_MS)
        for link in ("Overview", "Images"):  # in-app navigation: the upload lives in this session
            page.get_by_role("link", name=link).click()
            banner, refusal = page.get_by_text(BANNER), page.get_by_text(REFUSAL)
            expect(banner).to_be_visible(timeout=WAIT_MS)
            expect(refusal).to_be_visible(timeout=WAIT_MS)
            assert banner.bounding_box()["y"] < refusal.bounding_box()["y"], link  # the banner first
            expect(page.get_by_text("near chance (10%)")).to_be_visible()  # the card's own measurement, quoted
            expect(page.get_by_role("link", name="Model A's card")).to_be_visible()
            expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        page.screenshot(path=str(tmp_path / "banner.png"), full_page=True)
        browser.close()
