"""What a result's readings are, in words for the pages: how matched layers were paired, what a token layer's
reading holds, and why a pooled read-out is missing. Pure functions of a result, so tests read them without a
browser; the pages draw them as captions."""

from __future__ import annotations

from collections.abc import Sequence

from core.names import BY_DEPTH
from core.result import AnalysisResult

READINGS = (
    "Residual branches (what a block adds to its input, read just before the addition: in the study's ResNets "
    "after the branch's last BatchNorm) and block outputs (read just after the addition: in the study's ResNets after "
    "its ReLU) are drawn as separate lines. A transformer block adds twice, attention then MLP, and each addition "
    "is read both ways."
)
BY_NAME_WORDS = "Each matched layer of A against the layer of the same name in B."
BY_DEPTH_WORDS = (
    "Paired by relative depth: the two architectures share no layer names, so within each kind of reading "
    "(residual branches, block outputs) the k-th layer of the shorter list is paired with the layer at the same "
    "fraction of depth in the longer one; the stem and head layers by name, where both networks have them. The "
    "curve is drawn on A's layers; each point names B's layer it is compared with, as does the table below."
)


def matched_caption(result: AnalysisResult) -> str:
    """How A's matched layers meet B's (by name, or by relative depth across architectures) and what the two kinds
    of reading are, true of ResNets and transformers alike."""
    return f"{BY_DEPTH_WORDS if result.matching == BY_DEPTH else BY_NAME_WORDS} {READINGS}"


def depth_note(result: AnalysisResult) -> str | None:
    """How layers were paired, where they were paired by relative depth (a page that shows matched layers without
    the Layer similarity page's full caption); None when paired by name."""
    return BY_DEPTH_WORDS if result.matching == BY_DEPTH else None


def pairing_rows(result: AnalysisResult) -> list[dict[str, str]]:
    """A's matched layers and B's layer each is compared with, in A's depth order: the table behind a pairing by
    relative depth."""
    return [{"A's layer": layer, "B's layer": result.partner(layer)} for layer in result.matched]


def _span(layers: Sequence[str]) -> str:
    """'blocks.0 output' for one layer, 'stem, blocks.0 output, final norm' for up to three, '50, stem … final norm'
    for more."""
    if len(layers) <= 3:
        return ", ".join(layers)
    return f"{len(layers)}, {layers[0]} … {layers[-1]}"


def _token_layers(result: AnalysisResult) -> str | None:
    """Which of each model's layers output tokens ('A's 50, stem … final norm'), or None when none does."""
    named = [f"{side}'s {_span(tokens)}" for side, tokens in (("A", result.tokens_a), ("B", result.tokens_b)) if tokens]
    return "; ".join(named) or None


TOKENS = "Token layers (a transformer's output: one vector per token, [tokens × channels])"


def token_cka_note(result: AnalysisResult) -> str | None:
    """What the CKA of a layer whose output is tokens reads, or None when neither network has such a layer."""
    return _token_note(
        result, "Their CKA reads all tokens flattened together, the class token and the patch tokens both."
    )


def token_pooled_note(result: AnalysisResult) -> str | None:
    """What the read-outs of a layer whose output is tokens read, or None when neither network has such a layer."""
    return _token_note(
        result,
        "Class structure reads all tokens flattened together; augmentation invariance averages over all tokens, the "
        "class token included; the linear probe reads the first token (a ViT's class token) beside the mean of the "
        "others.",
    )


def _token_note(result: AnalysisResult, reading: str) -> str | None:
    """`reading` after the token layers it is about, or None when neither network has a token layer."""
    layers = _token_layers(result)
    return None if layers is None else f"{TOKENS}: {layers}. {reading}"


def unknown_layout_note(result: AnalysisResult) -> str | None:
    """Why pooled read-outs are missing for layers whose channel axis could not be worked out (core.layout), or
    None when there are none."""
    named = [
        f"{side}'s {', '.join(layers)}"
        for side, layers in (("A", result.unknown_layout_a), ("B", result.unknown_layout_b))
        if layers
    ]
    if not named:
        return None
    count = len(result.unknown_layout_a) + len(result.unknown_layout_b)
    whose = "its output's channel axis" if count == 1 else "their outputs' channel axes"
    return (
        f"Pooled read-outs are not drawn for {' and '.join(named)}: {whose} could not be worked out from the "
        "network's operations, so averaging over positions could be wrong."
    )
