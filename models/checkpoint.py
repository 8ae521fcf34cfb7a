"""One loading path for every source: bytes -> format -> state dict -> keys -> architecture -> strict load.

`file:`, `bundled:` and `hub:` specs and uploads all end in `load_bytes`, so an upload and a Hub
download of the same file are checked, normalised and described identically. Uploaded bytes stay in
memory: they are never written to disk.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core import settings
from core.data import CIFAR10_MEAN, CIFAR10_STD
from core.network import RGB
from models.arch_inference import infer_arch, infer_unless_resnet
from models.calibration import calibrate, normalisation_name
from models.digest import weights_digest
from models.errors import CheckpointError
from models.folder_format import CONFIG_FILE, WEIGHTS_FILE
from models.formats import SUPPORTED_TEXT, parse_checkpoint
from models.loaded import LoadedModel, ModelInfo, SourceHints
from models.methods import SELF_SUPERVISED_UNKNOWN, canonical_method
from models.resnet import ArchConfig, build_resnet, resnet_layers
from models.spec import ModelSpec
from models.state_keys import NOT_HEADS, Normalised, as_float32, mismatches, normalise_keys

MAX_CONFIG_BYTES = 1 << 20
SOLO_LEARN_STEM_PADDING = 2  # solo-learn replaces conv1 by Conv2d(3, w, 3, 1, padding=2) for CIFAR
FOLDER_WEIGHT_FILES = (WEIGHTS_FILE, "pytorch_model.bin", "model.pt", "model.pth")
_METHOD = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def check_size(size: int, name: str, max_bytes: int | None) -> None:
    """Refuse a file over the limit before its bytes are read, naming the limit and how to raise it."""
    limit = settings.max_upload_bytes() if max_bytes is None else max_bytes
    variable = settings.MAX_UPLOAD_MB
    if size > limit:
        shown, cap = f"{size / 1e6:.3g} MB", f"{limit / 1e6:g} MB"
        if shown == cap:  # rounding would say "0.2 MB, over the 0.2 MB limit"
            shown, cap = f"{size:,} bytes", f"{limit:,}-byte"
        name = name if len(name) <= 120 else name[:117] + "..."
        raise CheckpointError(
            f"'{name}' is {shown}, over the {cap} limit; use a smaller checkpoint.",
            operator=f"Raise the limit with the environment variable {variable} (e.g. "
            f"{variable}={math.ceil(size / 1e6) + 1}).",
        )


def load_uploaded(data: bytes, filename: str, max_bytes: int | None = None, arch: str | None = None) -> LoadedModel:
    """Load an uploaded checkpoint from memory (never written to disk); `arch` ('timm:NAME'), the architecture its
    weights are for, where a person names one.

    `max_bytes` None means CKA_LENS_MAX_UPLOAD_MB (default 500 MB).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CheckpointError(f"The upload of '{filename}' gave {type(data).__name__}, not bytes; upload it again.")
    check_size(len(data), filename, max_bytes)
    spec = replace(ModelSpec.upload(filename), arch=arch)
    return load_bytes(bytes(data), filename, spec.text, SourceHints(arch=spec.arch))


def load_path(
    path: Path, source: str, fallback: SourceHints | None = None, max_bytes: int | None = None
) -> LoadedModel:
    """Load a checkpoint file, or a folder holding model.safetensors (+ config.json)."""
    fallback = fallback or SourceHints()
    if path.is_dir():
        weights = next((path / n for n in FOLDER_WEIGHT_FILES if (path / n).is_file()), None)
        if weights is None:
            raise CheckpointError(
                f"The folder '{path}' has no {' or '.join(FOLDER_WEIGHT_FILES)}; point to a checkpoint file "
                f"instead, or to a folder written by `python -m cli train`."
            )
        hints = read_config_file(path / CONFIG_FILE).merged_over(fallback)
        return load_path_bytes(weights, source, hints, max_bytes)
    if not path.is_file():
        raise CheckpointError(
            f"There is no file or folder at '{path}'; give the path of {SUPPORTED_TEXT}, or of a checkpoint folder."
        )
    return load_path_bytes(path, source, fallback, max_bytes)


