"""The one assembly of an analysis: memory check -> fingerprints -> pair terms -> result.

The app, the command line (one process or torchrun) and the benchmarks all call `compare_many` (or
`compare` for one pair in one process, or `compare_pairs` for pairs that share networks, such as a pair and
its ceilings); they differ only in where fingerprints come from (computed, or a cache) and how many processes
share the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from core.comparison import finalize, merge_pair_terms, pair_terms
from core.data import Subset
from core.distributed import Cluster
from core.fingerprint import Fingerprint, fingerprint, merge_fingerprints
from core.memory import check_memory, layer_shapes
from core.network import Network
from core.options import AnalysisOptions
from core.progress import Progress, no_progress
from core.result import AnalysisResult

FingerprintSource = Callable[[Network], Fingerprint]  # a network -> this process's share of its fingerprint


def compare_many(
    reference: Network,
    others: list[Network],
    subset: Subset,
    options: AnalysisOptions,
    cluster: Cluster,
    progress: Progress = no_progress,
    fingerprints: FingerprintSource | None = None,
) -> list[AnalysisResult]:
    """Compare `reference` with each network in `others`; the reference runs once, whatever their number.

    Refuses up front (core.errors.MemoryRefusal) a pair that would not fit in memory. `fingerprints`
    replaces the computation of a network's fingerprint (the app passes its cache). Returns the results
    on rank 0 and an empty list on the other ranks.
    """
    shapes = [layer_shapes(network, cluster.device) for network in [reference, *others]]
    for other_shapes in shapes[1:]:
        check_memory([shapes[0], other_shapes], subset.spec.size, options, cluster.device)
    if fingerprints is None:

        def fingerprints(network: Network) -> Fingerprint:
            return fingerprint(network, subset, options, cluster.device, progress, cluster.shard)

    fa = fingerprints(reference)
    fa_all = cluster.gather(replace(fa, rows=()))
    results: list[AnalysisResult] = []
    for other in others:
        fb = fingerprints(other)
        terms = pair_terms(fa, fb, cluster.device, progress)
        fb_all, terms_all = cluster.gather(replace(fb, rows=())), cluster.gather(terms)
        if cluster.rank == 0:
            merged_a, merged_b = merge_fingerprints(fa_all), merge_fingerprints(fb_all)
            results.append(finalize(merged_a, merged_b, merge_pair_terms(terms_all), subset.spec, progress))
    return results


def compare_pairs(
    pairs: list[tuple[Network, Network]],
    subset: Subset,
    options: AnalysisOptions,
    cluster: Cluster,
    progress: Progress = no_progress,
) -> list[AnalysisResult]:
    """Compare each (first, second) pair, every network's pass computed once however many pairs it is in.

    A pair and its ceilings ((A, B), (A, A'), (B, B')) cost four forward passes, not six. A fingerprint is
    kept only until the last pair that needs it. Results in the pairs' order on rank 0, an empty list elsewhere.
    """
    last_use = {network.identity.key: k for k, pair in enumerate(pairs) for network in pair}
    kept: dict[str, Fingerprint] = {}

    def once(network: Network) -> Fingerprint:
        key = network.identity.key
        if key not in kept:
            kept[key] = fingerprint(network, subset, options, cluster.device, progress, cluster.shard)
        return kept[key]

    results: list[AnalysisResult] = []
    for k, (first, second) in enumerate(pairs):
        results += compare_many(first, [second], subset, options, cluster, progress, once)
        for key in [key for key in kept if last_use[key] == k]:
            del kept[key]
    return results


def compare(
    network_a: Network,
    network_b: Network,
    subset: Subset,
    options: AnalysisOptions,
    device: torch.device,
    progress: Progress = no_progress,
) -> AnalysisResult:
    """The whole analysis of two networks on one subset, in one process."""
    return compare_many(network_a, [network_b], subset, options, Cluster.single(device), progress)[0]
