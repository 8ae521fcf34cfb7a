"""Open a result: a file that `python -m cli compare` wrote (on a GPU cluster, say), explored here."""

import streamlit as st

from core.errors import LensError
from ui.apology import apologise
from ui.opened import open_result, opened_name
from ui.router import use_app_router
from ui.text import code, plain

use_app_router()

st.title("Open a result")
st.markdown(
    "A result file (`.json`) that `python -m cli compare` wrote, on this machine or elsewhere (under torchrun on "
    "a GPU cluster, say), or that a Download JSON button gave. Once opened, the Overview, Layer similarity and "
    "Probes pages show it, in this browser session only, until you close it there."
)
opened = st.file_uploader("Result file", type=["json"], key="result_file")
if opened is not None and st.session_state.get("opened_file_id") != opened.file_id:
    st.session_state["opened_file_id"] = opened.file_id  # opened once: closing it on a page is not undone here
    try:
        result = open_result(opened.name, opened.getvalue())
        st.success(
            f"Opened {code(opened.name)}: {code(result.model_a.source)} vs {code(result.model_b.source)} on "
            f"{result.used_images:,} images. The Overview, Layer similarity and Probes pages now show it."
        )
    except LensError as err:
        st.error(plain(err, 600))
    except Exception as err:  # noqa: BLE001 - a bug: logged, and the visitor gets an apology with a reference
        apologise(err, "opening the result file")
elif opened_name() is not None:
    st.info(f"Showing {code(opened_name())} on the other pages.")
