"""The app driven headlessly with AppTest: pages, charts, URL choices, bad input, uploads and caching.

These use the bundled pair when it is trained and tiny stand-ins under the same names when not
(`bundled_pair`), with 10-20 images per class so a cold analysis takes seconds.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import ui.analysis
import ui.networks
import ui.opened
import ui.series
import ui.service
from cli.main import main as cli_main
from core import settings
from core.data import DataError, SubsetSpec
from core.errors import OptionsError, ResultFileError
from core.findings import FAILS, HOLDS, STUDY, UNSURE
from core.names import OUTPUT, kind, shared_order
from core.options import AnalysisOptions
from core.result import to_json_dict
from core.series import pair_by_progress
from core.store import ENTRIES
from models import DEFAULT_PAIR, CheckpointError, choose_sibling, load_model, load_uploaded, siblings
from models.snapshots import bundled_series
from tests.app.support import (
    APP,
    chart_specs,
    chart_values,
    figure_points,
    figure_ranges,
    figure_svgs,
    figures,
    shown,
    synthetic_result,
)

DEFAULT_A, DEFAULT_B = (spec.text for spec in DEFAULT_PAIR)

TIMEOUT = 300  # seconds for one script run: a cold analysis on a busy 2-core CPU
SMALL = {"per_class": "10"}


def open_app(params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params or {})
    return at.run()


def visit(at: AppTest, page: str) -> AppTest:
    return at.switch_page(f"pages/{page}.py").run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def layer_names(spec: str) -> list[str]:
    return [name for name, _ in load_model(spec).info.layers]


def test_every_page_renders_with_the_default_pair(bundled_pair):
    layers_a, layers_b = layer_names(DEFAULT_A), layer_names(DEFAULT_B)
    matched = [name for name in layers_a if name in layers_b]
    at = open_app(SMALL)
    assert_clean(at)
    assert not chart_specs(at)  # the overview draws its figure itself (ui.figure): no Altair, no Vega to load
    (curve,) = figures(at)
    assert curve[curve["series"] == "A vs B"]["layer"].tolist() == matched

    assert_clean(visit(at, "similarity"))
    cross, matched_curve, untrained, self_a, self_b = chart_specs(at)
    assert len(chart_values(cross, "cka")) == len(layers_a) * len(layers_b)
    assert len(chart_values(untrained, "value")) == len(layers_a) + len(layers_b)
    assert len(chart_values(self_a, "cka")) == len(layers_a) ** 2
    assert len(chart_values(self_b, "cka")) == len(layers_b) ** 2
    assert len(chart_values(matched_curve, "cka")) == len(matched)

    assert_clean(visit(at, "probes"))
    readouts = chart_specs(at)
    assert len(readouts) == 3
    for chart in readouts:
        assert chart["spec"]["layer"][0]["encoding"]["x"]["sort"] == shared_order(tuple(layers_a), tuple(layers_b))
        assert len(chart_values(chart, "value")) == len(layers_a) + len(layers_b)

    assert_clean(visit(at, "models"))
    cards = [m.value for m in at.markdown if m.value.startswith("#### Model")]
    assert len(cards) == 2
    assert f"`{DEFAULT_A}`" in cards[0] and "| method | simclr |" in cards[0]
    assert f"`{DEFAULT_B}`" in cards[1] and "| method | supervised |" in cards[1]

    assert_clean(visit(at, "images"))
    grid = [len(image.proto.imgs) for image in at.get("image")]
    assert grid == [10] * 10 + [12, 12]  # 10 per class for 10 classes, then 12 originals and their 12 views


def test_the_url_sets_the_sidebar_and_follows_it(bundled_pair):
    params = {
        "classes": "1,3,5",
        "per_class": "12",
        "subset_seed": "3",
        "estimator": "biased",
        "kernel": "rbf",
        "sigma": "0.5",
        "batch": "18",
    }
    at = open_app(params)
    assert_clean(at)
    assert at.multiselect(key="sb_classes").value == [1, 3, 5]
    assert at.number_input(key="sb_per_class").value == 12
    assert at.number_input(key="sb_subset_seed").value == 3
    assert at.radio(key="sb_estimator").value == "biased"
    assert at.radio(key="sb_kernel").value == "rbf"
    assert at.number_input(key="sb_sigma").value == 0.5
    assert at.number_input(key="sb_batch").value == 18
    caption = next(c.value for c in at.caption if "images (" in c.value)
    assert "36 test images (3 classes × 12, subset seed 3)" in caption and "biased (inflated" in caption
    assert "RBF (σ = 0.5" in caption and "minibatches of 18" in caption
    assert at.query_params["a"] == DEFAULT_A and at.query_params["classes"] == "1,3,5"

    at.number_input(key="sb_per_class").set_value(14).run()
    assert at.query_params["per_class"] == "14"


def a_vs_b(at) -> np.ndarray:
    (curve,) = figures(at)
    return curve[curve["series"] == "A vs B"]["value"].to_numpy()


def test_a_changed_subset_changes_the_numbers(tiny_specs):
    at = open_app(SMALL | {"a": tiny_specs["a"], "b": tiny_specs["b"]})
    before = a_vs_b(at)
    at.number_input(key="sb_per_class").set_value(20).run()
    assert_clean(at)
    after = a_vs_b(at)
    assert len(after) == len(before) and abs(after - before).max() > 1e-3
    assert any("200 test images" in c.value for c in at.caption)
    at.multiselect(key="sb_classes").set_value([0, 1]).run()
    assert any("40 test images (2 classes × 20" in c.value for c in at.caption)
    assert abs(a_vs_b(at) - after).max() > 1e-3


def test_changing_model_b_reuses_model_as_fingerprint(bundled_pair, tiny_specs, monkeypatch):
    calls = []
    real = ui.service.fingerprint_steps
    monkeypatch.setattr(
        ui.service, "fingerprint_steps", lambda model, *a, **k: calls.append(model.info.source) or real(model, *a, **k)
    )
    at = open_app(SMALL | {"subset_seed": "101"})  # a seed no other test uses: a cold cache
    seeds = [s.text for s in (choose_sibling(spec, None)[0] for spec in DEFAULT_PAIR) if s]  # the ceilings' networks
    assert calls == [DEFAULT_A, DEFAULT_B, *seeds]  # one pass per network, the pair's reused by its ceilings
    visit(at, "models").text_input[0].set_value(tiny_specs["a2"]).run()  # a path typed on the Models page
    assert any(m.value.startswith(f"#### {tiny_specs['a2']}") for m in at.markdown)
    at.button(key=f"use_b_{tiny_specs['a2']}").click().run()
    assert at.selectbox(key="sb_b").value == tiny_specs["a2"]
    assert_clean(visit(at, "overview"))
    assert calls == [DEFAULT_A, DEFAULT_B, *seeds, tiny_specs["a2"]]
    visit(at, "similarity")
    assert len(calls) == 3 + len(seeds)


def test_a_second_visit_is_served_from_the_cache_and_leaves_no_progress_box(bundled_pair, monkeypatch):
    at = open_app(SMALL)
    visit(at, "similarity")

    def no_computing(*args, **kwargs):
        raise AssertionError("the app computed again what it had just computed")

    monkeypatch.setattr(ui.service, "compare_pairs", no_computing)
    monkeypatch.setattr(ui.service, "fingerprint_steps", no_computing)
    visit(at, "overview")
    visit(at, "similarity")
    assert_clean(at)
    assert not at.get("expandable") and not at.get("progress")  # the status panel is emptied after the work


def test_the_overview_draws_its_figure_before_the_sidebar_once_its_results_are_at_hand(bundled_pair, monkeypatch):
    """While the overview computes, the sidebar is there first; once its results are at hand, the figure comes
    before the sidebar's widgets (whose code a browser would fetch first). The page and the sidebar are the same."""
    import ui.figure
    import ui.sidebar

    order: list[str] = []
    real_sidebar, real_show = ui.sidebar.sidebar, ui.figure.show
    monkeypatch.setattr(ui.sidebar, "sidebar", lambda: order.append("sidebar") or real_sidebar())
    monkeypatch.setattr(ui.figure, "show", lambda drawn: order.append("figure") or real_show(drawn))
    at = open_app({"per_class": "10", "subset_seed": "907"})  # a subset no other test computes
    assert_clean(at)
    assert order[0] == "sidebar" and set(order[1:]) == {"figure"}  # its previews, then the figure
    widgets = [(w.label, w.value) for w in at.sidebar.selectbox] + [(w.label, w.value) for w in at.sidebar.number_input]
    curve = figures(at)[0]
    order.clear()
    at.run()
    assert_clean(at)
    assert order == ["figure", "sidebar"]
    assert [(w.label, w.value) for w in at.sidebar.selectbox] + [
        (w.label, w.value) for w in at.sidebar.number_input
    ] == widgets
    assert figures(at)[0].equals(curve)
    visit(at, "similarity")  # any other page: the sidebar first, as always
    assert_clean(at)
    assert order[-1] == "sidebar" and "figure" not in order[2:]


