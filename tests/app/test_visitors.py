"""Several visitors on one server at the same moment, in real browser pages: each gets its own result.

AppTest runs sessions one after another, so it cannot show this; here one fresh `streamlit run` serves
several Chromium pages that arrive together, each with its own choices in the URL, one uploading a
checkpoint, one uploading a broken file and one asking for a Hub model while the Hub is unreachable.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request

import pytest
from safetensors.torch import save

from models.resnet import ArchConfig, build_resnet
from tests.app.support import CHROMIUM, OVERVIEW_CHART, SERVER_PIDS, peak_rss_mb, streamlit_server, together

WAIT_MS = 300_000  # cold analyses computed side by side on a busy 2-core CPU
MAX_SERVER_MB = 3000  # the caches' bounds: 6 networks, 8 fingerprints, 8 results, 4 subsets, on tiny networks

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]


def _checkpoint_bytes() -> bytes:
    net = build_resnet(ArchConfig(width=4, num_classes=10))
    return save({k: v.contiguous() for k, v in net.state_dict().items()})


async def _open(browser, base: str, path: str, query: dict[str, str]):
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    await page.goto(f"{base}/{path}?{urllib.parse.urlencode(query)}")
    return context, page


async def _analysis(browser, base: str, query: dict[str, str]) -> tuple[str, float, str]:
    """The overview with `query`: its result caption, the seconds to the first chart (a preview), and the page's
    text once the final result is shown."""
    from playwright.async_api import expect

    t0 = time.monotonic()
    context, page = await _open(browser, base, "", query)
    await expect(page.locator(OVERVIEW_CHART).first).to_be_visible(timeout=WAIT_MS)
    seconds = time.monotonic() - t0  # the first chart: a preview while the result is computed
    await expect(page.get_by_text("What this pair shows")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    caption = await page.get_by_text("A = ").first.inner_text()
    text = await page.locator("body").inner_text()
    await context.close()
    return caption, seconds, text


async def _refused(browser, base: str, query: dict[str, str], expected: str) -> str:
    """A visitor whose model cannot be loaded: the message, never an exception box; the page's text."""
    from playwright.async_api import expect

    context, page = await _open(browser, base, "", query)
    await expect(page.get_by_text(expected).first).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    text = await page.locator("body").inner_text()
    await context.close()
    return text


async def _upload(browser, base: str, query: dict[str, str], name: str, data: bytes, expected: str) -> str:
    """A visitor who uploads a file on the Models page and waits for `expected`; the page's text."""
    from playwright.async_api import expect

    context, page = await _open(browser, base, "models", query)
    tab = page.get_by_role("tab", name="Upload a checkpoint")
    await expect(tab).to_be_visible(timeout=WAIT_MS)
    await tab.click()
    chooser = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    await expect(chooser).to_have_count(1, timeout=WAIT_MS)
    await chooser.set_input_files(files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
    await expect(page.get_by_text(expected).first).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    text = await page.locator("body").inner_text()
    await context.close()
    return text


@pytest.mark.slow
def test_six_visitors_arriving_together_each_see_only_their_own(tiny_specs):
    models = {"a": tiny_specs["a"], "b": tiny_specs["b"]}  # what is kept apart, not what is compared, is tested
    subsets = [
        models | {"per_class": str(k), "subset_seed": str(s), "batch": "20"} for k, s in ((6, 11), (7, 12), (8, 13))
    ]
    hub = models | {"b": "hub:nobody/no-such-cifar-model", "per_class": "5"}
    visits = [lambda browser, base, q=q: _analysis(browser, base, q) for q in subsets]
    visits.append(lambda browser, base: _refused(browser, base, hub, "could not be loaded"))
    visits.append(
        lambda browser, base: _upload(
            browser, base, {}, "visitor-upload.safetensors", _checkpoint_bytes(), "upload:visitor-upload.safetensors"
        )
    )
    visits.append(
        lambda browser, base: _upload(
            browser,
            base,
            {},
            "broken.pt",
            b"not a checkpoint at all",
            "neither a safetensors file nor a PyTorch checkpoint",
        )
    )
    with streamlit_server() as base:
        results = together([lambda browser, visit=visit: visit(browser, base) for visit in visits])
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=10) as reply:
            assert reply.read() == b"ok"  # the server is still up
        peak_mb = peak_rss_mb(SERVER_PIDS[base])
    for (caption, _, _), query in zip(results[:3], subsets, strict=True):
        k, s = int(query["per_class"]), query["subset_seed"]
        assert f"{10 * k} test images (10 classes × {k}, subset seed {s})" in caption, caption
    for text in [r[2] for r in results[:3]] + [results[3]]:
        assert "visitor-upload" not in text and "broken.pt" not in text  # nobody sees another's upload
    assert "nobody/no-such-cifar-model" not in " ".join(r[2] for r in results[:3])  # nor another's choices
    seconds = sorted(r[1] for r in results[:3])
    print(
        f"\nsix visitors: first chart after {', '.join(f'{t:.1f}' for t in seconds)} s; server peak {peak_mb:.0f} MiB"
    )
    assert peak_mb < MAX_SERVER_MB, peak_mb
