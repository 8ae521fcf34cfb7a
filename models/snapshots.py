"""Our runs' training snapshots: each folder's series in training order, and one snapshot loaded as what it is.

A snapshot (`bundled:NAME@epoch-K`, `snapshots/epoch-K.safetensors`) holds weights only. What they cannot say
(method, input normalisation, stem padding) and the run's length come from `snapshots/config.json`, which
training writes when it starts, so snapshots load while the run goes on; a folder without that file falls back
to its final config.json. The architecture is read from the weights by the one loader, strictly, and must be the
one the config names: a snapshot never loads as another network.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from core.series import Series, Snapshot
from models import registry
from models.checkpoint import MAX_CONFIG_BYTES, load_path_bytes, parse_config
from models.errors import ArchitectureError, CheckpointError
from models.folder_format import CONFIG_FILE, RUN_EPOCHS, SNAPSHOT_DIR, WEIGHTS_FILE, arch_from_config
from models.loaded import LoadedModel
from models.spec import ModelSpec

_SNAPSHOT = re.compile(r"^epoch-(\d+)$")


def snapshot_config(folder: Path) -> Path | None:
    """The config that describes a folder's snapshots: snapshots/config.json, else the final config.json."""
    return next((p for p in (folder / SNAPSHOT_DIR / CONFIG_FILE, folder / CONFIG_FILE) if p.is_file()), None)


def _read(path: Path) -> tuple[dict, bytes]:
    """A config file's JSON object and bytes; CheckpointError when it is too big or not a JSON object."""
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"'{path.name}' of {path.parent.name} is over 1 MB, too big for a config.json.")
    data = path.read_bytes()
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        config = None
    if not isinstance(config, dict):
        raise CheckpointError(f"'{path.name}' of {path.parent.name} is not a JSON object; fix or remove it.")
    return config, data


def epochs_kept(folder: Path) -> list[int]:
    """The epochs after which the folder's run kept a snapshot, in order."""
    found = (_SNAPSHOT.match(p.stem) for p in (folder / SNAPSHOT_DIR).glob("epoch-*.safetensors"))
    return sorted(int(m.group(1)) for m in found if m)


def load_snapshot(folder: Path, snapshot: str, spec: str) -> LoadedModel:
    """The network of `snapshots/{snapshot}.safetensors`, with its run's method and normalisation, checked to be
    the architecture its config names. Every failure is a CheckpointError."""
    name = folder.name
    path = folder / SNAPSHOT_DIR / f"{snapshot}.safetensors"
    if not _SNAPSHOT.match(snapshot) or not path.is_file():
        have = ", ".join(f"bundled:{name}@epoch-{k}" for k in epochs_kept(folder)) or "none"
        raise CheckpointError(f"'{spec}' names no snapshot of {name}; its snapshots: {have}.")
    config_path = snapshot_config(folder)
    if config_path is None:
        raise CheckpointError(
            f"The snapshots of {name} cannot be loaded: the run did not record the architecture, method and input "
            "normalisation they were trained with.",
            operator="Neither snapshots/config.json nor config.json says the architecture (training writes the first "
            "when it starts).",
        )
    config, data = _read(config_path)
    hints = parse_config(data, f"{name}/{config_path.relative_to(folder)}")
    loaded = load_path_bytes(path, spec, replace(hints, metrics={}))
    try:
        expected = arch_from_config(config)
    except (TypeError, ValueError, ArchitectureError) as err:
        raise CheckpointError(f"The architecture in {name}'s {config_path.name} cannot be read ({err}).") from None
    if loaded.info.arch != expected:
        raise CheckpointError(
            f"'{spec}' holds a {loaded.info.arch.name} ({loaded.info.arch}), not the {expected.name} its config "
            f"names ({expected}); it was not loaded."
        )
    return loaded


def bundled_series_named(name: str) -> Series:
    """The series of the folder NAME in models/weights, its snapshots in training order and its final network if
    the run has finished. Raises CheckpointError saying what is missing."""
    folder = Path(registry.WEIGHTS_DIR) / name
    epochs = epochs_kept(folder) if re.match(r"^[\w.\-]+$", name) and not name.startswith(".") else []
    if not epochs:
        have = ", ".join(s.name for s in bundled_series()) or "none"
        raise CheckpointError(f"There is no bundled run '{name}' with snapshots; runs with snapshots: {have}.")
    config_path = snapshot_config(folder)
    config = _read(config_path)[0] if config_path else {}
    length = config.get(RUN_EPOCHS)
    if not isinstance(length, int) or length < epochs[-1]:
        raise CheckpointError(
            f"The run {name} does not say how many epochs it trains, so its snapshots cannot be placed in its "
            "training.",
            operator=f"Its snapshots/config.json has no '{RUN_EPOCHS}' of at least {epochs[-1]}.",
        )
    finished = (folder / WEIGHTS_FILE).is_file() and (folder / CONFIG_FILE).is_file()
    rule = f"progress = epoch / {length}, the run's length as its training recorded it; " + (
        f"final network: bundled:{name}" if finished else "no final network yet: the run has not finished"
    )
    return Series(
        name=f"bundled:{name}",
        snapshots=tuple(
            Snapshot(ModelSpec("bundled", name, snapshot=f"epoch-{k}"), f"epoch {k}", k, k / length) for k in epochs
        ),
        length=length,
        final=ModelSpec("bundled", name) if finished else None,
        rule=rule,
        method=str(config.get("method", "unknown")),
    )


def bundled_series() -> list[Series]:
    """Every folder of models/weights whose run kept snapshots and says its length; others are skipped."""
    found = []
    for folder in sorted(Path(registry.WEIGHTS_DIR).glob("*/")):
        if epochs_kept(folder):
            try:
                found.append(bundled_series_named(folder.name))
            except CheckpointError:
                continue
    return found
