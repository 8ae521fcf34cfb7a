"""The overview's SVG figure: the numbers it draws, where it draws them, and that any name is drawn as text."""

import base64
import xml.etree.ElementTree as ET
from dataclasses import replace

import numpy as np
import pytest

from core.ceilings import Ceilings
from core.names import OUTPUT, RESIDUAL, kind
from tests.app.support import figure_points, figure_ranges, synthetic_result, with_synthetic_references
from ui import figure

FALLING = [0.9, 0.6, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1]
OUTPUTS = [0.95, 0.94, 0.92, 0.9, 0.88, 0.85, 0.5, 0.31]


def _elements(svg: str, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in ET.fromstring(svg).iter() if e.tag.endswith(tag) and e.get("class") == cls]


def _y(circle: ET.Element) -> float:
    return float(circle.get("cy"))


def _plot(svg: str) -> tuple[float, float]:
    """The plot area's top and bottom (y of CKA 1 and of the axis' low end)."""
    (area,) = _elements(svg, "rect", "plot")
    return float(area.get("y")), float(area.get("y")) + float(area.get("height"))


def test_every_matched_layer_is_a_point_at_its_value():
    result = synthetic_result(OUTPUTS, FALLING)
    points = figure_points(figure.matched_figure(result).svg)
    assert points["layer"].tolist() == list(result.matched)
    np.testing.assert_allclose(points["value"], result.matched_cka, atol=1e-6)


def test_heights_follow_the_values_on_one_linear_axis_from_0_to_1():
    result = synthetic_result(OUTPUTS, FALLING)
    svg = figure.matched_figure(result).svg
    circles = _elements(svg, "circle", "point")
    values = np.array([float(c.get("data-value")) for c in circles])
    ys = np.array([_y(c) for c in circles])
    top, bottom = _plot(svg)
    np.testing.assert_allclose(ys, bottom - values * (bottom - top), atol=0.06)  # coordinates kept to 0.1 px


def test_block_outputs_and_residual_branches_are_separate_lines_in_depth_order():
    result = synthetic_result(OUTPUTS, FALLING)
    svg = figure.matched_figure(result).svg
    lines = _elements(svg, "polyline", "matched")
    assert len(lines) == 2
    colours = {line.get("stroke") for line in lines}
    assert colours == {figure.KIND_COLOURS[OUTPUT], figure.KIND_COLOURS[RESIDUAL]}
    for line in lines:
        xs = [float(p.split(",")[0]) for p in line.get("points").split()]
        assert xs == sorted(xs) and len(xs) == 8


def test_a_missing_value_breaks_its_line_and_draws_no_point():
    result = synthetic_result(OUTPUTS, FALLING)
    values = result.matched_cka.copy()
    outputs = [i for i, name in enumerate(result.matched) if kind(name) == OUTPUT]
    values[outputs[3]] = np.nan
    svg = figure.matched_figure(replace(result, matched_cka=values)).svg
    output_lines = [e for e in _elements(svg, "polyline", "matched") if e.get("stroke") == figure.KIND_COLOURS[OUTPUT]]
    assert [len(line.get("points").split()) for line in output_lines] == [3, 4]
    assert result.matched[outputs[3]] not in figure_points(svg)["layer"].tolist()


def test_intervals_the_floor_and_the_parting_layer_are_drawn():
    result = synthetic_result(OUTPUTS, FALLING, null_p95=0.2)
    parting = "layer4.0 output"
    svg = figure.matched_figure(result, parting).svg
    assert len(_elements(svg, "line", "interval")) == len(result.matched)
    (band,) = _elements(svg, "polygon", "null")
    ys = {float(p.split(",")[1]) for p in band.get("points").split()}
    top, bottom = _plot(svg)
    assert sorted(ys) == pytest.approx([bottom - 0.2 * (bottom - top), bottom], abs=0.06)
    (rule,) = _elements(svg, "line", "parting")
    point = next(c for c in _elements(svg, "circle", "point") if c.get("data-layer") == parting)
    assert rule.get("x1") == point.get("cx")
    assert "they part ways" in svg
    assert not _elements(figure.matched_figure(result, "no such layer").svg, "line", "parting")


