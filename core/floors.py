"""Floors: what the architecture and the input give before any training, read beside A vs B.

Two untrained networks of the bundled architecture agree strongly in their early layers (CKA ~0.9 at the stem
on CIFAR-10 test images), so a trained pair's early agreement says little until it is read against the same
CKA between untrained networks. The floor at a matched layer is CKA between an untrained network of A's
architecture and one of B's, over several pairs of init seeds (the spread over seeds is wide, so one pair is
not enough): the mean and the 5th and 95th percentiles over the pairs. Trained A against untrained networks of
A's architecture (and B likewise) says how far training moved each layer.

The permutation null (core.comparison) stays what it is: a check that the two networks are not independent.

Every CKA here is made from fingerprints alone (core.fingerprint), so an untrained network costs one forward
pass per subset however often it is used, and its fingerprint is cached like any other (core.store, keyed by
its identity 'untrained:ARCH#seed=K'). Untrained networks are run without augmented views, probes or
permutations: only their Grams are read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from core.cka import cka_from_hsic
from core.data import Subset
from core.distributed import Cluster
from core.errors import OptionsError
from core.fingerprint import Fingerprint, fingerprint
from core.names import match_layers
from core.network import Network
from core.options import AnalysisOptions
from core.progress import Progress, no_progress
from core.store import Store, fingerprint_key

INIT_PAIRS = 8  # pairs of init seeds by default (16 untrained networks)
CPU_PAIRS = 3  # pairs on a CPU for a network above CPU_PARAMETERS (said in the result)
CPU_PARAMETERS = 5_000_000  # ResNet-18 at width 64 has 11M parameters; the bundled width-16 one 0.7M
LOW_PERCENTILE, HIGH_PERCENTILE = 5, 95
FLOOR_METHOD = (
    "CKA between untrained networks of A's and B's architectures (initialised as training seed K starts; eval "
    "mode), one pair of init seeds at a time: mean and 5th-95th percentiles over the pairs"
)
Untrained = Callable[[int], Network]  # init seed -> an untrained network of one architecture


@dataclass(frozen=True)
class MatchedTerms:
    """Per minibatch, the matched-layer HSIC of two fingerprints: cross terms and each side's own."""

    matched: tuple[str, ...]
    batch_ids: tuple[int, ...]
    cross: torch.Tensor  # [batches, M] float64
    self_a: torch.Tensor  # [batches, M]
    self_b: torch.Tensor  # [batches, M]

    def cka(self) -> np.ndarray:
        """[M] minibatch CKA over every batch (NaN where a layer is undefined)."""
        return cka_from_hsic(self.cross.sum(0), self.self_a.sum(0), self.self_b.sum(0))

    def leave_one_out(self) -> np.ndarray:
        """[batches, M] the CKA with each minibatch left out in turn (the jackknife's replicates)."""
        drop = [t.sum(0) - t for t in (self.cross, self.self_a, self.self_b)]
        return cka_from_hsic(*drop)


def _same_grams(a: AnalysisOptions, b: AnalysisOptions) -> bool:
    """Whether two options make the same Grams (views, probes and permutations do not change them)."""
    keys = ("kernel", "debiased", "sigma", "batch_size")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def matched_terms(fa: Fingerprint, fb: Fingerprint) -> MatchedTerms:
    """The matched-layer HSIC terms of two fingerprints of (the same shard of) one subset, batch by batch: one
    elementwise product per matched layer, no forward pass. Their options may differ in what does not change the
    Grams (an untrained network's fingerprint has no views or probes)."""
    if fa.subset_key != fb.subset_key or fa.batch_ids != fb.batch_ids or not _same_grams(fa.options, fb.options):
        raise OptionsError("fingerprints were taken on different subsets or CKA options; recompute one of them")
    pairs = match_layers(fa.layers, fb.layers)[0]  # by name, or by relative depth across architectures
    ia = torch.tensor([i for i, _ in pairs], dtype=torch.long)
    ib = torch.tensor([j for _, j in pairs], dtype=torch.long)
    cross = [(ra[ia].double() * rb[ib].double()).sum(1) for ra, rb in zip(fa.rows, fb.rows, strict=True)]
    empty = torch.zeros(0, len(pairs), dtype=torch.float64)
    return MatchedTerms(
        matched=tuple(fa.layers[i] for i, _ in pairs),
        batch_ids=fa.batch_ids,
        cross=torch.stack(cross) if cross else empty,
        self_a=torch.stack([s.diagonal()[ia] for s in fa.self_hsic]) if cross else empty,
        self_b=torch.stack([s.diagonal()[ib] for s in fb.self_hsic]) if cross else empty,
    )


def merge_matched_terms(shards: list[MatchedTerms]) -> MatchedTerms:
    """One set of matched terms from the shards of several processes, batches in order."""
    order = sorted((k, s, i) for s, shard in enumerate(shards) for i, k in enumerate(shard.batch_ids))

    def stacked(name: str) -> torch.Tensor:
        return torch.stack([getattr(shards[s], name)[i] for _, s, i in order])

    return replace(
        shards[0],
        batch_ids=tuple(k for k, _, _ in order),
        cross=stacked("cross"),
        self_a=stacked("self_a"),
        self_b=stacked("self_b"),
    )


