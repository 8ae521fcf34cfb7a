"""Chart builders: pure functions from a result to an `alt.Chart`, testable without a browser."""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.ceilings import Ceilings, matched_at
from core.errors import ContractError
from core.names import BY_DEPTH, OTHER, OUTPUT, RESIDUAL, kind, shared_order, side_labels
from core.result import AnalysisResult

UNDEFINED_FILL = "#d0d0d0"  # undefined CKA cells: grey, labelled "n/a", never a silent blank
KIND_COLOURS = {OUTPUT: "#1f77b4", RESIDUAL: "#ff7f0e", OTHER: "#7f7f7f"}
MODEL_COLOURS = ("#1f77b4", "#d62728")
CEILING_COLOURS = ("#2ca02c", "#9467bd")  # A vs another seed of A's method, B vs another seed of B's
FLOOR_COLOUR = "#8c6d31"  # untrained A-arch vs untrained B-arch: what architecture and input give untrained
SEEDS_COLOUR = "#333333"  # the spread over the cross pairings of the methods' seeds
NULL_COLOUR = "#bbbbbb"  # the permutation null: an independence check
KIND_NAMES = {OUTPUT: "block outputs", RESIDUAL: "residual branches", OTHER: "stem / head"}  # legend words
CEILING_DASH = {OUTPUT: (6, 3), RESIDUAL: (2, 2)}  # a ceiling's block outputs dashed, its residual branches dotted
TABLEAU10 = (  # up to 10 series: ten hues that stay apart (Vega's tableau10)
    "#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
)  # fmt: skip
TABLEAU20 = (  # 11 to 20 series: ten hues, each dark and light (Vega's tableau20)
    "#4c78a8", "#9ecae9", "#f58518", "#ffbf79", "#54a24b", "#88d27a", "#b79a20", "#f2cf5b", "#439894", "#83bcb6",
    "#e45756", "#ff9d98", "#79706e", "#bab0ac", "#d67195", "#fcbfd2", "#b279a2", "#d6a5c9", "#9e765f", "#d8b5a5",
)  # fmt: skip
ROW_PX = 20  # height of one heatmap row
LABEL_LIMIT = 1000  # px: wider than any layer name or legend entry we draw, so Vega never cuts one with "…"
# Layer names stand upright: one band apart, they never overlap as -45 degree labels did in a narrow column;
# where bands are narrower than a line of text, every other name is left out (greedy) and the tooltip names it.
LAYER_AXIS = alt.Axis(labelAngle=-90, labelOverlap="greedy", labelLimit=LABEL_LIMIT, labelFontSize=10)
ROW_AXIS = alt.Axis(labelOverlap=False, labelLimit=LABEL_LIMIT)  # rows are ROW_PX apart: every name fits
# Streamlit's default autosize "fit" squeezes the plot to make room for the rotated layer names; fit-x keeps
# the plot height we ask for and stretches only the width.
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")
HALF_TITLE = 40  # characters a title line of a chart in half the page's width holds (Streamlit cuts a longer one)
SVG_POINTS = 2000  # up to this many data points Vega draws SVG: text in the page, read by a screen reader or a test
READOUTS = {  # metric -> (result fields for A and B, chart title, y-axis title)
    "probe": (("probe_a", "probe_b"), "Linear-probe accuracy per layer (held-out images)", "probe accuracy"),
    "class": (("class_a", "class_b"), "Class structure: CKA with the one-hot label kernel", "class-structure CKA"),
    "invariance": (
        ("invariance_pooled_a", "invariance_pooled_b"),
        "Augmentation invariance: CKA between f(x) and f(t(x)), t a SimCLR augmentation, each averaged over space",
        "invariance CKA",
    ),
    "untrained": (
        ("untrained_a", "untrained_b"),
        "How far training moved each layer: CKA of each trained network with untrained networks of its architecture",
        "CKA with untrained (1: unmoved)",
    ),
}
FLATTENED = (  # an older result without the spatially averaged reading: its flattened one, said as such
    ("invariance_a", "invariance_b"),
    "Augmentation invariance on flattened maps (mixes spatial pooling with invariance): this result has no reading "
    "on spatially averaged features",
)


