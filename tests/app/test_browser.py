"""The app in a real browser: a Streamlit server on a free port, driven by Playwright through Debian's Chromium.

Every page is opened (the first one by deep link, on a fresh server), its charts are waited for, and it must
show no exception box. Screenshots go to a temporary folder (printed; kept by pytest's tmp_path retention).
"""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from models.snapshots import bundled_series
from tests.app.support import CHROMIUM, CHROMIUM_ARGS, OVERVIEW_CHART, figure_ranges, streamlit_server
from tests.bundled import REAL_PAIR

COLD_MS = 240_000  # a cold analysis on a busy CPU
RUNS = bundled_series()  # the Training page opens on the first SimCLR and the first supervised run with snapshots
FINALS = sum(next((s.final is not None for s in RUNS if s.method == m), False) for m in ("simclr", "supervised"))
PAGES = [  # (url path, what to wait for: charts drawn, or a text, or images)
    ("similarity", {"charts": 5}),  # first: a deep link on a fresh server must still get the sidebar
    ("", {"figure": 1}),  # the overview draws its own figure (ui.figure), no Vega chart
    ("probes", {"charts": 3}),
    ("training", {"charts": 3 + FINALS}),  # the series heatmap, two panels of curves, a heatmap per finished run
    ("models", {"text": "Known checkpoints", "table": 1}),
    ("images", {"images": 10 * 10 + 2 * 12}),  # 10 classes x 10 images, then 12 originals and 12 views
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]


@pytest.fixture(scope="module")
def server(tiny_specs):
    """A fresh `streamlit run app.py`; yields its base URL and the query string that selects the models."""
    with streamlit_server() as base:
        query = {"per_class": "10"}
        if not REAL_PAIR:  # the bundled pair is not trained yet: compare tiny checkpoints, named in the URL
            query |= {"a": tiny_specs["a"], "b": tiny_specs["b"]}
        yield base, urllib.parse.urlencode(query)


def test_every_page_draws_without_an_exception(server, tmp_path_factory):
    from playwright.sync_api import expect, sync_playwright

    base, query = server
    shots = tmp_path_factory.mktemp("screenshots")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for index, (path, wait_for) in enumerate(PAGES):
            page.goto(f"{base}/{path}?{query}")
            if index == 0:  # a deep link on a fresh server still gets the sidebar with the URL's choices
                expect(page.get_by_label("Images per class")).to_have_value("10", timeout=COLD_MS)
            if "charts" in wait_for:
                drawn = page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg')
                expect(drawn).to_have_count(wait_for["charts"], timeout=COLD_MS)
            if "figure" in wait_for:
                expect(page.locator(OVERVIEW_CHART)).to_have_count(wait_for["figure"], timeout=COLD_MS)
                expect(page.locator(OVERVIEW_CHART)).to_have_js_property("complete", True)
                svg = base64.b64decode(page.locator(OVERVIEW_CHART).get_attribute("src").split(",", 1)[1]).decode()
                assert not figure_ranges(svg, "floor").empty  # the untrained floor's band, beside A vs B
            if "text" in wait_for:
                expect(page.get_by_text(wait_for["text"])).to_be_visible(timeout=COLD_MS)
            if "table" in wait_for:
                expect(page.locator('[data-testid="stDataFrame"] canvas')).not_to_have_count(0, timeout=COLD_MS)
            if "images" in wait_for:
                images = page.locator('[data-testid="stImage"] img')
                expect(images).to_have_count(wait_for["images"], timeout=COLD_MS)
                images.last.scroll_into_view_if_needed()
                expect(images.last).to_have_js_property("complete", True)
            expect(page.locator('[data-testid="stException"]')).to_have_count(0)
            page.screenshot(path=str(shots / f"{index}-{path or 'overview'}.png"), full_page=True)
        browser.close()
    print(f"\nscreenshots in {shots}")
