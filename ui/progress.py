"""What a page shows while the service computes, drawn into places the page made once: one steady page.

A page makes its `View` at the top: a status place, then, where each belongs in its order, figure places and text
places. Each place is a container made at the same point of the page on every run, so it keeps what the run
before drew there until this run draws into it (a recompute never blanks the page, as a fresh st.empty() would),
and each draw into it replaces the last (nothing drawn twice). While the service computes: the status place shows
the whole plan ("step 2 of 4: A vs its other seed") with an overall bar and a bar for the stage at work; each
figure place shows its preview, then the final figure, as one element the browser swaps in place (never blank,
never two); the first text place says that the text
will describe the new choice once it is done, and the other text places are emptied, so no text of the previous
choice stays beside the new. Nothing is drawn while nothing is computed (a result from the caches); the status
place is emptied once the work is done.

The service (ui.service) only calls the `Watch` made here; everything is drawn here, in the page's script thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import altair as alt
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.progress import Plan
from core.result import AnalysisResult
from ui import figure
from ui.service import Watch

Charts = Callable[[AnalysisResult], list[alt.TopLevelMixin | figure.Figure]]  # a page's charts of a preview
PREVIEW_EVERY_S = 1.0  # at most one preview drawn per second: each redraw costs the browser a chart
WAITING = "Other visitors' analyses are running: this one starts as soon as one of them finishes."


class Place:
    """One place of a page for what an analysis draws, made where the page stands (`key` names it for the page's
    style and its tests), or where the page stands at the first draw (`later`). Drawing into it replaces what it
    held, whether this run or the run before drew it."""

    def __init__(self, key: str | None = None, later: bool = False) -> None:
        self._key = key
        self._box: DeltaGenerator | None = None if later else st.container(key=key)
        self._slot: DeltaGenerator | None = None  # a placeholder the place's content goes to
        self._shown: DeltaGenerator | None = None  # the one element `show` drew last

    def _top(self) -> DeltaGenerator:
        self._box = self._box or st.container(key=self._key)
        return self._box

    def _here(self) -> DeltaGenerator:
        """The placeholder the place's content goes to, made on the first draw (made earlier, it would blank what
        the run before left there until then); its content replaced at each draw."""
        if self._slot is None:
            self._slot = self._shown or self._top().empty()
        return self._slot

    def show(self, chart: alt.TopLevelMixin | figure.Figure) -> None:
        """Draw `chart` (ui.figure.show) as the place's one element, sent as that element alone: the browser swaps
        it for the element the place showed, with nothing blank between (a placeholder is sent empty first). Later
        draws in this run replace it the same way."""
        with self._shown or self._top():
            self._shown = figure.show(chart)

    @contextmanager
    def one(self) -> Iterator[None]:
        """Within the block, the one element Streamlit draws is the place's whole content. Where `show` drew, or for
        a run's only draw into a figure place (`key`), it is sent alone and swapped for what the place showed; a
        text place's note goes through a placeholder, which the text that replaces it reuses."""
        if self._shown is None and self._slot is None and self._key is not None:
            with self._top():
                yield
            return
        with self._shown or self._here():
            yield

    @contextmanager
    def drawing(self) -> Iterator[None]:
        """Within the block, Streamlit draws here, as the place's whole content (text and widgets; a figure goes
        in with `show` or `one`). A run's only draw goes in at once, over what the run before drew here."""
        if self._slot is None and self._shown is None:
            with self._top().container():
                yield
            return
        with self._here().container():
            yield

    def clear(self) -> None:
        self._here().empty()