def series_colours(count: int) -> tuple[str, ...]:
    """`count` colours that can be told apart: tableau10's hues up to 10 series, tableau20 up to 20 (beyond 20
    they repeat, in order)."""
    palette = TABLEAU10 if count <= len(TABLEAU10) else TABLEAU20
    return tuple(palette[i % len(palette)] for i in range(count))


def legend(title: str | None, columns: int = 1, **symbol) -> alt.Legend:
    """A legend below the plot, entries in `columns`, none cut short: a long entry widens the legend instead."""
    return alt.Legend(
        title=title, orient="bottom", direction="vertical", columns=columns, labelLimit=LABEL_LIMIT, **symbol
    )


def drawn(points: int) -> dict:
    """The chart's `usermeta`: SVG up to SVG_POINTS data points, a canvas beyond (as Streamlit would pick for a big
    chart, where SVG gets slow)."""
    return {"embedOptions": {"renderer": "svg" if points <= SVG_POINTS else "canvas"}}


def _value(v: float) -> float | None:
    """NaN/inf -> None, so the cell is 'undefined' in the chart's data rather than a number."""
    return float(v) if np.isfinite(v) else None


def heatmap(
    matrix: np.ndarray,
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    title: str,
    row_title: str,
    col_title: str,
    undefined_rows: Sequence[str | None] = (),
    undefined_cols: Sequence[str | None] = (),
    shown_rows: Collection[str] | None = None,
    shown_cols: Collection[str] | None = None,
) -> alt.Chart:
    """CKA for every (row layer, column layer) pair, in depth order; undefined cells grey and labelled n/a.

    `undefined_rows/cols` give, per layer, why its CKA is undefined (None when it is defined): the reason is
    the tooltip of its grey cells. `shown_rows/cols` (all when None) thin what is drawn, the page's view of a deep
    network.
    """
    if matrix.shape != (len(rows), len(cols)):
        raise ContractError(f"matrix is {matrix.shape}, but there are {len(rows)} rows and {len(cols)} columns")
    why_r = list(undefined_rows) or [None] * len(rows)
    why_c = list(undefined_cols) or [None] * len(cols)
    keep_r = [i for i, name in enumerate(rows) if shown_rows is None or name in shown_rows]
    keep_c = [j for j, name in enumerate(cols) if shown_cols is None or name in shown_cols]
    matrix, rows, cols = matrix[np.ix_(keep_r, keep_c)], [rows[i] for i in keep_r], [cols[j] for j in keep_c]
    why_r, why_c = [why_r[i] for i in keep_r], [why_c[j] for j in keep_c]
    records = []
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            value = _value(matrix[i, j])
            note = "" if value is not None else (why_r[i] or why_c[j] or "undefined (a layer with no variance)")
            records.append({"row": r, "col": c, "cka": value, "note": note})
    data = pd.DataFrame.from_records(records)
    x = alt.X("col:N", sort=list(cols), title=col_title, axis=LAYER_AXIS)
    y = alt.Y("row:N", sort=list(rows), title=row_title, axis=ROW_AXIS)
    tooltip = [
        alt.Tooltip("row:N", title=row_title),
        alt.Tooltip("col:N", title=col_title),
        alt.Tooltip("cka:Q", title="CKA", format=".3f"),
        alt.Tooltip("note:N", title="note"),
    ]
    base = alt.Chart(data).encode(x=x, y=y, tooltip=tooltip)
    defined = (
        base.transform_filter("isValid(datum.cka)")
        .mark_rect()
        .encode(color=alt.Color("cka:Q", title="CKA", scale=alt.Scale(domain=[0, 1], scheme="viridis", clamp=True)))
    )
    missing = base.transform_filter("!isValid(datum.cka)")
    grey = missing.mark_rect(color=UNDEFINED_FILL)
    label = missing.mark_text(text="n/a", fontSize=9, color="#333333")
    n_missing = int(data["cka"].isna().sum())
    subtitle = f"{n_missing} grey cells marked n/a: CKA undefined (hover for why)" if n_missing else ""
    return alt.layer(defined, grey, label).properties(
        title=alt.TitleParams(title, subtitle=subtitle),
        height=ROW_PX * len(rows),
        autosize=FIT_WIDTH,
        usermeta=drawn(len(data)),
    )


