"""The charts' legends and labels as a real browser draws them: each legend entry once, none cut short.

Vega draws our charts as SVG (ui.charts.drawn), so the text of every legend, axis and title is in the page: read
there, never from a screenshot. On the browser tests' shared server (tests/app/conftest.py), 10 images per class.
"""

from __future__ import annotations

import urllib.parse
from collections import Counter

import pytest

from tests.app.support import CHROMIUM, CHROMIUM_ARGS, PAGE_CHARTS
from tests.bundled import REAL_PAIR

COLD_MS = 240_000  # a cold analysis on a busy CPU
PAGES = {path: PAGE_CHARTS[path] for path in ("similarity", "training")}  # the pages with legends, their charts
CUT = "…"  # what Vega puts at the end of a text it cuts to its limit
TEXTS = """chart => {
  const texts = selector => Array.from(chart.querySelectorAll(selector + ' text'), t => t.textContent);
  return {
    legends: Array.from(chart.querySelectorAll('g.role-legend'), legend => ({
      title: Array.from(legend.querySelectorAll('.role-legend-title text'), t => t.textContent),
      labels: Array.from(legend.querySelectorAll('.role-legend-label text'), t => t.textContent),
    })),
    axes: Array.from(chart.querySelectorAll('g.role-axis'), axis => Array.from(
      axis.querySelectorAll('.role-axis-label text'),
      t => {
        const box = t.getBoundingClientRect();
        const hidden = t.getAttribute('opacity') === '0' || getComputedStyle(t).opacity === '0';
        return {text: t.textContent, shown: !hidden, box: [box.left, box.top, box.right, box.bottom]};
      },
    )),
    all: texts('svg'),
  };
}"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]


@pytest.fixture(scope="module")
def drawn(app_server, tiny_specs, once_per_run) -> dict[str, list[dict]]:
    """Each page's charts as drawn: their legends (title, labels), axis labels and every text, read from the SVG
    (once per test run, `once_per_run`: these tests may be dealt to both workers)."""
    query = {"per_class": "10"}
    if not REAL_PAIR:  # the bundled pair is not trained yet: compare tiny checkpoints, named in the URL
        query |= {"a": tiny_specs["a"], "b": tiny_specs["b"]}
    return once_per_run("drawn-charts", lambda _: _read_charts(app_server, query))


def _read_charts(base: str, query: dict[str, str]) -> dict[str, list[dict]]:
    from playwright.sync_api import expect, sync_playwright

    found = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for path, count in PAGES.items():
            page.goto(f"{base}/{path}?{urllib.parse.urlencode(query)}")
            charts = page.locator('[data-testid="stVegaLiteChart"]')
            expect(charts.locator("svg.marks")).to_have_count(count, timeout=COLD_MS)
            expect(page.locator('[data-testid="stException"]')).to_have_count(0)
            found[path] = [charts.nth(i).evaluate(TEXTS) for i in range(count)]
        browser.close()
    return found


@pytest.mark.slow  # the first to run reads both pages in a browser for every test here (`drawn`)
@pytest.mark.parametrize("path", list(PAGES))
def test_each_legend_entry_is_drawn_once_and_whole(drawn, path):
    for chart in drawn[path]:
        titles = [t for legend in chart["legends"] for t in legend["title"]]
        labels = [label for legend in chart["legends"] for label in legend["labels"]]
        assert not [t for t, n in Counter(titles).items() if n > 1], chart["legends"]  # one legend per encoding
        assert not [t for t, n in Counter(labels).items() if n > 1], chart["legends"]  # each entry once
        assert not [t for t in titles + labels if CUT in t], chart["legends"]
        assert not [t for t in chart["all"] if CUT in t]  # no axis label, title or subtitle cut short either


def test_the_matched_chart_names_every_curve_and_the_training_curves_every_layer(drawn):
    legends = [{**legend, "chart": i} for i, chart in enumerate(drawn["similarity"]) for legend in chart["legends"]]
    matched = [legend["labels"] for legend in legends if "A vs B: block outputs" in legend["labels"]]
    assert len(matched) == 1 and "A vs B: residual branches" in matched[0]
    if REAL_PAIR:  # the bundled models name their other seeds: both ceilings, each once, with their line styles
        assert [label for label in matched[0] if label.startswith("ceiling: ")] == [
            "ceiling: A (simclr) vs another seed",
            "ceiling: B (supervised) vs another seed",
        ]
        assert ["block outputs", "residual branches"] in [legend["labels"] for legend in legends]
    layers = [
        legend["labels"] for chart in drawn["training"] for legend in chart["legends"] if legend["title"] == ["layer"]
    ]
    assert len(layers) == 2 and all(len(labels) >= 2 for labels in layers)  # the two panels of curves over training


def _overlap(a: list[float], b: list[float]) -> float:
    """The area two boxes (left, top, right, bottom) share, in px²."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


@pytest.mark.parametrize("path", list(PAGES))
def test_no_two_axis_labels_drawn_overlap(drawn, path):
    """Layer names stand upright: none overlaps another; where bands are too narrow some are left out, never all."""
    for chart in drawn[path]:
        for axis in chart["axes"]:
            shown = [label for label in axis if label["shown"]]
            assert len(shown) >= min(len(axis), 2)
            clashes = [
                (a["text"], b["text"])
                for i, a in enumerate(shown)
                for b in shown[i + 1 :]
                if _overlap(a["box"], b["box"]) > 1.0
            ]
            assert clashes == []
