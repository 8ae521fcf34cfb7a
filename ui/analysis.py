"""The analysis a page shows for the sidebar's choices: its networks loaded, the service asked, failures said.

A page passes its places (a ui.progress.View) and its charts of a preview; while the service computes, ui.progress
draws the progress, the previews and a note into those places, where the result will be. What went wrong is said
in the view's status place. A result file this session opened (ui.opened) is shown instead of the sidebar's choice
until it is closed.
"""

from __future__ import annotations

import streamlit as st

from core.ceilings import Ceilings
from core.errors import LensError
from core.pipeline import PairWithCeilings
from core.result import AnalysisResult
from models import CheckpointError, LoadedModel, choose_sibling
from ui import networks, opened, progress, service
from ui.apology import apologise
from ui.choices import Choices
from ui.text import code, plain


def load_sibling(spec: str, chosen: str | None) -> tuple[LoadedModel | None, str]:
    """The other seed of `spec`'s method (the chosen one, or the registry's) loaded, or None and a plain note
    saying why there is none (a side without one is never an error)."""
    sibling, note = choose_sibling(spec, chosen)
    if sibling is None:
        return None, note
    try:
        return networks.load(sibling), ""
    except CheckpointError as err:
        return None, f"its other seed ({sibling}) could not be loaded: {err.visitor}"


def _loaded(choices: Choices) -> tuple[LoadedModel, LoadedModel] | None:
    """Models A and B, or None after saying which could not be loaded and why."""
    loaded: list[LoadedModel] = []
    for side, spec in (("A", choices.model_a), ("B", choices.model_b)):
        try:
            loaded.append(networks.load(spec))
        except CheckpointError as err:
            st.error(f"Model {side} ({code(spec)}) could not be loaded: {plain(err, 600)}")
    return (loaded[0], loaded[1]) if len(loaded) == 2 else None


def _computed(
    a: LoadedModel,
    b: LoadedModel,
    siblings: list[LoadedModel | None],
    notes: list[str],
    choices: Choices,
    watch: service.Watch,
) -> tuple[PairWithCeilings, list[str]]:
    """The pair with its ceilings; when they cannot be computed together, the pair alone (its own error raised)
    with a note on each ceiling saying why it is missing."""
    try:
        return service.pair_with_ceilings(a, b, *siblings, choices.subset, choices.options, watch), notes
    except LensError as err:
        if all(sibling is None for sibling in siblings):
            raise
        found = service.pair_with_ceilings(a, b, None, None, choices.subset, choices.options, watch)
        return found, [
            note
            if sibling is None
            else f"the comparison with its other seed ({sibling.identity.source}) failed: {err.visitor}"
            for sibling, note in zip(siblings, notes, strict=True)
        ]


def with_ceilings(
    choices: Choices, view: progress.View, charts: progress.Charts | None = None, ceilings: bool = True
) -> tuple[AnalysisResult, Ceilings] | None:
    """The comparison for the current choices with each model's ceiling (or the file this session opened), or
    None after showing why it cannot be made; while it is computed, `view` shows the progress, and the page's
    `charts` of each preview in its figure places. Without `ceilings`, none are computed (an empty Ceilings)."""
    with view.status.drawing():
        found = opened.shown_opened()
        if found is not None:
            return found
        if choices.problem:
            st.warning(plain(choices.problem, 600))
            return None
        pair = _loaded(choices)
        if pair is None:
            return None
    a, b = pair
    siblings: list[LoadedModel | None] = [None, None]
    notes = ["", ""]
    if ceilings:
        sides = ((choices.model_a, choices.sibling_a), (choices.model_b, choices.sibling_b))
        loaded = [load_sibling(spec, chosen) for spec, chosen in sides]
        siblings, notes = [sibling for sibling, _ in loaded], [note for _, note in loaded]
    title = f"Comparing {a.identity.source} with {b.identity.source}"
    try:
        with view.watching(title, charts, choices.subset.size) as watch:
            computed, notes = _computed(a, b, siblings, notes, choices, watch)
    except LensError as err:
        with view.failed():
            st.error(f"The analysis failed: {plain(err, 600)}")
        return None
    except Exception as err:  # noqa: BLE001 - a bug reaches this session as an apology, not a hang or a trace
        with view.failed():
            apologise(err, "computing the analysis")
        return None
    return computed.pair, computed.ceilings(*notes)


def analysis(choices: Choices, view: progress.View, charts: progress.Charts | None = None) -> AnalysisResult | None:
    """The comparison for the current choices alone (`with_ceilings` without them)."""
    found = with_ceilings(choices, view, charts, ceilings=False)
    return None if found is None else found[0]


def overview_at_hand(choices: Choices) -> bool:
    """Whether the overview can draw its figure at once for these choices: the pair's result and each ceiling's
    were finished by this server or are in the result store, for networks it has already loaded. The app then draws
    the sidebar after the page. A wrong answer costs only that order: a store entry found damaged when read is
    recomputed with the sidebar still to come."""
    if opened.opened_name() is not None or choices.problem:
        return True
    a, b = networks.peek(choices.model_a), networks.peek(choices.model_b)
    sides = ((choices.model_a, choices.sibling_a), (choices.model_b, choices.sibling_b))
    chosen = [choose_sibling(spec, sibling)[0] for spec, sibling in sides]
    siblings = [networks.peek(spec) if spec else None for spec in chosen]
    if a is None or b is None or any(spec and sibling is None for spec, sibling in zip(chosen, siblings, strict=True)):
        return False
    return service.at_hand(a, b, *siblings, choices.subset, choices.options)
