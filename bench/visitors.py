"""Many visitors at once on one fresh `streamlit run app.py`: time to the first chart, p50/p95, and peak memory.

Each visitor is a real Chromium page opening the overview with its own subset in the URL (the bundled pair,
a different subset seed each, so nothing is served from a cache or the result store, which starts empty), all
arriving together. The server computes as many analyses at once as its cores hold at its torch thread count
(ui.service.computing_slot); the others wait their turn. The server's peak resident memory is read from /proc
(VmHWM).

    .venv/bin/python bench/visitors.py --sessions 6,12 --json bench/results/visitors.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.app.support import OVERVIEW_CHART, SERVER_PIDS, peak_rss_mb, streamlit_server, together  # noqa: E402


async def _visit(browser, url: str) -> float:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    t0 = time.monotonic()
    await page.goto(url)
    await expect(page.locator(OVERVIEW_CHART)).to_have_count(1, timeout=1_800_000)
    seconds = time.monotonic() - t0
    await expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    await context.close()
    return seconds


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="6,12")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="CKA_LENS_THREADS of the server (2: all cores here)")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for count in (int(n) for n in args.sessions.split(",")):
        store = tempfile.mkdtemp(prefix="cka-lens-bench-store-")
        with streamlit_server({"CKA_LENS_STORE": store, "CKA_LENS_THREADS": str(args.threads)}) as base:
            urls = [f"{base}/?per_class={args.per_class}&subset_seed={100 + i}" for i in range(count)]
            t0 = time.monotonic()
            seconds = together([lambda browser, url=url: _visit(browser, url) for url in urls])
            wall = time.monotonic() - t0
            peak = peak_rss_mb(SERVER_PIDS[base])
        row = {
            "sessions": count,
            "p50_s": round(statistics.median(seconds), 1),
            "p95_s": round(_percentile(seconds, 0.95), 1),
            "max_s": round(max(seconds), 1),
            "all_done_s": round(wall, 1),
            "server_peak_mib": round(peak),
        }
        rows.append(row)
        print(row, flush=True)
    if args.json:
        report = {"per_class": args.per_class, "threads": args.threads, "runs": rows}
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
