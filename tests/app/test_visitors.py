"""Several visitors on one server at the same moment, in real browser pages: each gets its own result.

AppTest runs sessions one after another, so it cannot show this; here one fresh `streamlit run` serves
several Chromium pages that open the overview together, each with its own subset in the URL.
"""

from __future__ import annotations

import asyncio
import urllib.parse

import pytest

from tests.app.support import CHROMIUM, CHROMIUM_ARGS, streamlit_server
from tests.bundled import REAL_PAIR

WAIT_MS = 300_000  # cold analyses computed side by side on a busy 2-core CPU

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]


async def _visit(browser, base: str, query: dict[str, str]) -> str:
    """Open the overview with `query`; wait for the chart; return the result caption the page shows."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    await page.goto(f"{base}/?{urllib.parse.urlencode(query)}")
    chart = page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg')
    await expect(chart).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    caption = await page.get_by_text("A = ").first.inner_text()
    await context.close()
    return caption


async def _visit_together(base: str, queries: list[dict[str, str]]) -> list[str]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            return await asyncio.gather(*(_visit(browser, base, q) for q in queries))
        finally:
            await browser.close()


def test_two_visitors_arriving_together_on_a_fresh_server_both_get_their_own_result(tiny_specs):
    models = {} if REAL_PAIR else {"a": tiny_specs["a"], "b": tiny_specs["b"]}
    queries = [models | {"per_class": str(k), "subset_seed": str(s), "batch": "20"} for k, s in ((6, 11), (7, 12))]
    with streamlit_server() as base:
        captions = asyncio.run(_visit_together(base, queries))
    for caption, query in zip(captions, queries, strict=True):
        k, s = int(query["per_class"]), query["subset_seed"]
        assert f"{10 * k} test images (10 classes × {k}, subset seed {s})" in caption, caption
