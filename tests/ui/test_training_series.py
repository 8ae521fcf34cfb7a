"""The Training page's pieces without a browser: the per-layer curves over training, the pairing, the findings."""

from __future__ import annotations

import numpy as np
import pytest

from core.data import SubsetSpec
from core.errors import ContractError
from core.names import OTHER, OUTPUT
from core.options import DEFAULTS
from core.series import Series, SeriesCurves, SeriesPlan, Snapshot
from ui import charts, series

LAYERS = ("stem", "layer1.0 residual", "layer1.0 output", "layer2.0 output", "layer3.0 output", "layer4.0 output")


def run(name: str, epochs: tuple[int, ...], length: int, method: str, final: bool = True) -> Series:
    snapshots = tuple(Snapshot(f"{name}@epoch-{k}", f"epoch {k}", k, k / length) for k in epochs)
    return Series(name, snapshots, length, name if final else None, "test", method)


def test_progress_curves_draw_one_line_per_layer_of_the_chosen_kinds_over_training():
    matrix = np.array([[0.9, 0.8, np.nan], [0.5, 0.4, 0.3], [0.7, 0.6, 0.5], [0.1, 0.2, 0.3], [0, 0, 0], [1, 1, 1]])
    progress, labels = [0.1, 0.5, 1.0], ["epoch 1", "epoch 5", "epoch 10"]
    chart = charts.progress_curves(matrix, LAYERS, progress, labels, title="t", kinds=(OUTPUT, OTHER))
    spec = chart.to_dict()
    rows = next(rows for rows in spec["datasets"].values() if rows and "cka" in rows[0])
    assert {r["layer"] for r in rows} == set(LAYERS) - {"layer1.0 residual"}
    assert len(rows) == 5 * 3 and {r["progress"] for r in rows} == set(progress)
    assert next(r for r in rows if r["layer"] == "stem" and r["progress"] == 1.0)["cka"] is None  # undefined: no point
    line = spec["layer"][0]
    colour = line["encoding"]["color"]
    assert line["mark"]["type"] == "line" and colour["scale"]["domain"] == [n for n in LAYERS if "res" not in n]
    assert len(set(colour["scale"]["range"])) == 5  # a colour of its own per layer drawn
    assert line["encoding"]["x"]["scale"]["domain"] == [0, 1]
    long = "Across the methods over training: block outputs, stem and pooled"
    title = charts.progress_curves(matrix, LAYERS, progress, labels, title=long).to_dict()["title"]["text"]
    assert " ".join(title) == long and max(map(len, title)) <= charts.HALF_TITLE  # wrapped, never cut
    with pytest.raises(ContractError, match="6 layers and 2 snapshots"):
        charts.progress_curves(matrix, LAYERS, progress[:2], labels[:2], title="t")


def test_the_pairing_table_and_column_labels_say_which_snapshots_meet():
    plan = SeriesPlan.of(run("s", (1, 10, 50), 50, "simclr"), run("v", (1, 4, 18), 18, "supervised"))
    table = series.pairing_table(plan)
    assert table["A"].tolist() == ["epoch 1", "epoch 10", "epoch 50"]
    assert table["B"].tolist() == ["epoch 1", "epoch 4", "epoch 18"]
    assert table["B's training done"].tolist() == ["6%", "22%", "100%"]  # one format, as the columns say it
    assert table["A's training done"].tolist() == ["2%", "20%", "100%"]
    assert series.column_labels(plan.a) == ["2% · epoch 1", "20% · epoch 10", "100% · epoch 50"]


def test_findings_say_which_layers_settle_first_and_when_the_last_stage_parts_ways():
    plan = SeriesPlan.of(
        run("s", (5, 10, 20, 50), 50, "simclr", final=False), run("v", (2, 4, 8, 18), 18, "supervised")
    )
    cross = np.array(
        [
            [0.9, 0.9, 0.9, 0.9],  # stem
            [0.6, 0.5, 0.4, 0.3],  # layer1.0 residual: falls, but less than layer4
            [0.8, 0.8, 0.8, 0.8],
            [0.7, 0.7, 0.7, 0.7],
            [0.6, 0.6, 0.6, 0.6],  # earlier stages' block outputs: mean 0.7
            [0.8, 0.75, 0.5, 0.4],  # layer4 block output: below 0.7 from the third pair (40%) on
        ]
    )
    final_b = np.array(
        [
            [0.97, 0.99, 1, 1],
            [0.5, 0.9, 0.96, 1],
            [0.9, 0.96, 0.99, 1],
            [0.8, 0.9, 0.97, 1],
            [0.8, 0.9, 0.97, 1],
            [0.5, 0.6, 0.8, 1],
        ]
    )
    lines = series.findings(plan, SeriesCurves(LAYERS, cross, None, final_b))
    assert lines[0].startswith("A (simclr) has no final network yet") and "epoch 50, 100% of training" in lines[0]
    assert lines[1] == (
        "B (supervised): stem settles first (CKA ≥ 0.95 with the final network from 11% of training on); "
        "layer4.0 output last (100%)."
    )
    assert lines[2].startswith("The last stage's block outputs (layer4) agree across the methods less than the earlier")
    assert "from 40% of A's training on (0.50 vs 0.70; 0.40 vs 0.70 at 100%); at 20% still 0.75 vs 0.70" in lines[2]
    assert lines[3] == (
        "From the first pair (10%) to the latest (100%), CKA across the methods fell most at layer4.0 output "
        "(0.80 → 0.40)."
    )
    still = SeriesCurves(LAYERS, np.full((6, 4), 0.5), None, None)
    assert "no parting there yet" in series.findings(plan, still)[2]


def test_the_images_line_says_the_count_shown_against_the_sidebars():
    subset = SubsetSpec(per_class=10)
    assert series.images_line(subset, 10, 20) == (
        "Compared on 100 CIFAR-10 test images: 10 per class of the sidebar's 10 classes, as the sidebar asks."
    )
    capped = series.images_line(SubsetSpec(per_class=DEFAULTS.series_per_class), 100, 20)
    assert capped.endswith(
        f"; the sidebar asks for 100 per class, but each of the 20 pairs of snapshots here is an analysis of its "
        f"own, so this page takes {DEFAULTS.series_per_class} per class unless you set more above."
    )
    assert series.images_line(subset, 100, 20).endswith(", as set above; the sidebar asks for 100 per class.")
