"""Chart builders: pure functions from a result to an `alt.Chart`, testable without a browser."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.ceilings import Ceilings, matched_at
from core.errors import ContractError
from core.names import OTHER, OUTPUT, RESIDUAL, kind, shared_order, side_labels
from core.result import AnalysisResult

UNDEFINED_FILL = "#d0d0d0"  # undefined CKA cells: grey, labelled "n/a", never a silent blank
KIND_COLOURS = {OUTPUT: "#1f77b4", RESIDUAL: "#ff7f0e", OTHER: "#7f7f7f"}
MODEL_COLOURS = ("#1f77b4", "#d62728")
CEILING_COLOURS = ("#2ca02c", "#9467bd")  # A vs another seed of A's method, B vs another seed of B's
ROW_PX = 20  # height of one heatmap row
LAYER_AXIS = alt.Axis(labelAngle=-45, labelOverlap=False)  # every layer named, even when labels are tight
# Streamlit's default autosize "fit" squeezes the plot to make room for the rotated layer names; fit-x keeps
# the plot height we ask for and stretches only the width.
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")
READOUTS = {  # metric -> (result fields for A and B, chart title, y-axis title)
    "probe": (("probe_a", "probe_b"), "Linear-probe accuracy per layer (held-out images)", "probe accuracy"),
    "class": (("class_a", "class_b"), "Class structure: CKA with the one-hot label kernel", "class-structure CKA"),
    "invariance": (
        ("invariance_a", "invariance_b"),
        "Augmentation invariance: CKA between f(x) and f(t(x)), t a SimCLR augmentation",
        "invariance CKA",
    ),
}


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
) -> alt.Chart:
    """CKA for every (row layer, column layer) pair, in depth order; undefined cells grey and labelled n/a.

    `undefined_rows/cols` give, per layer, why its CKA is undefined (None when it is defined): the reason is
    the tooltip of its grey cells.
    """
    if matrix.shape != (len(rows), len(cols)):
        raise ContractError(f"matrix is {matrix.shape}, but there are {len(rows)} rows and {len(cols)} columns")
    why_r = list(undefined_rows) or [None] * len(rows)
    why_c = list(undefined_cols) or [None] * len(cols)
    records = []
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            value = _value(matrix[i, j])
            note = "" if value is not None else (why_r[i] or why_c[j] or "undefined (a layer with no variance)")
            records.append({"row": r, "col": c, "cka": value, "note": note})
    data = pd.DataFrame.from_records(records)
    x = alt.X("col:N", sort=list(cols), title=col_title, axis=LAYER_AXIS)
    y = alt.Y("row:N", sort=list(rows), title=row_title, axis=alt.Axis(labelOverlap=False))
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
        title=alt.TitleParams(title, subtitle=subtitle), height=ROW_PX * len(rows), autosize=FIT_WIDTH
    )


def matched_frame(result: AnalysisResult) -> pd.DataFrame:
    """The matched curve as a table: layer, kind, CKA, jackknife interval, permutation null."""
    return pd.DataFrame(
        {
            "layer": list(result.matched),
            "kind": [kind(name) for name in result.matched],
            "cka": [_value(v) for v in result.matched_cka],
            "low": [_value(v) for v in result.interval_low],
            "high": [_value(v) for v in result.interval_high],
            "null_mean": [_value(v) for v in result.null_mean],
            "null_p95": [_value(v) for v in result.null_p95],
        }
    )


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


def matched_curve(
    result: AnalysisResult, parting_layer: str | None = None, ceilings: Ceilings | None = None
) -> alt.LayerChart:
    """CKA of layer i of A with layer i of B, residual branches and block outputs as separate lines.

    The grey band runs from 0 to the permutation null's 95th percentile (the floor); error bars are the
    jackknife interval over minibatches; a rule marks `parting_layer` when given. Each of `ceilings` (a model
    against another seed of its method) is drawn dashed in its own colour, with its interval.
    """
    data = matched_frame(result)
    extra = ceiling_frame(result, ceilings or Ceilings())
    order = list(result.matched)
    x = alt.X("layer:N", sort=order, title="layer (same name in both models)", axis=LAYER_AXIS)
    values = [data[["cka", "low", "null_p95"]].to_numpy(dtype=float), extra[["ceiling_low"]].to_numpy(dtype=float)]
    lowest = min(0.0, *(float(np.nanmin(v, initial=0.0)) for v in values))
    y_scale = alt.Scale(domain=[lowest, 1.0])
    colour = alt.Color(
        "kind:N", title="representation", scale=alt.Scale(domain=list(KIND_COLOURS), range=list(KIND_COLOURS.values()))
    )
    tooltip = [
        "layer:N",
        "kind:N",
        alt.Tooltip("cka:Q", title="CKA", format=".3f"),
        alt.Tooltip("low:Q", title="interval low", format=".3f"),
        alt.Tooltip("high:Q", title="interval high", format=".3f"),
        alt.Tooltip("null_p95:Q", title="null 95th pct", format=".3f"),
    ]
    base = alt.Chart(data).encode(x=x)
    null = base.mark_area(color="#bbbbbb", opacity=0.35).encode(
        y=alt.Y("null_p95:Q", scale=y_scale, title="matched-layer CKA"), y2=alt.Y2(datum=0)
    )
    interval = base.mark_rule(strokeWidth=2, opacity=0.6).encode(y="low:Q", y2="high:Q", color=colour)
    lines = (
        base.transform_filter(alt.FieldOneOfPredicate("kind", [OUTPUT, RESIDUAL]))
        .mark_line()
        .encode(y="cka:Q", color=colour, detail="kind:N")
    )
    points = base.mark_point(filled=True, size=50).encode(y="cka:Q", color=colour, tooltip=tooltip)
    layers = [null, interval, lines, points]
    subtitle = "grey band: permutation null, the floor (to its 95th percentile); bars: 95% jackknife-t interval"
    if len(extra):
        layers += _ceiling_layers(extra, x)
        subtitle += "; dashed: each model against another seed of its method, the ceiling"
    if parting_layer is not None and parting_layer in order:
        mark = pd.DataFrame({"layer": [parting_layer], "text": ["they part ways"]})
        rule = alt.Chart(mark).mark_rule(color="#d62728", strokeDash=[4, 3]).encode(x=alt.X("layer:N", sort=order))
        text = (
            alt.Chart(mark)
            .mark_text(align="left", dx=4, dy=-6, color="#d62728")
            .encode(x=alt.X("layer:N", sort=order), y=alt.datum(1.0), text="text:N")
        )
        layers += [rule, text]
    chart = alt.layer(*layers).properties(
        title=alt.TitleParams("Matched layers: A's layer i against B's layer i", subtitle=subtitle),
        height=300,
        autosize=FIT_WIDTH,
    )
    return chart.resolve_scale(color="independent") if len(extra) else chart


def _ceiling_layers(extra: pd.DataFrame, x: alt.X) -> list[alt.Chart]:
    """The ceilings' dashed lines (block outputs and residual branches apart), points and interval bars."""
    names = list(dict.fromkeys(extra["comparison"]))
    colour = alt.Color(
        "comparison:N",
        title="ceiling (same method, other seed)",
        scale=alt.Scale(domain=names, range=list(CEILING_COLOURS[: len(names)])),
    )
    tooltip = [
        "comparison:N",
        "layer:N",
        alt.Tooltip("ceiling:Q", title="CKA", format=".3f"),
        alt.Tooltip("ceiling_low:Q", title="interval low", format=".3f"),
        alt.Tooltip("ceiling_high:Q", title="interval high", format=".3f"),
    ]
    base = alt.Chart(extra).encode(x=x, color=colour)
    lines = (
        base.transform_filter(alt.FieldOneOfPredicate("kind", [OUTPUT, RESIDUAL]))
        .mark_line(strokeDash=[6, 3], strokeWidth=1.5)
        .encode(y="ceiling:Q", detail="kind:N")
    )
    bars = base.mark_rule(opacity=0.5).encode(y="ceiling_low:Q", y2="ceiling_high:Q")
    points = base.mark_point(size=30).encode(y="ceiling:Q", tooltip=tooltip)
    return [lines, bars, points]


