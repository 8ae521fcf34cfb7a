"""Training snapshots: a run's series in order, each snapshot loaded as the network it is, and their size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.data import CIFAR10_MEAN, CIFAR10_STD
from models import CheckpointError, ModelSpec, load_model
from models.folder_format import save_folder, save_snapshot, save_snapshot_config
from models.resnet import ArchConfig
from models.snapshots import bundled_series, bundled_series_named
from training.card import SNAPSHOT_BUDGET_MB

WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "weights"
META = {"method": "simclr", "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}


def running(weights_dir: Path, nets, epochs: tuple[int, ...] = (1, 3), length: int = 10, width: int = 4) -> Path:
    """A run still training: snapshots and snapshots/config.json, no final network yet."""
    folder = weights_dir / "run"
    net = nets.make(width=width, num_classes=0)
    save_snapshot_config(net.config, META, length, folder)
    for k in epochs:
        save_snapshot(net, folder, k, {"epoch": k})
    return folder


def test_a_snapshot_loads_before_its_run_has_a_final_network(weights_dir, nets):
    running(weights_dir, nets)
    loaded = load_model("bundled:run@epoch-3")
    assert loaded.info.method == "simclr" and loaded.info.arch.width == 4 and loaded.info.num_classes == 0
    weights = load_file(weights_dir / "run" / "snapshots" / "epoch-3.safetensors")
    assert torch.equal(loaded.module.conv1.weight, weights["conv1.weight"].float())
    with pytest.raises(CheckpointError, match="no finished bundled checkpoint 'run'"):
        load_model("bundled:run")


def test_a_run_series_is_in_training_order_and_gains_its_final_when_written(weights_dir, nets):
    folder = running(weights_dir, nets, epochs=(10, 2, 5), length=10)
    series = bundled_series_named("run")
    assert [str(s.spec) for s in series.snapshots] == [f"bundled:run@epoch-{k}" for k in (2, 5, 10)]
    assert [s.progress for s in series.snapshots] == [0.2, 0.5, 1.0]
    assert series.final is None and "no final network yet" in series.rule and series.method == "simclr"
    net = nets.make(width=4, num_classes=0)
    save_folder(net, net.config, META, folder)
    assert bundled_series_named("run").final == ModelSpec("bundled", "run")
    assert [s.name for s in bundled_series()] == ["bundled:run"]


def test_snapshots_without_any_config_are_refused_with_the_reason(weights_dir, nets):
    folder = running(weights_dir, nets)
    (folder / "snapshots" / "config.json").unlink()
    with pytest.raises(
        CheckpointError, match="Neither snapshots/config.json nor config.json says the architecture"
    ) as no:
        load_model("bundled:run@epoch-1")
    assert "did not record the architecture" in no.value.visitor and "config.json" not in no.value.visitor
    with pytest.raises(CheckpointError, match="does not say how many epochs"):
        bundled_series_named("run")
    assert bundled_series() == []  # listing skips it rather than failing


def test_a_snapshot_is_never_loaded_as_another_network(weights_dir, nets):
    folder = running(weights_dir, nets)
    save_snapshot_config(ArchConfig(depth=18, width=8, num_classes=0), META, 10, folder)  # the config says width 8
    with pytest.raises(CheckpointError, match="holds a resnet18-w4 .* not the resnet18-w8 its config names"):
        load_model("bundled:run@epoch-1")


def test_an_unknown_run_or_snapshot_names_what_exists(weights_dir, nets):
    running(weights_dir, nets)
    with pytest.raises(CheckpointError, match="its snapshots: bundled:run@epoch-1, bundled:run@epoch-3"):
        load_model("bundled:run@epoch-2")
    with pytest.raises(
        CheckpointError, match="no bundled run 'other' with snapshots; runs with snapshots: bundled:run"
    ):
        bundled_series_named("other")


def test_the_repositorys_snapshots_stay_within_their_budget_and_load_as_their_runs_networks():
    files = sorted(WEIGHTS.glob("*/snapshots/*.safetensors"))
    total_mb = sum(p.stat().st_size for p in files) / 1e6
    assert total_mb <= SNAPSHOT_BUDGET_MB, f"{len(files)} snapshots take {total_mb:.1f} MB"
    for series in bundled_series():
        last = load_model(series.snapshots[-1].spec)
        assert last.info.method == series.method and all(
            v.dtype == torch.float32 for v in last.module.state_dict().values() if v.is_floating_point()
        )
    assert {p.parent.parent.name for p in files} <= {s.name.removeprefix("bundled:") for s in bundled_series()}
