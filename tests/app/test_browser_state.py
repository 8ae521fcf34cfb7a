"""State that cannot break, and every page drawn with no internals, in a real browser (Playwright, Debian's Chromium).

After model A changes in the sidebar, the URL holds canonical specs (never a widget's label) and A's ceiling is
still there, of A's own method, on the next pages. Every page, opened by a link with hostile values, draws its
charts with no exception box, shows the notice for the values left out at the top and no internals in its visible
text. Screenshots of the walk go to a temporary folder (printed; kept by pytest's tmp_path retention).
"""

from __future__ import annotations

import base64
import re
import urllib.parse

import pytest

from models import ModelSpec, list_bundled
from tests.app.support import CHROMIUM, CHROMIUM_ARGS, OVERVIEW_CHART, PAGE_CHARTS, figure_points, figure_ranges
from ui.choices import model_label

COLD_MS = 240_000  # a cold analysis on a busy CPU
SUPERVISED_1 = "bundled:supervised-resnet18-w16-seed1"  # the longest bundled name
SUPERVISED_0 = "bundled:supervised-resnet18-w16"
BUNDLED = {entry.spec.text for entry in list_bundled()}
# What a page must never show a visitor: server paths, settings' names, module files, Python's own words.
INTERNALS = re.compile(
    r"/work/|/tmp/|/home/|/root/|site-packages|CKA_LENS_|HF_ENDPOINT|HF_HUB_|\w\.py\b|Traceback|invalid literal"
    r"|\b[A-Z][A-Za-z]*(Error|Exception)\b|\bNone\b"
)
HOSTILE = {  # beside per_class=10, which keeps each page cheap
    "b": "bogus:thing",
    "a_seed": "garbage",
    "b_seed": "its registered other seed (bundled:simclr-resnet18-w16-seed1)",  # an earlier version's label
    "classes": "0-9",
    "kernel": "cosine",
    "colour": "blue",
}
CLOSING = re.compile(r"\(finding (\w+)[^:()]*: (holds|does not hold|cannot tell)\)")  # a one-liner's last words
VEGA = '[data-testid="stVegaLiteChart"]'
PAGES = [  # (url path, what shows first once it is drawn, what it draws in all: charts, a figure, a text, images)
    # the overview draws its own figure (ui.figure), no Vega chart; its final result's words, never a preview's figure
    ("", 'text="What this pair shows"', {"figure": 1}),
    ("similarity", VEGA, {"charts": PAGE_CHARTS["similarity"]}),
    ("probes", VEGA, {"charts": PAGE_CHARTS["probes"]}),
    ("training", VEGA, {"charts": PAGE_CHARTS["training"]}),
    ("models", 'text="Known checkpoints"', {"table": 1}),
    ("images", '[data-testid="stImage"] img', {"images": 10 * 10 + 2 * 12}),  # 10 x 10, then 12 originals and views
    ("open_result", 'text="Result file"', {}),
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
    pytest.mark.skipif(
        not {SUPERVISED_0, SUPERVISED_1} <= BUNDLED, reason="the bundled supervised seeds are not in models/weights"
    ),
]


@pytest.fixture(scope="module")
def browser(app_server):
    """The browser tests' shared server and one headless Chromium for the module: (base URL, browser). Each test
    opens its own page, so its own Streamlit session; its choices are in its links."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield app_server, chromium
        chromium.close()


def settled(page, shows: str) -> None:
    """Wait until the page shows `shows` and its script has finished running."""
    from playwright.sync_api import expect

    expect(page.locator(shows).first).to_be_visible(timeout=COLD_MS)
    expect(page.locator('[data-testid^="stStatusWidgetRunning"]')).to_have_count(0, timeout=COLD_MS)


def url_choices(page) -> dict[str, str]:
    """The page's URL parameters; every model in it must be a canonical spec (or auto / none)."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))
    for name in ("a", "b", "a_seed", "b_seed"):
        assert query[name] in ("auto", "none") or ModelSpec.parse(query[name]).text == query[name], (name, query)
    return query


def sidebar_select(page, label: str):
    return page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text=label).first


