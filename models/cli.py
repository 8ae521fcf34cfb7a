"""`python -m models`: train our checkpoints, list known ones, publish one to the Hub."""

from __future__ import annotations

import argparse
import shlex
import sys


def _train(args: argparse.Namespace) -> int:
    from models.train import TrainConfig, train

    fields = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    train(TrainConfig(**fields), "python -m models " + shlex.join(sys.argv[1:]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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
    t.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
