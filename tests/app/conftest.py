"""The app's real-browser tests share one Streamlit server wherever they can.

Each `streamlit run` costs a start, loading the bundled networks and computing their analyses once more; one
server for every test that needs nothing of its own (no settings of its own, no fresh process, no kill) computes
each analysis once and serves it to every later page from its caches. Per-test state lives in the URL's
parameters and in each test's own browser pages (a Streamlit session per page), never in the server.

A test opts in by asking for `app_server` (or `fresh_app_server`). Each pytest process starts the shared server at
its first such test, so `make test`'s two workers start at most two. Tests that need a server of their own (other
settings, a fresh process, a killed one) keep `support.streamlit_server`.

Not done: one worker for all of them (pytest-xdist's `xdist_group` mark with `--dist loadgroup`). With pytest 9.2
and pytest-xdist 3.8.0 the mark has no effect: xdist renames `item._nodeid`, while pytest 9 derives a node's id
from another attribute, so every grouped test is scheduled on its own (checked on a two-worker run).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.app.support import streamlit_server


@pytest.fixture(scope="session")
def _shared_server() -> Iterator[dict]:
    """The one `streamlit run app.py` this pytest process shares (default settings; the result store is the test
    run's, tests/conftest.py): its base URL, and whether a test has had it yet."""
    with streamlit_server() as base:
        yield {"base": base, "used": False}


@pytest.fixture(scope="session")
def app_server(_shared_server) -> str:
    """The base URL of the server this pytest process shares between its browser tests."""
    _shared_server["used"] = True
    return _shared_server["base"]


@pytest.fixture
def fresh_app_server(_shared_server) -> Iterator[str]:
    """The base URL of a server no page has been opened on yet: the shared one when this test is the first to have it
    (tests/conftest.py puts the tests asking for this fixture before all others), else a new one."""
    if not _shared_server["used"]:
        _shared_server["used"] = True
        yield _shared_server["base"]
    else:
        with streamlit_server() as base:
            yield base