def test_no_class_selected_warns_and_the_rest_keeps_working(bundled_pair):
    at = open_app({"classes": ""})
    assert_clean(at)
    refusal = "The CIFAR-10 subset cannot be used: choose at least 2 classes (none is chosen): with one class"
    assert [shown(w.value) for w in at.warning if refusal in shown(w.value)]
    assert not chart_specs(at) and not figures(at)
    assert_clean(visit(at, "images"))
    assert any(refusal in shown(w.value) for w in at.warning)
    assert_clean(visit(at, "models"))
    assert sum(m.value.startswith("#### Model") for m in at.markdown) == 2


def test_a_link_with_too_few_images_per_class_for_the_probes_is_refused_in_the_command_lines_words(bundled_pair):
    with pytest.raises(DataError) as refused:  # what `python -m cli compare --per-class 3` says after "error:"
        SubsetSpec(per_class=3).check_for(AnalysisOptions())
    at = open_app({"per_class": "3"})
    assert_clean(at)
    assert f"The CIFAR-10 subset cannot be used: {refused.value}." in [shown(w.value) for w in at.warning]
    assert not figures(at)


def test_bad_url_values_are_ignored_with_a_warning(bundled_pair):
    at = open_app({"per_class": "many", "kernel": "cosine", "classes": "0,1"})
    assert_clean(at)
    (notice,) = [shown(w.value) for w in at.main.warning]  # at the top of the page, not in the sidebar
    assert "- per_class = many: 'many' is not a whole number (using 100 instead)" in notice
    assert "- kernel = cosine: must be one of linear, rbf (using linear instead)" in notice
    assert at.number_input(key="sb_per_class").value == 100 and at.radio(key="sb_kernel").value == "linear"
    assert at.multiselect(key="sb_classes").value == [0, 1]


