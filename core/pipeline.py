"""The one assembly of an analysis: memory check -> fingerprints -> pair terms -> result.

The app, the command line (one process or torchrun) and the benchmarks all call `compare_many` (or
`compare` for one pair in one process, or `compare_pairs` for pairs that share networks); they differ only in
where fingerprints come from (computed, or a cache), how many processes share the work, and whether they want
previews as the batches arrive. A pair and its ceilings is assembled in one place, `compare_with_ceilings`, for
the command line, the app and the server's warm-up, which also makes its plan (core.progress: the steps it will run,
in order, each counted once); a finished fingerprint is reused through one mechanism, `FingerprintShelf`, whether it
is kept for one run (a dict) or shared by a server's sessions (a bounded cache).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, replace

import torch

from core.ceilings import Ceilings
from core.comparison import finalize, merge_pair_terms, pair_terms, preview_terms
from core.data import Subset
from core.distributed import Cluster
from core.fingerprint import Fingerprint, fingerprint_steps, last, merge_fingerprints
from core.memory import check_memory, layer_shapes
from core.network import Network
from core.options import AnalysisOptions
from core.progress import Course, Progress, no_progress
from core.result import AnalysisResult
from core.spill import Batches
from core.store import Store

# a network -> this process's share of its fingerprint, one minibatch at a time (see fingerprint_steps); a cache
# yields the whole fingerprint at once
FingerprintSource = Callable[[Network], Iterable[Fingerprint]]
# a preview: the result of the batches so far (no null, no read-outs), batches done, batches in all
Preview = Callable[[AnalysisResult, int, int], None]
Pair = tuple[Network, Network]
Starting = Callable[[int], None]  # told k (from 0) as the k-th of the pairs asked for starts to be compared


def _unheard(k: int) -> None:
    return None


class FingerprintShelf:
    """Finished fingerprints by key, so that each network's forward pass runs once however many pairs need it.

    `kept` is any mapping: a dict for one run (`compare_pairs` drops an entry after its last pair), a bounded
    cache shared by a server's sessions (the app passes a cachetools.LRUCache). Access goes through one lock,
    since a least-recently-used cache reorders itself on every read. Behind the mapping, `source` may read and
    fill the result store, so fingerprints outlive the process.
    """

    def __init__(self, kept: MutableMapping[str, Fingerprint]) -> None:
        self._kept = kept
        self._lock = threading.Lock()

    def get(self, key: str) -> Fingerprint | None:
        with self._lock:
            return self._kept.get(key)

    def put(self, key: str, fp: Fingerprint) -> None:
        with self._lock:
            self._kept[key] = fp

    def drop(self, key: str) -> None:
        with self._lock:
            self._kept.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()

    def source(
        self, compute: FingerprintSource, key: Callable[[Network], str], store: Store | None = None
    ) -> FingerprintSource:
        """A source that yields a kept fingerprint whole (from memory, else from `store`, then kept in memory
        too), or streams `compute`'s steps (previews follow them) and keeps the last, whole one, in memory and
        in `store`. A kept fingerprint is named as the network asking for it (the same weights may come by
        another name)."""

        def reused(network: Network) -> Iterator[Fingerprint]:
            entry = key(network)
            found = self.get(entry)
            if found is None and store is not None:
                found = store.fingerprint(entry)
                if found is not None:
                    self.put(entry, found)
            if found is not None:
                yield replace(found, model=network.identity)
                return
            for step in compute(network):
                yield step
            self.put(entry, step)
            if store is not None:
                store.put_fingerprint(entry, step)

        return reused


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
    pairs: Sequence[Pair],
    subset: Subset,
    options: AnalysisOptions,
    cluster: Cluster,
    progress: Progress = no_progress,
    preview: Preview | None = None,
    fingerprints: FingerprintSource | None = None,
    previewed: int | None = None,
    keep: dict[str, Fingerprint] | None = None,
    starting: Starting = _unheard,
) -> list[AnalysisResult]:
    """Compare each (first, second) pair, every network's pass computed once however many pairs it is in.

    A pair and its ceilings ((A, B), (A, A'), (B, B')) cost four forward passes, not six. A fingerprint is
    kept only until the last pair that needs it. `fingerprints` as in `compare_many` (a cache shared beyond
    this call); `preview` as there, for the first `previewed` pairs (all by default). Results in the pairs'
    order on rank 0, an empty list elsewhere. With `keep`, every network's fingerprint (this process's
    share) is also left there by identity key, for what is made from fingerprints alone afterwards (core.seeds,
    core.floors). `starting` hears each pair's index as its comparison starts (a step of a plan, core.progress).
    """
    last_use = {network.identity.key: k for k, pair in enumerate(pairs) for network in pair}
    if fingerprints is None:

        def fingerprints(network: Network) -> Iterator[Fingerprint]:
            return fingerprint_steps(network, subset, options, cluster.device, progress, cluster.shard)

    shelf = FingerprintShelf({})
    shelved = shelf.source(fingerprints, key=lambda network: network.identity.key)

    def once(network: Network) -> Iterator[Fingerprint]:
        for step in shelved(network):
            yield step
        if keep is not None:
            keep[network.identity.key] = step

    results: list[AnalysisResult] = []
    for k, (first, second) in enumerate(pairs):
        shown = preview if previewed is None or k < previewed else None
        starting(k)
        results += compare_many(first, [second], subset, options, cluster, progress, once, shown)
        for key, used_last in last_use.items():
            if used_last == k:
                shelf.drop(key)
    return results


@dataclass(frozen=True)
class PairWithCeilings:
    """A vs B and what it is read against: each model against another seed of its own method (None where that
    side has none), and any further reference pairs asked for, in their order."""

    pair: AnalysisResult
    ceiling_a: AnalysisResult | None = None  # A against another seed of A's method
    ceiling_b: AnalysisResult | None = None
    references: tuple[AnalysisResult, ...] = ()  # the `references` pairs' results (floors, say)

    @property
    def results(self) -> list[AnalysisResult]:
        """Every result, in the order `ceiling_pairs` lists the pairs (no slot for a missing ceiling)."""
        return [r for r in (self.pair, self.ceiling_a, self.ceiling_b) if r is not None] + list(self.references)

    def ceilings(self, note_a: str = "", note_b: str = "") -> Ceilings:
        """The ceilings as the findings and the result file read them, with why a side has none."""
        return Ceilings(self.ceiling_a, self.ceiling_b, note_a, note_b)


def ceiling_steps(
    a: Network, b: Network, sibling_a: Network | None, sibling_b: Network | None, references: Sequence[Pair] = ()
) -> list[tuple[str, Pair]]:
    """The comparisons a pair with its ceilings needs, in the order computed, each named as a step of a plan:
    (A, B), (A, A'), (B, B'), then the further references. A and B come first, so their passes serve the ceilings
    and previews show A vs B."""
    steps = [("A vs B", (a, b))]
    steps += [("A vs its other seed", (a, sibling_a))] if sibling_a is not None else []
    steps += [("B vs its other seed", (b, sibling_b))] if sibling_b is not None else []
    return steps + [
        (f"{first.identity.source} vs {second.identity.source}", (first, second)) for first, second in references
    ]


def ceiling_pairs(
    a: Network, b: Network, sibling_a: Network | None, sibling_b: Network | None, references: Sequence[Pair] = ()
) -> list[Pair]:
    """The pairs of `ceiling_steps`, in its order."""
    return [pair for _, pair in ceiling_steps(a, b, sibling_a, sibling_b, references)]


# pairs -> their results (`compare_pairs`, bound), each pair's index told to the Starting as it starts
ComputePairs = Callable[[list[Pair], Starting], list[AnalysisResult]]
KnownResult = Callable[[Network, Network], AnalysisResult | None]  # a finished result from a cache, or None
Then = Callable[[AnalysisResult | None], Sequence[str]]  # A vs B as found (None: to compute) -> the steps after it


def references_step(floor_pairs: int, pairings: bool) -> str | None:
    """The step that reads A vs B against `floor_pairs` pairs of untrained networks and, with `pairings`, pairs every
    seed of one method with every seed of the other, named as a plan shows it; None when there is neither to make."""
    made = [name for name, asked in (("the untrained floor", floor_pairs > 0), ("the seed spread", pairings)) if asked]
    return " and ".join(made) or None


def compare_with_ceilings(
    a: Network,
    b: Network,
    sibling_a: Network | None,
    sibling_b: Network | None,
    compute: ComputePairs,
    known: KnownResult | None = None,
    references: Sequence[Pair] = (),
    course: Course | None = None,
    then: Then | None = None,
) -> PairWithCeilings | None:
    """A vs B with its ceilings (A vs `sibling_a`, B vs `sibling_b`, each skipped when None) and the further
    `references` pairs: the one assembly the command line, the app and the server's warm-up share.

    `known` gives finished results (the app's caches and the result store); `compute` gets the rest in one call,
    so every network's pass runs once (`compare_pairs` with the subset, options, cluster, progress, fingerprint
    source and previews bound; the app wraps it in its computing slot). Nothing is computed, and `compute` is not
    called, when every result is known. A known result is named as the networks given (the caches are keyed by
    content). None on torchrun ranks other than 0, which compute their share and return nothing.

    With a `course`, the plan is set before anything is computed: each comparison to compute, in order (the known
    ones are no step), then the steps `then` names for A vs B as found (the floors the caller adds, say: None
    stands for a pair still to compute); each comparison is begun as it starts, and the caller begins its own.
    """
    names, pairs = zip(*ceiling_steps(a, b, sibling_a, sibling_b, references), strict=True)
    found = [known(first, second) if known is not None else None for first, second in pairs]
    missing = [k for k, result in enumerate(found) if result is None]
    course = course or Course()
    to_compute = [names[k] for k in missing]
    course.follow(to_compute + list(then(found[0]) if then is not None else ()))
    computed = iter(compute([pairs[k] for k in missing], lambda k: course.begin(to_compute[k])) if missing else [])
    results = []
    for (first, second), result in zip(pairs, found, strict=True):
        if result is not None:
            results.append(replace(result, model_a=first.identity, model_b=second.identity))
        else:
            results.append(next(computed, None))
    if any(result is None for result in results):
        return None  # a rank other than 0: its share is done, the results are rank 0's
    later = iter(results[1:])
    ceiling_a = next(later) if sibling_a is not None else None
    ceiling_b = next(later) if sibling_b is not None else None
    return PairWithCeilings(results[0], ceiling_a, ceiling_b, tuple(later))


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
