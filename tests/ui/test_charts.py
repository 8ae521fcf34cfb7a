"""Chart builders: the data, order and marks of each chart, read from its Vega-Lite spec."""

import json
from dataclasses import replace

import numpy as np
import pytest

from core.ceilings import Ceilings
from core.errors import ContractError
from core.names import OUTPUT, RESIDUAL, shared_order
from tests.app.support import synthetic_result, with_synthetic_references
from ui import charts

FALLING = [0.9, 0.6, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1]


def _rows(spec: dict, column: str) -> list[dict]:
    """The inline dataset that has `column` (a layered chart may carry several)."""
    return next(rows for rows in spec["datasets"].values() if rows and column in rows[0])


def _layers(spec: dict) -> list[dict]:
    return spec["layer"]


def test_heatmap_has_every_cell_in_depth_order_with_tooltips():
    rows, cols = ["stem", "layer1.0 output", "pooled"], ["stem", "pooled"]
    matrix = np.arange(6, dtype=float).reshape(3, 2) / 10
    spec = charts.heatmap(matrix, rows, cols, title="t", row_title="A", col_title="B").to_dict()
    cells = {(d["row"], d["col"]): d["cka"] for d in _rows(spec, "cka")}
    assert cells == {(r, c): pytest.approx(matrix[i, j]) for i, r in enumerate(rows) for j, c in enumerate(cols)}
    rect = _layers(spec)[0]["encoding"]
    assert rect["x"]["sort"] == cols and rect["y"]["sort"] == rows
    assert [t["field"] for t in rect["tooltip"]] == ["row", "col", "cka", "note"]
    assert spec["title"]["subtitle"] == ""


def test_heatmap_draws_undefined_cells_grey_labelled_with_the_reason():
    rows = ["stem", "layer1.0 residual"]
    matrix = np.array([[0.9, np.nan], [np.nan, np.nan]])
    reasons = (None, "constant on every batch")
    spec = charts.heatmap(
        matrix, rows, rows, title="t", row_title="A", col_title="A", undefined_rows=reasons, undefined_cols=reasons
    ).to_dict()
    undefined = [d for d in _rows(spec, "cka") if d["cka"] is None]
    assert len(undefined) == 3 and {d["note"] for d in undefined} == {"constant on every batch"}
    grey, label = _layers(spec)[1], _layers(spec)[2]
    assert grey["mark"]["color"] == charts.UNDEFINED_FILL and grey["transform"] == [{"filter": "!isValid(datum.cka)"}]
    assert label["mark"]["type"] == "text" and label["mark"]["text"] == "n/a"
    assert spec["title"]["subtitle"].startswith("3 grey cells marked n/a")


def test_heatmap_refuses_a_matrix_that_does_not_fit_the_names():
    with pytest.raises(ContractError, match="2 rows and 3 columns"):
        charts.heatmap(np.zeros((3, 2)), ["a", "b"], ["a", "b", "c"], title="t", row_title="A", col_title="B")


def test_matched_curve_splits_residual_and_output_with_null_band_and_interval():
    result = synthetic_result([0.95, 0.94, 0.92, 0.9, 0.88, 0.85, 0.5, 0.31], FALLING, null_p95=0.05)
    spec = charts.matched_curve(result, "layer4.0 output").to_dict()
    data = _rows(spec, "kind")
    assert [d["layer"] for d in data] == list(result.matched)
    assert sum(d["kind"] == OUTPUT for d in data) == 8 and sum(d["kind"] == RESIDUAL for d in data) == 8
    band, interval, lines = _layers(spec)[:3]
    assert band["mark"]["type"] == "area" and band["encoding"]["y"]["field"] == "null_p95"
    assert {interval["encoding"]["y"]["field"], interval["encoding"]["y2"]["field"]} == {"low", "high"}
    assert lines["transform"][0]["filter"]["oneOf"] == [OUTPUT, RESIDUAL]
    parting = [layer for layer in _layers(spec) if "strokeDash" in layer["mark"]]
    assert len(parting) == 1
    assert _rows(spec, "text") == [{"layer": "layer4.0 output", "text": "they part ways"}]


def test_matched_curve_without_a_parting_point_has_no_marker():
    spec = charts.matched_curve(synthetic_result([0.95] * 8, FALLING)).to_dict()
    assert len(_layers(spec)) == 4


@pytest.mark.parametrize("metric", ["probe", "class", "invariance"])
def test_readout_charts_share_one_layer_axis_for_both_models(metric):
    result = synthetic_result([0.95] * 8, FALLING)
    spec = charts.readout_chart(result, metric).to_dict()
    order = shared_order(result.layers_a, result.layers_b)
    assert order[-1] == "logits" and len(order) == len(result.layers_b)
    assert _layers(spec)[0]["encoding"]["x"]["sort"] == order
    rows = _rows(spec, "model")
    assert len(rows) == len(result.layers_a) + len(result.layers_b)
    assert {r["model"] for r in rows} == {"A (simclr)", "B (supervised)"}


