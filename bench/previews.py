"""The wait a person feels: time to the first chart (a preview) over time to the final result, in a real browser.

A `streamlit run app.py` with its result store off. One untimed visit warms it (imports, the bundled networks
loaded), as a running server is; then each timed visit opens the overview, in a new Chromium page, on a subset
no earlier visit used, so nothing of its analysis is cached, and records when the first chart appears (a preview
from the first minibatches) and when the final result, with its ceiling, replaces it ("What this pair shows").
With --cold, every visit gets a fresh server instead (the imports and network loads then count in both times).
With --apart, the server runs on core 0 with one thread and the browser on core 1, as a visitor's browser runs on a
machine of its own (the server then has one core where the default gives it two, shared with the browser).
Target (issue "speed you can feel"): first chart after at most 20% of the time to the final result.

    .venv/bin/python bench/previews.py --json bench/results/previews.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core import settings  # noqa: E402
from tests.app.support import OVERVIEW_CHART, streamlit_server, together  # noqa: E402


async def _visit(browser, url: str) -> dict:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    t0 = time.monotonic()
    await page.goto(url)
    await expect(page.locator(OVERVIEW_CHART).first).to_be_visible(timeout=1_800_000)
    first = time.monotonic() - t0
    preview = await page.get_by_text("Preview from the first").count()
    await expect(page.get_by_text("What this pair shows")).to_be_visible(timeout=1_800_000)
    final = time.monotonic() - t0
    await expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    await context.close()
    return {"first_chart_s": round(first, 2), "first_chart_was_a_preview": preview > 0, "final_s": round(final, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seeds", default="301,302,303", help="subset seeds, one cold visit each")
    parser.add_argument("--threads", default="2", help="CKA_LENS_THREADS of the server")
    parser.add_argument("--cold", action="store_true", help="a fresh server for every visit")
    parser.add_argument("--apart", action="store_true", help="the server on core 0 (one thread), the browser on core 1")
    parser.add_argument("--json")
    args = parser.parse_args()
    env = {settings.STORE: "off", "CKA_LENS_THREADS": "1" if args.apart else args.threads}
    cpus = "0" if args.apart else None
    if args.apart:
        os.sched_setaffinity(0, {1})  # this process and the browser it starts
    runs = []

    def visit(base: str, seed: str) -> dict:
        url = f"{base}/?per_class={args.per_class}&subset_seed={seed}"
        return together([lambda browser: _visit(browser, url)])[0]

    seeds = args.seeds.split(",")
    with streamlit_server(env, cpus) as base:
        if not args.cold:
            visit(base, "300")  # the warm-up: imports and network loads, untimed
        for seed in seeds:
            if args.cold:
                with streamlit_server(env, cpus) as fresh:
                    run = visit(fresh, seed)
            else:
                run = visit(base, seed)
            run["ratio"] = round(run["first_chart_s"] / run["final_s"], 3)
            runs.append(run)
            print(f"subset seed {seed}: {run}", flush=True)
    server = "a fresh server per visit" if args.cold else "one warm server"
    server += ", the server on core 0 with one thread and the browser on core 1" if args.apart else ""
    out = {
        "what": f"first chart / final result, overview, bundled pair, uncached subsets, {server}, real Chromium",
        "images": 10 * args.per_class,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "runs": runs,
    }
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
