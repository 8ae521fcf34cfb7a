"""The architecture picker: a network named by timm or torchvision for weights that do not say what they are.

A state dict holds tensors, not the network that computes with them. CKA Lens reads ResNets and the common
architectures of models.arch_inference from the tensors alone; for anything else a person names the architecture,
as `#arch=timm:NAME` or `#arch=torchvision:NAME` after a spec, or with this picker in the sidebar and the upload
form. The picker is a searchable selectbox (type to filter) over every timm model and every torchvision
classification model, with "infer from the weights" first.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import streamlit as st

from models import ModelSpec
from models.spec import ARCH_SOURCES
from ui.choices import current, use

INFER = ""  # the picker's first option: let the weights say
INFER_LABEL = "infer from the weights"
HELP = (
    "The network the weights belong to, by its timm or torchvision name (type to search). ResNets and common "
    "networks (ViT-Ti/S/B, ConvNeXt-T, EfficientNet-B0, MobileNetV2/V3, DenseNet-121, VGG-16) are recognised from "
    "the weights; name any other one here. The same as adding #arch=timm:NAME to the model's spec."
)


@functools.cache
def architecture_names() -> tuple[str, ...]:
    """'timm:NAME' for every architecture timm builds, then 'torchvision:NAME' for torchvision's classifiers."""
    import timm
    import torchvision

    listed = [f"timm:{name}" for name in timm.list_models()]
    return (*listed, *(f"torchvision:{name}" for name in torchvision.models.list_models(module=torchvision.models)))


def _label(name: str) -> str:
    return INFER_LABEL if name == INFER else name


def picker(label: str, key: str, chosen: str | None = None, disabled: bool = False, **events) -> str | None:
    """A searchable selectbox of architectures; returns the chosen 'SOURCE:NAME', or None for the weights' own.

    `chosen` (an arch a spec already names, even one not in the list) is shown selected on the first draw. A
    disabled picker lists only what it shows: the whole list means importing every timm model (a second of a cold
    server's first page, for the default pair's disabled pickers) and sending 1,300 names to the browser.
    """
    options = [chosen or INFER] if disabled else [INFER, *architecture_names()]
    if chosen and chosen not in options:
        options.append(chosen)
    if key not in st.session_state:
        st.session_state[key] = chosen or INFER
    value = st.selectbox(label, options, key=key, format_func=_label, help=HELP, disabled=disabled, **events)
    return value or None


def sidebar_picker(side: str) -> None:
    """The architecture of model A or B, kept in step with its spec's #arch= (choosing one rewrites the spec);
    offered for weights from a file, an upload or the Hub (a bundled or untrained network is what it is)."""
    spec = current().model_a if side == "a" else current().model_b
    key = f"arch_{side}"
    st.session_state[key] = spec.arch or INFER  # the spec decides: a link or a typed #arch= moves the picker
    picker(
        f"Architecture of model {side.upper()}",
        key,
        spec.arch,
        on_change=_apply,
        args=(side, spec, key),
        disabled=spec.source not in ARCH_SOURCES or bool(spec.choices),
    )


def _apply(side: str, spec: ModelSpec, key: str) -> None:
    use(side, with_arch(spec, st.session_state[key] or None))


def with_arch(spec: ModelSpec, arch: str | None) -> ModelSpec:
    """`spec` read as the architecture `arch` (None: as the weights say)."""
    return replace(spec, arch=arch)