def load_path_bytes(path: Path, source: str, hints: SourceHints, max_bytes: int | None = None) -> LoadedModel:
    """Check the size from the file system, then read the bytes and load them."""
    check_size(path.stat().st_size, path.name, max_bytes)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"'{path}' could not be read ({err.strerror}); check its permissions.") from None
    return load_bytes(data, path.name, source, hints)


def read_config_file(path: Path) -> SourceHints:
    """Hints from a config.json next to the weights; none if there is no such file."""
    if not path.is_file():
        return SourceHints()
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"'{path}' is over 1 MB, too big for a config.json; remove or fix it.")
    return parse_config(path.read_bytes(), str(path))


def parse_config(data: bytes, name: str) -> SourceHints:
    """method / mean / std / stem_padding / metrics from a config.json (ours, or timm's pretrained_cfg).

    Other keys are ignored: the weights themselves decide depth, width, stem and classes.
    """
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"'{name}' is not valid JSON ({err}); fix or remove it.") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"'{name}' holds a JSON {type(config).__name__}, not an object; fix or remove it.")
    pretrained = config.get("pretrained_cfg") if isinstance(config.get("pretrained_cfg"), dict) else {}
    method = config.get("method")
    if method is not None and not (isinstance(method, str) and _METHOD.match(method.lower())):
        raise CheckpointError(f"'{name}' has method {method!r}; use a short name such as 'simclr' or 'supervised'.")
    padding = config.get("stem_padding")
    if padding is not None and not (isinstance(padding, int) and 0 <= padding <= 3):
        raise CheckpointError(f"'{name}' has stem_padding {padding!r}; use 1 (CKA Lens, timm) or 2 (solo-learn).")
    pool = config.get("stem_pool")
    if pool is not None and not isinstance(pool, bool):
        raise CheckpointError(f"'{name}' has stem_pool {pool!r}; use true or false.")
    metrics = config.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise CheckpointError(f"'{name}' has metrics that are not an object; fix or remove them.")
    return SourceHints(
        method=method.lower() if method else None,
        mean=_triple(config.get("mean", pretrained.get("mean")), "mean", name, positive=False),
        std=_triple(config.get("std", pretrained.get("std")), "std", name, positive=True),
        stem_padding=padding,
        stem_pool=pool,
        metrics={str(k): float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        origin="config.json",
    )


def _triple(value: Any, what: str, name: str, positive: bool) -> RGB | None:
    """Three finite numbers (per RGB channel), or None when absent."""
    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    ok = ok and all(isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 or not positive) for v in value)
    if not ok:
        raise CheckpointError(f"'{name}' has {what} {value!r}; it must be 3 numbers, one per RGB channel.")
    return (float(value[0]), float(value[1]), float(value[2]))


def load_bytes(data: bytes, filename: str, source: str, hints: SourceHints) -> LoadedModel:
    """The single pipeline: parse, normalise keys, infer the architecture, check values, load strictly, measure."""
    parsed = parse_checkpoint(data, filename)
    if not hints.arch and (inferred := infer_unless_resnet(parsed.tensors)):  # one common architecture fits exactly
        hints = replace(hints, arch=inferred.arch, notes=hints.notes + (inferred.note,))
    if hints.arch:  # an architecture named for the weights: loaded by name (models.named), strictly
        from models.named import load_named

        named = replace(hints, notes=hints.notes + parsed.notes, method=hints.method or parsed.method)
        return load_named(parsed.tensors, hints.arch, source, named)
    keys = normalise_keys(parsed.tensors)
    notes = list(hints.notes) + list(parsed.notes) + list(keys.notes)
    padding = _stem_padding(hints, keys, parsed.lightning, notes)
    pool = hints.stem_pool if hints.stem_pool is not None else bool(keys.stem_pool)
    arch = infer_arch(keys.tensors, padding, pool, keys.stem_relu, keys.preact)
    notes.extend(_structure_notes(arch))
    tensors = as_float32(keys.tensors, notes)
    module = strict_load(arch, tensors, notes)
    method = _method(hints, parsed.method, keys, arch, notes)
    mean, std = hints.mean or CIFAR10_MEAN, hints.std or CIFAR10_STD
    open_choices = tuple(
        choice
        for choice, unknown in (
            ("stem_pool", keys.stem_pool is None and hints.stem_pool is None and not hints.origin),
            ("stem_padding", hints.stem_padding is None and not hints.origin and padding == 1),
            ("normalisation", not (hints.mean and hints.std)),
        )
        if unknown and (choice == "normalisation" or arch.stem == "cifar")
    )
    info = ModelInfo(
        arch=arch,
        stem=arch.stem_kind,
        method=method,
        mean=mean,
        std=std,
        num_classes=arch.num_classes,
        source=source,
        sha256=weights_digest(tensors),
        notes=tuple(notes),
        metrics=dict(hints.metrics),
        layers=tuple(resnet_layers(arch)),
        dropped=keys.dropped_keys,
    )
    return measured(LoadedModel(module, info), tensors, open_choices)


