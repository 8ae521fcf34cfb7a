"""`make run`'s server on a fresh store: it answers before its warm-up ends, and a first visitor's Overview comes
from the results shipped with the app (ui.shipped), with nothing computed.

The server is `python -m ui.serve`, as `make run` starts it, with an empty result store of its own; its terminal
output is read line by line (the warm-up says each step there). How fast it starts is measured by
bench/visitors.py --start, not here.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.app.support import CHROMIUM, CHROMIUM_ARGS, OVERVIEW_CHART, figure_ranges
from tests.bundled import REAL_PAIR
from ui.serve import PREFIX

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 120_000  # a busy machine's start, not a limit on the app (timings: bench/visitors.py --start)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def test_the_server_answers_at_once_and_the_first_overview_is_the_shipped_one(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    assert REAL_PAIR, "the bundled pair ships with the app, and the shipped results are its"
    store, port = tmp_path / "store", _port()
    command = [sys.executable, "-m", "ui.serve", "--server.headless", "true", "--server.address", "127.0.0.1"]
    command += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
    env = os.environ | {"CKA_LENS_STORE": str(store), "CKA_LENS_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said: list[str] = []
    warmed = threading.Event()

    def read() -> None:
        for line in server.stdout:
            said.append(line.rstrip("\n"))
            if line.startswith(PREFIX + "done"):
                warmed.set()

    threading.Thread(target=read, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        while not _answers(f"{base}/"):
            assert server.poll() is None, "\n".join(said)
            warmed.wait(0.05)
        assert not warmed.is_set(), "the page answered only after the warm-up: it must answer while it runs"

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/")
            expect(page.get_by_text("The study's findings, checked on this pair")).to_be_visible(timeout=WAIT_MS)
            expect(page.locator(OVERVIEW_CHART)).to_have_count(1)
            svg = base64.b64decode(page.locator(OVERVIEW_CHART).get_attribute("src").split(",", 1)[1]).decode()
            assert not figure_ranges(svg, "floor").empty  # the final figure: the floors come with the finished pair
            expect(page.get_by_text("1,000 test images", exact=False).first).to_be_visible()
            browser.close()
        assert warmed.wait(WAIT_MS / 1000), "\n".join(said)
    finally:
        server.terminate()
        server.wait(timeout=30)

    warm_up = [line.removeprefix(PREFIX) for line in said if line.startswith(PREFIX)]
    assert warm_up[:3] == [
        "step 1 of 3: importing torch and the app's modules",
        "step 2 of 3: loading the default networks (the bundled pair and each one's other seed)",
        "step 3 of 3: reading the default comparison and its ceilings from the shipped results",
    ]
    assert len(warm_up) == 4 and warm_up[3].startswith("done in ")  # no stage of a computation was said between
    assert not list(store.rglob("*.json")) and not list(store.rglob("*.fp"))  # nothing computed, so nothing kept
