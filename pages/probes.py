"""Probes and objectives: what each layer makes available, and how well it fits each training objective."""

import streamlit as st

from ui import banner, charts, readings, widgets
from ui.analysis import analysis
from ui.choices import current
from ui.progress import View
from ui.router import use_app_router
from ui.text import plain

use_app_router()

METRICS = ("probe", "class", "invariance")

st.title("Probes and objectives")
banner.near_chance(current())  # a model measured near chance is named before any chart
st.markdown(
    "Three read-outs per layer, for both models on one layer axis. **Linear-probe accuracy**: a linear classifier "
    "trained on the layer's (pooled) features, scored on held-out images. **Class structure**: CKA between the layer "
    "and the one-hot labels, the supervised objective. **Augmentation invariance**: CKA between the layer's "
    "response to an image and to a SimCLR-augmented view of it, the contrastive objective, each averaged over "
    "space first (a crop or flip moves features across the map; on flattened maps that movement would read as "
    "lost invariance, mixing spatial pooling with invariance)."
)
view = View()  # every place the result is drawn in, made once, so a recompute redraws them where they are
caption = view.text()
places = [view.figure() for _ in METRICS]
footer = view.text()

result = analysis(current(), view)
if result is not None:
    with caption.drawing():
        widgets.result_caption(result)
        widgets.note(readings.token_pooled_note(result))
        widgets.note(readings.unknown_layout_note(result))
    for place, metric in zip(places, METRICS, strict=True):
        with place.one():
            st.altair_chart(charts.readout_chart(result, metric), width="stretch")
    with footer.drawing():
        st.caption(f"Linear probe: {plain(result.probe_method)}.")
        widgets.download_buttons(result)