def measured(loaded: LoadedModel, tensors: dict[str, torch.Tensor], open_choices: tuple[str, ...]) -> LoadedModel:
    """`loaded` with its open choices decided on CIFAR-10 test images and its accuracy measured (see
    models.calibration); without images, the open choices are stated as uncertain."""
    info = loaded.info
    arch, mean, std, module, evidence = calibrate(
        loaded.module,
        lambda a: strict_load(a, tensors, []).eval(),
        info.arch,
        info.mean,
        info.std,
        open_choices,
        weights=info.sha256,
    )
    notes = [note for note in info.notes if not note.startswith(("uncertain:", "measured on", "no normalisation"))]
    if evidence is None:
        if "stem_pool" in open_choices:
            notes.append(
                "uncertain: the weights cannot show whether a max-pool follows the 3x3 stem; loaded without one, as "
                "most CIFAR codebases train (huyvnphan/PyTorch_CIFAR10 keeps one, and its outputs would differ)"
            )
        if "normalisation" in open_choices:
            notes.append(f"no normalisation given: used the CIFAR-10 defaults mean {CIFAR10_MEAN}, std {CIFAR10_STD}")
    elif evidence.measured:
        chosen = {
            "stem_pool": f"max-pool after the stem: {'yes' if arch.stem_pool else 'no'}",
            "stem_padding": f"stem padding {arch.stem_padding}",
            "normalisation": f"normalisation {normalisation_name(mean, std)}",
        }
        notes.append(
            f"measured on {evidence.images} CIFAR-10 test images ({evidence.measure}): "
            + ", ".join(chosen[c] for c in evidence.measured)
            + " (each candidate's score is on the model card)"
        )
    info = replace(
        info,
        arch=arch,
        stem=arch.stem_kind,
        mean=mean,
        std=std,
        notes=tuple(notes),
        layers=tuple(resnet_layers(arch)),
        calibration=evidence,
    )
    return LoadedModel(module, info)


def with_choices(loaded: LoadedModel, choices: SourceHints, source: str) -> LoadedModel:
    """The same weights under a person's choices (max-pool, stem padding, normalisation), named `source` (the spec
    with its choices); whatever they leave open and was measured before is measured again."""
    arch = loaded.info.arch
    if (choices.stem_pool is not None or choices.stem_padding is not None) and arch.stem != "cifar":
        raise CheckpointError("Only a 3x3 CIFAR stem can take a max-pool or another padding; this network has a 7x7.")
    arch = replace(
        arch,
        stem_pool=arch.stem_pool if choices.stem_pool is None else choices.stem_pool,
        stem_padding=arch.stem_padding if choices.stem_padding is None else choices.stem_padding,
    )
    tensors = loaded.module.state_dict()
    module = strict_load(arch, tensors, []).eval()
    was_open = loaded.info.calibration.measured if loaded.info.calibration else ()
    chosen = {
        "stem_pool": choices.stem_pool is not None,
        "stem_padding": choices.stem_padding is not None,
        "normalisation": choices.mean is not None,
    }
    open_choices = tuple(c for c in was_open if not chosen[c])
    said = [k.replace("_", " ") for k, v in chosen.items() if v]
    info = replace(
        loaded.info,
        arch=arch,
        mean=choices.mean or loaded.info.mean,
        std=choices.std or loaded.info.std,
        source=source,
        notes=(*loaded.info.notes, f"set by your choice: {', '.join(said)}"),
    )
    return measured(LoadedModel(module, info), tensors, open_choices)