class View:
    """Where a page draws one analysis: the status place, made here, then the figure and text places the page makes
    (`figure`, `text`) where each belongs, in the page's order, before it asks for the analysis."""

    def __init__(self) -> None:
        self.status = Place()
        self.figures: list[Place] = []
        self.texts: list[Place] = []

    def figure(self) -> Place:
        """A place, here, for one figure (drawn with `drawing`): a preview's chart while the analysis is computed,
        then the final one."""
        self.figures.append(Place(key=f"figure-{len(self.figures)}"))
        return self.figures[-1]

    def text(self) -> Place:
        """A place, here, for what the result says: while it is computed, a note (the first one) or nothing."""
        self.texts.append(Place())
        return self.texts[-1]

    @contextmanager
    def failed(self) -> Iterator[None]:
        """Every figure and text place emptied; within the block, Streamlit draws in the status place, to say what
        went wrong."""
        for place in (*self.figures, *self.texts):
            place.clear()
        with self.status.drawing():
            yield

    @contextmanager
    def watching(self, title: str, charts_of: Charts | None = None, images: int = 0) -> Iterator[Watch]:
        """A Watch drawing, in the status place, a box titled `title` with the plan and its bars, each preview of
        `images` images into the figure places (`charts_of` gives one chart a place; previews are computed only
        when it is given), and a note on the text places; the status place emptied when the block ends."""
        panel = _Panel(self.status, title, charts_of, images, self)
        try:
            yield panel.watch()
        finally:
            panel.close()


class _Panel:
    """What one watched analysis draws, started by the first report: a box with the plan, an overall bar, the
    stage's bar and the preview's line in the `status` place; previews in the view's figure places, a note on its
    text places."""

    def __init__(self, status: Place, title: str, charts_of: Charts | None, images: int, view: View | None) -> None:
        self.status, self.title, self.charts_of, self.images, self.view = status, title, charts_of, images, view
        self.started = False
        self.last_preview = -PREVIEW_EVERY_S

    def watch(self) -> Watch:
        preview = self.preview if self.charts_of is not None else None
        return Watch(self.progress, preview, self.waiting, self.step)

    def _start(self) -> _Panel:
        if not self.started:
            self.started = True
            with self.status.one(), st.container(border=True):
                st.markdown(f"**{self.title}**")
                self.note, self.plan_line, self.overall = st.empty(), st.empty(), st.empty()
                self.stage, self.preview_line = st.progress(0.0, text="starting"), st.empty()
            if self.view is not None and self.view.texts:
                for place in self.view.texts[1:]:
                    place.clear()
                with self.view.texts[0].one():
                    st.caption(
                        f"The text here will describe the new choice ({self.images:,} images) once its analysis is "
                        "done."
                    )
        return self

    def waiting(self, waits: bool) -> None:
        note = self._start().note
        if waits:
            note.info(WAITING)
        else:
            note.empty()

    def step(self, plan: Plan, k: int) -> None:
        """Step k of `plan` begins: the whole plan, the step's line over a bar of the steps done."""
        self._start()
        listed = " · ".join(
            f"{i}. {name} (done)" if i < k else f"{i}. **{name}**" if i == k else f"{i}. {name}"
            for i, name in enumerate(plan.steps, 1)
        )
        self.plan_line.caption(f"The plan: {listed}")
        self.overall.progress((k - 1) / len(plan.steps), text=plan.line(k))

    def progress(self, stage: str, done: int, total: int) -> None:
        self._start().stage.progress(min(done / max(total, 1), 1.0), text=f"{stage} ({done}/{total})")

    def preview(self, result: AnalysisResult, done: int, total: int) -> None:
        if done < total and time.monotonic() - self.last_preview < PREVIEW_EVERY_S and done > 1:
            return
        self.last_preview = time.monotonic()
        self._start().preview_line.info(
            f"Preview from the first {result.used_images:,} of {self.images:,} images ({done} of {total} minibatches),"
            " refined as the rest arrive: the interval appears from 5 minibatches, the permutation null and the "
            "read-outs once all are in."
        )
        places = self.view.figures if self.view is not None else []
        for place, chart in zip(places, self.charts_of(result), strict=True):
            place.show(chart)

    def close(self) -> None:
        if self.started:
            self.status.clear()


@contextmanager
def watching(title: str) -> Iterator[Watch]:
    """A Watch drawing, at this point of the page, a status box titled `title` with the plan and its bars once work
    is reported (a result from the caches draws nothing, and leaves no gap), emptied when the block ends."""
    panel = _Panel(Place(later=True), title, None, 0, None)
    try:
        yield panel.watch()
    finally:
        panel.close()
