"""Keep app.py's st.navigation the one router, although the page files live in `pages/`."""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def use_app_router() -> None:
    """Hand a fresh server's first run of a deep-linked page to app.py's router.

    Checked against Streamlit 1.67.0. A `pages/` folder beside the entry file makes Streamlit start in
    its legacy multipage mode: until some session has run st.navigation (its docs: "as soon as any
    session of your app executes the st.navigation command, your app will ignore the pages/
    directory"), a link to /similarity runs pages/similarity.py on its own, without app.py's sidebar.
    Streamlit has no option to ignore `pages/` from the start, so this switches the legacy mode off
    (a private class attribute, set once per server process) and reruns, which runs app.py. A page
    reached that way is the first code to run, so app.py and every page call this first; after the
    first run it is a no-op. The real-browser test opens /similarity first on a fresh server.
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