def readout_frame(result: AnalysisResult, metric: str) -> pd.DataFrame:
    """Long table of one per-layer read-out for both models (NaN kept, so missing layers are visible)."""
    (field_a, field_b), _, _ = READOUTS[metric]
    label_a, label_b = side_labels(result.model_a.method, result.model_b.method)
    parts = [
        pd.DataFrame({"layer": list(layers), "model": label, "value": [_value(v) for v in getattr(result, name)]})
        for label, layers, name in ((label_a, result.layers_a, field_a), (label_b, result.layers_b, field_b))
    ]
    return pd.concat(parts, ignore_index=True)


def readout_chart(result: AnalysisResult, metric: str) -> alt.LayerChart:
    """One per-layer read-out ('probe', 'class' or 'invariance') for both models on the shared layer axis."""
    if metric not in READOUTS:
        raise ContractError(f"metric must be one of {sorted(READOUTS)}, not {metric!r}")
    _, title, y_title = READOUTS[metric]
    data = readout_frame(result, metric)
    order = shared_order(result.layers_a, result.layers_b)
    labels = side_labels(result.model_a.method, result.model_b.method)
    colour = alt.Color("model:N", title="model", scale=alt.Scale(domain=list(labels), range=list(MODEL_COLOURS)))
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
        title=alt.TitleParams(title, subtitle=subtitle), height=220, autosize=FIT_WIDTH
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
    """Per-layer CKA over training: one line per layer of the given kinds, x the fraction of training done,
    coloured by depth (light: early layers, dark: late ones); undefined values are left out of the lines."""
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
            color=alt.Color("layer:O", sort=order, scale=alt.Scale(scheme="viridis", reverse=True), title="layer"),
            tooltip=[
                "layer:N",
                "snapshot:N",
                alt.Tooltip("progress:Q", format=".0%"),
                alt.Tooltip("cka:Q", format=".3f"),
            ],
        )
    )
    return alt.layer(base.mark_line(), base.mark_point(filled=True)).properties(
        title=title, height=280, autosize=FIT_WIDTH
    )
