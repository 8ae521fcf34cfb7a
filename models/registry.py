"""The checkpoints CKA Lens knows by name: public CIFAR-10 ResNets on the Hub and our bundled folders.

Hub entries carry what their model cards say but the weight files do not: the training method,
the input normalisation and the reported accuracy. Beyond the study's CIFAR-10 ResNets, a few curated pairs of
timm's own Hub repos (ImageNet networks: DINO vs supervised ViT-S/16, ViT-S/16 vs ResNet-50) are offered, never
the default; their architecture and preprocessing come from each repo's config.json (models.hub).

Bundled entries are read from models/weights/*/config.json at call time, so a checkpoint appears as soon as
training writes it.

An entry can name its siblings: the same method and recipe trained with another seed, whose similarity to it
is the ceiling a cross-method CKA is read against. Bundled folders are siblings by name (NAME and NAME-seedK);
a seed still training (a folder without its final weights) is named as pending, and becomes a sibling the
moment its config.json and model.safetensors are written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from models.errors import ArchitectureError
from models.folder_format import CONFIG_FILE, WEIGHTS_FILE, arch_from_config
from models.loaded import NamedArch, SourceHints
from models.resnet import ArchConfig
from models.spec import ModelSpec

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_PAIR = (  # what the app opens with
    ModelSpec("bundled", "simclr-resnet18-w16"),
    ModelSpec("bundled", "supervised-resnet18-w16"),
)
AUTO, NO_SIBLING = "auto", "none"  # other-seed choices: the registry's sibling, or no ceiling
EDADALTOCG_MEAN = (0.4914, 0.4822, 0.4465)  # from the edadaltocg model cards (the `detectors` package)
EDADALTOCG_STD = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # timm's IMAGENET_DEFAULT_*
INCEPTION_MEAN = INCEPTION_STD = (0.5, 0.5, 0.5)  # timm's IMAGENET_INCEPTION_*: the AugReg ViTs
_SEED = re.compile(r"-seed\d+$")  # a bundled folder's seed suffix: NAME-seed1 is seed 1 of NAME


@dataclass(frozen=True)
class RegistryEntry:
    """A named checkpoint and what its card says about it."""

    spec: ModelSpec  # what load_model takes: hub:OWNER/REPO or bundled:NAME
    repo_id: str | None  # Hub repo, None for bundled folders
    filename: str  # the weight file in the repo or folder
    method: str  # "simclr", "supervised", "dino"
    arch: ArchConfig | NamedArch  # a ResNet CKA Lens rebuilds, or a timm architecture by name
    description: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    reported_accuracy: float | None  # as reported by the card / measured by our training; None if unknown
    siblings: tuple[ModelSpec, ...] = ()  # the same method and recipe with other seeds (the ceiling)
    pair: str = ""  # the curated pairs beyond the study this entry is in ("" for the study's own)

    def hints(self) -> SourceHints:
        """The entry's metadata in the form the loader merges with config.json."""
        metrics = {} if self.reported_accuracy is None else {"reported_accuracy": self.reported_accuracy}
        return SourceHints(
            method=self.method, mean=self.mean, std=self.std, metrics=metrics, origin="the registry", arch=self.named
        )

    @property
    def named(self) -> str | None:
        """'timm:NAME' for an entry built by name, None for a ResNet CKA Lens rebuilds."""
        return self.arch.name if isinstance(self.arch, NamedArch) else None


def _edadaltocg(name: str, method: str, depth: int, description: str, accuracy: float | None) -> RegistryEntry:
    """An entry in edadaltocg's shared layout: pytorch_model.bin, CIFAR stem, no fc for SimCLR."""
    arch = ArchConfig(depth=depth, width=64, stem="cifar", num_classes=0 if method == "simclr" else 10)
    return RegistryEntry(
        spec=ModelSpec("hub", f"edadaltocg/{name}"),
        repo_id=f"edadaltocg/{name}",
        filename="pytorch_model.bin",
        method=method,
        arch=arch,
        description=description,
        mean=EDADALTOCG_MEAN,
        std=EDADALTOCG_STD,
        reported_accuracy=accuracy,
    )


