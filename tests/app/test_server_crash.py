"""The server killed while it writes to the result store: after a restart the entry is recomputed, never read half.

A real `streamlit run` computes the overview's analysis for a real browser page; the moment a temporary file
of the store appears (an entry being written), the server gets SIGKILL, as from the out-of-memory killer or a
pulled plug. A second server on the same store must show the page, recompute what was being written, and keep
it as a whole entry.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from core import settings
from core.store import ENTRIES, Store
from tests.app.support import CHROMIUM, OVERVIEW_CHART, SERVER_PIDS, streamlit_server, together

WAIT_MS = 300_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (`make browser` installs it)"),
]


def _kill_on_first_write(store: Path, pid: int, caught: list[str], stop: threading.Event) -> None:
    """SIGKILL `pid` while a temporary store file exists (polled every 0.2 ms), their names in `caught`. The server
    is stopped (SIGSTOP) the moment one is seen and looked at again frozen: killed if one is still there, else let go
    on (SIGCONT), so that what `caught` names was never finished, however late this thread ran."""
    while not stop.is_set():
        if _temporary(store):
            os.kill(pid, signal.SIGSTOP)
            _wait_stopped(pid)
            names = _temporary(store)
            if names:
                os.kill(pid, signal.SIGKILL)
                caught.extend(names)
                return
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.0002)


def _temporary(store: Path) -> list[str]:
    try:
        return [p.name for p in os.scandir(store) if p.name.endswith(".tmp")]
    except FileNotFoundError:
        return []


def _wait_stopped(pid: int) -> None:
    """Until every thread of `pid` is stopped ('T' in /proc), as SIGSTOP leaves them shortly after kill returns."""
    while True:
        states = []
        for task in os.scandir(f"/proc/{pid}/task"):
            try:
                with open(f"{task.path}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:  # a thread that has just ended
                continue
        if all(state in "Tt" for state in states):
            return
        time.sleep(0.0001)


async def _chart(browser, base: str, query: str) -> None:
    """Open the overview with `query` and wait for its final result and chart (not a preview's), with no
    exception box."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    await page.goto(f"{base}/?{query}")
    await expect(page.get_by_text("What this pair shows")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator(OVERVIEW_CHART).first).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    await context.close()


def _killed_mid_write(store: Path, env: dict[str, str], query: str) -> tuple[list[str], list[str]]:
    """Open the page on a fresh server and kill the server at its first store write; the temporary files seen
    then, and what the store holds afterwards."""
    caught: list[str] = []
    stop = threading.Event()
    with streamlit_server(env) as base:
        pid = SERVER_PIDS[base]
        watcher = threading.Thread(target=_kill_on_first_write, args=(store, pid, caught, stop), daemon=True)
        watcher.start()

        async def visit(browser) -> None:
            context = await browser.new_context(viewport={"width": 1300, "height": 900})
            page = await context.new_page()
            await page.goto(f"{base}/?{query}")
            deadline = time.monotonic() + WAIT_MS / 1000
            while not caught and watcher.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # the page stays open while its analysis runs
            await context.close()

        together([visit])
        stop.set()
        watcher.join(timeout=5)
    return caught, sorted(p.name for p in store.iterdir()) if store.is_dir() else []


def _read(store: Store, name: str) -> object | None:
    """The store's entry whose file is `name` ('{key}.fp' or '{key}.{result suffix}'), or None where it is not whole."""
    key, suffix = name.split(".")
    return store.fingerprint(key) if suffix == "fp" else store.result(key)


@pytest.mark.slow
def test_a_server_killed_while_writing_an_entry_recomputes_it_after_a_restart(tmp_path, tiny_specs):
    store = tmp_path / "store"
    env = {settings.STORE: str(store)}
    query = f"a={tiny_specs['a']}&b={tiny_specs['b']}&per_class=10&subset_seed=5"  # tiny networks: the store is tested
    own = store / ENTRIES  # where the store keeps its files
    caught, left = _killed_mid_write(own, env, query)
    assert caught, f"no write was caught in progress; the store holds {left}"
    tmp_name = caught[0]
    key, suffix = tmp_name[1:].split(".")[:2]  # ".{key}.{suffix}.{pid}.{token}.tmp"
    final = own / f"{key}.{suffix}"
    assert not final.exists(), "the entry being written when the server died must not exist as an entry"
    # on a busy machine the watcher may look after a small entry or two were written: those must read back whole
    before = Store(store, 1 << 30)
    for name in (n for n in left if not n.endswith(".tmp")):
        assert _read(before, name) is not None, f"{name}, written before the kill, does not read back whole"

    with streamlit_server(env) as base:
        together([lambda browser: _chart(browser, base, query)])
    assert final.exists(), "the interrupted entry was not computed again and kept"
    assert _read(Store(store, 1 << 30), final.name) is not None, "the rewritten entry must read back whole"
    whole = sorted(p.name for p in own.iterdir() if not p.name.endswith(".tmp"))
    assert len(whole) >= 3, whole  # both fingerprints and the result, all written this time
