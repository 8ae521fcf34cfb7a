"""Training methods by one name each: the spellings trainers use, and the honest names for "cannot tell"."""

from __future__ import annotations

import re

SELF_SUPERVISED_UNKNOWN = "self-supervised (method unknown)"
METHOD_NAMES = {  # spellings in trainers' settings -> one name
    "simclr": "simclr",
    "byol": "byol",
    "barlowtwins": "barlow_twins",
    "barlow": "barlow_twins",
    "moco": "moco",
    "mocov1": "moco",
    "mocov2": "moco",
    "mocov2plus": "moco",
    "mocov3": "moco",
    "swav": "swav",
    "dino": "dino",
    "vicreg": "vicreg",
    "simsiam": "simsiam",
    "supcon": "supcon",
    "nnclr": "nnclr",
    "ressl": "ressl",
    "deepclusterv2": "deepclusterv2",
    "wmse": "wmse",
    "nnbyol": "nnbyol",
    "supervised": "supervised",
    "ce": "supervised",
    "supce": "supervised",
    "crossentropy": "supervised",
}


def canonical_method(name: str) -> str:
    """'SimCLR' -> 'simclr', 'mocov2plus' -> 'moco', 'BarlowTwins' -> 'barlow_twins'; unknown names as written."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return METHOD_NAMES.get(key, re.sub(r"[^a-z0-9_-]", "", name.lower())[:32] or "unknown")


def known_method(name: str) -> str | None:
    """The one name of a spelling trainers use ('SupCE' -> 'supervised'); None for anything else."""
    return METHOD_NAMES.get(re.sub(r"[^a-z0-9]", "", name.lower()))