def test_each_ceiling_is_drawn_dashed_with_its_own_points():
    result = synthetic_result(OUTPUTS, FALLING)
    seeds_b = replace(result, matched_cka=np.full(len(result.matched), 0.97))
    svg = figure.matched_figure(result, None, Ceilings(b=seeds_b, note_a="none was asked for")).svg
    points = figure_points(svg)
    ceiling = points[points["series"] == "B (supervised) vs another seed"]
    assert len(ceiling) == len(result.matched) and np.allclose(ceiling["value"], 0.97)
    dashed = _elements(svg, "polyline", "ceiling")
    assert len(dashed) == 2 and all(line.get("stroke-dasharray") for line in dashed)
    assert "ceiling: B (supervised) vs another seed" in svg
    assert not _elements(figure.matched_figure(result).svg, "polyline", "ceiling")


def test_a_negative_cka_extends_the_axis_below_zero():
    values = [0.5] * 8
    result = synthetic_result(values, [-0.3, *values[1:]])
    svg = figure.matched_figure(result).svg
    labels = [e.text for e in ET.fromstring(svg).iter() if e.tag.endswith("text")]
    assert "-0.4" in labels and "1.0" in labels  # the lowest tick at or below the interval's low end (-0.35)
    lowest = max(_y(c) for c in _elements(svg, "circle", "point"))
    assert lowest <= _plot(svg)[1]


def test_names_are_drawn_as_text_never_as_markup():
    result = synthetic_result(OUTPUTS, FALLING)
    hostile = replace(result.model_a, source='upload:<script>alert("x")</script>&.pt')
    svg = figure.matched_figure(replace(result, model_a=hostile)).svg
    root = ET.fromstring(svg)  # well-formed
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert 'A = upload:<script>alert("x")</script>&.pt' in "".join(root.itertext())


def test_the_markdown_image_carries_the_svg_itself():
    shown = figure.matched_figure(synthetic_result(OUTPUTS, FALLING))
    text = shown.markdown()
    prefix = f"![{figure.MATCHED_ALT}](data:image/svg+xml;base64,"
    assert text.startswith(prefix) and text.endswith(")")
    assert base64.b64decode(text[len(prefix) : -1]).decode() == shown.svg


def test_the_floor_is_a_box_per_layer_from_its_5th_to_its_95th_percentile_with_its_legend():
    result = with_synthetic_references(synthetic_result(OUTPUTS, FALLING), floor=0.6)
    svg = figure.matched_figure(result).svg
    floor = figure_ranges(svg, "floor")
    assert floor["layer"].tolist() == list(result.matched)
    np.testing.assert_allclose(floor["low"], result.floor_untrained_low, atol=1e-6)
    np.testing.assert_allclose(floor["high"], result.floor_untrained_high, atol=1e-6)
    top, bottom = _plot(svg)
    boxes = _elements(svg, "g", "floor")
    for box in boxes:
        (rect,) = [e for e in box if e.tag.endswith("rect")]
        assert float(rect.get("y")) == pytest.approx(bottom - 0.65 * (bottom - top), abs=0.06)
        assert float(rect.get("y")) + float(rect.get("height")) == pytest.approx(bottom - 0.5 * (bottom - top), abs=0.1)
    assert "floor: untrained A-arch vs untrained B-arch, 5th-95th pct over 8 init pairs" in svg


def test_the_seed_spread_is_a_bar_from_the_lowest_to_the_highest_pairing():
    result = with_synthetic_references(synthetic_result(OUTPUTS, FALLING), spread=0.04)
    svg = figure.matched_figure(result).svg
    seeds = figure_ranges(svg, "seeds")
    assert seeds["layer"].tolist() == list(result.matched)
    np.testing.assert_allclose(seeds["low"], result.matched_cka - 0.04, atol=1e-6)
    np.testing.assert_allclose(seeds["high"], result.matched_cka + 0.04, atol=1e-6)
    assert "seed spread: min-max over 3 pairings" in svg


def test_without_floors_or_other_seeds_neither_is_drawn_and_the_null_is_an_independence_check():
    svg = figure.matched_figure(synthetic_result(OUTPUTS, FALLING)).svg
    assert figure_ranges(svg, "floor").empty and figure_ranges(svg, "seeds").empty
    assert "independence check: permutation null to its 95th pct" in svg and "floor" not in svg


def _both_ceilings(result):
    seeds = replace(result, matched_cka=np.full(len(result.matched), 0.97))
    return Ceilings(a=seeds, b=replace(result, matched_cka=np.full(len(result.matched), 0.93)))