def test_probe_chart_marks_chance_for_the_chosen_classes():
    spec = charts.readout_chart(synthetic_result([0.95] * 8, FALLING), "probe").to_dict()
    assert _rows(spec, "chance") == [{"chance": pytest.approx(0.1)}]
    assert spec["title"]["subtitle"] == "dashed: chance (10%)"


def test_readout_chart_lists_undefined_layers():
    result = synthetic_result([0.95] * 8, FALLING)
    result.invariance_a[0] = np.nan
    spec = charts.readout_chart(result, "invariance").to_dict()
    assert spec["title"]["subtitle"] == "not defined at: A (simclr) stem"


def test_readout_chart_refuses_an_unknown_metric():
    with pytest.raises(ContractError, match="metric must be one of"):
        charts.readout_chart(synthetic_result([0.95] * 8, FALLING), "accuracy")


def test_matched_curve_draws_each_ceiling_dashed_with_its_interval():
    result = synthetic_result([0.95, 0.94, 0.92, 0.9, 0.88, 0.85, 0.5, 0.31], FALLING)
    seeds_b = synthetic_result([0.97] * 8, [0.8] * 8, methods=("supervised", "supervised"))
    spec = charts.matched_curve(result, None, Ceilings(b=seeds_b, note_a="none was asked for")).to_dict()
    rows = _rows(spec, "ceiling")
    assert [r["layer"] for r in rows] == list(result.matched)
    assert {r["comparison"] for r in rows} == {"B (supervised) vs another seed"}
    assert [r["ceiling"] for r in rows] == pytest.approx(list(seeds_b.matched_cka))
    assert [r["ceiling_high"] - r["ceiling_low"] for r in rows] == pytest.approx([0.1] * len(rows))
    (dashed,) = [layer for layer in _layers(spec) if "strokeDash" in layer["encoding"]]
    assert dashed["encoding"]["y"]["field"] == "ceiling" and dashed["mark"]["type"] == "line"
    assert dashed["encoding"]["strokeDash"]["scale"] == {
        "domain": ["block outputs", "residual branches"],
        "range": [[6, 3], [2, 2]],
    }
    assert "resolve" not in spec  # one colour scale: one legend
    assert spec["title"]["subtitle"][-1] == (
        "dashed and dotted: each model against another seed of its method, the ceiling"
    )
    assert len(_rows(spec, "cka")) == len(result.matched)  # the pair's own curve is unchanged


def test_matched_curve_without_ceilings_draws_none():
    spec = charts.matched_curve(synthetic_result([0.95] * 8, FALLING), None, Ceilings(note_a="x", note_b="y"))
    assert "ceiling" not in str(spec.to_dict()["title"]) and len(spec.to_dict()["layer"]) == 4


def test_matched_curve_draws_the_floor_band_and_the_seed_spread_and_names_each():
    result = with_synthetic_references(synthetic_result([0.95] * 8, FALLING), floor=0.5, spread=0.03)
    spec = charts.matched_curve(result).to_dict()
    rows = _rows(spec, "floor_low")
    assert [r["floor_low"] for r in rows] == pytest.approx([0.4] * len(result.matched))
    assert [r["floor_high"] for r in rows] == pytest.approx([0.55] * len(result.matched))
    assert [r["seeds_low"] for r in rows] == pytest.approx(list(result.matched_cka - 0.03))
    assert [r["seeds_high"] for r in rows] == pytest.approx(list(result.matched_cka + 0.03))
    bands = [layer for layer in _layers(spec) if layer["mark"]["type"] == "bar"]
    assert [(b["encoding"]["y"]["field"], b["encoding"]["y2"]["field"]) for b in bands] == [("floor_low", "floor_high")]
    spread = [layer for layer in _layers(spec) if layer["encoding"].get("y", {}).get("field") == "seeds_low"]
    assert len(spread) == 1 and spread[0]["encoding"]["y2"]["field"] == "seeds_high"
    subtitle = spec["title"]["subtitle"]
    assert "brown boxes: floor: untrained A-arch vs untrained B-arch, 5th-95th pct over 8 init pairs (tick: mean)" in (
        subtitle
    )
    assert any(line.startswith("thin dark bars: seed spread: min-max over 3 pairings") for line in subtitle)
    assert "grey: independence check: permutation null to its 95th pct" in subtitle


def test_invariance_is_read_on_spatially_averaged_features_and_an_older_result_says_it_has_only_flattened_maps():
    result = synthetic_result([0.95] * 8, FALLING)
    pooled = replace(result, invariance_pooled_a=result.invariance_a / 2, invariance_pooled_b=result.invariance_b / 2)
    spec = charts.readout_chart(pooled, "invariance").to_dict()
    values = [r["value"] for r in _rows(spec, "value")]
    assert values == pytest.approx(list(pooled.invariance_pooled_a) + list(pooled.invariance_pooled_b))
    assert spec["title"]["text"].endswith("each averaged over space")
    older = charts.readout_chart(result, "invariance").to_dict()
    assert [r["value"] for r in _rows(older, "value")] == pytest.approx(
        list(result.invariance_a) + list(result.invariance_b)
    )
    assert older["title"]["text"].startswith(
        "Augmentation invariance on flattened maps (mixes spatial pooling with invariance)"
    )


