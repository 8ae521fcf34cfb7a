"""The shared sidebar: models, subset and CKA options, kept in step with the URL."""

from __future__ import annotations

import streamlit as st

from core.data import CLASSES, SPLITS
from core.options import SIGMA_RANGE
from models import CheckpointError, ModelSpec, choose_sibling, registry_entries
from ui import architectures, networks
from ui.choices import (
    AUTO,
    BY_NAME,
    CHOICES,
    DEFAULT_A,
    DEFAULT_B,
    ESTIMATORS,
    KERNEL_LABELS,
    MIN_BATCH,
    NO_SIBLING,
    Choices,
    as_spec,
    current,
    init_from_url,
    read_choices,
)
from ui.service import device

REFUSED = "refused_models"  # session_state: models typed or linked this run that are not specs, to say so once


def model_options(current: str) -> list[str]:
    """Bundled checkpoints, the Hub registry, this session's uploads, and the current choice if typed in."""
    specs = [entry.spec.text for entry in registry_entries()] + [spec.text for spec in networks.upload_specs()]
    for spec in (DEFAULT_A.text, DEFAULT_B.text, current):
        if spec not in specs:
            specs.append(spec)
    return specs


def sibling_picker(side: str) -> None:
    """An optional 'same method, other seed' model for A or B: the registry's (bundled models name theirs),
    none, or any model; A against it is the ceiling that A vs B is read against."""
    s, key = st.session_state, BY_NAME[f"{side}_seed"].key
    registered, _ = choose_sibling(current().model_a if side == "a" else current().model_b, AUTO)
    auto = f"its registered other seed ({registered})" if registered else "its registered other seed (none)"
    labels = {AUTO: auto, NO_SIBLING: "none (no ceiling)"}
    models = model_options(DEFAULT_A.text if s[key] in labels else s[key])  # (the default adds nothing new)
    st.selectbox(
        f"Other seed of model {side.upper()} (ceiling)",
        [AUTO, NO_SIBLING, *models],
        key=key,
        format_func=lambda spec: labels.get(spec, spec),
        accept_new_options=True,
        help="A model trained with the same method and recipe but another seed: how alike two networks get when "
        "only chance differs. Bundled models name theirs; for an upload, Hub or file model pick one here.",
    )


def settle_choices() -> Choices:
    """This run's choices, from the widgets' state (set from the URL on a session's first run), with each typed
    model parsed here, once, into a ModelSpec and written back in its canonical form; a cleared model goes back to
    its default, one that is not a spec too (with a note). The URL is kept in step. Draws nothing, so a page can come
    before the sidebar."""
    init_from_url()
    s = st.session_state
    models: dict[str, ModelSpec | str] = {}
    for name, default in (("a", DEFAULT_A), ("b", DEFAULT_B), ("a_seed", AUTO), ("b_seed", AUTO)):
        key = BY_NAME[name].key
        typed = (s[key] or "").strip() or str(default)
        try:
            models[name] = typed if default == AUTO and typed in (AUTO, NO_SIBLING) else as_spec(typed)
        except CheckpointError as err:
            s.setdefault(REFUSED, []).append(f"Model {_label(name)} `{typed}` was not used: {err}")
            models[name] = default
        s[key] = str(models[name])
    choices = read_choices(models)
    st.query_params.from_dict(choices.query())
    s[CHOICES] = choices
    return choices


def _label(name: str) -> str:
    """'a' -> 'A', 'a_seed' -> "A's other seed"."""
    side = name[0].upper()
    return f"{side}'s other seed" if name.endswith("_seed") else side


def sidebar() -> None:
    """Draw the shared sidebar's widgets for the choices `settle_choices` read in this run."""
    s = st.session_state
    with st.sidebar:
        st.subheader("Models")
        for side in ("a", "b"):
            st.selectbox(
                f"Model {side.upper()}",
                model_options(s[BY_NAME[side].key]),
                key=BY_NAME[side].key,
                accept_new_options=True,
                help="bundled:NAME, hub:OWNER/REPO[@REV][:FILE] (or type OWNER/REPO), file:PATH, or an upload "
                "from the Models page; add #pool=yes|no,padding=1|2,norm=cifar10|imagenet|none to set what the "
                "weights cannot say (or use the Models page)",
            )
        with st.expander("Architecture of the weights (for networks other than ResNets)"):
            for side in ("a", "b"):
                architectures.sidebar_picker(side)
        for side in ("a", "b"):
            sibling_picker(side)
        st.subheader("CIFAR-10 subset")
        st.selectbox("Split", SPLITS, key=BY_NAME["split"].key)
        st.multiselect(
            "Classes", list(range(len(CLASSES))), format_func=CLASSES.__getitem__, key=BY_NAME["classes"].key
        )
        st.number_input("Images per class", min_value=1, step=10, key=BY_NAME["per_class"].key)
        st.number_input("Subset seed", min_value=0, step=1, key=BY_NAME["subset_seed"].key)
        st.subheader("CKA")
        st.radio("Estimator", list(ESTIMATORS), format_func=ESTIMATORS.__getitem__, key=BY_NAME["estimator"].key)
        st.radio(
            "Kernel",
            list(KERNEL_LABELS),
            format_func=KERNEL_LABELS.__getitem__,
            key=BY_NAME["kernel"].key,
            horizontal=True,
        )
        st.number_input(
            "RBF bandwidth σ (fraction of the median distance)",
            min_value=SIGMA_RANGE[0],
            max_value=SIGMA_RANGE[1],
            step=0.1,
            key=BY_NAME["sigma"].key,
            disabled=s[BY_NAME["kernel"].key] != "rbf",
        )
        st.number_input(
            "Minibatch size",
            min_value=MIN_BATCH,
            step=50,
            key=BY_NAME["batch"].key,
            help="CKA is averaged over minibatches of this many images (Nguyen et al. 2021)",
        )
        st.caption(f"Device: **{device()}** (CUDA is used automatically when present)")
        for note in s.pop("url_ignored", []):
            st.warning(f"Ignored the link's {note}; using the default.")
        for note in s.pop(REFUSED, []):
            st.warning(f"{note} Using the default.")
