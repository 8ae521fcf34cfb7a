"""The app's analysis service: caches and computation shared by every session of a server. It never draws.

Caches, from cheap to expensive: the subset; each network's fingerprint (its one forward pass), keyed by (weights
and how they were read, subset, options), so changing model B reuses A's; each finished comparison, keyed by (both
networks' keys, subset, options), A vs B with its untrained floors and seed pairings (models.references, the
command line's own), whose untrained networks' fingerprints the store keeps too. Keyed by content, so two
sessions never see each other's uploads by name. Each is a bounded cachetools.LRUCache behind a lock (sessions
run in threads of one process) holding the objects themselves: a hit copies nothing. Behind the fingerprint and
result caches, the result store on disk (core.store) keeps both across restarts and shares them with the CLI.

A page learns what happens while a comparison is computed (the plan and each step as it begins, progress,
previews, waiting for a computing slot) through the callbacks of the `Watch` it passes in; it draws them itself
(ui.progress).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from cachetools import LRUCache, cached

from core import settings
from core.data import Subset, SubsetSpec, load_subset
from core.device import pick_device
from core.distributed import Cluster
from core.fingerprint import Fingerprint, fingerprint_steps, last
from core.floors import INIT_PAIRS
from core.network import Network
from core.options import AnalysisOptions
from core.pipeline import (
    FingerprintShelf,
    FingerprintSource,
    Pair,
    PairWithCeilings,
    Preview,
    ceiling_pairs,
    compare_pairs,
    compare_with_ceilings,
    references_step,
)
from core.progress import Course, Progress, Steps, no_progress, no_steps
from core.result import AnalysisResult
from core.store import default_store, fingerprint_key, result_key
from models import LoadedModel
from models.references import missing_references, with_floors_and_seeds

SUBSETS_KEPT = 4  # subsets in memory (a full training split is 150 MB, mapped from a file beyond a bound)
FINGERPRINTS_KEPT = 8  # fingerprints in memory, least recently used dropped first (the store keeps more)
RESULTS_KEPT = 8  # finished comparisons in memory; the store keeps more


def _still(waiting: bool) -> None:
    return None


@dataclass(frozen=True)
class Watch:
    """What the service tells a page while it computes; every callback runs in the page's own script thread."""

    progress: Progress = no_progress  # (stage, done, total), as the engine reports it
    preview: Preview | None = None  # A vs B from the minibatches so far; None: no previews are computed
    waiting: Callable[[bool], None] = _still  # True: no computing slot is free, this analysis waits; False: it starts
    step: Steps = no_steps  # (the plan, k): step k of the plan begins; the plan is set before the first step


@functools.cache
def configure_threads() -> None:
    """Apply CKA_LENS_THREADS once per server process (torch's thread pool is shared by every session)."""
    threads = settings.threads()
    if threads:
        torch.set_num_threads(threads)


def device() -> str:
    return str(pick_device("auto"))


@cached(LRUCache(maxsize=SUBSETS_KEPT), lock=threading.Lock())
def subset_of(spec: SubsetSpec) -> Subset:
    """The images of `spec`, loaded once and shared (never changed after loading). Raises DataError."""
    return load_subset(spec)


_FINGERPRINTS = FingerprintShelf(LRUCache(maxsize=FINGERPRINTS_KEPT))
_RESULTS: LRUCache[str, AnalysisResult] = LRUCache(maxsize=RESULTS_KEPT)
_RESULTS_LOCK = threading.Lock()


def _entry(first: Network, second: Network, spec: SubsetSpec, options: AnalysisOptions) -> str:
    return result_key(first.identity.key, second.identity.key, spec, options)


def _remember(entry: str, result: AnalysisResult) -> None:
    """Keep a result for every session: its arrays made read-only, since a hit hands out the arrays themselves."""
    for value in vars(result).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    with _RESULTS_LOCK:
        _RESULTS[entry] = result


