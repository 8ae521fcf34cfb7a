"""The Training page's series: which two runs, their pairs computed through the shared caches, and the findings.

Every pair of snapshots is an ordinary comparison (ui.service.result: the memory caches, then the result store,
then the pipeline), so a snapshot's fingerprint is computed once and a pair the CLI stored is not computed again.
The gathered layer x snapshot tables are cached too (a bounded cache shared by the sessions), keyed by the networks'
content and the pairing, so a rerun loads no network; the names a person gave their files stay in their session,
outside that shared cache. The progress of a computation is drawn by ui.progress, outside every cache.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st
from cachetools import LRUCache

from core import settings
from core.data import SubsetSpec
from core.errors import LensError
from core.names import OUTPUT, kind, side_labels, stage
from core.options import DEFAULTS, AnalysisOptions
from core.series import Series, SeriesCurves, SeriesPlan, series_curves, to_csv, to_json_dict
from models import CheckpointError, ModelSpec, bundled_series, series_of_specs, weights_version
from ui import networks, progress, service
from ui.apology import apologise
from ui.text import code, plain

SIDEBAR = "sidebar"  # a series' first choice: the sidebar's model's run, or a bundled run standing in for it
OWN = "your own snapshots"
SETTLED = 0.05  # a layer has settled once its CKA with its run's final network stays within this of 1


def choose_series(side: str, sidebar: ModelSpec, method: str) -> tuple[Series | None, str]:
    """Series A or B, and a sentence saying which run it is and why: by default the run of the sidebar's model when
    its training kept snapshots, else a bundled run that did (of the same method where there is one, else the
    first trained with `method`); or a bundled run by name, or the person's own snapshots (uploads, or file: specs
    where this server allows them). None after saying what is missing."""
    runs = {series.name: series for series in bundled_series()}
    picked = st.selectbox(
        f"Series {side}",
        [SIDEBAR, *runs, OWN],
        key=f"series_{side}",
        format_func=lambda name: f"the sidebar's model {side}" if name == SIDEBAR else name,
    )
    if picked == SIDEBAR:
        return _as_sidebar(side, sidebar, method, list(runs.values()))
    if picked != OWN:
        run = runs[picked]
        return run, f"Series {side} is the bundled run {code(run.name)} ({plain(run.method)}), as chosen above."
    files = st.file_uploader(
        f"Snapshots of series {side}, each named with its epoch or step (ckpt_epoch5.pt, ckpt_epoch20.pt, ...)",
        accept_multiple_files=True,
        key=f"series_files_{side}",
    )
    typed = ""
    if not settings.file_specs_disabled():
        typed = st.text_area(f"or file: specs of series {side}, one per line", key=f"series_specs_{side}")
    try:
        specs: list[ModelSpec] = []
        for file in files or []:  # the series' own snapshots are never let go to make room for each other
            specs.append(networks.upload(file, {s.text for s in specs})[0])
        specs += [ModelSpec.parse(line) for line in typed.splitlines() if line.strip()]
        if not specs:
            st.info(f"Give series {side}'s snapshots: the largest number in their names is taken as the final network.")
            return None, ""
        own = series_of_specs(specs, f"your series {side}")
        own = replace(own, method=networks.load(own.final or own.snapshots[-1].spec).info.method)
        count = len(own.snapshots)
        how = "their files do not say how they were trained" if own.method == "unknown" else f"trained {own.method}"
        return own, f"Series {side} is your own {count} snapshot{'s' * (count != 1)}, {plain(how)}."
    except LensError as err:  # CheckpointError or SeriesError
        st.error(f"Series {side}: {plain(err, 600)}")
        return None, ""


def _as_sidebar(side: str, spec: ModelSpec, method: str, runs: list[Series]) -> tuple[Series | None, str]:
    """The run of the sidebar's model when it kept snapshots; else a bundled run that did, said as standing in."""
    named = spec.source != "file"  # a file: spec is a path on the server, never shown on a page
    mine = f"The sidebar's model {side}, {code(spec.text)}," if named else f"The sidebar's model {side}"
    own = next((r for r in runs if spec.source == "bundled" and r.name == f"bundled:{spec.location}"), None)
    if own is not None:
        return own, (
            f"Series {side} is the sidebar's model {side}, {code(own.name)} ({plain(own.method)}), through the "
            f"{len(own.snapshots)} snapshots its training kept."
        )
    if not runs:
        st.info(f"{mine} kept no snapshots while it trained, and no bundled run did: choose {OWN!r} above.")
        return None, ""
    try:
        its = networks.load(spec).info.method
    except LensError:  # the sidebar says why it cannot be loaded; here it only has no snapshots to offer
        its = None
    same = next((r for r in runs if r.method == its), None)
    run = same or next((r for r in runs if r.method == method), runs[0])
    what = (
        f", the bundled run of its method ({plain(its)}),"
        if same
        else f" ({plain(run.method)}), a bundled run that did,"
    )
    return run, (
        f"{mine} kept no snapshots while it trained, so series {side} is {code(run.name)}{what} through its "
        f"{len(run.snapshots)} snapshots."
    )


