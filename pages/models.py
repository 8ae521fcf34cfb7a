"""Models: what each network is, and how to bring in another (a known checkpoint, a Hub repo, an upload)."""

import pandas as pd
import streamlit as st

from models import SUPPORTED_SUFFIXES, CheckpointError, registry_entries
from models.registry import CURATED_PAIRS, find_hub_entry
from ui import architectures, networks, widgets
from ui.choices import as_spec, current, use
from ui.router import use_app_router
from ui.text import code, plain

use_app_router()

st.title("Models")
choices = current()
for column, side, spec in zip(st.columns(2), ("A", "B"), (choices.model_a, choices.model_b), strict=True):
    with column:
        try:
            info = networks.load(spec).info
            widgets.model_card(info, f"Model {side}")
            widgets.choice_form(spec, info, side.lower())
        except CheckpointError as err:
            st.error(f"Model {side} ({code(spec)}) could not be loaded: {plain(err, 600)}")

st.subheader("Known checkpoints")
st.dataframe(
    pd.DataFrame(
        [
            {
                "spec": e.spec.text,
                "method": e.method,
                "architecture": e.arch.name,
                "description": e.description,
                "reported accuracy": "not reported" if e.reported_accuracy is None else f"{e.reported_accuracy:.1%}",
            }
            for e in registry_entries()
        ]
    ),
    hide_index=True,
)
st.caption("Choose any of them as model A or B in the sidebar, or bring another model below.")

st.subheader("Pairs beyond the study")
st.caption(
    "ImageNet networks from timm's own Hub repos, read at their own input size and preprocessing (each repo's "
    "config.json): offered here, never the default. They are downloaded from the Hugging Face Hub when first used."
)


def _use_pair(a, b) -> None:
    use("a", a)
    use("b", b)


for column, (title, spec_a, spec_b, question) in zip(st.columns(len(CURATED_PAIRS)), CURATED_PAIRS, strict=True):
    with column:
        entries = [(side, find_hub_entry(spec.location)) for side, spec in (("A", spec_a), ("B", spec_b))]
        rows = [f"| {s} | {code(e.spec)} | {e.method} | {code(e.arch.name)} | {e.description} |" for s, e in entries]
        head = "| | spec | method | architecture | what it is |\n|---|---|---|---|---|\n"
        st.markdown(f"#### {title}\n{question}.\n\n" + head + "\n".join(rows))
        st.button(f"Compare {title}", key=f"pair_{title}", on_click=_use_pair, args=(spec_a, spec_b), width="stretch")

st.subheader("Bring another model")
by_spec, by_upload = st.tabs(["Hub repo or file path", "Upload a checkpoint"])
with by_spec:
    typed = st.text_input("Hub repo id or spec", placeholder="owner/repo, hub:owner/repo@rev:file, file:/path")
    if typed.strip():
        try:
            spec = as_spec(typed)
            widgets.model_card(networks.load(spec).info, spec.text)
            widgets.use_buttons(spec)
        except CheckpointError as err:
            st.error(plain(err, 600))
with by_upload:
    arch = architectures.picker("Architecture of the weights", "upload_arch")
    file = st.file_uploader(
        f"Checkpoint file: {', '.join(SUPPORTED_SUFFIXES)} or no suffix, up to the server's size limit (read by its "
        "content, kept in this browser session only, never written to disk)",
        type=None,  # the content decides, so a file without a suffix (or with a trainer's own) is accepted
    )
    if file is not None:
        try:
            spec, dropped = networks.upload(file, {choices.model_a.base.text, choices.model_b.base.text}, arch)
            if dropped:
                st.info(
                    f"This session keeps {networks.MAX_SESSION_UPLOAD_MB} MB of uploaded weights at most: "
                    f"{', '.join(code(d.text) for d in dropped)}, the oldest not in use, let go to make room "
                    "(upload again to use it)."
                )
            widgets.model_card(networks.load(spec).info, spec.text)
            widgets.use_buttons(spec)
        except CheckpointError as err:
            st.error(plain(err, 600))
