"""Architectures by name: any timm or torchvision image classifier, built untrained or loaded from a state dict.

    build_named(arch: str, num_classes: int | None = None) -> nn.Module
        `arch` is 'timm:NAME' (timm.list_models()) or 'torchvision:NAME' (torchvision.models.list_models()); an
        untrained network, in eval mode, drawn from torch's global generator (so deterministic under
        torch.manual_seed). num_classes None: the library's default head; 0: no classifier (pooled features).
    input_config(arch_or_module: str | nn.Module) -> InputConfig
        The input form a network was trained with (core.network.InputConfig, frozen): size (H, W), resize
        interpolation, mean, std and crop_pct, from timm's pretrained_cfg (resolve_data_config) or torchvision's
        default weights' transforms (crop size, interpolation, mean, std; crop_pct = crop / resize).
    load_named(state_dict: dict[str, Tensor], arch: str, source: str, hints: SourceHints) -> LoadedModel
        The weights loaded strictly into `arch` after the key normalisation a checkpoint needs (a wrapper prefix
        such as 'module.' or 'backbone.' stripped, the online copy chosen over momentum/teacher copies, what lies
        outside it dropped with a note); the classifier's width is read from the weights (absent: no classifier).
        A mismatch is a CheckpointError naming the keys and shapes that did not match.

The layers read are found in the traced graph (core.blocks.find_layers): every residual block's branch and output.
"""

from __future__ import annotations

import re
import weakref
from functools import cache

import torch
from torch import nn

from core.blocks import find_layers, register_trace_leaves
from core.errors import ContractError
from core.network import InputConfig
from models.digest import weights_digest
from models.errors import CheckpointError
from models.loaded import LoadedModel, ModelInfo, NamedArch, SourceHints
from models.state_keys import COPY_WORDS, as_float32, mismatches

LIBRARIES = ("timm", "torchvision")
ARCH_FORM = "timm:NAME (e.g. timm:vit_tiny_patch16_224) or torchvision:NAME (e.g. torchvision:resnet18)"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_NAME = re.compile(r"^[a-z][a-z0-9_.\-]*$")
_BUILT: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()  # module -> the arch it was built as


def parse_arch(arch: str) -> tuple[str, str]:
    """'timm:NAME' -> ('timm', 'NAME'), checked against the library's list; a CheckpointError saying what would
    work otherwise."""
    library, sep, name = str(arch).strip().partition(":")
    library, name = library.lower(), name.strip()
    if not sep or library not in LIBRARIES or not _NAME.match(name):
        raise CheckpointError(f"'{arch}' is not an architecture name; write {ARCH_FORM}.")
    if name not in known_names(library):
        close = [n for n in known_names(library) if name.split("_")[0] in n][:5]
        hint = f" (close: {', '.join(close)})" if close else ""
        raise CheckpointError(f"{library} has no architecture '{name}'{hint}; write {ARCH_FORM}.")
    return library, name


@cache
def known_names(library: str) -> frozenset[str]:
    """Every architecture the library builds by name."""
    if library == "timm":
        import timm

        return frozenset(timm.list_models())
    import torchvision

    return frozenset(torchvision.models.list_models(module=torchvision.models))


@cache
def timm_module():
    """timm, imported once, its untraceable pieces registered with the engine's tracer."""
    import timm
    from timm.layers import get_notrace_functions, get_notrace_modules

    register_trace_leaves(get_notrace_modules(), get_notrace_functions())
    return timm


def build_named(arch: str, num_classes: int | None = None) -> nn.Module:
    """An untrained `arch` in eval mode, drawn from torch's global generator (module docstring)."""
    library, name = parse_arch(arch)
    if library == "timm":
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        module = timm_module().create_model(name, pretrained=False, **kwargs)
    else:
        import torchvision

        kwargs = {} if not num_classes else {"num_classes": num_classes}
        module = torchvision.models.get_model(name, weights=None, **kwargs)
        if num_classes == 0:
            path = _classifier_path(module)
            if path:
                module.set_submodule(path, nn.Identity())
    _BUILT[module] = f"{library}:{name}"
    return module.eval()


def _classifier_path(module: nn.Module) -> str:
    """The qualified name of a network's classifier: timm's get_classifier(), else the last Linear layer."""
    head = module.get_classifier() if hasattr(module, "get_classifier") else None
    for path, child in reversed(list(module.named_modules())):
        if (head is not None and child is head and isinstance(child, nn.Linear)) or (
            head is None and isinstance(child, nn.Linear)
        ):
            return path
    return ""


def input_config(arch_or_module: str | nn.Module) -> InputConfig:
    """The input form `arch` (or a module build_named made, or any timm module) was trained with."""
    if isinstance(arch_or_module, nn.Module):
        module = arch_or_module
        if hasattr(module, "pretrained_cfg"):
            return _timm_input(timm_module().data.resolve_data_config({}, model=module))
        arch = _BUILT.get(module)
        if arch is None:
            raise CheckpointError("This network was not built by name; give its architecture as timm:NAME.")
        return input_config(arch)
    library, name = parse_arch(arch_or_module)
    return _named_input(library, name)


@cache
def _named_input(library: str, name: str) -> InputConfig:
    if library == "timm":
        timm = timm_module()
        cfg = timm.models.get_pretrained_cfg(name)
        data = cfg.to_dict() if cfg is not None else {}
        return _timm_input(timm.data.resolve_data_config(data, use_test_size=True))
    import torchvision

    try:
        transforms = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    except (ValueError, KeyError, AttributeError):  # an architecture without published weights
        return InputConfig((224, 224), "bilinear", IMAGENET_MEAN, IMAGENET_STD)
    crop, resize = transforms.crop_size[0], transforms.resize_size[0]
    return InputConfig(
        (crop, crop),
        transforms.interpolation.value,
        tuple(float(v) for v in transforms.mean),
        tuple(float(v) for v in transforms.std),
        crop / resize,
    )