def images_line(subset: SubsetSpec, asked: int, pairs: int) -> str:
    """Which images the page compares on, and how that stands to the sidebar's per-class count."""
    shown = (
        f"Compared on {subset.size:,} CIFAR-10 {subset.split} images: {subset.per_class} per class of the sidebar's "
        f"{len(subset.classes)} classes"
    )
    if subset.per_class == asked:
        return f"{shown}, as the sidebar asks."
    if subset.per_class == DEFAULTS.series_per_class < asked:
        return (
            f"{shown}; the sidebar asks for {asked} per class, but each of the {pairs} pairs of snapshots here is an "
            f"analysis of its own, so this page takes {DEFAULTS.series_per_class} per class unless you set more above."
        )
    return f"{shown}, as set above; the sidebar asks for {asked} per class."


def pairing_table(plan: SeriesPlan) -> pd.DataFrame:
    """Which snapshot of B each snapshot of A is compared with, and how far through training each was taken, as
    whole percentages (as the heatmaps' columns say them)."""
    return pd.DataFrame(
        [
            {
                "A": s.label,
                "A's training done": f"{s.progress:.0%}",
                "B": b.label,
                "B's training done": f"{b.progress:.0%}",
            }
            for s, b in ((s, plan.b.snapshots[j]) for s, j in zip(plan.a.snapshots, plan.pairing, strict=True))
        ]
    )


def show_pairing(plan: SeriesPlan) -> None:
    """The pairing as a table, with how each run's progress and final network were found."""
    st.dataframe(pairing_table(plan), hide_index=True)
    st.caption(f"A = {code(plan.a.name)}: {plain(plan.a.rule)}. B = {code(plan.b.name)}: {plain(plan.b.rule)}.")


def column_labels(series: Series) -> list[str]:
    """Heatmap columns: how far through training, and which snapshot ('20% · epoch 10')."""
    return [f"{s.progress:.0%} · {s.label}" for s in series.snapshots]


def _content_key(spec: ModelSpec | None) -> str | None:
    """What a network's results depend on, without loading it: an upload's weights (it is in this session), else
    the spec and its files' modification times (as the shared network cache is keyed)."""
    if spec is None:
        return None
    if spec.source != "upload":
        return f"{spec.key}|{weights_version(spec)}"
    return networks.load(spec).identity.key


CURVES_KEPT = 8  # series' tables in memory, shared by the sessions
_CURVES: LRUCache[tuple, SeriesCurves] = LRUCache(maxsize=CURVES_KEPT)
_CURVES_LOCK = threading.Lock()


def _curves(plan: SeriesPlan, spec: SubsetSpec, options: AnalysisOptions) -> SeriesCurves:
    """The plan's tables, each pair from the service, with a panel on the page naming the pair being compared."""
    pairs = plan.pairs()
    labels = {s.spec: f"{name} {s.label}" for name, r in (("A", plan.a), ("B", plan.b)) for s in r.snapshots}
    labels |= {plan.a.final: "A's final network", plan.b.final: "B's final network"}
    results = {}
    with progress.watching(f"Training series: {len(pairs)} pair analyses") as series_watch:
        for done, (reference, other) in enumerate(pairs):
            series_watch.progress(f"{labels[reference]} against {labels[other]}", done, len(pairs))
            with progress.watching(f"{labels[reference]} against {labels[other]}") as watch:
                found = service.result(networks.load(reference), networks.load(other), spec, options, watch)
            results[(reference, other)] = found
    return series_curves(plan, lambda reference, other: results[(reference, other)])


def series_analysis(plan: SeriesPlan, spec: SubsetSpec, options: AnalysisOptions) -> SeriesCurves | None:
    """The plan's layer x snapshot tables from the caches, computed where they lack them; None after saying why."""
    try:
        key = tuple(
            (tuple(_content_key(s.spec) for s in series.snapshots), _content_key(series.final))
            for series in (plan.a, plan.b)
        ) + (plan.pairing, spec, options)
        with _CURVES_LOCK:
            curves = _CURVES.get(key)
        if curves is None:
            curves = _curves(plan, spec, options)
            with _CURVES_LOCK:
                _CURVES[key] = curves
        return curves
    except CheckpointError as err:
        st.error(f"A snapshot could not be loaded: {plain(err, 600)}")
    except LensError as err:
        st.error(f"The analysis failed: {plain(err, 600)}")
    except Exception as err:  # noqa: BLE001 - a bug: logged, and this session gets an apology, not a hang or paths
        apologise(err, "computing the training series")
    return None


def findings(plan: SeriesPlan, curves: SeriesCurves) -> tuple[str, ...]:
    """Which layers settle first in each run, when the last stage's block outputs part ways, what changed most."""
    label_a, label_b = side_labels(plan.a.method, plan.b.method)
    lines = [
        _settling_line(label, series, matrix, curves.layers)
        for label, series, matrix in ((label_a, plan.a, curves.final_a), (label_b, plan.b, curves.final_b))
    ]
    progress = [s.progress for s in plan.a.snapshots]
    return tuple(line for line in (*lines, _parting_line(curves, progress), _change_line(curves, progress)) if line)


