"""Previews in a real browser: the charts of the first minibatches appear while the rest are computed, then the
final result takes their place. On the browser tests' shared server (tests/app/conftest.py), with a subset no
other test asks for, so that nothing of it is in the run's result store or the server's caches."""

from __future__ import annotations

import time

import pytest

from tests.app.support import CHROMIUM, OVERVIEW_CHART, together
from tests.bundled import REAL_PAIR

WAIT_MS = 300_000
PREVIEW = "Preview from the first"
FINAL = "What this pair shows"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]


async def _watch(browser, url: str) -> dict:
    """When the first preview and the final result appeared on the page, and what the preview said."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    t0 = time.monotonic()
    await page.goto(url)
    preview = page.get_by_text(PREVIEW)
    await expect(preview).to_be_visible(timeout=WAIT_MS)
    seen = {"preview_s": time.monotonic() - t0, "said": await preview.inner_text()}
    await expect(page.locator(OVERVIEW_CHART).first).to_be_visible(timeout=WAIT_MS)
    seen["first_chart_s"] = time.monotonic() - t0
    seen["preview_at_first_chart"] = await page.get_by_text(PREVIEW).count()
    await expect(page.get_by_text(FINAL)).to_be_visible(timeout=WAIT_MS)
    seen["final_s"] = time.monotonic() - t0
    seen["preview_left"] = await page.get_by_text(PREVIEW).count()
    seen["exceptions"] = await page.locator('[data-testid="stException"]').count()
    await context.close()
    return seen


@pytest.mark.slow
def test_a_preview_is_drawn_before_the_result_and_gives_way_to_it(app_server, tiny_specs):
    models = "" if REAL_PAIR else f"a={tiny_specs['a']}&b={tiny_specs['b']}&"
    query = f"{models}per_class=20&subset_seed=17&batch=20"  # 200 images in 10 minibatches, this test's alone
    (seen,) = together([lambda browser: _watch(browser, f"{app_server}/?{query}")])
    assert seen["preview_at_first_chart"] == 1  # the first chart on the page was a preview's
    assert "of 200 images" in seen["said"] and "of 10 minibatches" in seen["said"], seen["said"]
    assert seen["first_chart_s"] < seen["final_s"]
    assert seen["preview_left"] == 0 and seen["exceptions"] == 0
