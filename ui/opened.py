"""Result files opened in a session: read once on the Open a result page, then shown by every page until closed."""

from __future__ import annotations

import streamlit as st

from core.ceilings import Ceilings
from core.report import open_report
from core.result import AnalysisResult
from ui.text import code

OPENED = "opened_result"  # session_state: (file name, AnalysisResult) opened on the Open a result page
OPENED_CEILINGS = "opened_ceilings"  # session_state: the opened file's Ceilings


def open_result(name: str, data: bytes) -> AnalysisResult:
    """Read a result file the CLI (or a download) wrote and show it on every page of this session; a
    ResultFileError says why a file cannot be read, and then nothing is kept open."""
    close_opened()
    result, ceilings = open_report(name, data)
    st.session_state[OPENED] = (name, result)
    st.session_state[OPENED_CEILINGS] = ceilings
    return result


def opened_name() -> str | None:
    """The name of the file this session has open, or None."""
    return st.session_state[OPENED][0] if OPENED in st.session_state else None


def close_opened() -> None:
    st.session_state.pop(OPENED, None)
    st.session_state.pop(OPENED_CEILINGS, None)


def shown_opened() -> tuple[AnalysisResult, Ceilings] | None:
    """The opened file's result and ceilings, after a line saying that they, not the sidebar's choice, are shown
    and a button that closes the file; None when this session has no file open."""
    if OPENED not in st.session_state:
        return None
    name, result = st.session_state[OPENED]
    st.info(
        f"Showing {code(name)}, a result opened from a file (A = {code(result.model_a.source)}, "
        f"B = {code(result.model_b.source)}), not the sidebar's choice."
    )
    st.button("Close it and show the sidebar's choice", on_click=close_opened, key="close_opened")
    return result, st.session_state.get(OPENED_CEILINGS, Ceilings())
