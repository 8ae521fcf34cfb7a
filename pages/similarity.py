"""Layer similarity: CKA between every pair of layers, across the two models and within each."""

import streamlit as st

from core.findings import summarise
from core.names import side_labels
from ui import charts, widgets
from ui.analysis import analysis
from ui.choices import current
from ui.router import use_app_router

use_app_router()

st.title("Layer similarity")
result = analysis(current())
if result is not None:
    widgets.result_caption(result)
    label_a, label_b = side_labels(result.model_a.method, result.model_b.method)
    st.altair_chart(
        charts.heatmap(
            result.cross,
            result.layers_a,
            result.layers_b,
            title="Across the models: every layer of A against every layer of B",
            row_title=f"layer of {label_a}",
            col_title=f"layer of {label_b}",
            undefined_rows=result.undefined_a,
            undefined_cols=result.undefined_b,
        ),
        width="stretch",
    )
    st.subheader("Matched layers")
    st.caption(
        "Layer i of A against layer i of B. Block outputs (after the addition and ReLU) and residual branches "
        "(after the branch's last BatchNorm, before the addition) are drawn as separate lines."
    )
    st.altair_chart(charts.matched_curve(result, summarise(result).parting_layer), width="stretch")
    st.subheader("Within each model")
    for column, label, matrix, layers, undefined in zip(
        st.columns(2),
        (label_a, label_b),
        (result.self_a, result.self_b),
        (result.layers_a, result.layers_b),
        (result.undefined_a, result.undefined_b),
        strict=True,
    ):
        chart = charts.heatmap(
            matrix,
            layers,
            layers,
            title=f"{label}: its own layers",
            row_title="layer",
            col_title="layer",
            undefined_rows=undefined,
            undefined_cols=undefined,
        )
        column.altair_chart(chart, width="stretch")
    widgets.download_buttons(result)