def matched_frame(result: AnalysisResult) -> pd.DataFrame:
    """The matched curve as a table: A's layer, B's layer it is compared with (the same name, unless paired by
    relative depth), kind, CKA, jackknife interval, permutation null (the independence check), the untrained floor's
    mean and 5th-95th percentile band over init pairs, and the spread over the seed pairings (min and max; None where
    the result has no floor or no other seeds)."""
    m = len(result.matched)

    def column(values: np.ndarray | None) -> list[float | None]:
        return [None] * m if values is None else [_value(v) for v in values]

    spread = np.stack([p.matched_cka for p in result.seed_pairings]) if result.seed_pairings else None
    with np.errstate(all="ignore"):
        low, high = (None, None) if spread is None else (np.nanmin(spread, 0), np.nanmax(spread, 0))
    return pd.DataFrame(
        {
            "layer": list(result.matched),
            "layer_b": [result.partner(name) for name in result.matched],
            "kind": [kind(name) for name in result.matched],
            "cka": column(result.matched_cka),
            "low": column(result.interval_low),
            "high": column(result.interval_high),
            "null_mean": column(result.null_mean),
            "null_p95": column(result.null_p95),
            "floor": column(result.floor_untrained),
            "floor_low": column(result.floor_untrained_low),
            "floor_high": column(result.floor_untrained_high),
            "seeds_low": column(low),
            "seeds_high": column(high),
        }
    )


def floor_label(result: AnalysisResult) -> str:
    """What the floor band is, for a legend."""
    return f"floor: untrained A-arch vs untrained B-arch, 5th-95th pct over {result.floor_pairs} init pairs"


def seeds_label(result: AnalysisResult) -> str:
    """What the seed spread is, for a legend."""
    return f"seed spread: min-max over {len(result.seed_pairings)} pairings of A's and B's methods' seeds"


NULL_LABEL = "independence check: permutation null to its 95th pct"


def ceiling_frame(result: AnalysisResult, ceilings: Ceilings) -> pd.DataFrame:
    """Each ceiling's matched curve on the result's matched layers: layer, kind, comparison, its CKA and interval
    (columns named apart from the main curve's, so the two tables are never confused)."""
    rows = []
    labels = side_labels(result.model_a.method, result.model_b.method)
    for label, (ceiling, _) in zip(labels, (ceilings.side("a"), ceilings.side("b")), strict=True):
        if ceiling is None:
            continue
        for layer in result.matched:
            m = matched_at(ceiling, layer)
            rows.append(
                {
                    "layer": layer,
                    "kind": kind(layer),
                    "comparison": f"{label} vs another seed",
                    "ceiling": _value(m.value),
                    "ceiling_low": _value(m.low),
                    "ceiling_high": _value(m.high),
                }
            )
    return pd.DataFrame(rows, columns=["layer", "kind", "comparison", "ceiling", "ceiling_low", "ceiling_high"])


def matched_title(result: AnalysisResult) -> str:
    """The matched curve's title: how A's layers meet B's."""
    if result.matching == BY_DEPTH:
        return "Matched layers: each of A's layers against B's at the same relative depth"
    return "Matched layers: A's layer i against B's layer i"


