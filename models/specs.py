"""`load_model(spec)`: one entry point for `bundled:NAME`, `hub:OWNER/REPO[@REV][:FILE]`, `file:PATH` (with
`#arch=timm:NAME` where the weights are another architecture's than a ResNet) and `timm:NAME` / `torchvision:NAME`
(untrained)."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from core.series import Series, series_of_files
from models import registry
from models.checkpoint import load_path, with_choices
from models.errors import CheckpointError
from models.folder_format import CONFIG_FILE, SNAPSHOT_DIR, WEIGHTS_FILE
from models.loaded import LoadedModel, SourceHints
from models.snapshots import bundled_series_named, load_snapshot
from models.spec import NAMED_SOURCES, SPEC_FORMS, ModelSpec

_NAME = re.compile(r"^[\w.\-]+$")
UNTRAINED_SPEC_SEED = 0  # the draw a `timm:NAME` or `torchvision:NAME` spec names, so that it names one network


def load_model(spec: ModelSpec | str) -> LoadedModel:
    """Load the checkpoint a spec names, under its choices after '#' if any; every failure is a CheckpointError.

    A string is parsed here, once, for Python callers (scripts, notebooks, tests); the app and the command line
    parse where a spec enters them and pass the ModelSpec.
    """
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    if not isinstance(spec, ModelSpec):
        raise CheckpointError(f"A model spec must be a string such as {SPEC_FORMS}, not {type(spec).__name__}.")
    if spec.source in NAMED_SOURCES:
        from models.named import untrained_named  # timm is imported only when an architecture is named

        return untrained_named(spec.text, None, spec.text, seed=UNTRAINED_SPEC_SEED)
    if spec.choices:
        return with_choices(load_model(spec.base), spec.choices.hints(), spec.text)
    if spec.source == "bundled":
        return load_bundled(spec)
    if spec.source == "hub":
        from models.hub import load_hub  # huggingface_hub is imported only when the Hub is used

        return load_hub(spec)
    if spec.source == "file":
        return load_path(Path(spec.location).expanduser(), spec.text, SourceHints(arch=spec.arch))
    raise CheckpointError(
        f"'{spec}' is an upload, held by the app session it was uploaded to; upload the file again there."
    )


def load_bundled(spec: ModelSpec) -> LoadedModel:
    """A folder of models/weights, with its config.json's method, normalisation and metrics; `NAME@epoch-K` is
    the float16 snapshot its training kept after epoch K (models.snapshots: loadable before the run finishes)."""
    name = spec.location
    folder = Path(registry.WEIGHTS_DIR) / name
    known = _NAME.match(name) and not name.startswith(".") and folder.is_dir()
    if known and spec.snapshot:
        return load_snapshot(folder, spec.snapshot, spec.text)
    if not known or not (folder / CONFIG_FILE).is_file():
        ready = ", ".join(e.spec.text for e in registry.list_bundled()) or "none yet (`python -m cli train` makes one)"
        raise CheckpointError(f"There is no finished bundled checkpoint '{name}'; available: {ready}.")
    return load_path(folder, spec.text)


def weights_version(spec: ModelSpec) -> str:
    """Modification times of a bundled or file checkpoint's files ('' for other sources), so a cache keyed by
    spec and version reloads retrained weights instead of serving stale ones."""
    if spec.source == "bundled":
        path = Path(registry.WEIGHTS_DIR) / spec.location
        path = path / SNAPSHOT_DIR / f"{spec.snapshot}.safetensors" if spec.snapshot else path
    elif spec.source == "file":
        path = Path(spec.location).expanduser()
    else:
        return ""
    files = [path] if path.is_file() else [path / WEIGHTS_FILE, path / CONFIG_FILE] if path.is_dir() else []
    return ";".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in files if p.is_file())


def series_of_specs(specs: list[ModelSpec], name: str) -> Series:
    """A series from what a person names: one bundled run ('bundled:NAME'), or several checkpoint specs (file:,
    hub:, upload:, bundled:NAME@epoch-K) ordered by the epoch or step in the name of the file each points at."""
    if len(specs) == 1 and specs[0].source == "bundled" and specs[0] == specs[0].base and not specs[0].snapshot:
        return bundled_series_named(specs[0].location)
    return series_of_files(name, [(spec, _file_name(spec)) for spec in specs])


def _file_name(spec: ModelSpec) -> str:
    """The name that places a spec in its series: the file's (a Hub repo's file, a path's last part, an upload's),
    else the repo's or folder's name with its revision or snapshot ('run@epoch-5')."""
    leaf = PurePosixPath((spec.file or spec.location).rstrip("/")).name or spec.location
    tag = spec.snapshot or (None if spec.file else spec.revision)
    return f"{leaf}@{tag}" if tag else leaf
