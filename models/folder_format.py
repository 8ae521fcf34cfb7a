"""The folder format of our checkpoints: `model.safetensors` + `config.json` (+ a `README.md` card).

config.json holds the ArchConfig fields (depth, width, stem, stem_padding, num_classes) and the
model's metadata (method, mean, std, metrics); the same folder works as a Hub model repo.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from models.resnet import ArchConfig

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_folder(module: nn.Module, arch: ArchConfig, meta: dict, folder: Path) -> None:
    """Write the weights (contiguous, detached) and the config with `meta` (method, mean, std, metrics)."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(arch) | meta, indent=2) + "\n")
