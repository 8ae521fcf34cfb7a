"""`python -m cli train`: train a SimCLR or supervised CIFAR ResNet, resumably, with a model card."""

from __future__ import annotations

import argparse
import shlex
import sys

from cli.errors import writing


def _epochs(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of epochs") from None


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a SimCLR or supervised CIFAR ResNet (resumable)")
    t.add_argument("--objective", choices=("simclr", "supervised"), required=True)
    t.add_argument("--out", required=True, help="checkpoint folder (resumes from its train_state.pt)")
    t.add_argument("--arch", dest="depth", type=int, default=18, choices=(18, 34, 50), help="ResNet depth")
    t.add_argument("--width", type=int, default=16)
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=0.0, help="peak lr; 0 = the recipe's")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data-dir", default=None)
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, default=0)
    t.add_argument(
        "--snapshots",
        type=_epochs,
        default=(),
        metavar="K,K,...",
        help="keep a float16 copy after these epochs (loadable as bundled:NAME@epoch-K)",
    )
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from training.train import TrainConfig, train  # torch and the data load only when training

    fields = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    with writing(args.out):  # the checkpoint folder: its states, snapshots, weights and card
        train(TrainConfig(**fields), "python -m cli " + shlex.join(sys.argv[1:]))
    return 0
