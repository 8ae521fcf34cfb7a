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


def _list(args: argparse.Namespace) -> int:
    """Print the registry as a table: bundled checkpoints first (they work offline), then the Hub's."""
    from models.registry import registry_entries

    rows = [("spec", "method", "arch", "stem", "classes", "accuracy", "mean / std", "description")]
    for e in registry_entries():
        accuracy = f"{e.reported_accuracy:.4f}" if e.reported_accuracy is not None else "-"
        norm = f"{_triple(e.mean)} / {_triple(e.std)}"
        arch = e.arch
        rows.append((e.spec, e.method, arch.name, arch.stem, str(arch.num_classes), accuracy, norm, e.description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    if not any(row[0].startswith("bundled:") for row in rows):
        print("(no bundled checkpoints finished yet: `python -m models train` writes them to models/weights)")
    return 0


def _triple(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:.4f}" for v in values)


def _publish(args: argparse.Namespace) -> int:
    """Upload a checkpoint folder to the Hub (needs a token with write access and the network)."""
    from pathlib import Path

    from models.hub import publish_folder

    url = publish_folder(Path(args.folder), args.repo_id, private=args.private)
    print(f"published {args.folder} to {args.repo_id}: {url}")
    return 0


def _epochs(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of epochs") from None


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
    t.add_argument("--snapshots", type=_epochs, default=(), metavar="K,K,...",
                   help="keep a float16 copy after these epochs (loadable as bundled:NAME@epoch-K)")
    t.set_defaults(func=_train)
    ls = sub.add_parser("list", help="list bundled and Hub checkpoints with their metadata")
    ls.set_defaults(func=_list)
    p = sub.add_parser("publish", help="upload a checkpoint folder to a Hugging Face Hub model repo")
    p.add_argument("folder", help="folder with model.safetensors + config.json (+ README.md)")
    p.add_argument("repo_id", help="OWNER/REPO on the Hub (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.set_defaults(func=_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; a CheckpointError is one line on stderr and exit code 2 (as argparse errors are)."""
    from models.errors import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