def test_an_unknown_hub_repo_shows_the_loaders_error_and_model_b_still_works(bundled_pair):
    spec = "hub:nobody/no-such-repo"
    with pytest.raises(CheckpointError) as raised:
        load_model(spec)
    at = open_app(SMALL | {"a": "nobody/no-such-repo"})  # typed as owner/repo: read as a Hub repo
    assert not at.exception
    assert [shown(e.value) for e in at.error] == [shown(f"Model A ({spec}) could not be loaded: {raised.value}")]
    assert at.selectbox(key="sb_a").value == spec
    visit(at, "models")
    assert f"Model A ({spec}) could not be loaded" in shown(at.error[0].value)
    assert any(m.value.startswith("#### Model B") for m in at.markdown)


def test_an_upload_shows_its_card_and_can_be_compared(bundled_pair, tiny_specs):
    data = (Path(tiny_specs["a"].removeprefix("file:")) / "model.safetensors").read_bytes()
    at = visit(open_app(SMALL), "models")
    at.file_uploader[0].upload("tiny.safetensors", data).run()
    assert_clean(at)
    card = next(m.value for m in at.markdown if m.value.startswith("#### upload:tiny.safetensors"))
    sha = load_uploaded(data, "tiny.safetensors").info.sha256[:16]
    assert "resnet18-w8, cifar stem (padding 1)" in card and sha in card
    at.button(key="use_a_upload:tiny.safetensors").click().run()
    assert at.selectbox(key="sb_a").value == "upload:tiny.safetensors"
    assert at.query_params["a"] == "upload:tiny.safetensors"
    assert_clean(visit(at, "overview"))
    assert any("A = `upload:tiny.safetensors`" in c.value for c in at.caption)
    assert len(figures(at)) == 1

    other_session = open_app(SMALL | {"a": "upload:tiny.safetensors"})  # uploads never leave their session
    assert "is not among this session's uploads" in other_session.error[0].value


def test_a_bad_upload_shows_the_loaders_error_and_the_app_keeps_working(bundled_pair):
    junk = b"these bytes are not a checkpoint"
    with pytest.raises(CheckpointError) as raised:
        load_uploaded(junk, "weights.pt")
    at = visit(open_app(SMALL), "models")
    at.file_uploader[0].upload("weights.pt", junk).run()
    assert not at.exception
    assert [shown(e.value) for e in at.error] == [shown(raised.value)]
    assert sum(m.value.startswith("#### Model") for m in at.markdown) == 2
    assert_clean(visit(at, "similarity"))
    assert len(chart_specs(at)) == 5  # across, matched, how far training moved each layer, each model's own


