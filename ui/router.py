"""Keep app.py's st.navigation the one router, although the page files live in `pages/`.

Checked against Streamlit 1.67.0. A `pages/` folder beside the entry file makes Streamlit start in its
legacy multipage mode: until some session has run st.navigation (its docs: "as soon as any session of
your app executes the st.navigation command, your app will ignore the pages/ directory"), a link to
/similarity runs pages/similarity.py on its own, without app.py's sidebar. Streamlit has no option to
ignore `pages/` from the start, so the legacy mode is switched off here (a private class attribute) and
the run starts again, which runs app.py. Whether app.py framed a run is known per run (a thread-local
mark: each session's run executes in its own thread), not from the shared flag, so visitors who arrive
together on a fresh server each get their rerun although the first of them already switched the flag.
The real-browser tests open /similarity first on a fresh server, and six pages at once.

The frame is also the last guard of every page: a refusal (LensError) that a page left uncaught is shown as
its message in the visitor's words (an operator's hint goes to the log), anything else as an apology with a
reference (ui.apology), never as a traceback.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from core.errors import LensError
from ui.apology import apologise, logger
from ui.text import for_visitor

_RUN = threading.local()


@contextmanager
def app_frame() -> Iterator[None]:
    """app.py's whole run: the legacy mode off (a fresh server's first run starts again), this run marked framed,
    and whatever escapes a page shown as a refusal or an apology. Streamlit's st.rerun and st.stop are not
    Exceptions (BaseException), so they pass through."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    _RUN.framed = True
    try:
        yield
    except LensError as err:
        if str(err) != err.visitor:  # the operator's part (a setting, a server path) goes to the log only
            logger.warning("refusal shown to a visitor: %s", err)
        st.error(for_visitor(err))
    except Exception as err:  # noqa: BLE001 - a bug: logged with its traceback, the visitor gets a reference
        apologise(err, "showing this page")
    finally:
        _RUN.framed = False


def use_app_router() -> None:
    """Called first by every page: when app.py did not frame this run (a deep link on a fresh server), rerun."""
    if not getattr(_RUN, "framed", False):
        PagesManager.uses_pages_directory = False
        st.rerun()