def matched_curve(
    result: AnalysisResult,
    parting_layer: str | None = None,
    ceilings: Ceilings | None = None,
    shown: Collection[str] | None = None,
) -> alt.LayerChart:
    """CKA of each matched layer of A with its layer of B (the same name, or across architectures the layer at the
    same relative depth, named in the tooltip), residual branches and block outputs as separate lines.

    Error bars are the jackknife interval over minibatches (which images were drawn); a brown bar per layer, the
    floor (untrained A-arch vs untrained B-arch, 5th-95th percentile over init pairs, a tick at the mean); a
    thin dark bar beside each point, the spread over the seed pairings (which seeds were trained); the grey band
    from 0 to the permutation null's 95th percentile, the independence check. A rule marks `parting_layer` when
    given. Each of `ceilings` (a model against another seed of its method) is drawn dashed in its own colour,
    with its interval. `shown` (A's layers; all when None) thins what is drawn, the page's view of a deep network.
    """
    data = matched_frame(result)
    extra = ceiling_frame(result, ceilings or Ceilings())
    if shown is not None:
        shown = set(shown)
        data = data[data["layer"].isin(shown)].reset_index(drop=True)
        extra = extra[extra["layer"].isin(shown)].reset_index(drop=True)
    data["curve"] = [f"A vs B: {KIND_NAMES[k]}" for k in data["kind"]]
    extra["curve"] = [f"ceiling: {name}" for name in extra["comparison"]]
    extra["line"] = [KIND_NAMES[k] for k in extra["kind"]]
    order = list(data["layer"])
    by_depth = result.matching == BY_DEPTH
    words = (
        "layer of A (B's at the same relative depth: hover a point)" if by_depth else "layer (same name in both models)"
    )
    x = alt.X("layer:N", sort=order, title=words, axis=LAYER_AXIS)
    values = [
        data[["cka", "low", "null_p95", "floor_low", "seeds_low"]].to_numpy(dtype=float),
        extra[["ceiling_low"]].to_numpy(dtype=float),
    ]
    lowest = min(0.0, *(float(np.nanmin(v, initial=0.0)) for v in values))
    y_scale = alt.Scale(domain=[lowest, 1.0])
    colour = curve_colour(data, extra)
    tooltip = [
        alt.Tooltip("layer:N", title="A's layer" if by_depth else "layer"),
        *([alt.Tooltip("layer_b:N", title="B's layer")] if by_depth else []),
        "kind:N",
        alt.Tooltip("cka:Q", title="CKA", format=".3f"),
        alt.Tooltip("low:Q", title="interval low", format=".3f"),
        alt.Tooltip("high:Q", title="interval high", format=".3f"),
        alt.Tooltip("floor:Q", title="floor (untrained) mean", format=".3f"),
        alt.Tooltip("seeds_low:Q", title="seed pairings min", format=".3f"),
        alt.Tooltip("seeds_high:Q", title="seed pairings max", format=".3f"),
        alt.Tooltip("null_p95:Q", title="independence check 95th pct", format=".3f"),
    ]
    base = alt.Chart(data).encode(x=x)
    null = base.mark_area(color=NULL_COLOUR, opacity=0.35).encode(
        y=alt.Y("null_p95:Q", scale=y_scale, title="matched-layer CKA"), y2=alt.Y2(datum=0)
    )
    interval = base.mark_rule(strokeWidth=2, opacity=0.6).encode(y="low:Q", y2="high:Q", color=colour)
    lines = (
        base.transform_filter(alt.FieldOneOfPredicate("kind", [OUTPUT, RESIDUAL]))
        .mark_line()
        .encode(y="cka:Q", color=colour)
    )
    points = base.mark_point(filled=True, size=50).encode(y="cka:Q", color=colour, tooltip=tooltip)
    layers = [null, interval, lines, points]
    parts = ["bars: 95% jackknife-t interval over minibatches"]
    if result.floor_untrained is not None:
        floor = base.transform_filter("isValid(datum.floor_low)")
        layers += [
            floor.mark_bar(color=FLOOR_COLOUR, opacity=0.3, width={"band": 0.7}).encode(
                y="floor_low:Q", y2="floor_high:Q", tooltip=tooltip
            ),
            floor.mark_tick(color=FLOOR_COLOUR, thickness=2).encode(y="floor:Q"),
        ]
        parts.append(f"brown boxes: {floor_label(result)} (tick: mean)")
    if result.seed_pairings:
        seeds = base.transform_filter("isValid(datum.seeds_low)")
        layers.append(
            seeds.mark_rule(color=SEEDS_COLOUR, strokeWidth=1, xOffset=6).encode(y="seeds_low:Q", y2="seeds_high:Q")
        )
        parts.append(f"thin dark bars: {seeds_label(result)}")
    parts.append(f"grey: {NULL_LABEL}")
    if len(extra):
        layers += _ceiling_layers(extra, x, colour)
        parts.append("dashed and dotted: each model against another seed of its method, the ceiling")
    if parting_layer is not None and parting_layer in order:
        mark = pd.DataFrame({"layer": [parting_layer], "text": ["they part ways"]})
        rule = alt.Chart(mark).mark_rule(color="#d62728", strokeDash=[4, 3]).encode(x=alt.X("layer:N", sort=order))
        text = (
            alt.Chart(mark)
            .mark_text(align="left", dx=4, dy=-6, color="#d62728")
            .encode(x=alt.X("layer:N", sort=order), y=alt.datum(1.0), text="text:N")
        )
        layers += [rule, text]
    return alt.layer(*layers).properties(
        title=alt.TitleParams(matched_title(result), subtitle=parts),
        height=300,
        autosize=FIT_WIDTH,
        usermeta=drawn(len(data) + len(extra)),
    )