def test_every_drawn_line_style_has_one_legend_entry_of_its_own():
    result = with_synthetic_references(synthetic_result(OUTPUTS, FALLING))
    svg = figure.matched_figure(result, None, _both_ceilings(result)).svg
    drawn = {
        (e.get("stroke"), e.get("stroke-dasharray", ""))
        for e in ET.fromstring(svg).iter()
        if e.tag.endswith("polyline")
    }
    keys = _elements(svg, "g", "key")
    lines = [(k.get("data-stroke"), k.get("data-dash")) for k in keys if k.get("data-style") == "line"]
    assert len(drawn) == 6  # A vs B's two kinds, and each ceiling's block outputs and residual branches
    assert sorted(lines) == sorted(drawn)  # each style once, none missing
    labels = ["".join(k.itertext()) for k in keys]
    assert len(labels) == len(set(labels))
    assert "ceiling: A (simclr) vs another seed, block outputs" in labels
    assert "ceiling: A (simclr) vs another seed, residual branches" in labels
    ceiling = [k for k in keys if k.get("data-style") == "line" and "ceiling" in "".join(k.itertext())]
    styles = {k.get("data-dash") for k in ceiling}
    assert len(styles) == 2 and "" not in styles  # dashed and dotted, never solid like A vs B


def test_every_mark_names_itself_on_hover():
    result = with_synthetic_references(synthetic_result(OUTPUTS, FALLING, null_p95=0.1))
    svg = figure.matched_figure(result, "layer4.0 output", _both_ceilings(result)).svg
    marks = [
        e
        for e in ET.fromstring(svg).iter()
        if e.tag.endswith("polyline") or e.get("class") in ("point", "interval", "null", "floor", "seeds", "parting")
    ]
    assert len(marks) > 6 * len(result.matched)
    untitled = [e.get("class") for e in marks if not [c for c in e if c.tag.endswith("title") and c.text]]
    assert untitled == []
    titles = [c.text for e in marks for c in e if c.tag.endswith("title")]
    assert "A vs B, residual branches" in titles and "B (simclr) vs another seed, block outputs" not in titles


def test_a_long_legend_takes_more_rows_above_a_plot_of_the_same_height_and_stays_inside_the_figure():
    plain = synthetic_result(OUTPUTS, FALLING)
    full = with_synthetic_references(plain)
    short, long = figure.matched_figure(plain).svg, figure.matched_figure(full, None, _both_ceilings(full)).svg
    for svg in (short, long):
        top, bottom = _plot(svg)
        assert bottom - top == figure.PLOT_HEIGHT
        rows = {float(t.get("y")) for k in _elements(svg, "g", "key") for t in k if t.tag.endswith("text")}
        assert max(rows) < top  # the legend sits above the plot
        for key in _elements(svg, "g", "key"):
            (text,) = [t for t in key if t.tag.endswith("text")]
            assert float(text.get("x")) + figure.CHAR_PX * len(text.text) <= figure.WIDTH  # nothing cut at the edge
    assert _plot(long)[0] > _plot(short)[0]
    assert float(ET.fromstring(long).get("height")) - float(ET.fromstring(short).get("height")) == pytest.approx(
        _plot(long)[0] - _plot(short)[0]
    )


@pytest.mark.parametrize("count", [18, 60, 300])
def test_layer_names_never_overlap_however_many_layers(count):
    result = synthetic_result(OUTPUTS, FALLING)
    names = tuple(f"block{i} {'output' if i % 2 else 'residual'}" for i in range(count))
    values = np.linspace(0.9, 0.2, count)
    many = replace(
        result,
        layers_a=names,
        layers_b=names,
        matched=names,
        matched_cka=values,
        null_mean=np.full(count, 0.01),
        null_p95=np.full(count, 0.02),
        interval_low=values - 0.05,
        interval_high=values + 0.05,
    )
    drawn = _elements(figure.matched_figure(many).svg, "text", "layer-name")
    xs = [float(t.get("transform").split("(")[1].split(",")[0]) for t in drawn]
    angles = {t.get("transform").split("rotate(")[1].rstrip(")") for t in drawn}
    assert len(angles) == 1 and angles <= {"-45", "-90"}
    slant = abs(np.sin(np.radians(float(angles.pop()))))
    assert np.diff(xs).min() * slant >= figure.NAME_GAP  # across their slant, names stand apart: no overlap
    assert len(drawn) >= min(count, (figure.WIDTH - figure.LEFT - figure.RIGHT) // figure.NAME_GAP // 2)
