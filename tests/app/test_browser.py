"""A deep link in a real browser: a Streamlit server on a free port, driven by Playwright through Debian's Chromium.

A deep link to a page on a fresh server gets app.py's sidebar (the shared server before any other test opens a
page on it, else a server of its own: only a fresh one can show that). Every page drawn whole is walked in
tests/app/test_browser_state.py.
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.app.support import CHROMIUM, CHROMIUM_ARGS
from tests.bundled import REAL_PAIR

COLD_MS = 240_000  # a cold analysis on a busy CPU

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]


@pytest.fixture(scope="module")
def query(tiny_specs) -> str:
    """The query string that selects the models, at 10 images per class."""
    query = {"per_class": "10"}
    if not REAL_PAIR:  # the bundled pair is not trained yet: compare tiny checkpoints, named in the URL
        query |= {"a": tiny_specs["a"], "b": tiny_specs["b"]}
    return urllib.parse.urlencode(query)


def test_a_deep_link_on_a_fresh_server_gets_the_sidebar_with_the_links_choices(fresh_app_server, query):
    """Until a session has run app.py's st.navigation, Streamlit would run pages/similarity.py alone (ui.router)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{fresh_app_server}/similarity?{query}")
        expect(page.get_by_label("Images per class")).to_have_value("10", timeout=COLD_MS)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        browser.close()