def curve_colour(data: pd.DataFrame, extra: pd.DataFrame) -> alt.Color:
    """One colour scale for every curve of the matched chart (A vs B by kind of layer, then each ceiling), shared by
    all its layers, so Vega draws one legend with one entry per curve drawn."""
    kinds = [k for k in KIND_NAMES if k in set(data["kind"])]
    names = list(dict.fromkeys(extra["comparison"]))
    domain = [f"A vs B: {KIND_NAMES[k]}" for k in kinds] + [f"ceiling: {name}" for name in names]
    palette = [KIND_COLOURS[k] for k in kinds] + list(CEILING_COLOURS[: len(names)])
    return alt.Color("curve:N", scale=alt.Scale(domain=domain, range=palette), legend=legend(None, columns=2))


def _ceiling_layers(extra: pd.DataFrame, x: alt.X, colour: alt.Color) -> list[alt.Chart]:
    """The ceilings' lines (block outputs dashed, residual branches dotted: a legend of its own), points and
    interval bars, in the matched chart's one colour scale."""
    styles = [KIND_NAMES[k] for k in CEILING_DASH if k in set(extra["kind"])]
    dash = alt.StrokeDash(
        "line:N",
        scale=alt.Scale(domain=styles, range=[list(CEILING_DASH[k]) for k in CEILING_DASH if KIND_NAMES[k] in styles]),
        legend=legend("ceiling lines", symbolType="stroke", symbolSize=400, symbolStrokeWidth=2),
    )
    tooltip = [
        alt.Tooltip("comparison:N", title="ceiling"),
        "layer:N",
        alt.Tooltip("ceiling:Q", title="CKA", format=".3f"),
        alt.Tooltip("ceiling_low:Q", title="interval low", format=".3f"),
        alt.Tooltip("ceiling_high:Q", title="interval high", format=".3f"),
    ]
    base = alt.Chart(extra).encode(x=x)
    lines = (
        base.transform_filter(alt.FieldOneOfPredicate("kind", [OUTPUT, RESIDUAL]))
        .mark_line(strokeWidth=1.5)
        .encode(y="ceiling:Q", color=colour, strokeDash=dash)
    )
    bars = base.mark_rule(opacity=0.5).encode(y="ceiling_low:Q", y2="ceiling_high:Q", color=colour)
    points = base.mark_point(size=30).encode(y="ceiling:Q", tooltip=tooltip, color=colour)
    return [lines, bars, points]


def _readout(result: AnalysisResult, metric: str) -> tuple[tuple[str, str], str, str]:
    """The fields, title and y-axis title of a read-out for this result: an older result without the spatially
    averaged invariance is shown on its flattened maps, its title saying so."""
    fields, title, y_title = READOUTS[metric]
    if metric == "invariance" and any(getattr(result, name) is None for name in fields):
        fields, title = FLATTENED
    return fields, title, y_title


def readout_frame(result: AnalysisResult, metric: str) -> pd.DataFrame:
    """Long table of one per-layer read-out for both models (NaN kept, so missing layers are visible; a result
    without the read-out, all missing)."""
    (field_a, field_b), _, _ = _readout(result, metric)
    label_a, label_b = side_labels(result.model_a.method, result.model_b.method)

    def values(name: str, count: int) -> list[float | None]:
        found = getattr(result, name)
        return [None] * count if found is None else [_value(v) for v in found]

    parts = [
        pd.DataFrame({"layer": list(layers), "model": label, "value": values(name, len(layers))})
        for label, layers, name in ((label_a, result.layers_a, field_a), (label_b, result.layers_b, field_b))
    ]
    return pd.concat(parts, ignore_index=True)


