"""The app in a real browser: a Streamlit server on a free port, driven by Playwright through Debian's Chromium.

A deep link to a page on a fresh server gets app.py's sidebar (the shared server before any other test opens a
page on it, else a server of its own: only a fresh one can show that). Then every page is opened on the server
the browser tests share (tests/app/conftest.py), its charts are waited for, and it must show no exception box.
Screenshots go to a temporary folder (printed; kept by pytest's tmp_path retention).
"""

from __future__ import annotations

import base64
import re
import urllib.parse

import pytest

from models.snapshots import bundled_series
from tests.app.support import CHROMIUM, CHROMIUM_ARGS, OVERVIEW_CHART, figure_ranges
from tests.bundled import REAL_PAIR

COLD_MS = 240_000  # a cold analysis on a busy CPU
CLOSING = re.compile(r"\(finding (\w+)[^:()]*: (holds|does not hold|cannot tell)\)")  # a one-liner's last words
RUNS = bundled_series()  # the Training page opens on the first SimCLR and the first supervised run with snapshots
FINALS = sum(next((s.final is not None for s in RUNS if s.method == m), False) for m in ("simclr", "supervised"))
PAGES = [  # (url path, what to wait for: charts drawn, or a text, or images)
    ("similarity", {"charts": 5}),
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


@pytest.mark.slow
def test_every_page_draws_without_an_exception(app_server, query, tmp_path_factory):
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path_factory.mktemp("screenshots")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for index, (path, wait_for) in enumerate(PAGES):
            page.goto(f"{app_server}/{path}?{query}")
            if "charts" in wait_for:
                drawn = page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg')
                expect(drawn).to_have_count(wait_for["charts"], timeout=COLD_MS)
            if "figure" in wait_for:
                expect(page.locator(OVERVIEW_CHART)).to_have_count(wait_for["figure"], timeout=COLD_MS)
                expect(page.locator(OVERVIEW_CHART)).to_have_js_property("complete", True)
                svg = base64.b64decode(page.locator(OVERVIEW_CHART).get_attribute("src").split(",", 1)[1]).decode()
                assert not figure_ranges(svg, "floor").empty  # the untrained floor's band, beside A vs B
                _one_liners_agree_with_the_findings(page)
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


def _one_liners_agree_with_the_findings(page) -> None:
    """The Overview's one-liners that speak of a finding close with its verdict, and that verdict is the findings
    table's; the rules both read are stated in words on the page."""
    from playwright.sync_api import expect

    expect(page.get_by_text("How the verdicts and the lines above are decided")).to_be_visible(timeout=COLD_MS)
    findings = page.locator("table").filter(has_text="this pair shows")
    findings.scroll_into_view_if_needed()  # the table is drawn once it is in view
    expect(findings.locator("td")).not_to_have_count(0)
    table = {}
    for row in findings.locator("tr").all():
        cells = [c.strip() for c in row.locator("th, td").all_inner_texts()]
        table[cells[0]] = cells[-1]  # the finding's key ... its verdict (the header row: 'finding' ... 'verdict')
    closing = CLOSING.findall(page.locator('[data-testid="stMain"]').inner_text())
    assert {key for key, _ in closing} >= {"2", "3"}, closing  # the block-output and residual lines
    assert all(table[key] == verdict for key, verdict in closing), (closing, table)
