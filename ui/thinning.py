"""Which layers the Layer similarity page draws when a network has many: a view of the result, never a change to it.

Every block is read and computed; a ViT-B or a ResNet-152 then has more readings than a heatmap can label. The page
offers these choices when either network has more than MANY_LAYERS layers. The stem and head layers (stem, final
norm, pooled, logits) are always kept, and a choice that would keep nothing keeps everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.names import OTHER, OUTPUT, block, kind

MANY_LAYERS = 24  # more layers than this in either network: the page offers to thin them
KEY = "layers_shown"  # the picker's key in the session's state
EVERY = "every reading"
OUTPUTS = "block outputs only"
CHOICES = (EVERY, OUTPUTS, "every 2nd block", "every 4th block")
_STEPS = {"every 2nd block": 2, "every 4th block": 4}
NOTE = (
    "A view only: every layer was read and computed, and the result and its downloads hold them all; this choice "
    "thins what the heatmaps and the matched curve draw."
)


def offered(layers_a: Sequence[str], layers_b: Sequence[str]) -> bool:
    """Whether the page offers to thin the layers: either network has more than MANY_LAYERS."""
    return max(len(layers_a), len(layers_b)) > MANY_LAYERS


def chosen(layers_a: Sequence[str], layers_b: Sequence[str], state: Mapping) -> str:
    """The choice the picker holds in the session's `state` where it is offered for these layers, else EVERY: a
    preview, drawn before the picker, is thinned as the visitor last chose."""
    choice = state.get(KEY, EVERY) if offered(layers_a, layers_b) else EVERY
    return choice if choice in CHOICES else EVERY


def kept(layers: Sequence[str], choice: str) -> tuple[str, ...]:
    """The layers `choice` keeps, in their order: every reading; the stem, head and block outputs only; or every
    k-th block from the first (and the last block, the deepest, always) with all its readings. Stem and head are
    always kept; a choice that would keep nothing keeps every layer."""
    if choice == EVERY:
        return tuple(layers)
    if choice == OUTPUTS:
        chosen = [name for name in layers if kind(name) in (OTHER, OUTPUT)]
    else:
        step = _STEPS[choice]
        blocks = list(dict.fromkeys(block(name) for name in layers if kind(name) != OTHER))
        wanted = {b for k, b in enumerate(blocks) if k % step == 0} | set(blocks[-1:])
        chosen = [name for name in layers if kind(name) == OTHER or block(name) in wanted]
    return tuple(chosen) if chosen else tuple(layers)
