"""The one assembly of an analysis: memory check -> fingerprints -> pair terms -> result.

The app, the command line (one process or torchrun) and the benchmarks all call `compare_many` (or
`compare` for one pair in one process, or `compare_pairs` for pairs that share networks, such as a pair and
its ceilings); they differ only in where fingerprints come from (computed, or a cache), how many processes
share the work, and whether they want previews as the batches arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

import torch

from core.comparison import finalize, merge_pair_terms, pair_terms, preview_terms
from core.data import Subset
from core.distributed import Cluster
from core.fingerprint import Fingerprint, fingerprint_steps, last, merge_fingerprints
from core.memory import check_memory, layer_shapes
from core.network import Network
from core.options import AnalysisOptions
from core.progress import Progress, no_progress
from core.result import AnalysisResult
from core.spill import Batches

# a network -> this process's share of its fingerprint, one minibatch at a time (see fingerprint_steps); a cache
# yields the whole fingerprint at once
FingerprintSource = Callable[[Network], Iterable[Fingerprint]]
# a preview: the result of the batches so far (no null, no read-outs), batches done, batches in all
Preview = Callable[[AnalysisResult, int, int], None]


def _lockstep(
    steps_a: Iterable[Fingerprint], steps_b: Iterable[Fingerprint]
) -> Iterator[tuple[Fingerprint, Fingerprint, bool]]:
    """Advance two fingerprints a batch at a time, yielding both cut to the batches they share each time that
    grows, then the two whole fingerprints (the flag says which)."""
    sources, current = [iter(steps_a), iter(steps_b)], [None, None]
    live, shared = [True, True], 0
    while any(live):
        for side in (0, 1):
            step = next(sources[side], None) if live[side] else None
            live[side] = step is not None
            current[side] = step or current[side]
        fa, fb = current
        count = min(len(fa.batch_ids), len(fb.batch_ids))
        if any(live) and count > shared:
            shared = count
            yield fa.first(count), fb.first(count), False
    yield fa, fb, True


def compare_many(
    reference: Network,
    others: list[Network],
    subset: Subset,
    options: AnalysisOptions,
    cluster: Cluster,
    progress: Progress = no_progress,
    fingerprints: FingerprintSource | None = None,
    preview: Preview | None = None,
) -> list[AnalysisResult]:
    """Compare `reference` with each network in `others`; the reference runs once, whatever their number.

    Refuses up front (core.errors.MemoryRefusal) a pair that would not fit in memory. `fingerprints`
    replaces the computation of a network's fingerprint (the app passes its cache). With `preview` (one process
    only), the reference and each other network advance a minibatch at a time, and `preview` gets the result of
    the batches so far after each one; the final results are the same to the last bit. Returns the results
    on rank 0 and an empty list on the other ranks.
    """
    options.check_subset(subset.spec.size)
    shapes = [layer_shapes(network, cluster.device) for network in [reference, *others]]
    for other_shapes in shapes[1:]:
        check_memory([shapes[0], other_shapes], subset.spec.size, options, cluster.device)
    if fingerprints is None:

        def fingerprints(network: Network) -> Iterator[Fingerprint]:
            return fingerprint_steps(network, subset, options, cluster.device, progress, cluster.shard)

    if cluster.world > 1:
        preview = None  # each process holds only its share of the batches
    steps_a: Iterable[Fingerprint] = fingerprints(reference)
    if preview is None:
        fa = last(steps_a)
        fa_all = cluster.gather(replace(fa, rows=Batches()))
    results: list[AnalysisResult] = []
    for other in others:
        if preview is None:
            fb = last(fingerprints(other))
        else:  # the reference advances with the first other network, and is whole for the next ones
            fa, fb = _previewed(steps_a, fingerprints(other), subset, cluster.device, preview)
            steps_a, fa_all = [fa], [fa]
        terms = pair_terms(fa, fb, cluster.device, progress)
        fb_all, terms_all = cluster.gather(replace(fb, rows=Batches())), cluster.gather(terms)
        if cluster.rank == 0:
            merged_a, merged_b = merge_fingerprints(fa_all), merge_fingerprints(fb_all)
            results.append(finalize(merged_a, merged_b, merge_pair_terms(terms_all), subset.spec, progress))
    return results


def _previewed(
    steps_a: Iterable[Fingerprint],
    steps_b: Iterable[Fingerprint],
    subset: Subset,
    device: torch.device,
    preview: Preview,
) -> tuple[Fingerprint, Fingerprint]:
    """Run two fingerprints in lockstep, showing `preview` the result of the batches so far; the whole two."""
    kept: dict[int, torch.Tensor] = {}
    for fa, fb, whole in _lockstep(steps_a, steps_b):
        if not whole:
            partial = finalize(fa, fb, preview_terms(fa, fb, kept, device), subset.spec, with_readouts=False)
            preview(partial, len(fa.batch_ids), fa.options.batch_count(len(subset.labels)))
    return fa, fb


def compare_pairs(
    pairs: list[tuple[Network, Network]],
    subset: Subset,
    options: AnalysisOptions,
    cluster: Cluster,
    progress: Progress = no_progress,
    preview: Preview | None = None,
) -> list[AnalysisResult]:
    """Compare each (first, second) pair, every network's pass computed once however many pairs it is in.

    A pair and its ceilings ((A, B), (A, A'), (B, B')) cost four forward passes, not six. A fingerprint is
    kept only until the last pair that needs it. `preview` as in `compare_many`. Results in the pairs' order on
    rank 0, an empty list elsewhere.
    """
    last_use = {network.identity.key: k for k, pair in enumerate(pairs) for network in pair}
    kept: dict[str, Fingerprint] = {}

    def once(network: Network) -> Iterator[Fingerprint]:
        key = network.identity.key
        if key in kept:
            yield kept[key]
            return
        for step in fingerprint_steps(network, subset, options, cluster.device, progress, cluster.shard):
            yield step
        kept[key] = step

    results: list[AnalysisResult] = []
    for k, (first, second) in enumerate(pairs):
        results += compare_many(first, [second], subset, options, cluster, progress, once, preview)
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