def readout_chart(result: AnalysisResult, metric: str) -> alt.LayerChart:
    """One per-layer read-out ('probe', 'class', 'invariance' or 'untrained') for both models on the shared layer
    axis."""
    if metric not in READOUTS:
        raise ContractError(f"metric must be one of {sorted(READOUTS)}, not {metric!r}")
    _, title, y_title = _readout(result, metric)
    data = readout_frame(result, metric)
    order = shared_order(result.layers_a, result.layers_b)
    labels = side_labels(result.model_a.method, result.model_b.method)
    colour = alt.Color("model:N", scale=alt.Scale(domain=list(labels), range=list(MODEL_COLOURS)), legend=legend(None))
    x = alt.X("layer:N", sort=order, title="layer", axis=LAYER_AXIS)
    base = alt.Chart(data).encode(
        x=x, color=colour, tooltip=["model:N", "layer:N", alt.Tooltip("value:Q", title=y_title, format=".3f")]
    )
    lowest = min(0.0, float(np.nanmin(data["value"].to_numpy(dtype=float), initial=0.0)))
    y = alt.Y("value:Q", title=y_title, scale=alt.Scale(domain=[lowest, 1.0]))
    layers = [base.mark_line().encode(y=y), base.mark_point(filled=True).encode(y=y)]
    missing = data[data["value"].isna()]
    subtitle = "; ".join(f"{m} {layer}" for m, layer in zip(missing.model, missing.layer, strict=True))
    subtitle = f"not defined at: {subtitle}" if subtitle else ""
    if metric == "probe":
        chance = 1 / len(result.subset.classes)
        rule = alt.Chart(pd.DataFrame({"chance": [chance]})).mark_rule(strokeDash=[4, 3], color="#888888")
        layers.append(rule.encode(y="chance:Q", tooltip=[alt.Tooltip("chance:Q", format=".2f")]))
        subtitle = (f"dashed: chance ({chance:.0%})" + (f"; {subtitle}" if subtitle else "")).strip()
    return alt.layer(*layers).properties(
        title=alt.TitleParams(title, subtitle=subtitle), height=220, autosize=FIT_WIDTH, usermeta=drawn(len(data))
    )


def progress_curves(
    matrix: np.ndarray,
    layers: Sequence[str],
    progress: Sequence[float],
    snapshots: Sequence[str],
    *,
    title: str,
    kinds: Sequence[str] = (OUTPUT, RESIDUAL, OTHER),
) -> alt.LayerChart:
    """Per-layer CKA over training: one line per layer of the given kinds, x the fraction of training done, each
    layer in a colour of its own (series_colours), its legend in depth order; undefined values are left out of the
    lines. The title is wrapped to lines that fit a chart in half the page's width."""
    if matrix.shape != (len(layers), len(progress)) or len(snapshots) != len(progress):
        raise ContractError(
            f"matrix is {matrix.shape}, but there are {len(layers)} layers and {len(progress)} snapshots"
        )
    shown = [i for i, name in enumerate(layers) if kind(name) in kinds]
    data = pd.DataFrame.from_records(
        {"layer": layers[i], "progress": float(p), "snapshot": s, "cka": _value(matrix[i, k])}
        for i in shown
        for k, (p, s) in enumerate(zip(progress, snapshots, strict=True))
    )
    order = [layers[i] for i in shown]
    lowest = min(0.0, float(np.nanmin(data["cka"].to_numpy(dtype=float), initial=0.0)))
    base = (
        alt.Chart(data)
        .transform_filter("isValid(datum.cka)")
        .encode(
            x=alt.X("progress:Q", title="training done", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            y=alt.Y("cka:Q", title="matched-layer CKA", scale=alt.Scale(domain=[lowest, 1.0])),
            color=alt.Color(
                "layer:N",
                scale=alt.Scale(domain=order, range=list(series_colours(len(order)))),
                legend=legend("layer", columns=2),
            ),
            tooltip=[
                "layer:N",
                "snapshot:N",
                alt.Tooltip("progress:Q", format=".0%"),
                alt.Tooltip("cka:Q", format=".3f"),
            ],
        )
    )
    return alt.layer(base.mark_line(), base.mark_point(filled=True)).properties(
        title=alt.TitleParams(textwrap.wrap(title, HALF_TITLE)),
        height=280,
        autosize=FIT_WIDTH,
        usermeta=drawn(len(data)),
    )
