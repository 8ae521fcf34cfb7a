"""One steady page while it recomputes, in a real browser: after a subset change, the page is sampled every 200 ms
until the new result is drawn. At every sample the figure area holds one figure (never none after the first draw,
never a stale copy beside the new one), no text of the previous subset is left once the new one is known, and the
progress names the whole plan ("step k of n"), k never going back."""

from __future__ import annotations

import re
import time

import pytest

from core import settings
from tests.app.support import CHROMIUM, CHROMIUM_ARGS, OVERVIEW_CHART, streamlit_server

WAIT_MS = 240_000  # a cold analysis on a busy CPU
EVERY_MS = 200
FINAL = "What this pair shows"
# the bundled pair with its ceilings (their registered other seeds), on few images in minibatches of 50
QUERY = "per_class={}&subset_seed=731&batch=50"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]

SAMPLE = """([figure]) => {
    const main = document.querySelector('[data-testid="stMain"]');
    const stale = (el) => el.closest('[data-stale="true"]') !== null;
    const figures = [...main.querySelectorAll(figure)];
    const charts = [...main.querySelectorAll('[data-testid="stVegaLiteChart"]')];
    const areas = [...main.querySelectorAll('[class*="st-key-figure-"]')].map(
        (area) => area.querySelectorAll(figure + ', [data-testid="stVegaLiteChart"]').length);
    return {
        figures: figures.length, stale_figures: figures.filter(stale).length,
        charts: charts.length, stale_charts: charts.filter(stale).length,
        areas: areas, text: main.innerText,
    };
}"""


def _images(per_class: int) -> re.Pattern:
    """Text that names the subset of `per_class` images per class (the caption, the preview line, the notes)."""
    return re.compile(rf"\b{per_class * 10:,} (test )?images\b")


def _recompute(page, per_class: int, done: str) -> list[dict]:
    """Type `per_class` into the sidebar and sample the page every EVERY_MS until the new result is drawn (`done`
    and the new subset's caption shown, no progress left, nothing stale)."""
    field = page.get_by_label("Images per class")
    field.fill(str(per_class))
    field.press("Enter")
    samples, t0, new = [], time.monotonic(), _images(per_class)
    while time.monotonic() - t0 < WAIT_MS / 1000:
        sample = page.evaluate(SAMPLE, [OVERVIEW_CHART])
        sample["t"] = round(time.monotonic() - t0, 2)
        samples.append(sample)
        settled = not sample["stale_figures"] and not sample["stale_charts"] and "step " not in sample["text"]
        if settled and done in sample["text"] and new.search(sample["text"]):
            return samples
        page.wait_for_timeout(EVERY_MS)
    raise AssertionError(f"the result for {per_class} images per class was not drawn: {samples[-1]}")


def _summary(samples: list[dict], old: int, new: int) -> list[str]:
    """One line per sample, for the report when an assertion fails."""
    lines = []
    for s in samples:
        steps = re.findall(r"step \d+ of \d+[^\n]*", s["text"])
        lines.append(
            f"{s['t']:6.2f}s figures {s['figures']} (stale {s['stale_figures']}) charts {s['charts']} (stale "
            f"{s['stale_charts']}) areas {s['areas']} old text {bool(_images(old).search(s['text']))} new text "
            f"{bool(_images(new).search(s['text']))} {steps[:1]}"
        )
    return lines


def _check(samples: list[dict], old: int, new: int, kind: str, areas: int) -> None:
    """Every sample steady: `areas` figure areas each with one figure or chart of `kind` ('figures' or 'charts')
    once the first was drawn, no stale copy, no old subset's text once the new one is named, the plan's steps
    in order."""
    report = "\n".join(_summary(samples, old, new))
    named, steps = False, []
    for s in samples:
        assert s["areas"] == [1] * areas, report
        assert s[kind] == areas and s[f"stale_{kind}"] == 0 or s[f"stale_{kind}"] == s[kind] == areas, report
        named = named or bool(_images(new).search(s["text"]))
        assert not (named and _images(old).search(s["text"])), report
        steps += [(int(k), int(n)) for k, n in re.findall(r"step (\d+) of (\d+)", s["text"])[:1]]
    assert len({k for k, _ in steps}) >= 2 and len({n for _, n in steps}) == 1, report  # several steps, one plan
    assert [k for k, _ in steps] == sorted(k for k, _ in steps), report


def test_a_subset_change_keeps_one_figure_and_no_stale_text(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with streamlit_server({settings.STORE: str(tmp_path / "store")}) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t0 = time.monotonic()
        page.goto(f"{base}/?{QUERY.format(10)}")
        expect(page.get_by_text(FINAL)).to_be_visible(timeout=WAIT_MS)
        overview = _recompute(page, 20, FINAL)
        page.get_by_role("link", name="Layer similarity").click()
        expect(page.get_by_text("Within each model")).to_be_visible(timeout=WAIT_MS)
        similarity = _recompute(page, 30, "Within each model")
        browser.close()
        print(f"\nwhole visit {time.monotonic() - t0:.1f} s")
    for samples, old, new in ((overview, 10, 20), (similarity, 20, 30)):
        print("\n" + "\n".join(_summary(samples, old, new)))
    _check(overview, 10, 20, "figures", 1)
    _check(similarity, 20, 30, "charts", 2)
