"""Training: when do the two methods part ways? Matched-layer CKA snapshot by snapshot, and settling per layer."""

from dataclasses import replace

import streamlit as st

from core.data import DataError
from core.names import OTHER, OUTPUT, RESIDUAL
from core.options import DEFAULTS
from core.series import SeriesPlan
from ui import banner, charts, series
from ui.choices import current
from ui.router import use_app_router
from ui.text import code, plain

use_app_router()

st.title("Training")
banner.near_chance(current())  # a model measured near chance is named before any chart
st.markdown(
    "Snapshots taken along two training runs, compared layer by layer: each snapshot of run A with the snapshot of "
    "run B taken at the nearest **fraction of training**, and each snapshot with its own run's **final network**. "
    "For example, SimCLR's snapshot after epoch 10 of its 50 (20% of its training) meets the supervised network's "
    "after epoch 4 of its 18 (22%). Which layers settle first, and when do the two methods part ways?"
)
choices = current()
left, right = st.columns(2)
with left:
    a, said_a = series.choose_series("A", choices.model_a, "simclr")
with right:
    b, said_b = series.choose_series("B", choices.model_b, "supervised")
asked = choices.subset.per_class if choices.subset else DEFAULTS.per_class
per_class = st.number_input(
    "Images per class on this page", 1, 5000, min(DEFAULTS.series_per_class, asked), key="training_per_class"
)
if choices.problem:
    st.warning(plain(choices.problem, 600))
if choices.problem or a is None or b is None:
    st.stop()
try:
    subset = replace(choices.subset, per_class=int(per_class))
except DataError as err:
    st.error(f"The CIFAR-10 subset cannot be used: {plain(err, 600)}.")
    st.stop()
options = replace(choices.options, invariance=False, probes=False, permutations=0)  # matched-layer CKA only
plan = SeriesPlan.of(a, b)
st.markdown("\n".join(f"- {line}" for line in (said_a, said_b, series.images_line(subset, asked, len(plan.pairs())))))

st.subheader("Which snapshots are compared")
series.show_pairing(plan)
curves = series.series_analysis(plan, subset, options)
if curves is None:
    st.stop()
st.markdown("\n".join(f"- {line}" for line in series.findings(plan, curves)))
columns_a = series.column_labels(a)
heatmap = charts.heatmap(
    curves.cross,
    curves.layers,
    columns_a,
    title="Across the methods: A's snapshot against B's at the same point of training",
    row_title="layer",
    col_title="A's snapshot (training done)",
)
st.altair_chart(heatmap, width="stretch")
progress_a = [s.progress for s in a.snapshots]
for column, kinds, what in zip(
    st.columns(2), ((OUTPUT, OTHER), (RESIDUAL,)), ("block outputs, stem and pooled", "residual branches"), strict=True
):
    title = f"Across the methods over training: {what}"
    column.altair_chart(
        charts.progress_curves(curves.cross, curves.layers, progress_a, columns_a, title=title, kinds=kinds),
        width="stretch",
    )

st.subheader("Each snapshot against its own run's final network")
for label, run, matrix in (("A", a, curves.final_a), ("B", b, curves.final_b)):
    if matrix is None:
        st.info(f"{label} ({code(run.name)}) has no final network yet: its run has not finished.")
        continue
    title = f"{label} ({run.method}): each snapshot against the final network"
    chart = charts.heatmap(
        matrix, curves.layers, series.column_labels(run), title=title, row_title="layer", col_title="snapshot"
    )
    st.altair_chart(chart, width="stretch")
st.caption(f"{subset.size:,} CIFAR-10 {subset.split} images; matched-layer CKA in minibatches of {options.batch_size}.")
series.download_buttons(plan, curves, subset, options)