def test_how_far_training_moved_each_layer_is_each_trained_network_against_its_untrained_start():
    result = with_synthetic_references(synthetic_result([0.95] * 8, FALLING))
    spec = charts.readout_chart(result, "untrained").to_dict()
    values = [r["value"] for r in _rows(spec, "value")]
    assert values == pytest.approx(list(result.untrained_a) + list(result.untrained_b))
    assert spec["layer"][0]["encoding"]["y"]["title"] == "CKA with untrained (1: unmoved)"


def _legends(spec: dict) -> dict[str, list[dict]]:
    """Each encoding channel that has a legend (Vega-Lite draws one per scale): the encodings that share it."""
    found: dict[str, list[dict]] = {}
    for layer in spec.get("layer", [spec]):
        for channel, encoding in layer.get("encoding", {}).items():
            if channel in ("color", "strokeDash") and encoding.get("legend", {}) is not None:
                found.setdefault(channel, []).append(encoding)
    return found


@pytest.mark.parametrize("ceilings", ["none", "b", "both"])
def test_the_matched_curve_has_one_legend_per_encoding_naming_each_curve_once_and_in_full(ceilings):
    result = synthetic_result([0.95] * 8, FALLING)
    other = synthetic_result([0.97] * 8, [0.8] * 8)
    given = {"none": Ceilings(), "b": Ceilings(b=other), "both": Ceilings(a=other, b=other)}[ceilings]
    spec = charts.matched_curve(result, "layer4.0 output", given).to_dict()
    assert "resolve" not in spec  # shared scales: Vega-Lite merges each channel's legend into one
    colours = _legends(spec)["color"]
    assert len({json.dumps(e, sort_keys=True) for e in colours}) == 1  # the same encoding, scale and legend everywhere
    scale, legend = colours[0]["scale"], colours[0]["legend"]
    names = {"none": [], "b": ["B (supervised)"], "both": ["A (simclr)", "B (supervised)"]}[ceilings]
    expected = ["A vs B: block outputs", "A vs B: residual branches", "A vs B: stem / head"]
    assert scale["domain"] == expected + [f"ceiling: {name} vs another seed" for name in names]
    assert len(set(scale["range"])) == len(scale["domain"])  # every entry its own colour
    drawn = {r["curve"] for rows in spec["datasets"].values() for r in rows if "curve" in r}
    assert drawn == set(scale["domain"])  # complete: every curve drawn is in the legend, and nothing else
    assert legend["labelLimit"] >= 1000 and legend["orient"] == "bottom"
    assert ("strokeDash" in _legends(spec)) == (ceilings != "none")


def test_heatmap_layer_names_stand_upright_uncut_and_never_overlap():
    layers = [f"layer{s}.{b} {k}" for s in range(1, 5) for b in range(2) for k in ("residual", "output")]
    spec = charts.heatmap(np.eye(len(layers)), layers, layers, title="t", row_title="A", col_title="A").to_dict()
    x, y = spec["layer"][0]["encoding"]["x"]["axis"], spec["layer"][0]["encoding"]["y"]["axis"]
    assert x["labelAngle"] == -90 and x["labelOverlap"] == "greedy" and x["labelLimit"] >= 1000
    assert y["labelOverlap"] is False and y["labelLimit"] >= 1000
    tooltip = [t["field"] for t in spec["layer"][0]["encoding"]["tooltip"]]
    assert tooltip[:2] == ["row", "col"]  # a name left out where bands are narrow is still named on hover


@pytest.mark.parametrize("count", [2, 10, 11, 20])
def test_up_to_20_series_each_get_a_colour_of_their_own(count):
    colours = charts.series_colours(count)
    assert len(colours) == count == len(set(colours))
    assert all(c.startswith("#") and len(c) == 7 for c in colours)


def test_readout_legend_names_each_model_in_full():
    spec = charts.readout_chart(synthetic_result([0.95] * 8, FALLING), "probe").to_dict()
    (colour,) = {json.dumps(e, sort_keys=True) for e in _legends(spec)["color"]}
    colour = json.loads(colour)
    assert colour["scale"]["domain"] == ["A (simclr)", "B (supervised)"] and colour["legend"]["labelLimit"] >= 1000


def test_charts_are_drawn_as_svg_text_unless_they_are_big():
    small = charts.heatmap(np.eye(3), list("abc"), list("abc"), title="t", row_title="A", col_title="B").to_dict()
    assert small["usermeta"] == {"embedOptions": {"renderer": "svg"}}  # legends and labels are text in the page
    names = [f"layer {i}" for i in range(50)]  # 2,500 cells: a canvas, as Streamlit picks for a big chart
    big = charts.heatmap(np.eye(50), names, names, title="t", row_title="A", col_title="B").to_dict()
    assert big["usermeta"] == {"embedOptions": {"renderer": "canvas"}}
    result = synthetic_result([0.95] * 8, FALLING)
    assert charts.matched_curve(result).to_dict()["usermeta"]["embedOptions"]["renderer"] == "svg"
    assert charts.readout_chart(result, "probe").to_dict()["usermeta"]["embedOptions"]["renderer"] == "svg"
