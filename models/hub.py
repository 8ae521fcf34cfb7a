"""Checkpoints from the Hugging Face Hub, through huggingface_hub's cache, with bounded waits.

`hf_hub_download` gives the cache, HF_HUB_OFFLINE and revision pinning, but when its metadata
request fails and nothing is cached it retries with a 60 s timeout and up to 5 back-offs
(`_ETAG_RETRY_TIMEOUT`, `_DEFAULT_RETRY_ON_STATUS_CODES` in huggingface_hub 2.4's file_download.py),
which can hang a page for minutes. So every download first sends one metadata HEAD request without
retries and with our timeout (CKA_LENS_HUB_TIMEOUT, default 10 s), and only calls `hf_hub_download`
once the Hub has answered. The body download is bounded by huggingface_hub's per-read
HF_HUB_DOWNLOAD_TIMEOUT.

huggingface_hub reads HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE once, at import; this module reads
them at each call and passes `endpoint=` / `cache_dir=` / `local_files_only=` explicitly, so changing
them (tests, the app's settings) takes effect without re-importing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_token

from core import settings
from core.network import InputConfig
from models.checkpoint import check_size, load_path_bytes, parse_config
from models.errors import CheckpointError
from models.folder_format import CONFIG_FILE, WEIGHTS_FILE
from models.loaded import LoadedModel, SourceHints
from models.registry import RegistryEntry, find_hub_entry, list_bundled
from models.spec import ModelSpec

WEIGHT_CANDIDATES = (WEIGHTS_FILE, "pytorch_model.bin")  # tried in order for repos not in the registry
_TIMM_NAME = re.compile(r"^[a-z0-9_]+$")  # timm's model names: vit_small_patch16_224, resnet50, test_vit


@dataclass(frozen=True)
class Fetched:
    """A file in the local Hugging Face cache and how it got there."""

    path: Path
    note: str


def load_hub(spec: ModelSpec, max_bytes: int | None = None) -> LoadedModel:
    """Download (or take from the cache) a Hub checkpoint and load it like any other file.

    A repo in timm's Hub layout (config.json with `architecture` and `pretrained_cfg`) is built as that timm
    architecture, with the preprocessing its config states; any other repo goes through the one loading path.
    """
    entry = find_hub_entry(spec.location)
    hints = entry.hints() if entry else SourceHints()
    if entry and spec.file in (None, entry.filename):
        weights = fetch(spec.location, entry.filename, spec.revision, max_bytes=max_bytes)
    else:
        weights = _fetch_unknown_repo(spec, max_bytes)
    if not (entry and entry.named is None and spec.file in (None, entry.filename)):  # the study's: the registry says
        config = fetch(spec.location, CONFIG_FILE, spec.revision, optional=True, max_bytes=1 << 20)
        if config is not None:
            hints = _config_hints(config.path, spec.location).merged_over(hints)
    if spec.arch and spec.arch != hints.arch:  # a person's #arch= over the repo's: its input form is not the repo's
        hints = replace(hints, input=None)
    hints = replace(hints, notes=(weights.note,) + hints.notes, arch=spec.arch or hints.arch)
    loaded = load_path_bytes(weights.path, spec.text, hints, max_bytes)
    return _with_registry_check(loaded, entry)


TIMM_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # what timm's pretrained_cfg says and CKA Lens resizes with


def timm_repo_hints(config: object, where: str) -> SourceHints | None:
    """What a config.json in timm's Hub layout says, as hints: the architecture and its preprocessing; None when the
    file is not in that layout. A timm layout with a field out of shape is a CheckpointError.

    timm's own Hub repos (timm/NAME.TAG) hold a config.json with the model's `architecture` at its top level beside
    `num_classes`, and a `pretrained_cfg` with `input_size` ([channels, height, width]), `interpolation`,
    `crop_pct`, `mean` and `std`; the weights are model.safetensors (pytorch_model.bin in older repos).
    """
    timm_layout = isinstance(config, dict) and "architecture" in config
    if not timm_layout or not isinstance(config.get("pretrained_cfg"), dict):
        return None
    cfg = config["pretrained_cfg"]
    name = config["architecture"]
    if not isinstance(name, str) or not _TIMM_NAME.match(name):
        raise CheckpointError(f"'{where}' names the architecture {name!r}, which is not a timm model name; fix it.")
    size = cfg.get("input_size", (3, 224, 224))
    if not (isinstance(size, (list, tuple)) and len(size) == 3 and all(isinstance(v, int) and v > 0 for v in size)):
        raise CheckpointError(f"'{where}' has input_size {size!r}; timm writes [channels, height, width].")
    interpolation = cfg.get("interpolation", "bilinear")
    if interpolation not in TIMM_INTERPOLATIONS:
        raise CheckpointError(
            f"'{where}' has interpolation {interpolation!r}; CKA Lens resizes with {', '.join(TIMM_INTERPOLATIONS)}."
        )
    crop = cfg.get("crop_pct")
    if crop is not None and not (isinstance(crop, (int, float)) and 0 < crop <= 1):
        raise CheckpointError(f"'{where}' has crop_pct {crop!r}; it must be a fraction in (0, 1].")
    stated = parse_config(json.dumps({"mean": cfg.get("mean"), "std": cfg.get("std")}).encode(), where)
    if not (stated.mean and stated.std):
        raise CheckpointError(f"'{where}' has no mean and std in its pretrained_cfg; timm's Hub repos state both.")
    arch = f"timm:{name}"
    config_input = InputConfig(
        (size[1], size[2]), interpolation, stated.mean, stated.std, None if crop is None else float(crop)
    )
    return SourceHints(
        mean=stated.mean,
        std=stated.std,
        arch=arch,
        input=config_input,
        origin="config.json",
        notes=(f"architecture {arch} and its preprocessing ({config_input.text}) from the repo's config.json",),
    )


def _config_hints(path: Path, repo_id: str) -> SourceHints:
    """Hints from a repo's config.json (timm's Hub layout, or ours); one written for another library is ignored,
    with a note."""
    where = f"{repo_id}/{CONFIG_FILE}"
    try:
        data = path.read_bytes()
        try:
            timm = timm_repo_hints(json.loads(data), where)
        except (ValueError, UnicodeDecodeError):
            timm = None
        return timm or parse_config(data, where)
    except CheckpointError as err:
        return SourceHints(notes=(f"ignored the repo's config.json: {err}",))


def _fetch_unknown_repo(spec: ModelSpec, max_bytes: int | None) -> Fetched:
    """The named file, else the first of model.safetensors / pytorch_model.bin that the repo has."""
    if spec.file:
        return fetch(spec.location, spec.file, spec.revision, max_bytes=max_bytes)  # type: ignore[return-value]
    for name in WEIGHT_CANDIDATES:
        found = fetch(spec.location, name, spec.revision, optional=True, max_bytes=max_bytes)
        if found is not None:
            return found
    if offline():  # nothing cached: whether the repo has the files cannot be known here
        raise CheckpointError(
            f"The Hugging Face Hub cannot be reached from this server (it works offline) and {spec.location} was never "
            f"downloaded here; {_alternatives()}."
        )
    raise CheckpointError(
        f"The Hub repo {spec.location} has neither {' nor '.join(WEIGHT_CANDIDATES)}; name its weight file, "
        f"e.g. hub:{spec.location}:weights.pt."
    )


def _with_registry_check(loaded: LoadedModel, entry: RegistryEntry | None) -> LoadedModel:
    """Note when the weights disagree with what the registry expected (the weights win)."""
    if entry is None or entry.named:
        return loaded
    got, want = loaded.info.arch, entry.arch
    if (got.depth, got.width, got.stem, got.num_classes) == (want.depth, want.width, want.stem, want.num_classes):
        return loaded
    note = f"the registry expected a {want.name} ({want.stem} stem, {want.num_classes} classes); the weights decided"
    return replace(loaded, info=replace(loaded.info, notes=loaded.info.notes + (note,)))


def fetch(
    repo_id: str, filename: str, revision: str | None, *, optional: bool = False, max_bytes: int | None = None
) -> Fetched | None:
    """A local path for repo_id/filename@revision: probe, check the size, then hf_hub_download.

    `optional`: a file the repo does not have gives None instead of an error. When the Hub cannot
    be reached a cached copy is used (with a note); without one the error names bundled alternatives.
    """
    where = f"{repo_id}/{filename}" + (f"@{revision}" if revision else "")
    common = {"repo_id": repo_id, "filename": filename, "revision": revision, "cache_dir": settings.hub_cache_dir()}
    if offline():
        cached = _from_cache(common)
        if cached is None and not optional:
            raise CheckpointError(
                f"The Hugging Face Hub cannot be reached from this server (it works offline) and {where} was never "
                f"downloaded here; {_alternatives()}.",
                operator="Unset HF_HUB_OFFLINE to download it.",
            )
        return None if cached is None else Fetched(cached, f"used the copy of {where} downloaded before (offline)")
    timeout = settings.hub_timeout()
    try:
        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=settings.hub_endpoint())
        meta = get_hf_file_metadata(url, timeout=timeout, retry_on_errors=False)
    except RemoteEntryNotFoundError:
        if optional:
            return None
        raise CheckpointError(
            f"The Hub repo {repo_id} has no file '{filename}'"
            + (f" at revision {revision}" if revision else "")
            + f"; check the file name (hub:{repo_id}:FILENAME) on the repo's Files page."
        ) from None
    except Exception as err:  # noqa: BLE001 - every failure becomes a CheckpointError or a cache hit
        if not _unreachable(err):
            raise _http_error(err, repo_id, revision) from None
        cached = _from_cache(common)
        if cached is None:
            raise CheckpointError(
                f"The Hugging Face Hub could not be reached ({_reason(err, timeout)}) and {where} was never "
                f"downloaded here; check the network connection and try again, or {_alternatives()}.",
                operator=f"The Hub's address here is {settings.hub_endpoint() or constants.ENDPOINT}: check this "
                "machine's network, or HF_ENDPOINT.",
            ) from None
        reason = _reason(err, timeout)
        return Fetched(cached, f"the Hub could not be reached ({reason}): used the cached copy of {where}")
    if meta.size is not None:
        check_size(meta.size, f"{repo_id}/{filename}", max_bytes)
    try:
        path = hf_hub_download(**common, endpoint=settings.hub_endpoint(), etag_timeout=timeout)
    except Exception as err:  # noqa: BLE001
        if isinstance(err, (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError, HfHubHTTPError)):
            raise _http_error(err, repo_id, revision) from None
        raise CheckpointError(
            f"Downloading {where} failed ({_reason(err, timeout)}); try again, or {_alternatives()}."
        ) from None
    commit = f" (commit {meta.commit_hash[:10]})" if meta.commit_hash else ""
    return Fetched(Path(path), f"downloaded {where}{commit} from the Hugging Face Hub")


def _from_cache(common: dict) -> Path | None:
    """The cached copy of a file, without any network access; None if it was never downloaded."""
    try:
        return Path(hf_hub_download(**common, local_files_only=True))
    except Exception:  # noqa: BLE001 - LocalEntryNotFoundError and friends all mean "not cached"
        return None


def _unreachable(err: BaseException) -> bool:
    """Network down, too slow, refused, or the server failing (5xx/429): worth trying the cache."""
    if isinstance(err, (httpx2.TransportError, OfflineModeIsEnabled, OSError)) and not isinstance(err, HfHubHTTPError):
        return True
    status = _status(err)
    return status is not None and (status >= 500 or status in (408, 429))


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _http_error(err: BaseException, repo_id: str, revision: str | None) -> CheckpointError:
    """A CheckpointError for an answer from the Hub that means 'no' (missing repo, revision, access)."""
    if isinstance(err, GatedRepoError):
        return CheckpointError(
            f"The Hub repo {repo_id} is gated; accept its terms on huggingface.co and log in with `hf auth login`."
        )
    if isinstance(err, RevisionNotFoundError):
        return CheckpointError(
            f"The Hub repo {repo_id} has no revision '{revision}'; use a branch, tag or commit hash that exists, "
            f"or leave the revision out (hub:{repo_id})."
        )
    if isinstance(err, RepositoryNotFoundError) or _status(err) in (401, 404):
        return CheckpointError(
            f"The Hub has no repo {repo_id} (or it is private); check the name, e.g. hub:edadaltocg/resnet18_cifar10, "
            "or log in with `hf auth login` for a private repo."
        )
    return CheckpointError(f"The Hub refused {repo_id} ({_reason(err, None)}); check the spec, or {_alternatives()}.")


def _reason(err: BaseException, timeout: float | None) -> str:
    """A few words on what went wrong with a request."""
    if isinstance(err, httpx2.TimeoutException):
        return f"no answer within {timeout:g} s" if timeout else "timed out"
    if isinstance(err, httpx2.ConnectError):
        return "connection failed"
    if isinstance(err, OfflineModeIsEnabled):
        return "this server works offline"
    status = _status(err)
    if status is not None:
        return f"server error, HTTP {status}" if status >= 500 else f"HTTP {status}"
    text = " ".join(str(err).split())
    return (text[:120] + "...") if len(text) > 120 else text or type(err).__name__


def _alternatives() -> str:
    """What works without the Hub: the bundled checkpoints, or a file."""
    names = [e.spec.text for e in list_bundled()]
    if names:
        return "use a bundled checkpoint (" + ", ".join(names) + ") or upload a checkpoint file"
    return "upload a checkpoint file or load one with file:PATH"


def offline() -> bool:
    """HF_HUB_OFFLINE now, or as huggingface_hub read it at import."""
    return settings.hub_offline() or constants.HF_HUB_OFFLINE


def publish_folder(folder: Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload a checkpoint folder (model.safetensors, config.json, README.md) to a Hub model repo.

    The folder is loaded first, so only a checkpoint CKA Lens itself can load gets published.
    Returns the commit URL.
    """
    from models.checkpoint import load_path

    spec = ModelSpec.parse(f"hub:{repo_id}")  # the same rule for repo names as for loading
    if spec != ModelSpec("hub", spec.location):  # no revision, file or choices
        raise CheckpointError(f"'{repo_id}' is not a Hub repo id; write OWNER/REPO.")
    repo_id = spec.location
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise CheckpointError(
            f"'{folder}' lacks {WEIGHTS_FILE} or {CONFIG_FILE}; publish a folder written by `python -m cli train`."
        )
    load_path(folder, f"file:{folder}")
    token = token or get_token()
    if not token:
        raise CheckpointError("No Hugging Face token found; run `hf auth login` or set HF_TOKEN, then publish again.")
    api = HfApi(endpoint=settings.hub_endpoint(), token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            allow_patterns=[WEIGHTS_FILE, CONFIG_FILE, "README.md"],
            commit_message=f"Upload {folder.name} from CKA Lens",
        )
    except Exception as err:  # noqa: BLE001 - network, auth and permission errors alike
        raise CheckpointError(
            f"Publishing to {repo_id} failed ({_reason(err, None)}); check the network and that your token may "
            f"write to {repo_id}."
        ) from None
    return str(commit.commit_url)
