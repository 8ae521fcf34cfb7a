"""An unexpected failure, told to the visitor in one short sentence and logged whole for whoever runs the server."""

from __future__ import annotations

import logging
import secrets

import streamlit as st

LOG = logging.getLogger("cka_lens")


def apologise(err: BaseException, doing: str) -> None:
    """Log `err` with its traceback under a short id, and show an apology naming what failed and that id (never
    the message itself, which may hold paths or other visitors' names)."""
    incident = secrets.token_hex(4)
    LOG.error("incident %s while %s", incident, doing, exc_info=(type(err), err, err.__traceback__))
    st.error(f"Something went wrong while {doing} ({type(err).__name__}, incident {incident}); please report it.")
