"""Images: the chosen CIFAR-10 subset, and the augmented views that the invariance analysis feeds in."""

import streamlit as st

from core.data import CLASSES, DataError
from ui import banner
from ui.choices import current
from ui.router import use_app_router
from ui.service import device, subset_of
from ui.text import plain
from ui.views import augmented_views

use_app_router()

st.title("Images")
banner.near_chance(current())  # a model measured near chance is named before any chart
choices = current()
if choices.problem:
    st.warning(plain(choices.problem, 600))
    st.stop()
try:
    with st.spinner("Loading CIFAR-10 images..."):
        subset = subset_of(choices.subset)
except DataError as err:
    st.error(plain(err, 600))
    st.stop()

spec = subset.spec
st.caption(
    f"{len(subset.labels):,} CIFAR-10 {spec.split} images ({len(spec.classes)} classes × {spec.per_class}, subset "
    f"seed {spec.seed}), in the order the models see them. Captions: index in the split."
)
most = min(spec.per_class, 24)
shown = st.slider("Images shown per class", 1, most, min(most, 12)) if most > 1 else 1
for c in spec.classes:
    picked = (subset.labels == c).nonzero().flatten()[:shown].tolist()
    st.markdown(f"**{CLASSES[c]}**")
    st.image(
        [subset.images[i].permute(1, 2, 0).numpy() for i in picked],
        caption=[f"#{subset.indices[i]}" for i in picked],
        width=56,
    )

st.subheader("Augmented views")
st.caption(
    "SimCLR augmentations (random resized crop, flip, colour jitter, grayscale) of the first images, drawn with the "
    f"analysis seed ({choices.options.seed}) exactly as the invariance read-out draws them: the top row is what a "
    "network sees as x, the bottom row as t(x)."
)
count = min(12, len(subset.labels))
originals, views, labels = augmented_views(spec, choices.options, count, device())
captions = [CLASSES[int(y)] for y in labels]
st.image(list(originals), caption=captions, width=72)
st.image(list(views), caption=captions, width=72)