def _names(layers: list[str]) -> str:
    return ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")


def _settling_line(label: str, series: Series, matrix: np.ndarray | None, layers: tuple[str, ...]) -> str:
    """The layers whose CKA with the final network reaches and keeps 1 - SETTLED earliest, and the latest."""
    if matrix is None:
        latest = series.snapshots[-1]
        return (
            f"{label} has no final network yet (its run goes on; latest snapshot {latest.label}, "
            f"{latest.progress:.0%} of training), so when its layers settle cannot be told yet."
        )
    settled: dict[str, float] = {}
    for name, row in zip(layers, matrix, strict=True):
        k = len(row)
        while k > 0 and row[k - 1] >= 1 - SETTLED:
            k -= 1
        if k < len(row) and np.isfinite(row).any():
            settled[name] = series.snapshots[k].progress
    if not settled:
        return ""
    first, last = min(settled.values()), max(settled.values())
    early = [name for name, p in settled.items() if p == first]
    late = [name for name, p in settled.items() if p == last]
    keep = f"CKA ≥ {1 - SETTLED:.2f} with the final network"
    if last == first:
        return f"{label}: every layer keeps {keep} from {first:.0%} of training on."
    verb = "settles" if len(early) == 1 else "settle"
    return (
        f"{label}: {_names(early)} {verb} first ({keep} from {first:.0%} of training on); "
        f"{_names(late)} last ({last:.0%})."
    )


def _parting_line(curves: SeriesCurves, progress: list[float]) -> str:
    """From what progress on the last stage's block outputs agree across the methods less than the earlier ones'."""
    outputs = [i for i, name in enumerate(curves.layers) if kind(name) == OUTPUT]
    if not outputs:
        return ""
    last_stage = stage(curves.layers[outputs[-1]])
    late = [i for i in outputs if stage(curves.layers[i]) == last_stage]
    early = [i for i in outputs if stage(curves.layers[i]) != last_stage]
    if not early:
        return ""
    m_late, m_early = np.nanmean(curves.cross[late], axis=0), np.nanmean(curves.cross[early], axis=0)
    k = len(progress)
    while k > 0 and m_late[k - 1] < m_early[k - 1]:
        k -= 1
    n = len(progress) - 1
    now = f"{m_late[n]:.2f} vs {m_early[n]:.2f} at {progress[n]:.0%}"
    what = f"The last stage's block outputs ({last_stage}) agree across the methods"
    if k == len(progress):
        return f"{what} at least as much as the earlier stages' at the latest pair ({now}): no parting there yet."
    if k == 0:
        first = f"{m_late[0]:.2f} vs {m_early[0]:.2f} at {progress[0]:.0%}"
        return f"{what} less than the earlier stages' from the first pair on ({first}; {now})."
    return (
        f"{what} less than the earlier stages' from {progress[k]:.0%} of A's training on "
        f"({m_late[k]:.2f} vs {m_early[k]:.2f}; {now}); at {progress[k - 1]:.0%} still {m_late[k - 1]:.2f} vs "
        f"{m_early[k - 1]:.2f}: the methods part ways there."
    )


def _change_line(curves: SeriesCurves, progress: list[float]) -> str:
    """The layer whose cross-method CKA fell most between the first and the latest pair (and rose most, if any)."""
    if len(progress) < 2 or not np.isfinite(curves.cross[:, [0, -1]]).all(axis=1).any():
        return ""
    change = curves.cross[:, -1] - curves.cross[:, 0]
    fell, rose = int(np.nanargmin(change)), int(np.nanargmax(change))

    def moved(i: int) -> str:
        return f"{curves.layers[i]} ({curves.cross[i, 0]:.2f} → {curves.cross[i, -1]:.2f})"

    text = f"From the first pair ({progress[0]:.0%}) to the latest ({progress[-1]:.0%}), CKA across the methods "
    text += f"fell most at {moved(fell)}" if change[fell] < 0 else f"fell nowhere; it rose least at {moved(fell)}"
    return text + (f" and rose most at {moved(rose)}." if change[rose] > 0 else ".")


def download_buttons(plan: SeriesPlan, curves: SeriesCurves, spec: SubsetSpec, options: AnalysisOptions) -> None:
    """The layer x snapshot tables as long-format CSV and as JSON (what `python -m cli training` writes)."""
    body = json.dumps(to_json_dict(plan, curves, spec, options), indent=1)
    left, right = st.columns(2)
    for column, label, data, suffix, mime in (
        (left, "Download CSV", to_csv(plan, curves), "csv", "text/csv"),
        (right, "Download JSON", body, "json", "application/json"),
    ):
        column.download_button(label, data, f"cka-training.{suffix}", mime, on_click="ignore", width="stretch")