def test_what_the_weights_cannot_say_is_measured_shown_and_can_be_set(monkeypatch):
    """With the real supervised network: its card shows the accuracy measured here; a person sets the
    normalisation on the Models page and model A becomes the same weights under that choice."""
    monkeypatch.setenv(settings.CALIBRATION_IMAGES, "256")
    ui.networks._network.clear()  # other tests loaded it unmeasured (this process runs them all)
    supervised = "bundled:supervised-resnet18-w16"
    at = visit(open_app(SMALL | {"a": supervised}), "models")
    assert_clean(at)
    card = next(m.value for m in at.markdown if m.value.startswith("#### Model A"))
    accuracy = load_model(supervised).info.calibration.accuracy
    assert f"{accuracy:.1%} classifier accuracy on 256 CIFAR-10 test images" in card and accuracy > 0.8
    at.selectbox(key="choice_a_norm").select("imagenet")
    at.button(key="FormSubmitter:choices_a-Apply to model A").click().run()
    assert_clean(at)
    assert at.selectbox(key="sb_a").value == supervised + "#norm=imagenet"
    assert at.query_params["a"] == supervised + "#norm=imagenet"
    card = next(m.value for m in at.markdown if m.value.startswith("#### Model A"))
    assert "std (0.229, 0.224, 0.225)" in card
    assert any("set by your choice: normalisation" in shown(c.value) for c in at.caption)


def test_a_result_file_opens_on_every_page_until_closed(bundled_pair):
    falling = [0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    result = synthetic_result([0.95, 0.94, 0.92, 0.9, 0.88, 0.85, 0.5, 0.31], falling)
    at = visit(open_app(SMALL), "open_result")
    at.file_uploader(key="result_file").upload("cluster-run.json", json.dumps(to_json_dict(result)).encode()).run()
    assert_clean(at)
    assert "Opened `cluster-run.json`: `bundled:a` vs `bundled:b`" in at.success[0].value
    at = visit(at, "similarity")
    assert_clean(at)
    assert at.info[0].value.startswith("Showing `cluster-run.json`, a result opened from a file")
    heat, curve, *own = chart_specs(at)
    np.testing.assert_allclose(np.sort(chart_values(heat, "cka")), np.sort(result.cross.ravel()))
    assert np.isnan(chart_values(curve, "floor_low")).all() and len(own) == 2  # no floor, no untrained chart
    no_floor = "No untrained floor in this result: it was made without one (an older result file"
    assert any(c.value.startswith(no_floor) for c in at.caption)
    assert any(c.value.startswith("No seed spread: one network per method") for c in at.caption)
    at = visit(at, "overview")
    assert_clean(at)
    (svg,) = figure_svgs(at)
    assert figure_ranges(svg, "floor").empty and figure_ranges(svg, "seeds").empty
    assert "floor:" not in svg and "independence check: permutation null" in svg
    assert any(c.value.startswith(no_floor) for c in at.caption)
    assert_clean(visit(at, "probes"))
    invariance = chart_specs(at)[2]["spec"]["title"]["text"]
    assert invariance.startswith("Augmentation invariance on flattened maps (mixes spatial pooling with invariance)")
    at.button(key="close_opened").click().run()
    assert_clean(at)
    assert not any(i.value.startswith("Showing `cluster-run.json`") for i in at.info)
    assert any(f"A = `{DEFAULT_A}`" in c.value for c in at.caption)  # the sidebar's pair again


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json at all", "'bad.json' is not JSON"),
        (b'{"cross": [1]}', "'bad.json' cannot be opened: this is not a CKA Lens result: "),
        (b"[]", "'bad.json' cannot be opened: a result is a JSON object, not list"),
    ],
)
def test_a_file_that_is_not_a_result_is_refused_with_the_reason(bundled_pair, data, message):
    at = visit(open_app(SMALL), "open_result")
    at.file_uploader(key="result_file").upload("bad.json", data).run()
    assert not at.exception
    assert shown(at.error[0].value).startswith(message)
    assert_clean(visit(at, "overview"))  # nothing was opened: the sidebar's pair is shown


