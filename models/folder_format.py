"""The folder format of our checkpoints: `model.safetensors` + `config.json` (+ a `README.md` card).

config.json holds the ArchConfig fields (depth, width, stem, stem_padding, num_classes) and the
model's metadata (method, mean, std, metrics); the same folder works as a Hub model repo. A run that keeps
snapshots writes `snapshots/config.json` when it starts (the same fields, no metrics, plus the run's length
in epochs), so its snapshots load as the network they are before the final network exists.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from models.resnet import ArchConfig

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
SNAPSHOT_DIR = "snapshots"  # epoch-K.safetensors: the network after training epoch K, in float16
RUN_EPOCHS = "epochs"  # snapshots/config.json: how many epochs the whole run trains (progress = K / epochs)


def _tensors(module: nn.Module, floats: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The state dict detached, contiguous and on the CPU; floating-point tensors cast to `floats` if given."""
    cast = lambda v: v.to(floats) if floats is not None and v.is_floating_point() else v  # noqa: E731
    return {k: cast(v).detach().contiguous().cpu() for k, v in module.state_dict().items()}


def save_folder(module: nn.Module, arch: ArchConfig, meta: dict, folder: Path) -> None:
    """Write the weights (contiguous, detached) and the config with `meta` (method, mean, std, metrics)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(_tensors(module), str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(arch) | meta, indent=2) + "\n")


def save_snapshot_config(arch: ArchConfig, meta: dict, epochs: int, folder: Path) -> Path:
    """Write snapshots/config.json: the architecture, `meta` (method, mean, std) and the run's length in epochs."""
    (folder / SNAPSHOT_DIR).mkdir(parents=True, exist_ok=True)
    path = folder / SNAPSHOT_DIR / CONFIG_FILE
    path.write_text(json.dumps(asdict(arch) | meta | {RUN_EPOCHS: epochs}, indent=2) + "\n")
    return path


def arch_from_config(config: dict) -> ArchConfig:
    """The ArchConfig a config.json describes (its other keys ignored); raises TypeError, ValueError or
    ArchitectureError if malformed."""
    return ArchConfig(**{f.name: config[f.name] for f in fields(ArchConfig) if f.name in config})


def save_snapshot(module: nn.Module, folder: Path, epoch: int, metrics: dict) -> Path:
    """The network after `epoch` in float16 (a quarter of a training state's size), written atomically."""
    (folder / SNAPSHOT_DIR).mkdir(parents=True, exist_ok=True)
    path = folder / SNAPSHOT_DIR / f"epoch-{epoch}.safetensors"
    tmp = path.with_name(path.name + ".tmp")
    metadata = {"format": "pt", "epoch": str(epoch), "metrics": json.dumps(metrics)}
    save_file(_tensors(module, torch.float16), str(tmp), metadata=metadata)
    tmp.replace(path)
    return path
