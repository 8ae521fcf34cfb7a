"""Overview: what the study found, and what the chosen pair of networks shows."""

import streamlit as st

from core.findings import summarise
from ui import charts, widgets
from ui.analysis import analysis, ceilings
from ui.choices import current
from ui.router import use_app_router

use_app_router()

st.title("CKA Lens")
st.markdown(
    """
Do a network trained with **SimCLR** (no labels: it learns to map two augmentations of an image close together)
and one trained **with labels** learn the same things, layer by layer? Grigg et al. (2021) compared two CIFAR-10
ResNets with *centered kernel alignment* (CKA), a similarity of representations that ignores rotations and
scale, and found:

- **Block outputs stay alike until the last stage**, then diverge fast: the two methods share their intermediate
  representations and differ at the end.
- **Residual branches differ much earlier**: the networks reach similar block outputs through dissimilar updates.
- **Each network ends up fitting its own objective**: SimCLR's last layers become invariant to augmentations, the
  supervised network's become class-structured. SimCLR's intermediate layers carry class structure too, but the
  supervised network never becomes augmentation-invariant.

Below, the same measurements for the two networks chosen in the sidebar.
"""
)

choices = current()
result = analysis(choices, lambda preview: [charts.matched_curve(preview)])
if result is not None:
    seeds = ceilings(choices)
    found = summarise(result, ceilings=seeds)
    st.subheader("What this pair shows")
    widgets.result_caption(result)
    st.markdown("\n".join(f"- {line}" for line in found.lines))
    widgets.ceiling_notes(result, seeds)
    st.altair_chart(charts.matched_curve(result, found.parting_layer, seeds), width="stretch")
    st.subheader("The study's findings, checked on this pair")
    widgets.verdict_table(result, seeds)
    st.caption("More on the Layer similarity and Probes pages. The numbers behind every chart:")
    widgets.download_buttons(result, seeds)
