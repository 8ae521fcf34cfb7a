"""Overview: the chosen pair's matched-layer figure first, then what the study found and what this pair shows."""

import streamlit as st

from core.summary import summarise
from ui import banner, readings, widgets
from ui.analysis import with_ceilings
from ui.choices import current
from ui.figure import matched_figure, show
from ui.progress import View
from ui.router import use_app_router

use_app_router()

st.title("CKA Lens")
banner.near_chance(current())  # a model measured near chance is named before any chart
st.markdown(
    "Do a network trained with **SimCLR** (no labels: it learns to map two augmentations of an image close "
    "together) and one trained **with labels** learn the same things, layer by layer? Here, the two networks "
    "chosen in the sidebar, compared with *centered kernel alignment* (CKA), a similarity of representations that "
    "ignores rotations and scale."
)

view = View()  # every place the result is drawn in, made once, so a recompute redraws them where they are
figure_place = view.figure()  # the figure first: it is what a visitor came for, and it needs no script of its own
about = view.text()
st.subheader("What the study found")
st.markdown(
    """
Grigg et al. (2021) compared a SimCLR and a supervised ResNet of the same architecture on CIFAR-10 and found:

- **Block outputs stay alike until the last stage**, then diverge fast: the two methods share their intermediate
  representations and differ at the end.
- **Residual branches differ much earlier**: the networks reach similar block outputs through dissimilar updates.
- **Each network ends up fitting its own objective**: SimCLR's last layers become invariant to augmentations, the
  supervised network's become class-structured. SimCLR's intermediate layers carry class structure too, but the
  supervised network never becomes augmentation-invariant.
"""
)
checked = view.text()

shown = with_ceilings(current(), view, lambda preview: [matched_figure(preview)])
if shown is not None:
    result, seeds = shown
    found = summarise(result, ceilings=seeds)
    drawn = matched_figure(result, found.parting_layer, seeds)
    with figure_place.one():  # one element from the first preview on, swapped in place
        show(drawn)
    with about.drawing():
        st.subheader("What this pair shows")
        widgets.result_caption(result)
        widgets.note(readings.depth_note(result))
        widgets.pairing_table(result)
        widgets.note(readings.token_cka_note(result))
        st.markdown("\n".join(f"- {line}" for line in found.lines))
        widgets.ceiling_notes(result, seeds)
        widgets.reference_notes(result)
    with checked.drawing():
        st.subheader("The study's findings, checked on this pair")
        widgets.verdict_table(result, seeds)
        st.caption(
            "More on the Layer similarity page (with this curve to hover and zoom) and the Probes page. The numbers "
            "behind every chart, and the figure above:"
        )
        widgets.download_buttons(result, seeds, drawn)