def test_the_overview_and_layer_similarity_draw_the_floor_band_and_the_seed_spread(tiny_specs, monkeypatch):
    """Tiny networks, with another seed of A's method: both matched-layer views draw the untrained floor's band and
    the spread over the seed pairings (A x B and A' x B) beside A vs B, from the same numbers, each named in the
    legend; the null is named an independence check; Layer similarity shows how far training moved each layer."""
    monkeypatch.setenv(settings.FLOOR_PAIRS, "8")  # the app's default, which the other app tests lower
    query = {"a": tiny_specs["a"], "b": tiny_specs["b"], "a_seed": tiny_specs["a2"], "b_seed": "none"}
    at = open_app(query | {"per_class": "6", "batch": "20", "subset_seed": "211"})
    assert_clean(at)
    (svg,) = figure_svgs(at)
    points = figure_points(svg)
    pair = points[points["series"] == "A vs B"]
    floor, seeds = figure_ranges(svg, "floor"), figure_ranges(svg, "seeds")
    assert floor["layer"].tolist() == pair["layer"].tolist() == seeds["layer"].tolist()
    assert (floor["low"] <= floor["high"]).all() and floor["high"].gt(floor["low"]).any()
    value = pair["value"].to_numpy()  # A x B is one of the two pairings: inside their spread
    assert (seeds["low"].to_numpy() <= value + 1e-6).all() and (value - 1e-6 <= seeds["high"].to_numpy()).all()
    assert "floor: untrained A-arch vs untrained B-arch, 5th-95th pct over 8 init pairs" in svg
    assert "seed spread: min-max over 2 pairings" in svg and "independence check: permutation null" in svg
    assert not any(c.value.startswith(("No untrained floor", "No seed spread")) for c in at.caption)

    at = visit(at, "similarity")
    assert_clean(at)
    _, curve, untrained, *_ = chart_specs(at)
    for column, drawn in (("floor_low", floor["low"]), ("floor_high", floor["high"])):
        np.testing.assert_allclose(chart_values(curve, column), drawn, atol=1e-6)
    for column, drawn in (("seeds_low", seeds["low"]), ("seeds_high", seeds["high"])):
        np.testing.assert_allclose(chart_values(curve, column), drawn, atol=1e-6)
    subtitle = " ".join(curve["spec"]["title"]["subtitle"])
    assert "brown boxes: floor: untrained A-arch vs untrained B-arch" in subtitle
    assert "thin dark bars: seed spread" in subtitle and "grey: independence check" in subtitle
    assert untrained["spec"]["title"]["text"].startswith("How far training moved each layer")
    moved = chart_values(untrained, "value")
    assert np.isfinite(moved).any() and (moved[np.isfinite(moved)] <= 1 + 1e-6).all()


def test_a_result_the_cli_stored_is_shown_without_computing(bundled_pair, tiny_specs, tmp_path, monkeypatch):
    """One store for the CLI and the app: the app serves what `python -m cli compare` computed from the store alone
    (this process's memory caches emptied, as after a restart)."""
    monkeypatch.setenv(settings.STORE, str(tmp_path / "store"))
    query = {"a": tiny_specs["a"], "b": tiny_specs["b"], "per_class": "6", "batch": "20"}
    out = tmp_path / "result.json"
    command = ["compare", "--a", query["a"], "--b", query["b"], "--per-class", "6", "--batch-size", "20"]
    command += ["--floor-pairs", "1", "--out", str(out)]  # floors as the app's tests make them (tests/conftest.py)
    assert cli_main(command) == 0
    assert list((tmp_path / "store" / ENTRIES).glob("*.json"))

    def no_computing(*args, **kwargs):
        raise AssertionError("the app computed a result the store holds")

    monkeypatch.setattr(ui.service, "compare_pairs", no_computing)
    ui.service.forget()  # what this process computed before is gone from memory: only the store has it
    at = visit(open_app(query), "similarity")
    assert_clean(at)
    stored = json.loads(out.read_text())
    heat = chart_specs(at)[0]
    np.testing.assert_allclose(np.sort(chart_values(heat, "cka")), np.sort(np.array(stored["cross"]).ravel()))


