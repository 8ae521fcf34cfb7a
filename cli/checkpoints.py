"""`python -m cli list`, `inspect` and `publish`: the checkpoints CKA Lens knows, what it makes of one, sharing one."""

from __future__ import annotations

import argparse
from pathlib import Path

from models import (
    CheckpointError,
    ModelInfo,
    ModelSpec,
    NamedArch,
    load_model,
    normalisation_name,
    publish_folder,
    registry_entries,
)


def model_spec(text: str) -> ModelSpec:
    """A SPEC argument, parsed where it enters; a bad one is the parser's one-line error with the spec's message."""
    try:
        return ModelSpec.parse(text)
    except CheckpointError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parsers(sub) -> None:
    ls = sub.add_parser("list", help="list bundled and Hub checkpoints with their metadata")
    ls.set_defaults(func=list_checkpoints)
    i = sub.add_parser("inspect", help="load one checkpoint and print what CKA Lens made of it, with the evidence")
    i.add_argument(
        "spec", type=model_spec, help="bundled:NAME, hub:OWNER/REPO, file:PATH; add #pool=yes|no,padding=1|2,norm=NAME"
    )
    i.set_defaults(func=inspect)
    p = sub.add_parser("publish", help="upload a checkpoint folder to a Hugging Face Hub model repo")
    p.add_argument("folder", help="folder with model.safetensors + config.json (+ README.md)")
    p.add_argument("repo_id", help="OWNER/REPO on the Hub (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.set_defaults(func=publish)


def list_checkpoints(args: argparse.Namespace) -> int:
    """Print the registry as a table: bundled checkpoints first (they work offline), then the Hub's."""
    rows = [("spec", "method", "arch", "stem", "classes", "accuracy", "mean / std", "description")]
    for e in registry_entries():
        accuracy = f"{e.reported_accuracy:.4f}" if e.reported_accuracy is not None else "-"
        norm = f"{_triple(e.mean)} / {_triple(e.std)}"
        arch = e.arch
        rows.append((e.spec.text, e.method, arch.name, arch.stem, str(arch.num_classes), accuracy, norm, e.description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    if not any(e.spec.source == "bundled" for e in registry_entries()):
        print("(no bundled checkpoints finished yet: `python -m cli train` writes them to models/weights)")
    return 0


def inspect(args: argparse.Namespace) -> int:
    """Print a loaded network's card: architecture, method, normalisation, measured accuracy, evidence, notes."""
    info = load_model(args.spec).info
    print(describe(info))
    for label, value, images in info.calibration.scores if info.calibration else ():
        print(f"  candidate  {label:<40} {value:.1%} on {images} images")
    for note in info.notes:
        print(f"  note  {note}")
    return 0


def describe(info: ModelInfo) -> str:
    """One line: what was loaded and how it was measured (also printed by `compare` for each model)."""
    arch = info.arch
    measured = info.calibration.summary if info.calibration else "not measured (no CIFAR-10 test images)"
    if isinstance(arch, NamedArch):  # an architecture by name: its input form, no CIFAR stem
        line = f"{info.source}: {info.method} {arch.name}, input {info.input_config.text}; accuracy not measured"
    else:
        line = (
            f"{info.source}: {info.method} {arch.name}, {info.stem} stem (padding {arch.stem_padding}), "
            f"normalisation {normalisation_name(info.mean, info.std)}; {measured}"
        )
    if info.calibration and info.calibration.warning:
        line += f"\n  WARNING: {info.calibration.warning}"
    return line


def _triple(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:.4f}" for v in values)


def publish(args: argparse.Namespace) -> int:
    """Upload a checkpoint folder to the Hub (needs a token with write access and the network)."""
    url = publish_folder(Path(args.folder), args.repo_id, private=args.private)
    print(f"published {args.folder} to {args.repo_id}: {url}")
    return 0
