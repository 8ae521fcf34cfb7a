"""`python -m cli train`: trains, resumes from its last finished epoch, writes a loadable checkpoint and card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from cli.main import main
from models import CheckpointError, ModelSpec, load_model, registry, weights_version
from training.card import seed_section
from training.objectives import lr_at, nt_xent
from training.train import TrainConfig, train


@pytest.fixture
def data_dir(tmp_path):
    """A tiny CIFAR-shaped npz pair: 256 training and 128 test images."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 256), ("test", 128)):
        np.savez(
            tmp_path / f"{split}.npz",
            images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            labels=np.arange(n) % 10,
        )
    return tmp_path


@pytest.mark.parametrize("objective", ["supervised", "simclr"])
def test_train_resume_and_load(objective, data_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    config = TrainConfig(
        objective=objective,
        out=str(out),
        width=4,
        epochs=1,
        batch_size=64,
        data_dir=str(data_dir),
        device="cpu",
        snapshots=(1, 2),
    )
    train(config, "python -m cli train ...")
    first = torch.load(out / "train_state.pt", weights_only=True)
    assert first["epoch"] == 1
    train(TrainConfig(**{**config.__dict__, "epochs": 2}), "python -m cli train ... --epochs 2")
    assert "resuming after epoch 1" in capsys.readouterr().out
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert state["epoch"] == 2 and [e["epoch"] for e in state["log"] if "epoch" in e] == [1, 2]
    assert any("resumed after epoch 1 with --epochs 2" in e.get("note", "") for e in state["log"])
    loaded = load_model(f"file:{out}")
    assert loaded.info.method == objective and loaded.info.arch.width == 4
    metrics = json.loads((out / "config.json").read_text())["metrics"]
    card = (out / "README.md").read_text()
    key = "test_accuracy" if objective == "supervised" else "knn_accuracy"
    assert 0 <= metrics[key] <= 1 and f"| {key} | {metrics[key]:.4f} |" in card
    assert "--epochs 2" in card and "resumed after epoch 1" in card
    x = torch.randn(2, 3, 32, 32)
    for epoch in (1, 2):  # a float16 copy of the shipped network after each snapshot epoch, with its quick metrics
        snapshot = load_file(out / "snapshots" / f"epoch-{epoch}.safetensors")
        assert snapshot.keys() == loaded.module.state_dict().keys()
        assert snapshot["conv1.weight"].dtype == torch.float16
        with safe_open(out / "snapshots" / f"epoch-{epoch}.safetensors", "pt") as f:
            assert json.loads(f.metadata()["metrics"])["epoch"] == epoch
    run_config = json.loads((out / "snapshots" / "config.json").read_text())  # written when the run (re)started
    assert run_config["epochs"] == 2 and run_config["method"] == objective and run_config["width"] == 4
    assert "## Snapshots" in card and "`bundled:run@epoch-K`" in card
    size = sum(p.stat().st_size for p in (out / "snapshots").glob("*.safetensors")) / 1e6
    assert f"Size: {size:.1f} MB\nfor 2 snapshots" in card
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    early = load_model("bundled:run@epoch-1")  # a snapshot loads with its folder's method and normalisation
    snapshot = ModelSpec("bundled", "run", snapshot="epoch-1")
    assert weights_version(snapshot).startswith("epoch-1.safetensors:")  # the app's cache key
    assert early.info.method == objective and early.info.mean == loaded.info.mean and early.info.metrics == {}
    with pytest.raises(CheckpointError, match="its snapshots: bundled:run@epoch-1, bundled:run@epoch-2"):
        load_model("bundled:run@epoch-7")
    final = load_file(out / "snapshots" / "epoch-2.safetensors")["conv1.weight"].float()
    assert torch.allclose(final, loaded.module.conv1.weight, atol=1e-3)  # the last snapshot is the final network
    assert loaded.module(x).shape == (2, 10 if objective == "supervised" else 32)


def test_nt_xent_is_low_for_matching_views_and_high_for_random_ones():
    z = torch.nn.functional.normalize(torch.randn(64, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    matched = nt_xent(torch.cat([z, z]), 0.5)
    shuffled = nt_xent(torch.cat([z, z[torch.randperm(64, generator=torch.Generator().manual_seed(1))]]), 0.5)
    assert matched < shuffled
    assert abs(float(nt_xent(torch.ones(8, 4), 0.5)) - np.log(7)) < 1e-5  # all alike: chance among the 7 others


def test_learning_rate_warms_up_then_decays_to_zero():
    lrs = [lr_at(step, 100, 10, 1.0) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False)) and lrs[-1] < 0.001


def test_a_seed_run_card_shows_its_metrics_beside_seed_0(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"metrics": {"knn_accuracy": 0.6671, "other": 1.0}}))
    section = seed_section(tmp_path / "run-seed1", {"knn_accuracy": 0.6502, "linear_probe_accuracy": 0.7})
    assert "(`bundled:run`)" in section and "| metric | seed 1 | seed 0 | difference |" in section
    assert "| knn_accuracy | 0.6502 | 0.6671 | -0.0169 |" in section
    assert "linear_probe_accuracy" not in section and "other" not in section  # only what both measured
    assert seed_section(tmp_path / "run", {"knn_accuracy": 0.6}) == ""  # seed 0 itself
    assert seed_section(tmp_path / "lone-seed2", {"knn_accuracy": 0.6}) == ""  # no seed 0 beside it


def test_an_architecture_that_cannot_be_built_is_a_refusal_with_exit_2(tmp_path, capsys):
    """ArchitectureError is a LensError: the command line words it as a refusal, not as a bug."""
    assert main(["train", "--objective", "simclr", "--out", str(tmp_path / "run"), "--width", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: width must be >= 1, stem_width and num_classes >= 0"