def _structure_notes(arch: ArchConfig) -> list[str]:
    """What was rebuilt that the weights alone do not show."""
    notes = []
    if arch.preact:
        notes.append(
            f"pre-activation {arch.name}, rebuilt as {arch.dialect} computes it: the projection shortcut reads the "
            f"{'pre-activated' if arch.shortcut_input == 'pre' else 'raw'} block input and the block's "
            f"{'second' if arch.stride_on_second else 'first'} conv strides (the key names tell; the weights cannot)"
        )
    if arch.shortcut == "pad":
        notes.append("downsampling shortcuts without weights: subsampling plus zero channels (option A)")
    if not arch.stem_relu:
        notes.append("no ReLU after the stem: the backbone is a Sequential of a ResNet's children without one")
    return notes


def _stem_padding(hints: SourceHints, keys: Normalised, lightning: bool, notes: list[str]) -> int:
    """Padding of a CIFAR conv1 is not stored in the weights: config.json decides, else a solo-learn guess, else 1."""
    if hints.stem_padding is not None:
        return hints.stem_padding
    cifar_stem = keys.tensors["conv1.weight"].shape[-1] == 3  # solo-learn's ImageNet models keep the 7x7 stem
    solo_learn = cifar_stem and lightning and keys.prefix in ("backbone.", "encoder.") and "classifier" in keys.dropped
    if solo_learn:
        notes.append(
            f"looks like a solo-learn checkpoint: used conv1 padding {SOLO_LEARN_STEM_PADDING} as solo-learn does "
            "for CIFAR (padding is not stored in the weights)"
        )
        return SOLO_LEARN_STEM_PADDING
    return 1


def strict_load(arch: ArchConfig, tensors: dict[str, torch.Tensor], notes: list[str]) -> nn.Module:
    """Build the network and load every tensor with strict=True; list what is missing or unexpected.

    BatchNorm's `num_batches_tracked` counters are the one thing filled in when absent: they do not
    affect eval-mode outputs and some exporters omit them. The network is built without memory and takes the
    tensors as they are (no random initialisation to overwrite, no copy).
    """
    with torch.device("meta"):
        module = build_resnet(arch)
    expected = module.state_dict()
    missing_counters = [k for k in expected if k.endswith("num_batches_tracked") and k not in tensors]
    if missing_counters:
        tensors = tensors | {k: torch.zeros((), dtype=torch.long) for k in missing_counters}
        notes.append(f"filled {len(missing_counters)} missing BatchNorm num_batches_tracked counters")
    if unfit := mismatches(expected, tensors):
        raise CheckpointError(
            f"The weights do not fit the inferred {arch.name} ({arch.stem} stem): {unfit}; CKA Lens loads "
            "torchvision/timm-style ResNets, so export the backbone's state_dict with those key names."
        )
    try:
        module.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as err:
        raise CheckpointError(f"The weights do not fit a {arch.name} ({' '.join(str(err).split())[:300]}).") from None
    return module


def _method(hints: SourceHints, saved: str | None, keys: Normalised, arch: ArchConfig, notes: list[str]) -> str:
    """The training method: as config.json or the registry says; else as the file's own metadata says; else what
    the keys prove (MoCo's query and key encoders); else only what they allow: self-supervised (method unknown)
    when heads of a self-supervised method were dropped, supervised for a bare CIFAR classifier. Never a guess."""
    if hints.method:
        return hints.method
    if saved:
        name = canonical_method(saved)
        notes.append(f"method '{name}' read from the checkpoint's own settings ('{saved}')")
        return name
    if "encoder_q." in keys.prefix and any(name.endswith(("encoder_k", "queue")) for name in keys.dropped):
        notes.append("method named moco from its query and key encoders and its queue")
        return "moco"
    if "dino_loss_func" in keys.dropped:  # the centre of DINO's loss is saved with the network
        notes.append("method named dino from its loss's saved centre")
        return "dino"
    if any(name not in NOT_HEADS for name in keys.dropped):
        return SELF_SUPERVISED_UNKNOWN
    if arch.num_classes and keys.sibling and keys.stem_pool is not None:
        notes.append(
            f"method unknown: '{keys.sibling}' is a classifier beside a backbone rebuilt from a ResNet's children, "
            "as self-supervised code keeps its encoder and linear evaluation adds a probe; nothing in the file says "
            "how the backbone was trained"
        )
        return "unknown"
    if arch.num_classes:
        notes.append("method taken as supervised: a bare CIFAR classifier with no other heads")
        return "supervised"
    return "unknown"
