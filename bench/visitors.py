"""Many visitors at once on one fresh `streamlit run app.py`: time to the first chart, p50/p95, and peak memory.

Each visitor is a real Chromium page opening the overview with its own subset in the URL (the bundled pair,
a different subset seed each, so nothing is served from a cache or the result store, which starts empty), all
arriving together. The server computes as many analyses at once as its cores hold at its torch thread count
(ui.service.computing_slot); the others wait their turn. The server's peak resident memory is read from /proc
(VmHWM).

    .venv/bin/python bench/visitors.py --sessions 6,12 --json bench/results/visitors.json

With `--start CLONE`, one visitor on a fresh clone instead: `make run` there (its .venv already set up; an empty
result store), the time from the command to the first HTTP 200 on /, then from opening the overview at that moment
to its final figure (drawn from the results shipped with the app), when the server's warm-up said it was done, and
the same overview opened by a second visitor after that.

    git clone . ../fresh && ln -s "$PWD/.venv" ../fresh/.venv && .venv/bin/python bench/visitors.py --start ../fresh
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
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


async def _final_overview(browser, url: str) -> float:
    """Seconds from opening the overview to its final figure (the study's findings come with the finished pair)."""
    from playwright.async_api import expect

    page = await browser.new_page(viewport={"width": 1300, "height": 900})
    t0 = time.monotonic()
    await page.goto(url)
    await expect(page.get_by_text("The study's findings, checked on this pair")).to_be_visible(timeout=600_000)
    await expect(page.locator(OVERVIEW_CHART)).to_have_js_property("complete", True)
    seconds = time.monotonic() - t0
    await expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    return seconds


def _start(clone: Path, port: int) -> dict:
    """`make run` in a fresh clone: seconds to the first HTTP 200 on /, to the final overview, to the warm-up's end."""
    store = tempfile.mkdtemp(prefix="cka-lens-bench-store-")
    env = os.environ | {"CKA_LENS_STORE": store, "HF_HUB_OFFLINE": "1"}
    command = ["make", "-o", ".venv/.runtime", "run", f"PORT={port}"]  # the venv is set up: make must not rebuild it
    load_at_start = round(os.getloadavg()[0], 1)
    t0 = time.monotonic()
    server = subprocess.Popen(
        command, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    said: list[tuple[float, str]] = []
    threading.Thread(target=lambda: said.extend((time.monotonic() - t0, x.rstrip()) for x in server.stdout)).start()
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("\n".join(line for _, line in said)) from None
                time.sleep(0.05)
        http = time.monotonic() - t0
        (overview,) = together([lambda browser: _final_overview(browser, f"http://127.0.0.1:{port}/")])
        while not any("warm-up: done" in line for _, line in said) and server.poll() is None:
            time.sleep(0.1)
        (later,) = together([lambda browser: _final_overview(browser, f"http://127.0.0.1:{port}/")])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    warmed = next(t for t, line in said if "warm-up: done" in line)
    computed = any(line.startswith("CKA Lens warm-up:   ") for _, line in said)
    row = {"first_http_200_s": round(http, 2), "final_overview_s": round(overview, 2)}
    row |= {"warm_up_done_s": round(warmed, 1), "after_warm_up_s": round(later, 2), "warm_up_computed": computed}
    step = {
        n: next((t for t, line in said if line.startswith(f"CKA Lens warm-up: step {n} ")), math.nan) for n in (1, 2)
    }
    row["imports_and_server_start_s"] = round(step[2] - step[1], 1)  # from step 1's line to step 2's
    return row | {"load_1min": round(os.getloadavg()[0], 1), "load_at_start_1min": load_at_start}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="6,12")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="CKA_LENS_THREADS of the server (2: all cores here)")
    parser.add_argument("--start", type=Path, metavar="CLONE", help="a fresh clone with .venv: time `make run`")
    parser.add_argument("--port", type=int, default=8599, help="--start's port")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.start:
        row = _start(args.start.resolve(), args.port)
        print(row, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"start": row}, indent=1) + "\n")
        return
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