@dataclass(frozen=True)
class Floors:
    """Untrained A-arch vs untrained B-arch per matched layer over init pairs, and trained vs untrained per layer."""

    matched: tuple[str, ...]
    per_pair: np.ndarray  # [pairs, M] CKA of untrained A-arch seed 2k vs untrained B-arch seed 2k + 1
    layers_a: tuple[str, ...]
    trained_a: np.ndarray  # [pairs, La] trained A vs untrained A-arch seed 2k
    layers_b: tuple[str, ...]
    trained_b: np.ndarray  # [pairs, Lb] trained B vs untrained B-arch seed 2k + 1
    note: str = ""  # why fewer than INIT_PAIRS pairs were run ("" otherwise)
    seconds: float = 0.0

    @property
    def pairs(self) -> int:
        return self.per_pair.shape[0]

    def band(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per matched layer: mean over init pairs, 5th and 95th percentiles (NaN where undefined)."""
        values = self.per_pair
        if not values.size or np.isnan(values).all():
            nan = np.full(len(self.matched), np.nan)
            return nan, nan.copy(), nan.copy()
        return (
            np.nanmean(values, 0),
            np.nanpercentile(values, LOW_PERCENTILE, 0),
            np.nanpercentile(values, HIGH_PERCENTILE, 0),
        )


def init_pairs(parameters: int, device: torch.device, asked: int = INIT_PAIRS) -> tuple[int, str]:
    """How many pairs of init seeds to run and a note when they are fewer than asked: a network above
    CPU_PARAMETERS on a CPU gets CPU_PAIRS (each pair costs two forward passes over the subset)."""
    if device.type == "cpu" and parameters > CPU_PARAMETERS and asked > CPU_PAIRS:
        return CPU_PAIRS, (
            f"{CPU_PAIRS} pairs of init seeds instead of {asked}: a network of {parameters / 1e6:.0f}M parameters "
            "on a CPU; the band's percentiles rest on few pairs"
        )
    return asked, ""


def floor_options(options: AnalysisOptions) -> AnalysisOptions:
    """The options an untrained network is run with: the same Grams, no views, probes or permutations."""
    return replace(options, invariance=False, probes=False, permutations=0)


def untrained_fingerprint(
    network: Network,
    subset: Subset,
    options: AnalysisOptions,
    cluster: Cluster,
    store: Store | None,
    progress: Progress = no_progress,
) -> Fingerprint:
    """This process's share of an untrained network's fingerprint, from the store when there (one process only:
    a shard is never stored as a whole)."""
    lean = floor_options(options)
    key = fingerprint_key(network.identity.key, subset.spec, lean)
    whole = cluster.world == 1 and store is not None
    kept = store.fingerprint(key) if whole else None
    if kept is not None:
        return kept
    fp = fingerprint(network, subset, lean, cluster.device, progress, cluster.shard)
    if whole:
        store.put_fingerprint(key, fp)
    return fp


def compute_floors(
    trained_a: Fingerprint,
    trained_b: Fingerprint,
    untrained_a: Untrained,
    untrained_b: Untrained,
    subset: Subset,
    cluster: Cluster,
    pairs: int = INIT_PAIRS,
    note: str = "",
    store: Store | None = None,
    progress: Progress = no_progress,
) -> Floors | None:
    """The floors of a pair from its trained fingerprints (this process's shares) and builders of untrained
    networks of each architecture. Pair k is untrained A-arch seed 2k against untrained B-arch seed 2k + 1, so no
    network meets itself when the architectures are the same. One pair's two networks are held at a time.
    Returns the floors on rank 0, None on the other ranks."""
    t0 = time.perf_counter()
    options = trained_a.options
    floor, moved_a, moved_b = [], [], []
    for k in range(pairs):
        fa = untrained_fingerprint(untrained_a(2 * k), subset, options, cluster, store, progress)
        fb = untrained_fingerprint(untrained_b(2 * k + 1), subset, options, cluster, store, progress)
        floor.append(cluster.gather(matched_terms(fa, fb)))
        moved_a.append(cluster.gather(matched_terms(trained_a, fa)))
        moved_b.append(cluster.gather(matched_terms(trained_b, fb)))
        progress("floors: untrained pairs", k + 1, pairs)
    if cluster.rank != 0:
        return None
    merged = [[merge_matched_terms(shards) for shards in runs] for runs in (floor, moved_a, moved_b)]
    per = [np.stack([t.cka() for t in terms]) for terms in merged]
    return Floors(
        matched=merged[0][0].matched,
        per_pair=per[0],
        layers_a=merged[1][0].matched,
        trained_a=per[1],
        layers_b=merged[2][0].matched,
        trained_b=per[2],
        note=note,
        seconds=time.perf_counter() - t0,
    )


def floor_fields(floors: Floors, matched: tuple[str, ...], layers_a, layers_b) -> dict[str, np.ndarray | int | str]:
    """The result's floor fields (core.result.AnalysisResult), aligned with its matched layers and each side's
    layers (NaN where the floors lack a layer)."""

    def aligned(values: np.ndarray, names: tuple[str, ...], wanted: tuple[str, ...]) -> np.ndarray:
        index = {name: i for i, name in enumerate(names)}
        return np.array([values[index[n]] if n in index else np.nan for n in wanted], dtype=np.float64)

    mean, low, high = floors.band()
    return {
        "floor_untrained": aligned(mean, floors.matched, matched),
        "floor_untrained_low": aligned(low, floors.matched, matched),
        "floor_untrained_high": aligned(high, floors.matched, matched),
        "untrained_a": aligned(np.nanmean(floors.trained_a, 0), floors.layers_a, tuple(layers_a)),
        "untrained_b": aligned(np.nanmean(floors.trained_b, 0), floors.layers_b, tuple(layers_b)),
        "floor_pairs": floors.pairs,
        "floor_note": floors.note,
        "floor_method": FLOOR_METHOD,
    }
