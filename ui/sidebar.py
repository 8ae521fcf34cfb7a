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
    NOTICES,
    Choices,
    as_spec,
    current,
    init_from_url,
    model_label,
    notify,
    read_choices,
)
from ui.service import device
from ui.text import code, plain

FITS = 29  # characters of a label a sidebar select shows whole at its default width (measured in Chromium)
SIBLING_LABELS = {AUTO: "its registered other seed", NO_SIBLING: "none (no ceiling)"}  # never change with A or B


def model_options(current: str) -> list[str]:
    """Bundled checkpoints, the Hub registry, this session's uploads, and the current choice if typed in: each as its
    canonical spec, labelled so that whatever the browser sends back reads as that spec (ui.choices.model_label)."""
    specs = [entry.spec.text for entry in registry_entries()] + [spec.text for spec in networks.upload_specs()]
    for spec in (DEFAULT_A.text, DEFAULT_B.text, current):
        if spec not in specs:
            specs.append(spec)
    return specs


def sibling_picker(side: str) -> None:
    """An optional 'same method, other seed' model for A or B: the registry's (bundled models name theirs), none,
    or another model of the same method; A against it is the ceiling that A vs B is read against. The labels of
    'auto' and 'none' are fixed words (a label that named the model in use would change when A changes, and the
    browser would send the old label back as a typed value); the caption below names the ceiling in use in full."""
    s, key = st.session_state, BY_NAME[f"{side}_seed"].key
    model = current().model_a if side == "a" else current().model_b
    proposed = [spec.text for spec in networks.same_method_models(model)]
    if s[key] not in SIBLING_LABELS and s[key] not in proposed:
        proposed.append(s[key])
    st.selectbox(
        f"Other seed of model {side.upper()} (ceiling)",
        [AUTO, NO_SIBLING, *proposed],
        key=key,
        format_func=lambda spec: SIBLING_LABELS.get(spec) or model_label(spec),
        accept_new_options=True,
        help="A model trained with the same method and recipe but another seed: how alike two networks get when "
        "only chance differs. Bundled models name theirs; the list holds the models known to share this model's "
        "method. For an upload, Hub or file model, pick or type one here.",
    )
    chosen = current().sibling_a if side == "a" else current().sibling_b
    sibling, note = choose_sibling(model, chosen)
    if sibling is not None:
        st.caption(f"Ceiling of {side.upper()}: {side.upper()} against {code(sibling, 300)}")
    else:
        st.caption(f"Ceiling of {side.upper()}: none; {plain(note, 300)}.")


def settle_choices() -> Choices:
    """This run's choices, from the widgets' state (set from the URL on a session's first run), with each typed
    model parsed here, once, into a ModelSpec and written back in its canonical form; a cleared model goes back to
    its default, one that is not a spec too, and an other seed of another method than its model's (or the model
    itself) goes back to the registry's, each with a notice. The URL is kept in step. Draws nothing, so a page can
    come before the sidebar."""
    init_from_url()
    s = st.session_state
    models: dict[str, ModelSpec | str] = {}
    for name, default in (("a", DEFAULT_A), ("b", DEFAULT_B), ("a_seed", AUTO), ("b_seed", AUTO)):
        key = BY_NAME[name].key
        typed = (s[key] or "").strip() or str(default)
        try:
            models[name] = typed if default == AUTO and typed in (AUTO, NO_SIBLING) else as_spec(typed)
        except CheckpointError as err:
            notify(
                f"{_label(name)} {code(typed, 120)} was not used: {plain(err, 400)} Using "
                f"{plain(SIBLING_LABELS.get(str(default), str(default)))} instead."
            )
            models[name] = default
    for side in ("a", "b"):
        model, sibling = models[side], models[f"{side}_seed"]
        if not isinstance(sibling, ModelSpec):
            continue
        mine, theirs = networks.method_of(model), networks.method_of(sibling)
        if sibling.base == model.base:
            why = f"it is model {side.upper()} itself"
        elif mine and theirs and mine != theirs:
            why = f"it was trained with {plain(theirs)}, model {side.upper()} with {plain(mine)}"
        else:
            continue
        notify(
            f"{_label(side + '_seed')} {code(sibling, 120)} was not used: {why}, and a ceiling compares two seeds of "
            f"one method. Using {side.upper()}'s registered other seed instead."
        )
        models[f"{side}_seed"] = AUTO
    for name in models:
        s[BY_NAME[name].key] = str(models[name])
    choices = read_choices(models)
    st.query_params.from_dict(choices.query())
    s[CHOICES] = choices
    return choices


def _label(name: str) -> str:
    """'a' -> 'Model A', 'a_seed' -> "Model A's other seed"."""
    side = name[0].upper()
    return f"Model {side}'s other seed" if name.endswith("_seed") else f"Model {side}"


def notices() -> None:
    """This session's notices (a link's values left out, a model not used), at the top of the page, where they are
    seen on arrival; they stay until dismissed."""
    s = st.session_state
    if not s.get(NOTICES):
        return
    for text in s[NOTICES]:
        st.warning(text, icon=":material/link_off:")
    st.button("Dismiss", key="dismiss_notices", on_click=s.pop, args=(NOTICES, None))


def upload_note(choices: Choices) -> None:
    """Where a model in use is an upload, say what a shared link does with it: the link names it, but the file
    stays in this browser tab's session."""
    uploads = [
        label
        for label, spec in (
            ("model A", choices.model_a),
            ("model B", choices.model_b),
            ("A's other seed", choices.sibling_a),
            ("B's other seed", choices.sibling_b),
        )
        if isinstance(spec, ModelSpec) and spec.source == "upload"
    ]
    if uploads:
        named = " and ".join(uploads)
        st.info(
            f"{named[0].upper() + named[1:]} {'is a file' if len(uploads) == 1 else 'are files'} you uploaded: "
            "an upload stays in this browser tab's session. This page's link names it, but a new tab, or anyone you "
            "send the link to, must upload the file again on the Models page.",
            icon=":material/upload_file:",
        )


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
                format_func=model_label,
                accept_new_options=True,
                help="A bundled model by its name (bundled:NAME), a Hub repo as OWNER/REPO[@REV] "
                "(hub:OWNER/REPO[@REV][:FILE]), file:PATH, or an upload from the Models page; add "
                "#pool=yes|no,padding=1|2,norm=cifar10|imagenet|none to set what the weights cannot say (or use the "
                "Models page). The link holds the full spec.",
            )
            if len(model_label(s[BY_NAME[side].key])) > FITS:  # the select cuts it: the whole name below
                st.caption(code(s[BY_NAME[side].key], 300))
        upload_note(current())
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
