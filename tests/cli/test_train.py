"""`python -m cli train`'s arguments: what reaches the training run, and one-line refusals (no training here)."""

from __future__ import annotations

import dataclasses
import sys

import pytest

import training.train
from cli.main import build_parser, main
from training.train import TrainConfig

REQUIRED = ["--objective", "simclr", "--out", "o"]


@pytest.fixture
def runs(monkeypatch) -> list[tuple[TrainConfig, str]]:
    """What `train` is called with, instead of training."""
    calls: list[tuple[TrainConfig, str]] = []
    monkeypatch.setattr(training.train, "train", lambda config, command: calls.append((config, command)))
    return calls


def test_the_arguments_become_the_training_config(runs, monkeypatch):
    argv = ["train", "--objective", "simclr", "--out", "runs/x", "--arch", "34", "--width", "8", "--epochs", "3"]
    argv += ["--batch-size", "64", "--lr", "0.1", "--seed", "2", "--device", "cpu", "--threads", "1"]
    argv += ["--snapshots", "2,1"]
    monkeypatch.setattr(sys, "argv", ["cli", *argv])
    assert main(argv) == 0
    ((config, command),) = runs
    assert config == TrainConfig(
        objective="simclr",
        out="runs/x",
        depth=34,
        width=8,
        epochs=3,
        batch_size=64,
        lr=0.1,
        seed=2,
        device="cpu",
        threads=1,
        snapshots=(1, 2),
    )
    assert command == "python -m cli " + " ".join(argv)


def test_the_defaults_are_the_bundled_recipe(runs):
    assert main(["train", "--objective", "supervised", "--out", "o"]) == 0
    ((config, _),) = runs
    assert config == TrainConfig(objective="supervised", out="o")  # the parser's defaults are the recipe's


def test_every_argument_is_a_training_setting():
    args = build_parser().parse_args(["train", *REQUIRED])
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(vars(args)) - {"command", "func"} <= names


@pytest.mark.parametrize(("text", "epochs"), [("5", (5,)), ("10,5,5", (5, 10)), (" 3 , 1 ,", (1, 3)), ("", ())])
def test_snapshot_epochs_are_sorted_and_deduplicated(text, epochs):
    args = build_parser().parse_args(["train", *REQUIRED, "--snapshots", text])
    assert args.snapshots == epochs


def test_a_command_with_spaces_is_quoted_so_it_can_be_run_again(runs, monkeypatch):
    argv = ["train", "--objective", "simclr", "--out", "my runs/a"]
    monkeypatch.setattr(sys, "argv", ["cli", *argv])
    assert main(argv) == 0
    assert runs[0][1] == "python -m cli train --objective simclr --out 'my runs/a'"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([*REQUIRED, "--snapshots", "1,x"], "'1,x' is not a comma-separated list of epochs"),
        (["--objective", "byol", "--out", "o"], "argument --objective: invalid choice: 'byol'"),
        ([*REQUIRED, "--arch", "20"], "argument --arch: invalid choice: 20"),
        (["--out", "o"], "the following arguments are required: --objective"),
        (["--objective", "simclr"], "the following arguments are required: --out"),
        ([*REQUIRED, "--width", "wide"], "argument --width: invalid int value: 'wide'"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(runs, capsys, extra, message):
    assert main(["train", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert runs == []
