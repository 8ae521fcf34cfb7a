"""The overview's matched-layer figure as a static SVG, drawn here: no chart library in the browser.

An Altair chart needs Vega's scripts (about 1.5 MB) in the browser before it draws anything; on a 2-core server that
also serves those scripts, a first visitor waited 4.2-4.6 s for the overview's chart, and a page holding nothing
but one Altair chart 2.1-3.4 s. This figure is an image in a markdown element, whose scripts the page already has, so
it shows with the page's text. The same numbers are drawn interactively on the Layer similarity page
(`charts.matched_curve`, from the same tables); this one can be downloaded as it is, for a slide or a paper.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.ceilings import Ceilings
from core.names import OTHER, OUTPUT, RESIDUAL
from core.result import AnalysisResult
from ui.charts import (
    CEILING_COLOURS,
    CEILING_DASH,
    FLOOR_COLOUR,
    KIND_COLOURS,
    KIND_NAMES,
    NULL_COLOUR,
    NULL_LABEL,
    SEEDS_COLOUR,
    ceiling_frame,
    floor_label,
    matched_frame,
    matched_title,
    seeds_label,
)

WIDTH, PLOT_HEIGHT = 1000, 226  # px: the figure's width; the plot's height, whatever the legend's
LEFT, RIGHT, BOTTOM = 62, 16, 118  # margins: y-axis labels; layer names below the plot
LEGEND_TOP, LEGEND_ROW, LEGEND_GAP = 62, 16, 22  # the first legend row's baseline, rows apart, last row to the plot
NAME_GAP = 12  # px between two layer names across their slant: more than their 10 px font's height
CHAR_PX = 7.0  # px per character of 12 px Helvetica, rounded up (capitals and digits are wider than 6)
FONT = "font-family:Helvetica,Arial,sans-serif"
MATCHED_ALT = "Matched-layer CKA of A and B"  # the figure's alt text (the browser tests find it by it)


@dataclass(frozen=True)
class Figure:
    """An SVG drawing and the text that stands for it."""

    svg: str
    alt: str

    def markdown(self) -> str:
        """The figure as a markdown image (a data URI): shown by the page's markdown, no other script needed."""
        data = base64.b64encode(self.svg.encode()).decode()
        return f"![{self.alt}](data:image/svg+xml;base64,{data})"


def show(chart: alt.TopLevelMixin | Figure) -> DeltaGenerator:
    """Draw an Altair chart or a figure in the current place of the page; the drawn element (`with` it, the next one
    drawn takes its place)."""
    if isinstance(chart, Figure):
        return st.markdown(chart.markdown())
    return st.altair_chart(chart, width="stretch")


def _number(v: float) -> str:
    return f"{v:.1f}"


class _Axes:
    """Layer i at the middle of its slot; CKA from `low` (0 or below) at `bottom` to 1 at `top`."""

    def __init__(self, layers: Sequence[str], low: float, top: float):
        self.index = {name: i for i, name in enumerate(layers)}
        self.step = (WIDTH - LEFT - RIGHT) / max(1, len(layers))
        self.low = low
        self.top, self.bottom = top, top + PLOT_HEIGHT

    def x(self, layer: str) -> float:
        return LEFT + self.step * (self.index[layer] + 0.5)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.low) / (1.0 - self.low) * PLOT_HEIGHT


def _name_spacing(step: float) -> tuple[int, int]:
    """Which layer names to draw (every k-th) and at what angle, so that no two overlap: names NAME_GAP px apart
    across their slant, at -45 degrees where that spacing allows, else upright (-90); each point still names its
    layer on hover."""
    every = max(1, math.ceil(NAME_GAP / step))
    return every, -45 if step * every * math.sin(math.pi / 4) >= NAME_GAP else -90


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def _segments(axes: _Axes, layers: Sequence[str], values: Sequence) -> list[str]:
    """Polyline points through the finite values, broken where a value is missing."""
    out, run = [], []
    for layer, v in zip(layers, values, strict=True):
        if _finite(v):
            run.append(f"{_number(axes.x(layer))},{_number(axes.y(v))}")
        elif run:
            out.append(" ".join(run))
            run = []
    if run:
        out.append(" ".join(run))
    return [points for points in out if " " in points]


def _point(axes: _Axes, layer: str, value: float, low, high, colour: str, label: str, hollow: bool, named: str) -> str:
    """A layer's point; `named` is how its hover text names the layer (with B's partner when paired by depth)."""
    span = f" (95% interval {low:.3f} to {high:.3f})" if _finite(low) and _finite(high) else ""
    fill = "white" if hollow else colour
    return (
        f'<circle class="point" cx="{_number(axes.x(layer))}" cy="{_number(axes.y(value))}" r="{3 if hollow else 4}" '
        f'fill="{fill}" stroke="{colour}" data-series={quoteattr(label)} data-layer={quoteattr(layer)} '
        f'data-value="{value:.6f}"><title>{escape(f"{label}, {named}: CKA {value:.3f}{span}")}</title></circle>'
    )