def test_the_ceiling_stays_after_model_a_changes_and_the_url_holds_specs(browser):
    from playwright.sync_api import expect

    base, chromium = browser
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{base}/images?per_class=10")
    settled(page, '[data-testid="stImage"] img')
    model_a = sidebar_select(page, "Model A")
    model_a.locator("input").click()
    page.get_by_role("option", name=model_label(SUPERVISED_1), exact=True).click()
    expect(page).to_have_url(re.compile("a=" + re.escape(urllib.parse.quote(SUPERVISED_1, safe=""))), timeout=COLD_MS)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text(f"Ceiling of A: A against {SUPERVISED_0}", exact=True)).to_be_visible()
    assert model_a.locator("input").input_value() == model_label(SUPERVISED_1)
    assert model_a.locator("input").evaluate("e => e.scrollWidth <= e.clientWidth")  # the whole name shows
    # the Overview's final result, not a preview's figure (A vs B alone), which shows while it is computed: on a
    # server that has A's and B's features already, before Streamlit's running indicator appears
    for name, shows in (("Overview", 'text="What this pair shows"'), ("Images", '[data-testid="stImage"] img')):
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
        settled(page, shows)
        query = url_choices(page)
        assert query["a"] == SUPERVISED_1 and query["a_seed"] == "auto", query
        assert sidebar_select(page, "Other seed of model A").locator("input").input_value() == (
            "its registered other seed"
        )
        expect(sidebar.get_by_text(f"Ceiling of A: A against {SUPERVISED_0}", exact=True)).to_be_visible()
        text = page.get_by_test_id("stMain").inner_text()
        assert "No ceiling for A" not in text and "is not a known source" not in text and "was not used" not in text
        if name == "Overview":  # a ceiling drawn beside A vs B
            svg = base64.b64decode(page.locator(OVERVIEW_CHART).get_attribute("src").split(",", 1)[1]).decode()
            assert set(figure_points(svg)["series"]) - {"A vs B"}
    page.close()


@pytest.mark.slow
def test_every_page_opened_by_a_hostile_link_is_drawn_says_what_it_left_out_on_top_and_shows_no_internals(
    browser, tmp_path_factory
):
    from playwright.sync_api import expect

    base, chromium = browser
    shots = tmp_path_factory.mktemp("screenshots")
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    visits = [(path, shows, draws, HOSTILE | {"per_class": "10"}) for path, shows, draws in PAGES]
    visits.append(("open_result", 'text="Result file"', {}, {"per_class": "abc", "a": "bogus:thing", "batch": "1"}))
    for index, (path, shows, draws, query) in enumerate(visits):
        page.goto(f"{base}/{path}?{urllib.parse.urlencode(query)}")
        settled(page, shows)
        notice = page.get_by_test_id("stMain").get_by_test_id("stAlert").filter(has_text="could not be used").first
        expect(notice).to_be_visible()
        assert notice.bounding_box()["y"] < 250, (path, notice.bounding_box())  # on arrival, above the page
        expect(page.get_by_test_id("stSidebar").get_by_test_id("stAlert")).to_have_count(0)
        for name, value in query.items():
            if name != "per_class" or value == "abc":
                assert f"{name} = {value}" in notice.inner_text() or name == "colour", (path, name)
        url_choices(page)
        for part in ("stMain", "stSidebar"):
            text = page.get_by_test_id(part).inner_text()
            assert not INTERNALS.findall(text), (path, part, INTERNALS.findall(text))
        cells = page.locator('[data-testid="stDataFrame"] [role="gridcell"], [data-testid="stTable"] td')
        shown_cells = cells.all_inner_texts()
        assert "None" not in shown_cells and not any(INTERNALS.search(c) for c in shown_cells), (path, shown_cells)
        _drawn_whole(page, draws)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        page.screenshot(path=str(shots / f"{index}-{path or 'overview'}.png"), full_page=True)
    page.close()
    print(f"\nscreenshots in {shots}")


def _drawn_whole(page, draws: dict[str, int]) -> None:
    """Wait for everything the page draws: its Vega charts, the overview's figure (with the untrained floor's band
    and one-liners that agree with the findings), the Models table, the Images grid."""
    from playwright.sync_api import expect

    if "charts" in draws:
        drawn = page.locator(f"{VEGA} canvas, {VEGA} svg")
        expect(drawn).to_have_count(draws["charts"], timeout=COLD_MS)
    if "figure" in draws:
        expect(page.locator(OVERVIEW_CHART)).to_have_count(draws["figure"], timeout=COLD_MS)
        expect(page.locator(OVERVIEW_CHART)).to_have_js_property("complete", True)
        svg = base64.b64decode(page.locator(OVERVIEW_CHART).get_attribute("src").split(",", 1)[1]).decode()
        assert not figure_ranges(svg, "floor").empty  # the untrained floor's band, beside A vs B
        _one_liners_agree_with_the_findings(page)
    if "table" in draws:
        expect(page.locator('[data-testid="stDataFrame"] canvas')).not_to_have_count(0, timeout=COLD_MS)
    if "images" in draws:
        images = page.locator('[data-testid="stImage"] img')
        expect(images).to_have_count(draws["images"], timeout=COLD_MS)
        images.last.scroll_into_view_if_needed()
        expect(images.last).to_have_js_property("complete", True)


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
