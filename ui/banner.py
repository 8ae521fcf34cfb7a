"""The banner every analysis page opens with when a network it compares measured near chance.

Such a network probably did not load as it was trained (models.calibration says why), so every comparison with it
describes a network nobody trained: the page says so first, naming the model and where its card is, before any
chart is read.
"""

from __future__ import annotations

import streamlit as st

from models import CheckpointError
from ui import networks, opened
from ui.choices import Choices
from ui.text import code, plain


def near_chance(choices: Choices) -> None:
    """A warning for each of the sidebar's models A and B whose accuracy measured here is near chance, naming the
    model and its card on the Models page. A model that cannot be loaded is left to the page, which says why; while
    a result file is open, its pages show that file, not the sidebar's models, and nothing is said of them."""
    if opened.opened_name() is not None:
        return
    for side, spec in (("A", choices.model_a), ("B", choices.model_b)):
        try:
            calibration = networks.load(spec).info.calibration
        except CheckpointError:
            continue
        if calibration is None or not calibration.warning:
            continue
        st.warning(
            f"**Model {side} ({code(spec)}) may not be the network it claims to be.** {plain(calibration.warning, 600)}"
            f". Every comparison on this page with model {side} describes that network as loaded: see model {side}'s "
            "card on the Models page for what was measured, and change there what the weights cannot say.",
            icon=":material/warning:",
        )
        st.page_link("pages/models.py", label=f"Model {side}'s card", icon=":material/memory:")
