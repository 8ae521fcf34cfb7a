"""The model card a training run writes: the measured numbers, the command, the recipe and the snapshots."""

from __future__ import annotations

import pytest
import torch

from models.folder_format import save_snapshot
from models.resnet import ArchConfig
from training import card
from training.card import SNAPSHOT_BUDGET_MB, model_card, snapshot_section
from training.train import TrainConfig

LOG = [
    {"epoch": 1, "loss": 5.125, "seconds": 1800.0},
    {"note": "resumed after epoch 1 with --epochs 2"},
    {"epoch": 2, "loss": 4.875, "seconds": 5400.0},
]


def write(tmp_path, objective: str, metrics: dict[str, float], monkeypatch, bf16: bool = False) -> str:
    monkeypatch.setattr(card, "bf16_native", lambda device: bf16)
    config = TrainConfig(objective=objective, out=str(tmp_path / "run"), width=4, epochs=2, batch_size=128)
    arch = ArchConfig(depth=18, width=4, num_classes=10 if objective == "supervised" else 0)
    command = f"python -m cli train --objective {objective} --out run --width 4"
    return model_card(config, arch, metrics, LOG, command, "/data/cifar10/train.npz", torch.device("cpu"))


def test_the_card_holds_the_measured_numbers_the_command_and_the_curve(tmp_path, monkeypatch):
    text = write(tmp_path, "simclr", {"knn_accuracy": 0.61234, "linear_probe_accuracy": 0.7}, monkeypatch)
    assert "| knn_accuracy | 0.6123 |" in text and "| linear_probe_accuracy | 0.7000 |" in text
    assert "```\npython -m cli train --objective simclr --out run --width 4\n```" in text
    assert "| 1 | 5.125 | 1800.0 |" in text and "| 2 | 4.875 | 5400.0 |" in text
    assert "- resumed after epoch 1 with --epochs 2" in text
    assert "2.00 h in all" in text  # 1800 s + 5400 s
    assert "# resnet18-w4 trained SimCLR (contrastive, NT-Xent) on CIFAR-10" in text
    assert "The projector was dropped" in text and "kNN: k=200" in text
    assert "from `train.npz`" in text


def test_the_recipe_lists_the_settings_but_not_where_files_are(tmp_path, monkeypatch):
    text = write(tmp_path, "supervised", {"test_accuracy": 0.9}, monkeypatch)
    assert "| width | 4 |" in text and "| batch_size | 128 |" in text and "| temperature | 0.5 |" in text
    assert "| out |" not in text and "| data_dir |" not in text and "| device |" not in text
    assert "| peak lr used | 0.1 |" in text  # 0.2 per 256 images, 128 images per step
    assert "supervised (cross-entropy)" in text and "The network returns class logits." in text
    assert "tags: [cifar10, resnet, supervised]" in text


@pytest.mark.parametrize(("bf16", "precision"), [(True, "bf16 autocast"), (False, "float32")])
def test_the_card_says_the_precision_trained_in(tmp_path, monkeypatch, bf16, precision):
    assert f", {precision})" in write(tmp_path, "simclr", {}, monkeypatch, bf16=bf16)


def test_the_snapshot_section_lists_the_kept_epochs_their_metrics_and_size(tmp_path, nets):
    config = TrainConfig(objective="supervised", out=str(tmp_path / "run"), epochs=4, snapshots=(1, 2, 3))
    net = nets.make(width=4)
    paths = [save_snapshot(net, tmp_path / "run", k, {}) for k in (1, 3)]  # epoch 2's never came
    log = [{"epoch": 1, "loss": 2.5, "test_accuracy": 0.25, "seconds": 1}, {"epoch": 3, "loss": 1.5, "seconds": 1}]
    text = snapshot_section(config, log)
    size = sum(p.stat().st_size for p in paths) / 1e6
    assert "after epochs 1, 3 of 4" in text and "`bundled:run@epoch-K`" in text
    assert f"Size: {size:.1f} MB\nfor 2 snapshots" in text and f"under {SNAPSHOT_BUDGET_MB} MB" in text
    assert "| epoch | loss | test_accuracy | MB |" in text
    assert f"| 1 | 2.5 | 0.2500 | {paths[0].stat().st_size / 1e6:.2f} |" in text
    assert f"| 3 | 1.5 | - | {paths[1].stat().st_size / 1e6:.2f} |" in text


def test_no_snapshot_section_without_snapshot_files(tmp_path):
    config = TrainConfig(objective="simclr", out=str(tmp_path / "run"), snapshots=(1, 2))
    assert snapshot_section(config, []) == ""