def _known(spec: SubsetSpec, options: AnalysisOptions) -> Callable[[Network, Network], AnalysisResult | None]:
    """A finished comparison from memory, else from the result store (then kept in memory too)."""

    def known(first: Network, second: Network) -> AnalysisResult | None:
        entry = _entry(first, second, spec, options)
        with _RESULTS_LOCK:
            result = _RESULTS.get(entry)
        store = default_store()
        if result is None and store is not None:
            result = store.result(entry)
            if result is not None:
                _remember(entry, result)
        return result

    return known


def forget() -> None:
    """Empty the memory caches (not the store): what is asked next is read from the store or computed."""
    _FINGERPRINTS.clear()
    with _RESULTS_LOCK:
        _RESULTS.clear()
    subset_of.cache_clear()


@functools.cache
def _slots() -> threading.BoundedSemaphore:
    """How many analyses compute at once: CKA_LENS_CONCURRENT, else as many as the cores hold at the torch
    thread count (measured: 12 analyses at once on 2 cores all finished after 433 s; in turn, the first after
    seconds)."""
    count = settings.concurrent_analyses() or max(1, (os.cpu_count() or 1) // max(1, torch.get_num_threads()))
    return threading.BoundedSemaphore(count)


@contextmanager
def computing_slot(waiting: Callable[[bool], None] = _still) -> Iterator[None]:
    """Wait for a free computing slot, telling `waiting` while it waits (results from the caches need none)."""
    slots = _slots()
    if not slots.acquire(blocking=False):
        waiting(True)
        slots.acquire()
        waiting(False)
    try:
        yield
    finally:
        slots.release()


class _Turns:
    """One lock per comparison asked for, so that sessions asking for the same one at once compute it once: the
    first computes, the others wait and then find it in the cache (as Streamlit's own caches behave). A lock is
    forgotten once nobody holds or awaits it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def turn(self, entry: str, waiting: Callable[[bool], None]) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(entry, (threading.Lock(), 0))
            self._locks[entry] = (lock, users + 1)
        if not lock.acquire(blocking=False):
            waiting(True)
            lock.acquire()
            waiting(False)
        try:
            yield
        finally:
            lock.release()
            with self._guard:
                users = self._locks[entry][1] - 1
                if users:
                    self._locks[entry] = (lock, users)
                else:
                    del self._locks[entry]


_TURNS = _Turns()


def _source(spec: SubsetSpec, options: AnalysisOptions, cluster: Cluster, watch: Watch) -> FingerprintSource:
    """Each network's fingerprint from the shared shelf, else the result store, else computed (and kept in both)."""
    subset = subset_of(spec)

    def steps(network: Network):
        return fingerprint_steps(network, subset, options, cluster.device, watch.progress)

    return _FINGERPRINTS.source(
        steps, key=lambda net: fingerprint_key(net.identity.key, spec, options), store=default_store()
    )


def _cluster() -> Cluster:
    return Cluster.single(torch.device(device()))


def _lacking(pair: AnalysisResult | None, seeds_a: list[LoadedModel], seeds_b: list[LoadedModel]) -> tuple[int, bool]:
    """What A vs B as found lacks of its untrained floors and seed pairings (models.references.missing_references):
    the pairs of init seeds still to run and whether its seed pairings must be made. A pair still to compute
    (None) lacks its floors, and its pairings when either side has another seed."""
    floors = settings.floor_pairs(INIT_PAIRS)
    if pair is None:
        return floors, len(seeds_a) + len(seeds_b) > 2
    return missing_references(pair, seeds_a, seeds_b, floors)


def _with_references(
    found: PairWithCeilings,
    seeds_a: list[LoadedModel],
    seeds_b: list[LoadedModel],
    kept: dict[str, Fingerprint],
    spec: SubsetSpec,
    options: AnalysisOptions,
    watch: Watch,
    course: Course,
) -> PairWithCeilings:
    """The pair with its untrained floors and seed pairings (models.references, as the command line makes them),
    from the fingerprints its comparisons kept (else the shelf or the store), as one step of the plan; a pair that
    already has them for these seeds, from a cache or the store, is returned as it is. The enriched pair replaces
    the plain one in the caches and the store."""
    floor_pairs, pairings = _lacking(found.pair, seeds_a, seeds_b)
    step = references_step(floor_pairs, pairings)
    if step is None:
        return found
    course.begin(step)
    with computing_slot(watch.waiting):
        cluster = _cluster()
        source = _source(spec, options, cluster, watch)
        for network in (*seeds_a, *seeds_b):
            if network.identity.key not in kept:
                kept[network.identity.key] = last(source(network))
        store = default_store()
        pair = with_floors_and_seeds(
            found.pair, seeds_a, seeds_b, kept, subset_of(spec), cluster, floor_pairs, store, watch.progress
        )
    entry = _entry(seeds_a[0], seeds_b[0], spec, options)
    _remember(entry, pair)
    if store is not None:
        store.put_result(entry, pair)
    return replace(found, pair=pair)


def pair_with_ceilings(
    a: LoadedModel,
    b: LoadedModel,
    sibling_a: LoadedModel | None,
    sibling_b: LoadedModel | None,
    spec: SubsetSpec,
    options: AnalysisOptions,
    watch: Watch | None = None,
    references: bool = True,
) -> PairWithCeilings:
    """A vs B and each side's ceiling (core.pipeline.compare_with_ceilings) from the caches, the missing ones
    computed together in one computing slot, each network's pass once; then, with `references`, A vs B's untrained
    floors and seed pairings (models.references.with_floors_and_seeds, the command line's own), unless it has them
    already. `watch` hears of the work: the plan (each comparison to compute, then the floors) before it starts,
    each step as it begins, progress and previews of A vs B. Another session asking for the same pair meanwhile
    waits for it rather than computing it again. Raises LensError (MemoryRefusal, DataError, ...) for what cannot
    be computed."""
    watch = watch or Watch()
    course = Course(watch.step)
    kept: dict[str, Fingerprint] = {}  # the fingerprints of this computation, for the floors and seed pairings
    seeds_a = [a] + ([sibling_a] if sibling_a is not None else [])
    seeds_b = [b] + ([sibling_b] if sibling_b is not None else [])

    def then(pair: AnalysisResult | None) -> list[str]:
        step = references_step(*_lacking(pair, seeds_a, seeds_b)) if references else None
        return [step] if step is not None else []

    def compute(pairs: list[Pair], starting: Callable[[int], None]) -> list[AnalysisResult]:
        with computing_slot(watch.waiting):
            subset, cluster = subset_of(spec), _cluster()
            source = _source(spec, options, cluster, watch)
            previewed = 1 if pairs[0][0] is a and pairs[0][1] is b else 0
            results = compare_pairs(
                pairs, subset, options, cluster, watch.progress, watch.preview, source, previewed, kept, starting
            )
        store = default_store()
        for (first, second), result in zip(pairs, results, strict=True):
            _remember(_entry(first, second, spec, options), result)
            if store is not None:
                store.put_result(_entry(first, second, spec, options), result)
        return results

    with _TURNS.turn(_entry(a, b, spec, options), watch.waiting):
        found = compare_with_ceilings(
            a, b, sibling_a, sibling_b, compute, _known(spec, options), course=course, then=then
        )
        if found is None:
            raise RuntimeError("the app computes in one process, which returns every result")
        if not references:
            return found
        return _with_references(found, seeds_a, seeds_b, kept, spec, options, watch, course)


def result(
    a: LoadedModel, b: LoadedModel, spec: SubsetSpec, options: AnalysisOptions, watch: Watch | None = None
) -> AnalysisResult:
    """A vs B alone, from the caches or computed (as `pair_with_ceilings`, without ceilings, floors or seed
    pairings: the training page, which compares many snapshots, reads none of them)."""
    return pair_with_ceilings(a, b, None, None, spec, options, watch, references=False).pair


def at_hand(
    a: Network, b: Network, sibling_a: Network | None, sibling_b: Network | None, spec: SubsetSpec, options
) -> bool:
    """Whether A vs B and its ceilings are all finished, in memory or in the result store (not read: a store entry
    may still turn out damaged when read, and be recomputed), so they are shown without computing."""
    store = default_store()
    for first, second in ceiling_pairs(a, b, sibling_a, sibling_b):
        entry = _entry(first, second, spec, options)
        with _RESULTS_LOCK:
            if entry in _RESULTS:
                continue
        if store is None or not store.has_result(entry):
            return False
    return True
