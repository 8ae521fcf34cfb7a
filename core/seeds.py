"""Seed pairings: every cross pairing of the seeds at hand, and what a verdict about methods may rest on.

A vs B's interval covers which images were drawn, not which seed was trained: with other seeds of A's and B's
methods (the ceilings' siblings, already run), A' x B, A x B' and A' x B' are as much "A's method against B's" as
A x B. They cost no forward pass: each is made from the fingerprints the pair and its ceilings already made
(core.floors.matched_terms). A claim about methods then compares the spread between methods (over these
pairings) with the spread within each method (the ceilings), and says how many seeds it rests on; with one
network per method it speaks of these two networks only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.distributed import Cluster
from core.fingerprint import Fingerprint
from core.floors import matched_terms, merge_matched_terms
from core.result import AnalysisResult, SeedPairing


def seed_pairings(
    seeds_a: list[tuple[str, Fingerprint]],
    seeds_b: list[tuple[str, Fingerprint]],
    matched: tuple[str, ...],
    cluster: Cluster,
) -> tuple[SeedPairing, ...]:
    """Every (seed of A's method) x (seed of B's method) from (spec, fingerprint) lists whose first entries are A
    and B: A x B first, then A' x B, A x B', A' x B' (B's seeds outer). Matched CKA over `matched` (NaN where a
    pairing lacks a layer) with its leave-one-out replicates. On rank 0; () elsewhere."""
    out = []
    for spec_b, fb in seeds_b:
        for spec_a, fa in seeds_a:
            shards = cluster.gather(matched_terms(fa, fb))
            if cluster.rank != 0:
                continue
            terms = merge_matched_terms(shards)
            index = {name: i for i, name in enumerate(terms.matched)}
            columns = [index.get(name) for name in matched]

            def aligned(values: np.ndarray, columns: list[int | None] = columns) -> np.ndarray:
                nan = np.full(values.shape[:-1], np.nan)
                return np.stack([values[..., c] if c is not None else nan for c in columns], -1)

            out.append(SeedPairing(spec_a, spec_b, aligned(terms.cka()), aligned(terms.leave_one_out())))
    return tuple(out)


@dataclass(frozen=True)
class MethodSpread:
    """At one matched layer: the CKA between methods over the seed pairings, and within each method (ceilings)."""

    between: tuple[float, ...]  # one per cross pairing, A x B first
    within: tuple[float, ...]  # A vs A', B vs B' where there are ceilings
    seeds_a: int  # networks of A's method behind `between`
    seeds_b: int

    @property
    def rests_on(self) -> str:
        """What a claim at this layer rests on, in words."""
        if self.seeds_a == 1 and self.seeds_b == 1:
            return "these two networks only (one seed per method)"
        return f"{self.seeds_a} seed(s) of A's method and {self.seeds_b} of B's ({len(self.between)} cross pairings)"

    @property
    def separated(self) -> bool | None:
        """Whether every between-method value lies below every within-method one (None without both)."""
        between = [v for v in self.between if np.isfinite(v)]
        within = [v for v in self.within if np.isfinite(v)]
        if not between or not within:
            return None
        return max(between) < min(within)


def method_spread(result: AnalysisResult, within: list[AnalysisResult], layer: str) -> MethodSpread:
    """Between-method (the result's seed pairings, or A x B alone) against within-method (`within`: the ceilings
    at hand) spread at `layer`."""
    if layer not in result.matched:
        return MethodSpread((), (), 0, 0)
    k = result.matched.index(layer)
    pairings = result.seed_pairings
    between = tuple(float(p.matched_cka[k]) for p in pairings) or (float(result.matched_cka[k]),)
    within_values = tuple(float(c.matched_cka[c.matched.index(layer)]) for c in within if layer in c.matched)
    seeds_a = len({p.a for p in pairings}) or 1
    seeds_b = len({p.b for p in pairings}) or 1
    return MethodSpread(between, within_values, seeds_a, seeds_b)
