"""Names: what a layer name says (its block, stage and kind) and how the two models are labelled."""

from __future__ import annotations

RESIDUAL, OUTPUT, OTHER = "residual branch", "block output", "stem / head"


def kind(layer: str) -> str:
    """'residual branch' for 'layer2.0 residual', 'block output' for 'layer2.0 output', else 'stem / head'."""
    if layer.endswith(" residual"):
        return RESIDUAL
    if layer.endswith(" output"):
        return OUTPUT
    return OTHER


def block(layer: str) -> str:
    """'layer2.0' for 'layer2.0 output'; the name itself for 'stem', 'pooled', 'logits'."""
    return layer.split(" ", 1)[0]


def stage(layer: str) -> str:
    """'layer2' for 'layer2.0 output'."""
    return block(layer).split(".", 1)[0]


def shared_order(layers_a: tuple[str, ...], layers_b: tuple[str, ...]) -> list[str]:
    """One depth-ordered axis for both models: A's layers, then B's that A lacks (e.g. B's logits)."""
    return list(layers_a) + [name for name in layers_b if name not in layers_a]


def side_labels(method_a: str, method_b: str) -> tuple[str, str]:
    """Legend labels that stay distinct when both models use the same method: 'A (simclr)', 'B (supervised)'."""
    return f"A ({method_a})", f"B ({method_b})"