@pytest.mark.slow
def test_the_default_first_open_compares_the_bundled_pair_on_1000_images(bundled_pair):
    start = time.perf_counter()
    at = open_app()
    first = time.perf_counter() - start
    assert_clean(at)
    assert at.selectbox(key="sb_a").value == DEFAULT_A and at.selectbox(key="sb_b").value == DEFAULT_B
    assert at.multiselect(key="sb_classes").value == list(range(10))
    assert at.radio(key="sb_estimator").value == "debiased" and at.radio(key="sb_kernel").value == "linear"
    assert any("1,000 test images (10 classes × 100" in c.value for c in at.caption)
    start = time.perf_counter()
    visit(at, "similarity")
    again = time.perf_counter() - start
    assert_clean(at)
    print(f"\nfirst full result {first:.1f} s, same choices on another page {again:.2f} s (real pair: {bundled_pair})")


def test_a_public_server_refuses_file_paths_from_a_link(bundled_pair, tiny_specs, monkeypatch):
    monkeypatch.setenv("CKA_LENS_DISABLE_FILE_SPECS", "1")
    at = open_app(SMALL | {"b": tiny_specs["b"]})
    assert [shown(e.value) for e in at.error] == [
        f"Model B ({tiny_specs['b']}) could not be loaded: This server does not load file: paths; upload the "
        "checkpoint on the Models page instead."
    ]


def test_too_few_minibatches_for_an_interval_are_said_on_screen(tiny_specs):
    pair = {"a": tiny_specs["a"], "b": tiny_specs["b"], "per_class": "10"}
    at = visit(open_app(pair | {"batch": "50"}), "similarity")  # 100 images: 2 minibatches
    assert_clean(at)
    assert any("No 95% interval is drawn" in i.value and "at most 20 images" in i.value for i in at.info)
    at = visit(open_app(pair | {"batch": "20"}), "similarity")  # 5 minibatches: an interval
    assert not any("No 95% interval" in i.value for i in at.info)


