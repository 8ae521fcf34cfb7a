"""Keep app.py's st.navigation the one router, although the page files live in `pages/`."""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def use_app_router() -> None:
    """Streamlit (1.67) takes a `pages/` folder beside app.py for an old-style multipage app: on the
    first run of a fresh server it would run a deep-linked page file on its own, without app.py's
    sidebar and choices. Switching that mode off and rerunning hands every run to app.py's
    st.navigation, so shared links open with the frame. Called first by app.py and by every page.
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
