"""`load_model(spec)`: one entry point for `bundled:NAME`, `hub:OWNER/REPO[@REV][:FILE]` and `file:PATH`."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from core.series import Series, series_of_files
from models import registry
from models.calibration import NORMALISATIONS
from models.errors import CheckpointError
from models.folder_format import CONFIG_FILE, SNAPSHOT_DIR, WEIGHTS_FILE
from models.loaded import LoadedModel, SourceHints
from models.loader import load_path, with_choices
from models.snapshots import bundled_series_named, load_snapshot

SPEC_FORMS = "bundled:NAME, hub:OWNER/REPO[@REVISION][:FILENAME] or file:PATH"
_NAME = re.compile(r"^[\w.\-]+$")


def load_model(spec: str) -> LoadedModel:
    """Load a checkpoint named by a spec string, under the choices after a '#' if any; every failure is a
    CheckpointError."""
    if not isinstance(spec, str):
        raise CheckpointError(f"A model spec must be a string such as {SPEC_FORMS}, not {type(spec).__name__}.")
    base, choices = split_choices(spec)
    if choices is not None:
        return with_choices(load_model(base), choices, spec.strip())
    spec = spec.strip()
    scheme, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise CheckpointError(f"'{spec}' is not a model spec; write {SPEC_FORMS}.")
    if scheme == "bundled":
        return load_bundled(rest, spec)
    if scheme == "hub":
        from models.hub import load_hub  # huggingface_hub is imported only when the Hub is used

        return load_hub(spec)
    if scheme == "file":
        return load_path(Path(rest).expanduser(), spec)
    raise CheckpointError(f"'{scheme}:' is not a known source in '{spec}'; write {SPEC_FORMS}.")


def split_choices(spec: str) -> tuple[str, SourceHints | None]:
    """'SPEC#pool=yes,padding=2,norm=imagenet' -> (SPEC, the choices); (spec, None) without a '#'.

    pool: yes/no (a max-pool after a 3x3 stem); padding: 0-3 (the 3x3 stem's); norm: one of NORMALISATIONS.
    """
    base, sep, text = spec.strip().partition("#")
    if not sep:
        return base, None
    values: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = (x.strip().lower() for x in part.partition("="))
        if key == "pool" and value in ("yes", "no"):
            values["stem_pool"] = value == "yes"
        elif key == "padding" and value in ("0", "1", "2", "3"):
            values["stem_padding"] = int(value)
        elif key == "norm" and value in NORMALISATIONS:
            values["mean"], values["std"] = NORMALISATIONS[value]
        else:
            raise CheckpointError(
                f"'{part}' in '{spec}' is not a choice; write SPEC#pool=yes|no,padding=1|2,norm="
                f"{'|'.join(NORMALISATIONS)} (any of the three)."
            )
    if not values:
        raise CheckpointError(f"'{spec}' has a '#' but no choices after it; write e.g. SPEC#norm=imagenet.")
    return base, SourceHints(**values, origin="your choice")


def with_choice_text(spec: str, pool: bool | None, padding: int | None, norm: str | None) -> str:
    """The spec with these choices after '#' (None: measured, or as the source says); the inverse of split_choices."""
    base = split_choices(spec)[0]
    parts = [
        f"{key}={value}"
        for key, value in (
            ("pool", None if pool is None else "yes" if pool else "no"),
            ("padding", padding),
            ("norm", norm),
        )
        if value is not None
    ]
    return base + ("#" + ",".join(parts) if parts else "")


def load_bundled(name: str, spec: str) -> LoadedModel:
    """A folder of models/weights, with its config.json's method, normalisation and metrics; `NAME@epoch-K` is
    the float16 snapshot its training kept after epoch K (models.snapshots: loadable before the run finishes)."""
    name, _, snapshot = name.partition("@")
    folder = Path(registry.WEIGHTS_DIR) / name
    known = _NAME.match(name) and not name.startswith(".") and folder.is_dir()
    if known and snapshot:
        return load_snapshot(folder, snapshot, spec)
    if not known or not (folder / CONFIG_FILE).is_file():
        ready = ", ".join(e.spec for e in registry.list_bundled()) or "none yet (`python -m cli train` makes one)"
        raise CheckpointError(f"There is no finished bundled checkpoint '{name}'; available: {ready}.")
    return load_path(folder, spec)


def weights_version(spec: str) -> str:
    """Modification times of a bundled or file checkpoint's files ('' for other sources), so a cache keyed by
    spec and version reloads retrained weights instead of serving stale ones."""
    scheme, _, rest = split_choices(spec)[0].partition(":")
    if scheme == "bundled":
        name, _, snapshot = rest.partition("@")
        path = Path(registry.WEIGHTS_DIR) / name
        path = path / SNAPSHOT_DIR / f"{snapshot}.safetensors" if snapshot else path
    elif scheme == "file":
        path = Path(rest).expanduser()
    else:
        return ""
    files = [path] if path.is_file() else [path / WEIGHTS_FILE, path / CONFIG_FILE] if path.is_dir() else []
    return ";".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in files if p.is_file())


def series_of_specs(specs: list[str], name: str) -> Series:
    """A series from what a person names: one bundled run ('bundled:NAME'), or several checkpoint specs (file:,
    hub:, upload:, bundled:NAME@epoch-K) ordered by the epoch or step in the name of the file each points at."""
    if len(specs) == 1 and specs[0].startswith("bundled:") and not any(c in specs[0] for c in "@#"):
        return bundled_series_named(specs[0])
    bases = [split_choices(spec)[0] for spec in specs]
    named = [
        (spec, PurePosixPath((b.partition(":")[2] or b).rstrip("/")).name) for spec, b in zip(specs, bases, strict=True)
    ]
    return series_of_files(name, named)