def test_the_training_page_compares_the_bundled_series_snapshot_by_snapshot(nets, tmp_path):
    runs = bundled_series()
    a = next((s for s in runs if s.method == "simclr"), None)
    b = next((s for s in runs if s.method == "supervised"), None)
    if a is None or b is None:
        pytest.skip("no bundled SimCLR and supervised runs with snapshots here")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"per_class": "10", "batch": "50"})  # 100 images: the page's own default follows (10)
    at.switch_page("pages/training.py").run()
    assert_clean(at)
    assert at.number_input(key="training_per_class").value == 10
    pairing = at.dataframe[0].value
    assert pairing["A"].tolist() == [s.label for s in a.snapshots]
    assert pairing["B"].tolist() == [b.snapshots[j].label for j in pair_by_progress(a, b)]
    if "epoch 10" in pairing["A"].tolist() and b.length == 18:  # 20% of SimCLR's 50 epochs meets 4 of 18 (22%)
        assert pairing.set_index("A").loc["epoch 10", "B"] == "epoch 4"
    cross, *others = chart_specs(at)
    frame = next(f for f in cross["data"].values() if "cka" in f)
    layers = [name for name, _ in load_model(a.snapshots[0].spec).info.layers if name != "logits"]
    assert len(frame) == len(layers) * len(a.snapshots)
    assert set(frame["row"]) == set(layers) and set(frame["col"]) == set(ui.series.column_labels(a))
    assert frame["cka"].notna().all() and frame["cka"].between(0, 1).all()
    assert len(others) == 2 + (a.final is not None) + (b.final is not None)  # two curve panels, a heatmap per final
    said, found, *_ = [m.value for m in at.markdown if m.value.startswith("- ")]
    assert shown(said).splitlines() == [  # the sidebar's default pair kept no snapshots: bundled runs stand in, said
        f"- The sidebar's model {side}, {spec.text}, kept no snapshots while it trained, so series {side} is "
        f"{run.name}, the bundled run of its method ({run.method}), through its {len(run.snapshots)} snapshots."
        for side, spec, run in (("A", DEFAULT_PAIR[0], a), ("B", DEFAULT_PAIR[1], b))
    ] + ["- Compared on 100 CIFAR-10 test images: 10 per class of the sidebar's 10 classes, as the sidebar asks."]
    assert not at.number_input(key="training_per_class").help  # said on the page, not in a tooltip
    lines = found.splitlines()
    assert any(line.startswith("- The last stage's block outputs (layer4) agree across the methods") for line in lines)
    assert any(line.startswith("- B (supervised): ") and "settle" in line for line in lines)
    if a.final is None:
        assert any("has no final network yet" in i.value for i in at.info)

    at.session_state["sb_a"], at.session_state["sb_b"] = a.name, b.name  # runs that kept snapshots: followed, said
    at.run()  # (the same two runs as above, so the same tables, from the cache)
    assert_clean(at)
    said = shown(next(m.value for m in at.markdown if m.value.startswith("- "))).splitlines()
    assert said[:2] == [
        f"- Series {side} is the sidebar's model {side}, {run.name} ({run.method}), through the "
        f"{len(run.snapshots)} snapshots its training kept."
        for side, run in (("A", a), ("B", b))
    ]

    odd = "file:" + str(nets.folder(tmp_path / "odd", nets.make(width=4, num_classes=0), "byol"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)  # a link naming a model of a method no bundled run has
    at.query_params.update({"a": odd, "per_class": "10", "batch": "50"})
    at.switch_page("pages/training.py").run()
    assert_clean(at)
    said = shown(next(m.value for m in at.markdown if m.value.startswith("- "))).splitlines()
    assert said[0] == (
        f"- The sidebar's model A kept no snapshots while it trained, so series A is {a.name} ({a.method}), a bundled "
        f"run that did, through its {len(a.snapshots)} snapshots."  # the page's SimCLR default; a path is never shown
    )
    assert at.dataframe[0].value["A"].tolist() == [s.label for s in a.snapshots]  # the first plan again: cached


def test_your_own_snapshots_are_ordered_by_the_number_in_their_names(nets, tmp_path):
    if not any(s.method == "supervised" for s in bundled_series()):
        pytest.skip("no bundled supervised run with snapshots here")
    specs = {
        k: "file:" + str(nets.folder(tmp_path / f"mine_epoch{k}", nets.make(width=4, seed=k), "simclr"))
        for k in (20, 5)
    }
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"per_class": "10", "batch": "50"})  # as the bundled series' test: B's passes are stored
    at.switch_page("pages/training.py").run()
    at.selectbox(key="series_A").set_value(ui.series.OWN).run()
    assert any("Give series A's snapshots" in i.value for i in at.info)
    at.text_area(key="series_specs_A").input(f"{specs[20]}\nfile:{tmp_path / 'best.pt'}").run()
    assert [shown(e.value) for e in at.error] == [
        "Series A: 'best.pt' carries no number, so its place in training is unknown; "
        "name each snapshot with its epoch or step (ckpt_epoch5.pt, ckpt_epoch20.pt, ...)"
    ]
    at.text_area(key="series_specs_A").input(f"{specs[20]}\n{specs[5]}").run()
    assert_clean(at)
    assert at.dataframe[0].value["A"].tolist() == ["mine_epoch5", "mine_epoch20"]
    assert not any(str(tmp_path) in m.value for m in (*at.markdown, *at.caption))  # no server path on the page
    charts = chart_specs(at)
    assert len(charts) == 3 + 2  # A's final is its epoch-20 snapshot; B is the finished bundled run
    said = shown(next(m.value for m in at.markdown if "Series A is" in m.value))
    assert "- Series A is your own 2 snapshots, trained simclr." in said.splitlines()
    assert charts[3]["spec"]["title"]["text"] == "A (simclr): each snapshot against the final network"  # as Models says
    assert at.dataframe[0].value["A's training done"].tolist() == ["25%", "100%"]  # one format: whole percentages


def test_the_overview_reads_the_pair_against_its_ceilings_and_checks_the_studys_findings(bundled_pair):
    """The bundled pair's registered other seeds give ceilings (one curve each, beside A vs B), a missing one is
    said plainly, the one-line findings quote the ceiling the chart draws, and the findings table has a verdict
    for every finding."""
    at = open_app({"per_class": "10", "batch": "20"})  # 5 minibatches: intervals
    assert_clean(at)
    found = {side: siblings(spec) for side, spec in zip("AB", DEFAULT_PAIR, strict=True)}
    (curve,) = figures(at)
    labels = {"A": "A (simclr)", "B": "B (supervised)"}
    assert set(curve["series"]) - {"A vs B"} == {
        f"{labels[side]} vs another seed" for side, s in found.items() if s.specs
    }
    line = next(m.value for m in at.markdown if "Block outputs, mean over" in m.value)
    captions = [shown(c.value) for c in at.caption]
    for side, s in found.items():
        if s.specs:
            rows = curve[curve["series"] == f"{labels[side]} vs another seed"]
            outputs = rows[[kind(n) == OUTPUT for n in rows["layer"]]]
            assert f"{labels[side]} vs another seed {outputs['value'].mean():.2f}" in line
        else:
            assert f"{labels[side]} vs another seed: none" in line
            note = f"No ceiling for {labels[side]}: {s.note}. The sidebar can name another seed of its method."
            assert note in captions
    if bundled_pair:  # the real pair: B's seed 1 is trained
        assert [str(s) for s in found["B"].specs] == ["bundled:supervised-resnet18-w16-seed1"]
    (table,) = at.table
    rows = table.value
    assert list(rows["finding"]) == list(STUDY)
    assert list(rows["the study reported"]) == list(STUDY.values())
    assert set(rows["verdict"]) <= {HOLDS, FAILS, UNSURE}

    at.selectbox(key="sb_b_seed").set_value("none").run()
    assert_clean(at)
    assert "No ceiling for B (supervised): none was asked for." in " ".join(shown(c.value) for c in at.caption)
    assert at.query_params["b_seed"] == "none"


