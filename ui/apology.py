"""What a visitor sees when CKA Lens itself fails: a short apology with a reference, never the exception.

A refusal (a LensError) is the visitor's to act on and is shown as it is. Anything else is a bug: its
traceback goes to the server's log under a reference, and the visitor gets the same reference to quote,
so a report can be matched to its log line without showing paths or internals in the page.
"""

from __future__ import annotations

import logging

import streamlit as st

from core.errors import bug_reference

logger = logging.getLogger("cka_lens")
if not logger.handlers and not logging.getLogger().handlers:  # a plain `streamlit run`: the server's stderr
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(_handler)


def apologise(err: BaseException, doing: str) -> None:
    """Log `err` with its traceback under a fresh reference and show the visitor an apology naming it.

    `doing` completes "while ...", e.g. "computing the analysis", so the apology says which step failed.
    """
    reference = bug_reference()
    logger.error("bug %s while %s: %s", reference, doing, type(err).__name__, exc_info=err)
    st.error(
        f"Something went wrong on our side while {doing} (reference {reference}); it is not something you did. "
        "Please try again, and if it happens again, report it with this reference."
    )