HUB_ENTRIES: tuple[RegistryEntry, ...] = (
    _edadaltocg("resnet50_simclr_cifar10", "simclr", 50, "SimCLR ResNet-50 on CIFAR-10 (the study's pair)", 0.9012),
    _edadaltocg("resnet50_cifar10", "supervised", 50, "supervised ResNet-50 on CIFAR-10 (the study's pair)", None),
    _edadaltocg("resnet34_simclr_cifar10", "simclr", 34, "SimCLR ResNet-34 on CIFAR-10", None),
    _edadaltocg("resnet34_cifar10", "supervised", 34, "supervised ResNet-34 on CIFAR-10", None),
    _edadaltocg("resnet18_cifar10", "supervised", 18, "supervised ResNet-18 on CIFAR-10", 0.9498),
)


def _timm_repo(
    repo: str, method: str, classes: int, mean: tuple, std: tuple, description: str, pair: str
) -> RegistryEntry:
    """One of timm's own Hub repos (timm/NAME.TAG: config.json + model.safetensors), in a curated pair."""
    return RegistryEntry(
        spec=ModelSpec("hub", f"timm/{repo}"),
        repo_id=f"timm/{repo}",
        filename=WEIGHTS_FILE,
        method=method,
        arch=NamedArch(f"timm:{repo.split('.')[0]}", classes),
        description=description,
        mean=mean,
        std=std,
        reported_accuracy=None,
        pair=pair,
    )


DINO_VS_SUPERVISED = "DINO vs supervised ViT-S/16"
VIT_VS_RESNET = "ViT-S/16 vs ResNet-50"
PAIR_ENTRIES: tuple[RegistryEntry, ...] = (
    _timm_repo(
        "vit_small_patch16_224.dino",
        "dino",
        0,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "DINO ViT-S/16, self-supervised on ImageNet-1k (no classifier)",
        DINO_VS_SUPERVISED,
    ),
    _timm_repo(
        "vit_small_patch16_224.augreg_in21k_ft_in1k",
        "supervised",
        1000,
        INCEPTION_MEAN,
        INCEPTION_STD,
        "supervised ViT-S/16, ImageNet-21k then ImageNet-1k (AugReg)",
        f"{DINO_VS_SUPERVISED}; {VIT_VS_RESNET}",
    ),
    _timm_repo(
        "resnet50.a1_in1k",
        "supervised",
        1000,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "supervised ResNet-50, ImageNet-1k (timm's A1 recipe)",
        VIT_VS_RESNET,
    ),
)
# the curated pairs beyond the study: (title, model A, model B, what the comparison asks)
CURATED_PAIRS: tuple[tuple[str, ModelSpec, ModelSpec, str], ...] = (
    (
        DINO_VS_SUPERVISED,
        PAIR_ENTRIES[0].spec,
        PAIR_ENTRIES[1].spec,
        "the same architecture trained with and without labels: the study's question on ImageNet transformers",
    ),
    (
        VIT_VS_RESNET,
        PAIR_ENTRIES[1].spec,
        PAIR_ENTRIES[2].spec,
        "a vision transformer against a CNN, both supervised: how differently the two architectures see",
    ),
)


def find_hub_entry(repo_id: str) -> RegistryEntry | None:
    """The registry entry for a Hub repo (case-insensitive, as the Hub is), if any."""
    entries = HUB_ENTRIES + PAIR_ENTRIES
    return next((e for e in entries if e.repo_id and e.repo_id.lower() == repo_id.lower()), None)


def list_bundled() -> list[RegistryEntry]:
    """Entries for the finished folders in models/weights (model.safetensors + a readable config.json).

    Folders still training (no config.json yet) or with a broken config are skipped, not errors:
    listing must never fail because of one folder.
    """
    entries = []
    for folder in sorted(Path(WEIGHTS_DIR).glob("*/")):
        entry = _bundled_entry(folder)
        if entry is not None:
            entries.append(entry)
    return entries


