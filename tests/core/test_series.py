"""Training series: snapshots ordered by the number in their names, paired by progress, gathered per layer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from core.data import SubsetSpec
from core.errors import SeriesError
from core.options import AnalysisOptions
from core.series import (
    Series,
    SeriesPlan,
    Snapshot,
    pair_by_progress,
    series_curves,
    series_of_files,
    step_in_name,
    to_csv,
    to_json_dict,
)


def run(name: str, epochs: tuple[int, ...], length: int, final: bool = True) -> Series:
    """A series like a bundled run's: snapshots after `epochs` of `length`."""
    snapshots = tuple(Snapshot(f"{name}@epoch-{k}", f"epoch {k}", k, k / length) for k in epochs)
    return Series(name, snapshots, length, name if final else None, "test")


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("ckpt_epoch5.pt", 5),
        ("ckpt_epoch20.pt", 20),
        ("epoch5_resnet18.pt", 5),  # the number after "epoch", not the architecture's
        ("epoch=4-step=1000.ckpt", 4),
        ("run_12.pth", 12),
        ("epoch-7", 7),
        ("snapshot-v3.safetensors", 3),
    ],
)
def test_the_step_is_read_from_the_name(name, step):
    assert step_in_name(name) == step


def test_a_name_without_a_number_is_refused_with_advice():
    with pytest.raises(SeriesError, match="'final.pt' carries no number.*ckpt_epoch5.pt"):
        step_in_name("final.pt")


def test_files_are_ordered_by_number_not_alphabetically():
    files = [("upload:ckpt_epoch20.pt", "ckpt_epoch20.pt"), ("upload:ckpt_epoch5.pt", "ckpt_epoch5.pt")]
    files.append(("upload:ckpt_epoch100.pt", "ckpt_epoch100.pt"))
    series = series_of_files("yours", files)
    assert [s.step for s in series.snapshots] == [5, 20, 100]
    assert [s.progress for s in series.snapshots] == [0.05, 0.2, 1.0]
    assert series.final == "upload:ckpt_epoch100.pt" and series.length == 100


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([("upload:a5.pt", "a5.pt"), ("upload:b5.pt", "b5.pt")], "both carry the number 5"),
        ([("upload:best.pt", "best.pt"), ("upload:e3.pt", "e3.pt")], "'best.pt' carries no number"),
        ([], "has no snapshots"),
        ([("upload:e0.pt", "e0.pt")], "all 0"),
    ],
)
def test_a_series_that_cannot_be_ordered_is_refused(files, message):
    with pytest.raises(SeriesError, match=message):
        series_of_files("yours", files)


def test_the_bundled_runs_pair_at_the_nearest_fraction_of_training():
    simclr = run("s", (1, 2, 5, 10, 20, 35, 50), 50)
    supervised = run("v", (1, 2, 4, 7, 13, 18), 18)
    # by hand: 2% and 4% -> 1/18 (5.6%); 10% -> 2/18; 20% -> 4/18; 40% -> 7/18; 70% -> 13/18; 100% -> 18/18
    assert pair_by_progress(simclr, supervised) == (0, 0, 1, 2, 3, 4, 5)
    assert pair_by_progress(supervised, simclr) == (1, 2, 3, 4, 5, 6)  # 5.6% -> 2/50 (4%); 11% -> 5/50; ...


def test_a_tie_pairs_with_the_earlier_snapshot():
    assert pair_by_progress(run("a", (5,), 10), run("b", (4, 6), 10)) == (0,)


def test_the_plan_lists_each_pair_once():
    plan = SeriesPlan.of(run("s", (1, 2, 10), 50, final=False), run("v", (1, 4, 18), 18))
    assert plan.pairing == (0, 0, 1)
    # three cross pairs; B's final with its three snapshots; A has no final
    assert plan.pairs() == (
        ("v@epoch-1", "s@epoch-1"),
        ("v@epoch-1", "s@epoch-2"),
        ("v@epoch-4", "s@epoch-10"),
        ("v", "v@epoch-1"),
        ("v", "v@epoch-4"),
        ("v", "v@epoch-18"),
    )


def test_series_curves_put_each_pairs_values_in_its_cell_and_write_json_and_csv():
    plan = SeriesPlan.of(run("s", (1, 2, 10), 50), run("v", (1, 4, 18), 18, final=False))
    layers = ("stem", "layer1.0 output", "pooled")
    asked = []

    def result_of(reference: str, other: str):
        asked.append((reference, other))
        code = (hash((reference, other)) % 1000) / 1000  # a value that names the pair
        values = np.array([code, code / 2, np.nan])
        names = layers + ("logits",) if reference.startswith("v") else layers  # B's extra layer is not matched
        return SimpleNamespace(matched=names, matched_cka=np.append(values, 0.5) if len(names) == 4 else values)

    curves = series_curves(plan, result_of)
    assert set(asked) == set(plan.pairs())
    assert curves.layers == layers + ("logits",) and curves.cross.shape == (4, 3)
    for k, j in enumerate(plan.pairing):
        expected = (hash((plan.b.snapshots[j].spec, plan.a.snapshots[k].spec)) % 1000) / 1000
        assert curves.cross[0, k] == expected and curves.cross[1, k] == expected / 2
    assert np.isnan(curves.cross[2]).all() and curves.final_b is None
    assert curves.final_a.shape == (4, 3) and np.isnan(curves.final_a[3]).all()  # A's own results lack logits
    data = json.loads(json.dumps(to_json_dict(plan, curves, SubsetSpec(per_class=5), AnalysisOptions())))
    assert data["final_b"] is None and data["cross"][2] == [None, None, None]
    assert [p["b"] for p in data["pairing"]] == ["epoch 1", "epoch 1", "epoch 4"]
    rows = to_csv(plan, curves).splitlines()
    assert rows[0] == "section,layer,snapshot,progress,compared_with,cka"
    assert len(rows) == 1 + 4 * 3 * 2  # cross and final_a; B has no final
    assert rows[1] == f"cross,stem,epoch 1,0.02,epoch 1,{float(curves.cross[0, 0])!r}"
