"""`python -m cli training`: a series' CKA over training, the library's numbers, one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cli.main import main
from core.data import CIFAR10_MEAN, CIFAR10_STD, SubsetSpec, load_subset
from core.options import AnalysisOptions
from core.pipeline import compare
from models import load_model
from models.folder_format import save_folder, save_snapshot, save_snapshot_config

SMALL = ["--per-class", "6", "--batch-size", "30"]


def test_a_series_of_files_is_ordered_paired_and_gives_the_librarys_numbers(nets, tmp_path, capsys):
    def saved(name: str, seed: int, method: str) -> str:
        net = nets.make(width=4, num_classes=0 if method == "simclr" else 10, seed=seed)
        return "file:" + str(nets.folder(tmp_path / name, net, method))

    a = [saved("simclr_epoch20", 1, "simclr"), saved("simclr_epoch5", 2, "simclr")]  # given out of order
    b = [saved("supervised_epoch1", 3, "supervised"), saved("supervised_epoch3", 4, "supervised")]
    out, csv = tmp_path / "t.json", tmp_path / "t.csv"
    assert main(["training", "--a", *a, "--b", *b, "--out", str(out), "--csv", str(csv), *SMALL]) == 0
    assert "A simclr_epoch5 (25%) with B supervised_epoch1 (33%)" in capsys.readouterr().err
    data = json.loads(out.read_text())
    assert [s["label"] for s in data["series_a"]["snapshots"]] == ["simclr_epoch5", "simclr_epoch20"]
    assert [p["b"] for p in data["pairing"]] == ["supervised_epoch1", "supervised_epoch3"]
    options = AnalysisOptions(batch_size=30, invariance=False, probes=False, permutations=0)
    subset = load_subset(SubsetSpec(per_class=6))
    ref = compare(load_model(b[0]), load_model(a[1]), subset, options, torch.device("cpu"))
    assert data["layers"] == list(ref.matched)
    np.testing.assert_allclose(np.array(data["cross"], dtype=float)[:, 0], ref.matched_cka, atol=1e-9)
    final_a = np.array(data["final_a"], dtype=float)
    np.testing.assert_allclose(final_a[:, 1], 1.0, atol=1e-9)  # the last snapshot is the final network
    assert (final_a[:, 0] < 1 - 1e-3).all()  # another network's layers are not identical to it
    assert len(csv.read_text().splitlines()) == 1 + len(ref.matched) * (2 + 2 + 2)


def test_a_bundled_run_still_training_is_compared_without_its_final(nets, weights_dir, tmp_path):
    for name, method, epochs in (("simclr-run", "simclr", (2, 5)), ("supervised-run", "supervised", (1, 4))):
        net = nets.make(width=4, num_classes=0 if method == "simclr" else 10)
        meta = {"method": method, "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}
        save_snapshot_config(net.config, meta, 10, weights_dir / name)
        for k in epochs:
            save_snapshot(net, weights_dir / name, k, {"epoch": k})
        if method == "supervised":
            save_folder(net, net.config, meta, weights_dir / name)
    out = tmp_path / "t.json"
    assert (
        main(["training", "--a", "bundled:simclr-run", "--b", "bundled:supervised-run", "--out", str(out), *SMALL]) == 0
    )
    data = json.loads(out.read_text())
    assert data["final_a"] is None and data["series_a"]["final"] is None
    assert [p["b"] for p in data["pairing"]] == ["epoch 1", "epoch 4"]  # 20% -> 10%; 50% -> 40%
    final_b = np.array(data["final_b"], dtype=float)  # same weights as the final, in float16
    assert final_b.shape == (len(data["layers"]), 2) and (final_b > 0.999).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--a", "file:x/best.pt", "file:x/ckpt_epoch2.pt", "--b", "file:y_epoch1.pt"], "'best.pt' carries no number"),
        (["--a", "bundled:no-such-run", "--b", "file:y_epoch1.pt"], "no bundled run 'no-such-run' with snapshots"),
        (["--a", "file:a_epoch1.pt", "file:b_epoch1.pt", "--b", "file:y_epoch1.pt"], "both carry the number 1"),
    ],
)
def test_a_series_that_cannot_be_read_is_one_line_and_status_2(args, message, tmp_path, capsys):
    assert main(["training", *args, "--out", str(tmp_path / "t.json"), *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1
