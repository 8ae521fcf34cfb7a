"""The app's real-browser tests share one Streamlit server wherever they can.

Each `streamlit run` costs a start, loading the bundled networks and computing their analyses once more; one
server for every test that needs nothing of its own (no settings of its own, no fresh process, no kill) computes
each analysis once and serves it to every later page from its caches. Per-test state lives in the URL's
parameters and in each test's own browser pages (a Streamlit session per page), never in the server.

A test opts in by asking for `app_server` and carrying the `support.SHARED` mark: pytest-xdist's `--dist loadgroup` (the
Makefile's test line) then runs every such test on one worker, so that one server serves them all. Tests that need
a server of their own (other settings, a fresh process, a killed one) keep `support.streamlit_server`.
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
    (the tests on it run in their files' order, and tests/app/test_browser.py comes first), else a new one."""
    if not _shared_server["used"]:
        _shared_server["used"] = True
        yield _shared_server["base"]
    else:
        with streamlit_server() as base:
            yield base
