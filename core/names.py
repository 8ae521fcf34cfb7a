"""Names: what a layer name says (its block, stage and kind), how two models' layers are paired, and how the two
models are labelled."""

from __future__ import annotations

RESIDUAL, OUTPUT, OTHER = "residual branch", "block output", "stem / head"
BY_NAME, BY_DEPTH = "by name", "by relative depth"  # how matched layers are paired (match_layers)


def kind(layer: str) -> str:
    """'residual branch' for 'layer2.0 residual' or 'blocks.3 attention branch', 'block output' for 'layer2.0 output',
    'blocks.3 attention output' or 'stage2 output', else 'stem / head'."""
    if layer.endswith((" residual", " branch")):
        return RESIDUAL
    if layer.endswith(" output"):
        return OUTPUT
    return OTHER


def block(layer: str) -> str:
    """'layer2.0' for 'layer2.0 output', 'blocks.3' for 'blocks.3 mlp branch'; the name itself for 'stem', 'pooled',
    'logits'."""
    return layer.split(" ", 1)[0]


def stage(layer: str) -> str:
    """'layer2' for 'layer2.0 output', 'stages.1.blocks' for 'stages.1.blocks.2 output' (the module holding the
    block), 'stage2' for 'stage2 output'."""
    return block(layer).rsplit(".", 1)[0]


def match_layers(layers_a: tuple[str, ...], layers_b: tuple[str, ...]) -> tuple[list[tuple[int, int]], str]:
    """Which layer of B each matched layer of A is compared with, as (index in A, index in B) in A's order, and how
    they were paired.

    By name when the two share a block's name (one architecture, or ResNets of other depths or widths: as always);
    else (a ViT against a ResNet) by relative depth: within each kind of reading (residual branches, block outputs)
    the k-th of the shorter list is paired with the one at the same fraction of depth in the longer; the stem, final
    norm, pooled features and logits by name.
    """
    index_b = {name: j for j, name in enumerate(layers_b)}
    blocks_a = {n for n in layers_a if kind(n) != OTHER}
    if blocks_a & set(layers_b) or not blocks_a or not any(kind(n) != OTHER for n in layers_b):
        return [(i, index_b[name]) for i, name in enumerate(layers_a) if name in index_b], BY_NAME
    pairs = [(i, index_b[name]) for i, name in enumerate(layers_a) if kind(name) == OTHER and name in index_b]
    for reading in (RESIDUAL, OUTPUT):
        ia = [i for i, n in enumerate(layers_a) if kind(n) == reading]
        ib = [j for j, n in enumerate(layers_b) if kind(n) == reading]
        short, long = (ia, ib) if len(ia) <= len(ib) else (ib, ia)
        if not short:
            continue
        step = (len(long) - 1) / max(len(short) - 1, 1)
        chosen = [long[round(k * step)] if len(short) > 1 else long[-1] for k in range(len(short))]
        pairs += list(zip(short, chosen, strict=True)) if short is ia else list(zip(chosen, short, strict=True))
    return sorted(pairs), BY_DEPTH


def shared_order(layers_a: tuple[str, ...], layers_b: tuple[str, ...]) -> list[str]:
    """One depth-ordered axis for both models: A's layers, then B's that A lacks (e.g. B's logits). Two architectures
    whose layers are paired by relative depth (match_layers) share no axis: each keeps its own."""
    if match_layers(layers_a, layers_b)[1] == BY_DEPTH:
        return list(layers_a)
    return list(layers_a) + [name for name in layers_b if name not in layers_a]


def side_labels(method_a: str, method_b: str) -> tuple[str, str]:
    """Legend labels that stay distinct when both models use the same method: 'A (simclr)', 'B (supervised)'."""
    return f"A ({method_a})", f"B ({method_b})"