def _bar(axes: _Axes, layer: str, low, high, colour: str, opacity: float, label: str, named: str) -> str:
    if not (_finite(low) and _finite(high)):
        return ""
    x = _number(axes.x(layer))
    words = escape(f"{label}, {named}: 95% interval {low:.3f} to {high:.3f}")
    return (
        f'<line class="interval" x1="{x}" x2="{x}" y1="{_number(axes.y(low))}" y2="{_number(axes.y(high))}" '
        f'stroke="{colour}" stroke-width="2" opacity="{opacity}"><title>{words}</title></line>'
    )


def _dash(kind: str, ceiling: bool) -> str:
    """A line's stroke-dasharray: '' for A vs B (solid), a ceiling's block outputs dashed, residual branches dotted."""
    return " ".join(map(str, CEILING_DASH[kind])) if ceiling else ""


def _series(
    axes: _Axes,
    frame: pd.DataFrame,
    columns: tuple[str, str, str],
    label: str,
    colours: dict[str, str],
    *,
    ceiling: bool,
) -> list[str]:
    """One comparison's curve: a line per kind (block outputs, residual branches; a ceiling's dashed and dotted),
    then each layer's interval bar and point (hollow for a ceiling), in `colours[kind]`; each mark names itself on
    hover (its <title>)."""
    value, low, high = columns
    parts = []
    for k in (OUTPUT, RESIDUAL):
        mine = frame[frame["kind"] == k]
        dash = _dash(k, ceiling)
        style = (
            f'class="ceiling" stroke-width="1.5" stroke-dasharray="{dash}"'
            if dash
            else 'class="matched" stroke-width="2"'
        )
        words = escape(f"{label}, {KIND_NAMES[k]}")
        for points in _segments(axes, list(mine["layer"]), list(mine[value])):
            line = f'<polyline {style} points="{points}" fill="none" stroke="{colours[k]}">'
            parts.append(f"{line}<title>{words}</title></polyline>")
    for row in frame.itertuples():
        v, lo, hi = getattr(row, value), getattr(row, low), getattr(row, high)
        partner = getattr(row, "layer_b", row.layer)
        named = row.layer if partner == row.layer else f"A's {row.layer} with B's {partner}"
        parts.append(_bar(axes, row.layer, lo, hi, colours[row.kind], 0.5 if ceiling else 0.6, label, named))
        if _finite(v):
            parts.append(_point(axes, row.layer, v, lo, hi, colours[row.kind], label, ceiling, named))
    return parts


def _floor(axes: _Axes, row) -> str:
    """A layer's floor: a box from the 5th to the 95th percentile over init pairs, a tick at the mean."""
    if not (_finite(row.floor_low) and _finite(row.floor_high)):
        return ""
    x, half = axes.x(row.layer), axes.step * 0.35
    top, bottom = axes.y(row.floor_high), axes.y(row.floor_low)
    words = f"floor (untrained A-arch vs untrained B-arch), {row.layer}: 5th-95th pct {row.floor_low:.3f} to "
    words += f"{row.floor_high:.3f}" + (f", mean {row.floor:.3f}" if _finite(row.floor) else "")
    mean = (
        f'<line x1="{_number(x - half)}" x2="{_number(x + half)}" y1="{_number(axes.y(row.floor))}" '
        f'y2="{_number(axes.y(row.floor))}" stroke="{FLOOR_COLOUR}" stroke-width="1.5"/>'
        if _finite(row.floor)
        else ""
    )
    return (
        f'<g class="floor" data-layer={quoteattr(row.layer)} data-low="{row.floor_low:.6f}" '
        f'data-high="{row.floor_high:.6f}"><title>{escape(words)}</title><rect x="{_number(x - half)}" '
        f'y="{_number(top)}" width="{_number(2 * half)}" height="{_number(max(bottom - top, 1.0))}" '
        f'fill="{FLOOR_COLOUR}" opacity="0.3"/>{mean}</g>'
    )


