"""What a page shows while the service computes: a progress panel, previews of its charts, a waiting note.

The service (ui.service) only calls the `Watch` made here; everything is drawn here, in the page's own script
thread, at the place on the page where the analysis was asked for. Nothing is drawn until the service reports
work (a result from the caches draws nothing), and everything is emptied once it is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import altair as alt
import streamlit as st

from core.result import AnalysisResult
from ui import figure
from ui.service import Watch

Charts = Callable[[AnalysisResult], list[alt.TopLevelMixin | figure.Figure]]  # a page's charts of a preview
PREVIEW_EVERY_S = 1.0  # at most one preview drawn per second: each redraw costs the browser a chart
WAITING = "Other visitors' analyses are running: this one starts as soon as one of them finishes."


class _Panel:
    """The placeholders of one watched analysis, made on the first report: a note, a status box, a preview."""

    def __init__(self, title: str, charts_of: Charts | None, images: int) -> None:
        self.title, self.charts_of, self.images = title, charts_of, images
        self.slot: st.delta_generator.DeltaGenerator | None = None
        self.bar = None
        self.last_preview = -PREVIEW_EVERY_S

    def _places(self):
        if self.slot is None:
            self.slot = st.empty()
            box = self.slot.container()
            self.note, self.status, self.preview_slot = box.empty(), box.empty(), box.empty()
        return self

    def waiting(self, waits: bool) -> None:
        note = self._places().note
        if waits:
            note.info(WAITING)
        else:
            note.empty()

    def progress(self, stage: str, done: int, total: int) -> None:
        if self.bar is None:
            with self._places().status.container():
                self.bar = st.status(self.title, expanded=True).progress(0.0, text="starting")
        self.bar.progress(min(done / max(total, 1), 1.0), text=f"{stage} ({done}/{total})")

    def preview(self, result: AnalysisResult, done: int, total: int) -> None:
        if done < total and time.monotonic() - self.last_preview < PREVIEW_EVERY_S and done > 1:
            return
        self.last_preview = time.monotonic()
        with self._places().preview_slot.container():
            st.info(
                f"Preview from the first {result.used_images:,} of {self.images:,} images ({done} of {total} "
                "minibatches), refined as the rest arrive: the interval appears from 5 minibatches, the permutation "
                "null and the read-outs once all are in."
            )
            for chart in self.charts_of(result):
                figure.show(chart)

    def close(self) -> None:
        if self.slot is not None:
            self.slot.empty()


@contextmanager
def watching(title: str, charts_of: Charts | None = None, images: int = 0) -> Iterator[Watch]:
    """A Watch drawing, here on the page, a status box titled `title` with a bar naming each stage, the page's
    `charts_of` each preview of `images` images (previews are computed only when it is given), and a note while
    the analysis waits for a computing slot; all of it emptied when the block ends."""
    panel = _Panel(title, charts_of, images)
    try:
        yield Watch(panel.progress, panel.preview if charts_of is not None else None, panel.waiting)
    finally:
        panel.close()