def _timm_input(data: dict) -> InputConfig:
    """timm's data config ({'input_size': (3, H, W), 'interpolation', 'mean', 'std', 'crop_pct'}) as InputConfig."""
    interpolation = data.get("interpolation", "bicubic")
    interpolation = interpolation if interpolation in ("nearest", "bilinear", "bicubic") else "bilinear"
    _, height, width = data["input_size"]
    return InputConfig(
        (int(height), int(width)),
        interpolation,
        tuple(float(v) for v in data["mean"]),
        tuple(float(v) for v in data["std"]),
        float(data["crop_pct"]) if data.get("crop_pct") else None,
    )


def named_info(
    arch: NamedArch,
    source: str,
    sha256: str,
    method: str,
    notes: tuple[str, ...],
    module: nn.Module,
    hints: SourceHints = SourceHints(),
) -> ModelInfo:
    """The description of a network built by name: its layers found in its graph, its input form from its
    library (or what the source states), the source's mean and std over the library's."""
    own = hints.input or input_config(arch.name)
    return ModelInfo(
        arch=arch,
        stem=arch.stem_kind,
        method=method,
        mean=hints.mean or own.mean,
        std=hints.std or own.std,
        num_classes=arch.num_classes,
        source=source,
        sha256=sha256,
        notes=notes,
        metrics=dict(hints.metrics),
        layers=_layers(arch.name, module),
        input=own,
    )


def _layers(arch: str, module: nn.Module) -> tuple[tuple[str, str], ...]:
    """The layers found in the network's graph; a network whose graph cannot be followed is refused in words."""
    try:
        return find_layers(module)
    except ContractError:
        raise CheckpointError(
            f"CKA Lens cannot follow the layers of {arch}: its forward pass cannot be traced (torch.fx); choose "
            "another architecture."
        ) from None


def load_named(state_dict: dict[str, torch.Tensor], arch: str, source: str, hints: SourceHints) -> LoadedModel:
    """`state_dict` loaded strictly into `arch` (module docstring), identified by the digest of the tensors loaded
    (models.digest: the same network whatever the file's wrapping); every failure is a CheckpointError."""
    library, name = parse_arch(arch)
    arch = f"{library}:{name}"
    with torch.device("meta"):
        reference = build_named(arch)
    expected = reference.state_dict()
    prefix, notes = _prefix(state_dict, expected)
    tensors = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    dropped = [k for k in state_dict if not k.startswith(prefix)]
    if dropped:
        notes.append(f"dropped {len(dropped)} tensors outside '{prefix}' (heads, copies of the network)")
    head = _classifier_path(reference)
    num_classes = int(tensors[f"{head}.weight"].shape[0]) if head and f"{head}.weight" in tensors else 0
    if head and not num_classes:
        notes.append("no classifier in the weights: the network returns pooled features")
    with torch.device("meta"):
        module = build_named(arch, num_classes=num_classes)
    tensors = as_float32(tensors, notes)
    expected = module.state_dict()
    counters = [k for k in expected if k.endswith("num_batches_tracked") and k not in tensors]
    tensors |= {k: torch.zeros((), dtype=torch.long) for k in counters}
    if unfit := mismatches(expected, tensors):
        raise CheckpointError(
            f"The weights do not fit {arch}: {unfit}; name the architecture they were saved from "
            "(#arch=timm:NAME or #arch=torchvision:NAME)."
        )
    sha256 = weights_digest(tensors)
    module.load_state_dict(tensors, strict=True, assign=True)
    _BUILT[module] = arch
    method = hints.method or "unknown"
    info = named_info(
        NamedArch(arch, num_classes), source, sha256, method, tuple(hints.notes) + tuple(notes), module, hints
    )
    return LoadedModel(module, info)


def _prefix(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> tuple[str, list[str]]:
    """The wrapper prefix under which the state dict holds the network ('' when it holds it as built), preferring
    the online network to momentum, EMA or teacher copies."""
    keys = list(expected)
    candidates = {""} | {
        k[: len(k) - len(anchor)] for anchor in keys[:3] + keys[-3:] for k in state if k.endswith("." + anchor)
    }
    wanted = set(expected)

    def score(prefix: str) -> tuple[int, int, int]:
        hits = sum(1 for k in state if k.startswith(prefix) and k[len(prefix) :] in wanted)
        return hits, -any(word in prefix for word in COPY_WORDS), -len(prefix)

    prefix = max(sorted(candidates), key=score)
    return prefix, [f"took the network from the keys under '{prefix}'"] if prefix else []


def untrained_named(arch: str, num_classes: int | None, source: str, seed: int | None = None) -> LoadedModel:
    """An untrained network by name, described as loaded (the `timm:NAME` and `torchvision:NAME` specs, and the
    untrained floors): drawn under `seed` when given, leaving torch's global generator as it was."""
    library, name = parse_arch(arch)
    arch = f"{library}:{name}"
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        module = build_named(arch, num_classes)
    classes = num_classes if num_classes is not None else _num_classes(module)
    note = (
        f"untrained: initialised with seed {seed}, no step taken" if seed is not None else "untrained (random weights)"
    )
    info = named_info(NamedArch(arch, classes), source, source, "untrained", (note,), module)
    return LoadedModel(module, info)


def _num_classes(module: nn.Module) -> int:
    path = _classifier_path(module)
    return module.get_submodule(path).out_features if path else 0
