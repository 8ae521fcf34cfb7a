"""Layer similarity: CKA between every pair of layers, across the two models and within each."""

import streamlit as st

from core.names import side_labels
from core.summary import summarise
from ui import banner, charts, readings, thinning, widgets
from ui.analysis import with_ceilings
from ui.choices import current
from ui.progress import View
from ui.router import use_app_router

use_app_router()

st.title("Layer similarity")
banner.near_chance(current())  # a model measured near chance is named before any chart


def across_heatmap(pair, rows: str, cols: str, thin: str = thinning.EVERY):
    """The heatmap of every layer of one model against every layer of the other (those `thin` keeps)."""
    return charts.heatmap(
        pair.cross,
        pair.layers_a,
        pair.layers_b,
        title=f"Across the models: every layer of {rows} against every layer of {cols}"
        + ("" if thin == thinning.EVERY else f" ({thin} shown)"),
        row_title=f"layer of {rows}",
        col_title=f"layer of {cols}",
        undefined_rows=pair.undefined_a,
        undefined_cols=pair.undefined_b,
        shown_rows=thinning.kept(pair.layers_a, thin),
        shown_cols=thinning.kept(pair.layers_b, thin),
    )


def preview_charts(preview):
    """The charts a preview draws, each in the place of its final chart, with the layers the picker last kept."""
    thin = thinning.chosen(preview.layers_a, preview.layers_b, st.session_state)
    curve = charts.matched_curve(preview, shown=thinning.kept(preview.layers_a, thin))
    return [across_heatmap(preview, "A", "B", thin), curve]


view = View()  # every place the result is drawn in, made once, so a recompute redraws them where they are
caption = view.text()
across_place = view.figure()
notes = view.text()
matched_place = view.figure()
rest = view.text()

found = with_ceilings(current(), view, preview_charts)
if found is not None:
    result, seeds = found
    label_a, label_b = side_labels(result.model_a.method, result.model_b.method)
    across = {f"{label_a} vs {label_b}": (result, label_a, label_b)}
    for side, label, seed in (("A", label_a, seeds.a), ("B", label_b, seeds.b)):
        if seed is not None:
            across[f"{label} vs another seed"] = (seed, label, f"{side}'s other seed")
    with caption.drawing():  # the choice of heatmap goes with the text: the heatmap's place holds the heatmap alone
        widgets.result_caption(result)
        shown = (
            st.radio("Across the models", list(across), horizontal=True, key="heatmap_pair") if len(across) > 1 else ""
        )
        thin = thinning.EVERY
        if thinning.offered(result.layers_a, result.layers_b):
            thin = st.selectbox("Layers shown", thinning.CHOICES, key=thinning.KEY)
            st.caption(thinning.NOTE)
        widgets.note(readings.token_cka_note(result))
    pair, rows, cols = across.get(shown, across[f"{label_a} vs {label_b}"])
    with across_place.one():
        st.altair_chart(across_heatmap(pair, rows, cols, thin), width="stretch")
    with notes.drawing():
        st.subheader("Matched layers")
        st.caption(
            f"{readings.matched_caption(result)} Read them between the floor (untrained networks of the two "
            "architectures, no training at all) and the ceilings (another seed of the same method); the bars are "
            "which images were drawn, the seed spread which seeds were trained."
        )
        widgets.pairing_table(result)
        widgets.ceiling_notes(result, seeds)
        widgets.reference_notes(result)
    with matched_place.one():
        curve = charts.matched_curve(
            result, summarise(result).parting_layer, seeds, thinning.kept(result.layers_a, thin)
        )
        st.altair_chart(curve, width="stretch")
    with rest.drawing():
        if result.untrained_a is not None and result.untrained_b is not None:
            st.subheader("How far training moved each layer")
            st.caption(
                "Each trained network against untrained networks of its own architecture (mean over init seeds): near "
                "1, the layer is still much as it started; low, training changed it."
            )
            st.altair_chart(charts.readout_chart(result, "untrained"), width="stretch")
        st.subheader("Within each model")
        for column, label, matrix, layers, undefined in zip(
            st.columns(2),
            (label_a, label_b),
            (result.self_a, result.self_b),
            (result.layers_a, result.layers_b),
            (result.undefined_a, result.undefined_b),
            strict=True,
        ):
            kept = thinning.kept(layers, thin)
            chart = charts.heatmap(
                matrix,
                layers,
                layers,
                title=f"{label}: its own layers",
                row_title="layer",
                col_title="layer",
                undefined_rows=undefined,
                undefined_cols=undefined,
                shown_rows=kept,
                shown_cols=kept,
            )
            column.altair_chart(chart, width="stretch")
        widgets.download_buttons(result, seeds)