def _bundled_entry(folder: Path) -> RegistryEntry | None:
    """Read one folder's config.json (our folder format); None if it is not a finished checkpoint."""
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        return None
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        arch = arch_from_config(config)
        mean, std = tuple(map(float, config["mean"])), tuple(map(float, config["std"]))
    except (OSError, ValueError, TypeError, KeyError, ArchitectureError):
        return None
    metrics = config.get("metrics") or {}
    headline = ("test_accuracy", "linear_probe_accuracy", "knn_accuracy")
    accuracy = next((metrics[k] for k in headline if k in metrics), None)
    method = str(config.get("method", "unknown"))
    return RegistryEntry(
        spec=ModelSpec("bundled", folder.name),
        repo_id=None,
        filename=WEIGHTS_FILE,
        method=method,
        arch=arch,
        description=_card_title(folder) or f"{method} {arch.name} trained by CKA Lens",
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        reported_accuracy=float(accuracy) if isinstance(accuracy, (int, float)) else None,
    )


def _card_title(folder: Path) -> str:
    """The first '# ' heading of the folder's README.md model card, if any."""
    try:
        lines = (folder / "README.md").read_text().splitlines()
    except OSError:
        return ""
    return next((line[2:].strip() for line in lines if line.startswith("# ")), "")


def registry_entries() -> list[RegistryEntry]:
    """Every named checkpoint: bundled ones first (they work offline), then the Hub's, then the curated pairs'."""
    return list_bundled() + list(HUB_ENTRIES) + list(PAIR_ENTRIES)


@dataclass(frozen=True)
class Siblings:
    """A model's other seeds, as the registry knows them: the finished ones, and why there are none."""

    specs: tuple[ModelSpec, ...]  # finished siblings, in name order (seed 0 first)
    note: str  # a plain sentence saying why there is none, or what is still missing; "" when nothing is


def siblings(spec: ModelSpec) -> Siblings:
    """The registered other seeds of `spec` (bundled folders by name, Hub entries as listed).

    Choices after '#' (how the weights are read) are passed on to the siblings, so both seeds are read alike.
    Anything else (an upload, a file, an unlisted Hub repo, a training snapshot) has none: a person can name
    them instead.
    """
    base = spec.base
    if spec.source == "hub":
        entry = find_hub_entry(spec.location)
        if entry is None or not entry.siblings:
            return Siblings((), f"the registry names no other seed of `{base}`")
        return Siblings(tuple(s.with_choices(spec.choices) for s in entry.siblings), "")
    if spec.source != "bundled" or spec.snapshot:
        return Siblings((), f"`{base}` has no registered other seed")
    name = spec.location
    family = _SEED.sub("", name)
    own = _bundled_entry(Path(WEIGHTS_DIR) / name)
    finished, pending = [], []
    for folder in sorted(Path(WEIGHTS_DIR).glob("*/")):
        if folder.name == name or _SEED.sub("", folder.name) != family:
            continue
        entry = _bundled_entry(folder)
        if entry is None:
            pending.append(folder.name)
        elif own is None or entry.method == own.method:
            finished.append(entry.spec.with_choices(spec.choices))
    if finished:
        return Siblings(tuple(finished), "")
    if pending:
        names = ", ".join(f"`{name}`" for name in pending)
        return Siblings((), f"its other seed {names} is still training (no final weights yet)")
    return Siblings((), f"`{base}` has no other seed among the bundled models")


def choose_sibling(spec: ModelSpec, chosen: ModelSpec | Literal["auto", "none"] | None) -> tuple[ModelSpec | None, str]:
    """The other seed to read `spec` against: `chosen` when a person named one, none for NO_SIBLING, else the
    registry's first (None or AUTO). Returns (spec or None, a plain note saying why there is none)."""
    if chosen == NO_SIBLING:
        return None, "none was asked for"
    if isinstance(chosen, ModelSpec):
        return chosen, ""
    found = siblings(spec)
    return (found.specs[0], "") if found.specs else (None, found.note)