def _seeds(axes: _Axes, row) -> str:
    """A layer's seed spread: a thin bar from the lowest to the highest seed pairing, beside the point."""
    if not (_finite(row.seeds_low) and _finite(row.seeds_high)):
        return ""
    x = _number(axes.x(row.layer) + 6)
    words = f"seed pairings, {row.layer}: {row.seeds_low:.3f} to {row.seeds_high:.3f}"
    return (
        f'<line class="seeds" x1="{x}" x2="{x}" y1="{_number(axes.y(row.seeds_low))}" '
        f'y2="{_number(axes.y(row.seeds_high))}" stroke="{SEEDS_COLOUR}" stroke-width="1.2" '
        f'data-layer={quoteattr(row.layer)} data-low="{row.seeds_low:.6f}" data-high="{row.seeds_high:.6f}">'
        f"<title>{escape(words)}</title></line>"
    )


@dataclass(frozen=True)
class Key:
    """One legend entry: how its mark is drawn ('line' with `dash`, 'point', 'band', 'box' or 'bar'), and its words."""

    colour: str
    style: str
    label: str
    dash: str = ""  # a line's stroke-dasharray, as the curve's: '' solid


def _legend_rows(keys: Sequence[Key]) -> list[list[tuple[float, Key]]]:
    """The entries in rows under the subtitle, each at its x: a row holds what fits in the figure's width."""
    rows: list[list[tuple[float, Key]]] = [[]]
    x = LEFT
    for key in keys:
        width = 24 + CHAR_PX * len(key.label) + 18
        if x + width > WIDTH - RIGHT and rows[-1]:
            rows.append([])
            x = LEFT
        rows[-1].append((x, key))
        x += width
    return rows


def _legend(rows: list[list[tuple[float, Key]]]) -> list[str]:
    """Each entry as a group (class "key") of its swatch, drawn as its curve is, and its words."""
    out = []
    for r, row in enumerate(rows):
        y = LEGEND_TOP + LEGEND_ROW * r
        for x, key in row:
            if key.style in ("band", "box"):
                opacity = 0.35 if key.style == "band" else 0.3
                mark = f'<rect x="{x}" y="{y - 6}" width="18" height="10" fill="{key.colour}" opacity="{opacity}"/>'
            elif key.style == "bar":
                mark = f'<line x1="{x + 9}" x2="{x + 9}" y1="{y - 7}" y2="{y + 5}" stroke="{key.colour}"/>'
            elif key.style == "point":
                mark = f'<circle cx="{x + 9}" cy="{y}" r="4" fill="{key.colour}"/>'
            else:
                dash = f' stroke-dasharray="{key.dash}"' if key.dash else ""
                mark = f'<line x1="{x}" x2="{x + 18}" y1="{y}" y2="{y}" stroke="{key.colour}" stroke-width="2"{dash}/>'
            out.append(
                f'<g class="key" data-style="{key.style}" data-stroke="{key.colour}" data-dash="{key.dash}">{mark}'
                f'<text x="{x + 24}" y="{y + 4}" font-size="12">{escape(key.label)}</text></g>'
            )
    return out


def _keys(result: AnalysisResult, data: pd.DataFrame, extra: pd.DataFrame) -> list[Key]:
    """One legend entry for every kind of mark the figure draws: each curve of A vs B and of each ceiling, line by
    line (a ceiling's block outputs dashed, its residual branches dotted), then the floor, seeds and null."""
    keys = []
    curves = [("A vs B", data, KIND_COLOURS, False)]
    names = list(dict.fromkeys(extra["comparison"]))
    curves += [
        (f"ceiling: {name}", extra[extra["comparison"] == name], dict.fromkeys(KIND_COLOURS, colour), True)
        for colour, name in zip(CEILING_COLOURS, names, strict=False)
    ]
    for label, frame, colours, ceiling in curves:
        drawn = set(frame["kind"])
        keys += [
            Key(colours[k], "line", f"{label}, {KIND_NAMES[k]}", _dash(k, ceiling))
            for k in (OUTPUT, RESIDUAL)
            if k in drawn
        ]
        if OTHER in drawn:
            keys.append(Key(colours[OTHER], "point", f"{label}, {KIND_NAMES[OTHER]}"))
    if data["floor_low"].notna().any():
        keys.append(Key(FLOOR_COLOUR, "box", floor_label(result)))
    if data["seeds_low"].notna().any():
        keys.append(Key(SEEDS_COLOUR, "bar", seeds_label(result)))
    return [*keys, Key(NULL_COLOUR, "band", NULL_LABEL)]