REFERENCE = re.compile(r"\(reference ([0-9a-f]{8})\)")


def apology_reference(at: AppTest, doing: str) -> str:
    """The reference in the page's one error, checked to be the apology for a failure while `doing`."""
    assert not at.exception, [e.message for e in at.exception]
    [message] = [e.value for e in at.error]
    assert message.startswith(f"Something went wrong on our side while {doing} (reference "), message
    return REFERENCE.search(message).group(1)


def test_a_bug_on_a_page_is_an_apology_with_a_reference_not_its_exception(bundled_pair, monkeypatch, caplog):
    """A fault in what the overview calls escapes the page: the frame shows an apology, the traceback is logged."""

    def broken_analysis(*args: object, **kwargs: object) -> None:
        raise KeyError("/srv/cka-lens/cache/entry")

    monkeypatch.setattr(ui.analysis, "with_ceilings", broken_analysis)
    with caplog.at_level(logging.ERROR, logger="cka_lens"):
        at = open_app(SMALL)
    reference = apology_reference(at, "showing this page")
    assert "KeyError" not in at.error[0].value and "/srv" not in at.error[0].value
    [logged] = [r for r in caplog.records if reference in r.getMessage()]
    assert logged.exc_info[0] is KeyError and "broken_analysis" in caplog.text  # the traceback, under the reference
    assert at.title[0].value == "CKA Lens"  # the frame drew the page up to the fault


def test_a_refusal_a_page_leaves_uncaught_is_shown_as_it_is_and_not_logged(bundled_pair, monkeypatch, caplog):
    refusal = OptionsError("batch size must be at least 4 for the debiased estimator (2 for biased)")

    def refusing_analysis(*args: object, **kwargs: object) -> None:
        raise refusal

    monkeypatch.setattr(ui.analysis, "with_ceilings", refusing_analysis)
    with caplog.at_level(logging.ERROR, logger="cka_lens"):
        at = open_app(SMALL)
    assert not at.exception and [shown(e.value) for e in at.error] == [str(refusal)]
    assert not [r for r in caplog.records if r.name == "cka_lens"]


@pytest.mark.parametrize(
    ("raised", "apology"),
    [
        (ValueError("could not broadcast input array from shape (3,) into shape (4,)"), True),
        (ResultFileError("'run.json' cannot be opened: this is not a CKA Lens result: cross missing"), False),
    ],
)
def test_a_bug_opening_a_result_is_an_apology_and_a_refusal_stays_its_message(
    bundled_pair, monkeypatch, caplog, raised, apology
):
    """Even a plain ValueError from a bug is apologised for; a ResultFileError is the visitor's, shown as it is."""

    def open_result(name: str, data: bytes) -> None:
        raise raised

    monkeypatch.setattr(ui.analysis, "with_ceilings", lambda *args, **kwargs: None)  # the overview computes nothing
    monkeypatch.setattr(ui.opened, "open_result", open_result)
    at = visit(open_app(SMALL), "open_result")
    with caplog.at_level(logging.ERROR, logger="cka_lens"):
        at.file_uploader(key="result_file").upload("run.json", b"{}").run()
    if apology:
        reference = apology_reference(at, "opening the result file")
        assert "broadcast" not in at.error[0].value
        assert [r.exc_info[0] for r in caplog.records if reference in r.getMessage()] == [ValueError]
    else:
        assert [shown(e.value) for e in at.error] == [str(raised)]
        assert not [r for r in caplog.records if r.name == "cka_lens"]  # a refusal is no bug: nothing logged
