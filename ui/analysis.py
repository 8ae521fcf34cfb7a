"""The analyses a session sees: the subset, each network's fingerprint and each pair's result, cached.

Caches, from cheap to expensive: the subset (`st.cache_data`); each network's fingerprint (its one
forward pass), keyed by (weights sha256 and how they were read, subset, options), so changing model B
reuses A's; the finished comparison, keyed by (both keys, subset, options). Shared caches are keyed by
content, so two sessions never see each other's uploads by name. Behind both memory caches, the result store
on disk (core.store) keeps fingerprints and results across restarts and shares them with the CLI.

While a comparison is computed, the page that asked for it shows previews: its charts from the minibatches so
far, refined as they arrive (core.pipeline), then replaced by the final result.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import altair as alt
import streamlit as st
import torch

from core import settings
from core.augment import simclr_views
from core.ceilings import Ceilings
from core.data import Subset, SubsetSpec, load_subset
from core.device import pick_device
from core.distributed import Cluster
from core.errors import LensError
from core.fingerprint import Fingerprint, fingerprint_steps, view_generator
from core.network import Network
from core.options import AnalysisOptions
from core.pipeline import FingerprintSource, Preview, compare_many
from core.progress import Progress
from core.report import open_report
from core.result import AnalysisResult
from core.store import default_store, fingerprint_key, result_key
from models import CheckpointError, LoadedModel, choose_sibling
from ui import figure, networks
from ui.choices import Choices
from ui.text import code, plain


@functools.cache
def configure_threads() -> None:
    """Apply CKA_LENS_THREADS once per server process (torch's thread pool is shared by every session)."""
    threads = settings.threads()
    if threads:
        torch.set_num_threads(threads)


def device() -> str:
    return str(pick_device("auto"))


@st.cache_data(max_entries=4, show_spinner="Loading CIFAR-10 images...")
def subset_of(spec: SubsetSpec) -> Subset:
    return load_subset(spec)


@contextmanager
def progress_panel(title: str) -> Iterator[Progress]:
    """A status box with a progress bar naming each stage; gone once the work is done.

    Called inside cached functions: everything is drawn in a placeholder created here and emptied at the
    end, so a cache hit replays nothing visible (and never touches elements made outside the function).
    """
    slot = st.empty()
    with slot.container():
        status = st.status(title, expanded=True)
        bar = status.progress(0.0, text="starting")

    def report(stage: str, done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"{stage} ({done}/{total})")

    try:
        yield report
    finally:
        slot.empty()


MAX_FINGERPRINTS = 8  # fingerprints kept in memory, least recently used dropped first (the store keeps more)
_FINGERPRINTS: OrderedDict[str, Fingerprint] = OrderedDict()
_FINGERPRINTS_LOCK = threading.Lock()


def _kept_fingerprint(entry: str) -> Fingerprint | None:
    """A finished fingerprint from memory, else from the result store (then kept in memory too)."""
    with _FINGERPRINTS_LOCK:
        if entry in _FINGERPRINTS:
            _FINGERPRINTS.move_to_end(entry)
            return _FINGERPRINTS[entry]
    store = default_store()
    kept = store.fingerprint(entry) if store else None
    if kept is not None:
        _remember(entry, kept)
    return kept


def _remember(entry: str, fp: Fingerprint) -> None:
    with _FINGERPRINTS_LOCK:
        _FINGERPRINTS[entry] = fp
        _FINGERPRINTS.move_to_end(entry)
        while len(_FINGERPRINTS) > MAX_FINGERPRINTS:
            _FINGERPRINTS.popitem(last=False)


def _fingerprints(spec: SubsetSpec, options: AnalysisOptions, device: str, report: Progress) -> FingerprintSource:
    """Each network's fingerprint from the caches whole, or computed a minibatch at a time (for previews) and
    kept once finished, in memory and in the result store."""

    def source(network: Network) -> Iterator[Fingerprint]:
        entry = fingerprint_key(network.identity.key, spec, options)
        kept = _kept_fingerprint(entry)
        if kept is not None:
            yield replace(kept, model=network.identity)
            return
        for step in fingerprint_steps(network, subset_of(spec), options, torch.device(device), report):
            yield step
        _remember(entry, step)
        store = default_store()
        if store:
            store.put_fingerprint(entry, step)

    return source


Charts = Callable[[AnalysisResult], list[alt.TopLevelMixin | figure.Figure]]  # a page's charts of a preview
PREVIEW_EVERY_S = 1.0  # at most one preview drawn per second: each redraw costs the browser a chart


@contextmanager
def previews(charts_of: Charts | None, images: int) -> Iterator[Preview | None]:
    """A `Preview` that draws `charts_of(the result so far)` with a line saying what it rests on, in a placeholder
    emptied at the end (like `progress_panel`, it is drawn inside a cached function); None without `charts_of`."""
    if charts_of is None:
        yield None
        return
    slot, last = st.empty(), -PREVIEW_EVERY_S

    def show(result: AnalysisResult, done: int, total: int) -> None:
        nonlocal last
        if done < total and time.monotonic() - last < PREVIEW_EVERY_S and done > 1:
            return
        last = time.monotonic()
        with slot.container():
            st.info(
                f"Preview from the first {result.used_images:,} of {images:,} images ({done} of {total} minibatches), "
                "refined as the rest arrive: the interval appears from 5 minibatches, the permutation null and the "
                "read-outs once all are in."
            )
            for chart in charts_of(result):
                figure.show(chart)

    try:
        yield show
    finally:
        slot.empty()


@functools.cache
def _slots() -> threading.BoundedSemaphore:
    """How many analyses compute at once: CKA_LENS_CONCURRENT, else as many as the cores hold at the torch
    thread count (measured: 12 analyses at once on 2 cores all finished after 433 s; in turn, the first after
    seconds)."""
    count = settings.concurrent_analyses() or max(1, (os.cpu_count() or 1) // max(1, torch.get_num_threads()))
    return threading.BoundedSemaphore(count)


@contextmanager
def computing_slot() -> Iterator[None]:
    """Wait for a free computing slot, saying so on the page while waiting (results from caches need none)."""
    slots = _slots()
    if not slots.acquire(blocking=False):
        note = st.empty()
        note.info("Other visitors' analyses are running: this one starts as soon as one of them finishes.")
        slots.acquire()
        note.empty()
    try:
        yield
    finally:
        slots.release()


RESULTS_KEPT = 8  # finished comparisons in the memory cache; the result store keeps more


@st.cache_data(max_entries=RESULTS_KEPT, show_spinner=False)
def _result(key_a: str, key_b: str, spec: SubsetSpec, options: AnalysisOptions, _a, _b, _device: str, _charts=None):
    store, entry = default_store(), result_key(key_a, key_b, spec, options)
    result = store.result(entry) if store else None
    if result is None:
        cluster = Cluster.single(torch.device(_device))
        title = f"Comparing {_a.identity.source} with {_b.identity.source}"
        with computing_slot(), progress_panel(title) as report, previews(_charts, spec.size) as preview:
            source = _fingerprints(spec, options, _device, report)
            result = compare_many(_a, [_b], subset_of(spec), options, cluster, report, source, preview)[0]
        if store:
            store.put_result(entry, result)
    _finished(entry)  # from here on at hand: in this cache (and the store, when there is one)
    return result


_FINISHED: OrderedDict[str, None] = OrderedDict()  # the keys of the results in _result's cache, newest last
_FINISHED_LOCK = threading.Lock()


def _finished(entry: str) -> None:
    with _FINISHED_LOCK:
        _FINISHED[entry] = None
        _FINISHED.move_to_end(entry)
        while len(_FINISHED) > RESULTS_KEPT:
            _FINISHED.popitem(last=False)


def overview_at_hand(choices: Choices) -> bool:
    """Whether the overview can draw its figure at once for these choices: the pair's result and each ceiling's were
    finished by this server or are in the result store, for networks it has already loaded. The app then draws the
    sidebar after the page. A wrong answer costs only that order: a store entry found damaged when read is
    recomputed with the sidebar still to come."""
    if OPENED in st.session_state or choices.problem:
        return True
    pairs = [(choices.model_a, choices.model_b)]
    for spec, chosen in ((choices.model_a, choices.sibling_a), (choices.model_b, choices.sibling_b)):
        sibling, _ = choose_sibling(spec, chosen)
        if sibling:
            pairs.append((spec, sibling))
    store = default_store()
    for first, second in pairs:
        a, b = networks.peek(first), networks.peek(second)
        if a is None or b is None:
            return False
        entry = result_key(a.identity.key, b.identity.key, choices.subset, choices.options)
        with _FINISHED_LOCK:
            known = entry in _FINISHED
        if not known and not (store and store.has_result(entry)):
            return False
    return True


def cached_result(
    a: LoadedModel, b: LoadedModel, spec: SubsetSpec, options: AnalysisOptions, charts: Charts | None = None
) -> AnalysisResult:
    """The comparison from the caches (memory, then the result store), computed only when neither has it; while
    it is computed, `charts` of each preview are shown."""
    return _result(a.identity.key, b.identity.key, spec, options, a, b, device(), charts)


OPENED = "opened_result"  # session_state: (file name, AnalysisResult) opened on the Models page
OPENED_CEILINGS = "opened_ceilings"  # session_state: the opened file's Ceilings


def open_result(name: str, data: bytes) -> AnalysisResult:
    """Read a result file the CLI (or a download) wrote and show it on every page of this session; a
    ResultError says why a file cannot be read, and then nothing is kept open."""
    st.session_state.pop(OPENED, None)
    st.session_state.pop(OPENED_CEILINGS, None)
    result, ceilings = open_report(name, data)
    st.session_state[OPENED] = (name, result)
    st.session_state[OPENED_CEILINGS] = ceilings
    return result


def _close_opened() -> None:
    st.session_state.pop(OPENED, None)
    st.session_state.pop(OPENED_CEILINGS, None)


def analysis(choices: Choices, charts: Charts | None = None) -> AnalysisResult | None:
    """The comparison for the current choices (or the result file this session opened), or None after showing
    why it cannot be made; while it is computed, the page's `charts` of each preview are shown in its place."""
    if OPENED in st.session_state:
        name, result = st.session_state[OPENED]
        st.info(
            f"Showing {code(name)}, a result opened from a file (A = {code(result.model_a.source)}, "
            f"B = {code(result.model_b.source)}), not the sidebar's choice."
        )
        st.button("Close it and show the sidebar's choice", on_click=_close_opened, key="close_opened")
        return result
    if choices.problem:
        st.warning(plain(choices.problem, 600))
        return None
    loaded: list[LoadedModel] = []
    for side, spec in (("A", choices.model_a), ("B", choices.model_b)):
        try:
            loaded.append(networks.load(spec))
        except CheckpointError as err:
            st.error(f"Model {side} ({code(spec)}) could not be loaded: {plain(err, 600)}")
    if len(loaded) < 2:
        return None
    a, b = loaded
    try:
        result = cached_result(a, b, choices.subset, choices.options, charts)
    except (LensError, ValueError, MemoryError, torch.OutOfMemoryError) as err:
        st.error(f"The analysis failed: {plain(err, 600)}")
        return None
    except Exception as err:  # noqa: BLE001 - a bug must reach this session as a message, not hang or leak paths
        st.error(f"The analysis failed unexpectedly ({type(err).__name__}); please report it with your choices.")
        return None
    # The shared cache is keyed by content: name the models as this session knows them.
    return replace(result, model_a=a.identity, model_b=b.identity)


def ceilings(choices: Choices) -> Ceilings:
    """Each model against its other seed (the sidebar's choice, or the registry's), from the same caches as the
    pair: one forward pass per other seed. A side without one gets a plain note, never an error; an opened
    result file brings its own."""
    if OPENED in st.session_state:
        return st.session_state.get(OPENED_CEILINGS, Ceilings())
    found: dict[str, AnalysisResult | None] = {}
    notes: dict[str, str] = {}
    for side, spec, chosen in (("a", choices.model_a, choices.sibling_a), ("b", choices.model_b, choices.sibling_b)):
        sibling, notes[side] = choose_sibling(spec, chosen)
        found[side] = None
        if sibling is None:
            continue
        try:
            model, other = networks.load(spec), networks.load(sibling)
            result = cached_result(model, other, choices.subset, choices.options)
            found[side] = replace(result, model_a=model.identity, model_b=other.identity)
        except CheckpointError as err:
            notes[side] = f"its other seed ({sibling}) could not be loaded: {err}"
        except (LensError, ValueError, MemoryError, torch.OutOfMemoryError) as err:
            notes[side] = f"the comparison with its other seed ({sibling}) failed: {err}"
    return Ceilings(found["a"], found["b"], notes["a"], notes["b"])


@st.cache_data(max_entries=4, show_spinner=False)
def augmented_views(spec: SubsetSpec, options: AnalysisOptions, count: int, _device: str):
    """The first `count` images of the first minibatch and their SimCLR views, drawn exactly as the invariance
    analysis draws them (same seed, same device, the whole minibatch at once); uint8 HWC arrays and labels."""
    batch = subset_of(spec).images[: options.batch_size].to(_device)
    views = simclr_views(batch, view_generator(options.seed, 0, _device))[:count]
    as_hwc = lambda x: x.permute(0, 2, 3, 1).cpu().numpy()  # noqa: E731
    originals = as_hwc(batch[:count])
    return originals, (as_hwc(views) * 255).round().astype("uint8"), subset_of(spec).labels[:count].numpy()
