"""The model card a training run writes beside its checkpoint."""

from __future__ import annotations

import json
import platform
import re
from dataclasses import asdict
from pathlib import Path

import torch

from core.data import CIFAR10_MEAN, CIFAR10_STD
from models import SNAPSHOT_DIR
from training.precision import bf16_native

SNAPSHOT_BUDGET_MB = 40  # all snapshots in the repository together (tests/models/test_snapshots.py checks it)
_SEED = re.compile(r"-seed(\d+)$")  # NAME-seedK: seed K of the run NAME (seed 0), as the registry reads names


def seed_section(out: str | Path, metrics: dict[str, float]) -> str:
    """For a run NAME-seedK with a finished NAME beside it: its metrics beside seed 0's, measured the same way."""
    folder = Path(out)
    found = _SEED.search(folder.name)
    first = folder.with_name(folder.name[: found.start()]) if found else None
    if first is None or not (first / "config.json").is_file():
        return ""
    theirs = json.loads((first / "config.json").read_text()).get("metrics", {})
    shared = [k for k in metrics if k in theirs]
    if not shared:
        return ""
    rows = "\n".join(f"| {k} | {metrics[k]:.4f} | {theirs[k]:.4f} | {metrics[k] - theirs[k]:+.4f} |" for k in shared)
    return f"""
Beside seed 0 of the same recipe (`bundled:{first.name}`), measured the same way:

| metric | seed {found.group(1)} | seed 0 | difference |
|---|---|---|---|
{rows}
"""


def snapshot_section(config, log) -> str:
    """The card's Snapshots section: which epochs were kept, their size on disk and the quick metrics at each."""
    folder = Path(config.out) / SNAPSHOT_DIR
    files = {k: folder / f"epoch-{k}.safetensors" for k in config.snapshots}
    kept = [k for k, path in files.items() if path.is_file()]
    if not kept:
        return ""
    sizes = [files[k].stat().st_size / 1e6 for k in kept]
    at = {e["epoch"]: e for e in log if e.get("epoch") in kept}
    names = sorted({key for k in kept for key in at.get(k, {}) if key not in ("epoch", "loss", "seconds")})
    rows = "\n".join(
        f"| {k} | {at.get(k, {}).get('loss', '-')} | "
        + " | ".join(f"{at[k][n]:.4f}" if n in at.get(k, {}) else "-" for n in names)
        + f" | {size:.2f} |"
        for k, size in zip(kept, sizes, strict=True)
    )
    return f"""
## Snapshots
Float16 copies of the network after epochs {", ".join(map(str, kept))} of {config.epochs}, loadable as
`bundled:{Path(config.out).name}@epoch-K` and compared over training on the app's Training page and by
`python -m cli training`. `snapshots/config.json` (training writes it when it starts) gives their architecture,
method, normalisation and the run's length, so they load before the final network exists. Size: {sum(sizes):.1f} MB
for {len(kept)} snapshots; all snapshots in the repository together stay under {SNAPSHOT_BUDGET_MB} MB. Quick
metrics at each (the first 2,000 test images; for SimCLR a kNN bank of 10,000 training images):

| epoch | loss | {" | ".join(names)} | MB |
|---|---|{"---|" * len(names)}---|
{rows}
"""


def model_card(config, arch, metrics, log, command, source, device) -> str:
    """The card: what the network is, the exact command, the recipe and what was measured."""
    epochs = [e for e in log if "epoch" in e]
    notes = "".join(f"\n- {e['note']}" for e in log if "note" in e) + ("\n" if any("note" in e for e in log) else "")
    hours = sum(e["seconds"] for e in epochs) / 3600
    recipe = "\n".join(f"| {k} | {v} |" for k, v in asdict(config).items() if k not in ("out", "data_dir", "device"))
    measured = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items())
    curve = "\n".join(f"| {e['epoch']} | {e['loss']} | {e['seconds']} |" for e in epochs)
    simclr = config.objective == "simclr"
    kind = "SimCLR (contrastive, NT-Xent)" if simclr else "supervised (cross-entropy)"
    output = (
        "The projector was dropped: the network returns pooled backbone features."
        if simclr
        else "The network returns class logits."
    )
    how = (
        "kNN: k=200, cosine similarity, votes weighted by exp(sim/0.1), bank = 50,000 training images. "
        "Linear probe: multinomial logistic regression (L-BFGS) on standardised pooled features."
        if simclr
        else "Accuracy of the argmax of the logits on the 10,000 test images, unaugmented."
    )
    precision = "bf16 autocast" if bf16_native(device) else "float32"
    where = f"{device.type} ({platform.processor() or platform.machine()}, {precision})"
    return f"""---
library_name: cka-lens
tags: [cifar10, resnet, {config.objective}]
datasets: [cifar10]
---
# {arch.name} trained {kind} on CIFAR-10

A CIFAR-stem {arch.name} (3x3 stride-1 conv1, no max-pool, first-stage width {arch.width}) trained by CKA Lens
with `python -m cli train`. {output}

## Exact command
```
{command}
```

## Measured (CKA Lens's own evaluation, full CIFAR-10 test split)
| metric | value |
|---|---|
{measured}

{how}
{seed_section(config.out, metrics)}{snapshot_section(config, log)}
## Recipe
| setting | value |
|---|---|
{recipe}
| peak lr used | {config.peak_lr()} |

Input normalisation: mean {CIFAR10_MEAN}, std {CIFAR10_STD} (training-split statistics).
Data: CIFAR-10 training split from `{Path(source).name}` (Krizhevsky 2009).
Trained on {where}, {hours:.2f} h in all, torch {torch.__version__}.

## Loss per epoch{notes}
| epoch | loss | seconds |
|---|---|---|
{curve}
"""
