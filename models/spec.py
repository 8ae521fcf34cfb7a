"""`ModelSpec`: a model spec parsed once where it enters (a link, the sidebar, the command line, an upload).

    bundled:NAME[@epoch-K]                    a folder of models/weights, or a snapshot its training kept
    hub:OWNER/REPO[@REVISION][:FILENAME]      a Hugging Face Hub repo
    file:PATH                                 a checkpoint file or folder on this machine
    upload:NAME                               a file uploaded to this app session (it stays in that session)
    timm:NAME, torchvision:NAME               an untrained network of that architecture (e.g. for floors)

Any of the first four may end in '#' and the choices the weights cannot say: `#pool=yes,padding=2,norm=imagenet`;
file:, upload: and hub: specs may name the architecture of their weights: `#arch=timm:NAME` (or torchvision:NAME).
Everything below the edge takes the parsed spec, so no loader, registry lookup or cache reads the text again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from models.calibration import NORMALISATIONS
from models.errors import CheckpointError
from models.loaded import SourceHints

SOURCES = ("bundled", "hub", "file", "upload", "timm", "torchvision")
NAMED_SOURCES = ("timm", "torchvision")  # an architecture by name, untrained
ARCH_SOURCES = ("hub", "file", "upload")  # whose weights may be given an architecture ('#arch=')
SPEC_FORMS = "bundled:NAME, hub:OWNER/REPO[@REVISION][:FILENAME], file:PATH or timm:NAME"
HUB_FORM = "hub:OWNER/REPO[@REVISION][:FILENAME], e.g. hub:edadaltocg/resnet50_simclr_cifar10"
CHOICE_FORM = f"SPEC#pool=yes|no,padding=1|2,norm={'|'.join(NORMALISATIONS)}"
_SAFE_FILENAME = re.compile(r"^[\w.\-]+(/[\w.\-]+)*$")  # a file inside a Hub repo: no '..', no absolute path


@dataclass(frozen=True)
class SpecChoices:
    """What a person chose after '#': how to read what the weights cannot say (None: measured, or as the source
    says). Hashable, so a spec carrying them can key a cache."""

    pool: bool | None = None  # a max-pool after a 3x3 stem
    padding: int | None = None  # the 3x3 stem's padding, 0-3
    norm: str | None = None  # a models.calibration.NORMALISATIONS name

    def __bool__(self) -> bool:
        return (self.pool, self.padding, self.norm) != (None, None, None)

    @property
    def text(self) -> str:
        """'pool=yes,padding=2,norm=imagenet' with only the choices made, in that order ('' for none)."""
        pool = None if self.pool is None else "yes" if self.pool else "no"
        pairs = (("pool", pool), ("padding", self.padding), ("norm", self.norm))
        return ",".join(f"{key}={value}" for key, value in pairs if value is not None)

    def hints(self) -> SourceHints:
        """The choices in the form the loader applies over what the weights and their source say."""
        mean, std = NORMALISATIONS[self.norm] if self.norm else (None, None)
        return SourceHints(mean=mean, std=std, stem_padding=self.padding, stem_pool=self.pool, origin="your choice")


@dataclass(frozen=True)
class ModelSpec:
    """One checkpoint as a person names it: where it comes from and how its weights are to be read.

    `ModelSpec.parse(text)` is the one parser; `spec.text` (also `str(spec)`) is its canonical form, and
    `ModelSpec.parse(spec.text) == spec`. Building one directly checks that its fields fit its source.
    """

    source: str  # one of SOURCES
    location: str  # bundled: folder name; hub: OWNER/REPO; file: path as written; upload: the file's name
    revision: str | None = None  # hub only: branch, tag or commit (None: the default branch)
    file: str | None = None  # hub only: the weight file in the repo (None: the registry's, else the usual names)
    snapshot: str | None = None  # bundled only: 'epoch-K', a snapshot the run kept after epoch K
    choices: SpecChoices = SpecChoices()  # what a person set after '#'
    arch: str | None = None  # '#arch=timm:NAME' or '#arch=torchvision:NAME': the architecture of the weights

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise CheckpointError(f"'{self.source}:' is not a known source; write {SPEC_FORMS}.")
        if not self.location or "#" in self.location:
            raise CheckpointError(f"'{self.source}:{self.location}' names no {self.source} model; write {SPEC_FORMS}.")
        if (self.revision or self.file) and self.source != "hub":
            raise CheckpointError(f"Only a Hub spec takes a revision or a file name, not a {self.source}: spec.")
        if self.snapshot and self.source != "bundled":
            raise CheckpointError(f"Only a bundled spec takes a snapshot (@epoch-K), not a {self.source}: spec.")
        if self.source in NAMED_SOURCES:
            from models.named import parse_arch  # timm is imported only when an architecture is named

            parse_arch(f"{self.source}:{self.location}")
        if self.arch is not None:
            if self.source not in ARCH_SOURCES:
                raise CheckpointError(
                    f"Only a file:, upload: or hub: spec takes an architecture (#arch=), not a {self.source}: spec."
                )
            from models.named import parse_arch

            parse_arch(self.arch)
        if (self.arch is not None or self.source in NAMED_SOURCES) and self.choices:
            raise CheckpointError(
                "A named architecture takes its input form from its library; leave out pool=, padding= and norm=."
            )

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """The spec a person wrote; a CheckpointError saying what would work for anything else."""
        if not isinstance(text, str):
            raise CheckpointError(f"A model spec must be a string such as {SPEC_FORMS}, not {type(text).__name__}.")
        text = text.strip()
        body, sep, after = text.partition("#")
        choices, arch = _parse_choices(after, text) if sep else (SpecChoices(), None)
        body = body.strip()
        source, sep, rest = body.partition(":")
        if not sep or not rest:
            raise CheckpointError(f"'{body}' is not a model spec; write {SPEC_FORMS}.")
        if source == "hub":
            return cls("hub", *_parse_hub(body), choices=choices, arch=arch)
        if source == "bundled":
            name, at, snapshot = rest.partition("@")
            if at and not snapshot:
                raise CheckpointError(f"'{body}' has an '@' but no snapshot after it; write bundled:NAME@epoch-K.")
            return cls("bundled", name, snapshot=snapshot or None, choices=choices, arch=arch)
        if source not in SOURCES:
            raise CheckpointError(f"'{source}:' is not a known source in '{body}'; write {SPEC_FORMS}.")
        return cls(source, rest, choices=choices, arch=arch)

    @classmethod
    def upload(cls, filename: str) -> ModelSpec:
        """The spec of an uploaded file: its name, with any '#' (which would start choices) made '_'."""
        return cls("upload", filename.strip().replace("#", "_") or "upload")

    @property
    def text(self) -> str:
        """The canonical spec, e.g. 'hub:OWNER/REPO@REV:FILE#pool=yes,norm=imagenet'."""
        at = self.revision or self.snapshot
        body = f"{self.source}:{self.location}" + (f"@{at}" if at else "") + (f":{self.file}" if self.file else "")
        after = ",".join(filter(None, (self.choices.text, self.arch and f"arch={self.arch}")))
        return body + (f"#{after}" if after else "")

    @property
    def key(self) -> str:
        """What caches of loaded networks are keyed by (with the files' version): the canonical text, so two
        spellings of one spec share an entry."""
        return self.text

    @property
    def base(self) -> ModelSpec:
        """The same checkpoint without what was set after '#'."""
        return replace(self, choices=SpecChoices(), arch=None)

    def with_choices(self, choices: SpecChoices) -> ModelSpec:
        """The same checkpoint read under these choices instead of its own."""
        return replace(self, choices=choices)

    def __str__(self) -> str:
        return self.text


def _parse_choices(text: str, spec: str) -> tuple[SpecChoices, str | None]:
    """'pool=yes,padding=2,norm=imagenet' (any of them, any order, any case) -> the choices and an arch name.

    pool: yes/no (a max-pool after a 3x3 stem); padding: 0-3 (the 3x3 stem's); norm: one of NORMALISATIONS;
    arch: timm:NAME or torchvision:NAME (checked when the spec is made).
    """
    values: dict = {}
    arch = None
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = (x.strip().lower() for x in part.partition("="))
        if key == "pool" and value in ("yes", "no"):
            values["pool"] = value == "yes"
        elif key == "padding" and value in ("0", "1", "2", "3"):
            values["padding"] = int(value)
        elif key == "norm" and value in NORMALISATIONS:
            values["norm"] = value
        elif key == "arch" and value:
            arch = value
        else:
            raise CheckpointError(f"'{part}' in '{spec}' is not a choice; write {CHOICE_FORM} (any of the three).")
    if not values and arch is None:
        raise CheckpointError(f"'{spec}' has a '#' but no choices after it; write e.g. SPEC#norm=imagenet.")
    return SpecChoices(**values), arch


def _parse_hub(spec: str) -> tuple[str, str | None, str | None]:
    """'hub:OWNER/REPO[@REVISION][:FILENAME]' -> (repo, revision, file); the Hub's own rule for repo names."""
    from huggingface_hub.errors import HFValidationError  # huggingface_hub is imported only when the Hub is used
    from huggingface_hub.utils import validate_repo_id

    body = spec.removeprefix("hub:").strip()
    repo_part, _, filename = body.partition(":")
    repo_id, _, revision = repo_part.partition("@")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        repo_id = ""
    if repo_id.count("/") != 1 or ("@" in repo_part and not revision):
        raise CheckpointError(f"'{spec}' is not a Hub spec; write {HUB_FORM}.")
    if ":" in body and not (filename and _SAFE_FILENAME.match(filename) and ".." not in filename.split("/")):
        raise CheckpointError(
            f"'{spec}' names the file {filename!r}, which is not a file path in a repo; write {HUB_FORM}."
        )
    return repo_id, revision or None, filename or None