def matched_figure(
    result: AnalysisResult, parting_layer: str | None = None, ceilings: Ceilings | None = None
) -> Figure:
    """CKA of each matched layer of A with its layer of B (the same name, or across architectures the layer at the
    same relative depth, named in each point's hover text); block outputs and residual branches as separate lines,
    other layers as points, with its 95% interval over the images drawn; beside it what it is read against: a brown
    box per layer, the floor (untrained A-arch vs untrained B-arch, 5th-95th percentile over init pairs, a line at the
    mean); a thin dark bar, the spread over the pairings of the methods' seeds; each model against another seed of
    its method, block outputs dashed and residual branches dotted (the ceiling); the permutation null's 95th
    percentile as a grey band from 0 (an independence check); and a rule at `parting_layer`. A result without
    floors or other seeds draws none of them. Every kind of mark has its legend entry (the legend takes as many
    rows as it needs, the plot keeps its height) and every mark its <title>, shown on hover."""
    data = matched_frame(result)
    extra = ceiling_frame(result, ceilings or Ceilings())
    layers = list(result.matched)
    rows = _legend_rows(_keys(result, data, extra))
    columns = ("cka", "low", "null_p95", "floor_low", "seeds_low")
    numbers = np.array([v for column in columns for v in data[column]] + list(extra["ceiling_low"]), dtype=float)
    low = math.floor(min(0.0, float(np.nanmin(numbers, initial=0.0))) * 5) / 5  # to a tick
    axes = _Axes(layers, low, LEGEND_TOP + LEGEND_ROW * (len(rows) - 1) + LEGEND_GAP)
    top, bottom, height = axes.top, axes.bottom, axes.bottom + BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" style="{FONT};background:white">',
        f"<title>{escape(MATCHED_ALT)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<rect class="plot" x="{LEFT}" y="{top}" width="{WIDTH - LEFT - RIGHT}" height="{PLOT_HEIGHT}" fill="none"/>',
        f'<text x="{LEFT}" y="22" font-size="16" font-weight="bold">{escape(matched_title(result))}</text>',
        f'<text x="{LEFT}" y="42" font-size="12" fill="#555">A = {escape(result.model_a.source)}, B = '
        f"{escape(result.model_b.source)} · {result.used_images:,} images · bars: 95% jackknife-t interval over "
        "minibatches</text>",
    ]
    ticks = [t / 5 for t in range(round(axes.low * 5), 6)]
    for t in ticks:  # grid and y-axis
        y = _number(axes.y(t))
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y}" dy="4" font-size="11" text-anchor="end">{t:.1f}</text>')
    parts.append(
        f'<text transform="translate(16,{(top + bottom) / 2}) rotate(-90)" font-size="12" text-anchor="middle">'
        "matched-layer CKA</text>"
    )
    every, angle = _name_spacing(axes.step)
    for i, layer in enumerate(layers):
        if i % every == 0:
            x = _number(axes.x(layer))
            parts.append(
                f'<text class="layer-name" transform="translate({x},{bottom + 10}) rotate({angle})" font-size="10" '
                f'text-anchor="end">{escape(layer)}</text>'
            )
    null = [(layer, v) for layer, v in zip(layers, data["null_p95"], strict=True) if _finite(v)]
    if null:  # the independence check: a grey band from 0 to the null's 95th percentile
        upper = [f"{_number(axes.x(layer))},{_number(axes.y(v))}" for layer, v in null]
        base = [f"{_number(axes.x(layer))},{_number(axes.y(0.0))}" for layer, _ in reversed(null)]
        parts.append(
            f'<polygon class="null" points="{" ".join(upper + base)}" fill="{NULL_COLOUR}" opacity="0.35">'
            f"<title>{escape(NULL_LABEL)}</title></polygon>"
        )
    parts += [_floor(axes, row) for row in data.itertuples()]
    if parting_layer in axes.index:
        x = _number(axes.x(parting_layer))
        parts.append(
            f'<line class="parting" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}" stroke="#d62728" '
            f'stroke-dasharray="4 3"><title>{escape(f"they part ways at {parting_layer}")}</title></line>'
        )
        parts.append(f'<text x="{x}" dx="4" y="{top + 12}" font-size="12" fill="#d62728">they part ways</text>')
    names = list(dict.fromkeys(extra["comparison"]))
    for colour, name in zip(CEILING_COLOURS, names, strict=False):  # the ceilings, dashed and dotted
        same = dict.fromkeys(KIND_COLOURS, colour)
        mine = extra[extra["comparison"] == name]
        parts += _series(axes, mine, ("ceiling", "ceiling_low", "ceiling_high"), name, same, ceiling=True)
    parts += [_seeds(axes, row) for row in data.itertuples()]
    parts += _series(axes, data, ("cka", "low", "high"), "A vs B", KIND_COLOURS, ceiling=False)
    parts += _legend(rows)
    parts.append("</svg>")
    return Figure("".join(part for part in parts if part), MATCHED_ALT)
