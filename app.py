"""CKA Lens: where do a self-supervised and a supervised network learn the same representations?

The frame and router: page config, the shared sidebar (whose choices live in the URL), the pages.
The page files live in pages/; `ui.router` keeps this file the router on every run. The sidebar is drawn
before the page, except when the overview has its results at hand: then its figure comes first, since
otherwise the browser fetches the sidebar widgets' code before it shows the figure.
"""

import streamlit as st

from ui.analysis import overview_at_hand
from ui.router import app_frame
from ui.service import configure_threads
from ui.sidebar import notices, settle_choices, sidebar

with app_frame():
    configure_threads()
    st.set_page_config(page_title="CKA Lens", page_icon=":material/compare:", layout="wide")
    choices = settle_choices()
    page = st.navigation(
        [
            st.Page("pages/overview.py", title="Overview", icon=":material/home:", default=True),
            st.Page("pages/similarity.py", title="Layer similarity", icon=":material/grid_on:"),
            st.Page("pages/probes.py", title="Probes and objectives", icon=":material/show_chart:"),
            st.Page("pages/training.py", title="Training", icon=":material/timeline:"),
            st.Page("pages/models.py", title="Models", icon=":material/memory:"),
            st.Page("pages/images.py", title="Images", icon=":material/image:"),
            st.Page("pages/open_result.py", title="Open a result", icon=":material/folder_open:"),
        ]
    )
    notices()  # a link's values left out, a model not used: above the page, where they are seen on arrival
    figure_first = page.url_path == "" and overview_at_hand(choices)
    if not figure_first:
        sidebar()
    page.run()
    if figure_first:
        sidebar()
