"""Every environment variable CKA Lens reads, in one place; nothing else touches os.environ.

Values are read when asked for, not at import, so a test or a launcher can change them at any time.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import SettingsError

CONCURRENT = "CKA_LENS_CONCURRENT"  # analyses computed at once by one server; the rest wait their turn
THREADS = "CKA_LENS_THREADS"  # torch CPU threads for the app; 1 is far faster when other jobs load every core
NO_FILE_SPECS = "CKA_LENS_DISABLE_FILE_SPECS"  # "1" on public servers: a link must not make the server read its disk
MAX_UPLOAD_MB = "CKA_LENS_MAX_UPLOAD_MB"
HUB_TIMEOUT = "CKA_LENS_HUB_TIMEOUT"
CALIBRATION_IMAGES = "CKA_LENS_CALIBRATION_IMAGES"  # test images a loaded network is measured on; 0: not measured
STORE = "CKA_LENS_STORE"  # the result store's folder; "off" keeps nothing on disk
STORE_MB = "CKA_LENS_STORE_MB"  # its size bound
SHIPPED = "CKA_LENS_SHIPPED"  # results shipped with the app, read where the store has none; "off" reads none
SPILL_MB = "CKA_LENS_SPILL_MB"  # a fingerprint's per-batch parts beyond this many MB go to files on disk
CACHE = "CKA_LENS_CACHE"  # where downloaded CIFAR-10 is kept
FLOOR_PAIRS = "CKA_LENS_FLOOR_PAIRS"  # pairs of init seeds behind the app's untrained floor (the result says how many)
CIFAR10_DIR = "CIFAR10_DIR"  # a folder holding CIFAR-10 (npz pair or cifar-10-batches-py)
DEFAULT_MAX_UPLOAD_MB = 500.0
DEFAULT_HUB_TIMEOUT_S = 10.0
_TRUE = ("1", "true", "yes", "on")


def _raw(name: str) -> str:
    return os.environ.get(name, "").strip()


def env_number(name: str, default: float, advice: str) -> float:
    """The number in environment variable `name`; `default` when it is unset or blank.

    Anything else is a SettingsError naming the variable, its value and `advice`, so a typo in a
    limit is reported instead of silently replaced.
    """
    raw = _raw(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} {advice}") from None


def env_flag(name: str) -> bool:
    """Whether `name` is set to 1/true/yes/on."""
    return _raw(name).lower() in _TRUE


def threads() -> int | None:
    """CKA_LENS_THREADS as a positive whole number, or None when unset."""
    value = env_number(THREADS, 0, "is not a number of threads; set it to e.g. 1.")
    if value != int(value) or value < 0:
        raise SettingsError(f"{THREADS}={_raw(THREADS)!r} is not a number of threads; set it to e.g. 1.")
    return int(value) or None


def concurrent_analyses() -> int | None:
    """CKA_LENS_CONCURRENT as a positive whole number, or None when unset (the server decides)."""
    value = env_number(CONCURRENT, 0, "is not a number of analyses; set it to e.g. 2.")
    if value != int(value) or value < 0:
        raise SettingsError(f"{CONCURRENT}={_raw(CONCURRENT)!r} is not a number of analyses; set it to e.g. 2.")
    return int(value) or None


def floor_pairs(default: int) -> int:
    """CKA_LENS_FLOOR_PAIRS as a whole number of init pairs from 1 (fewer make a coarser floor band), else
    `default`."""
    value = env_number(FLOOR_PAIRS, default, "is not a number of init pairs; set it to e.g. 8.")
    if value != int(value) or value < 1:
        raise SettingsError(f"{FLOOR_PAIRS}={_raw(FLOOR_PAIRS)!r} is not a number of init pairs; set it to e.g. 8.")
    return int(value)


def file_specs_disabled() -> bool:
    """Whether file: specs are refused (public servers)."""
    return _raw(NO_FILE_SPECS) == "1"


def max_upload_bytes() -> int:
    """The size limit for checkpoints: CKA_LENS_MAX_UPLOAD_MB megabytes, 500 if unset."""
    megabytes = env_number(MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_MB, "is not a number; set it to megabytes, e.g. 1000.")
    return int(megabytes * 1_000_000)


def calibration_images() -> int:
    """How many CIFAR-10 test images a loaded network is measured on: CKA_LENS_CALIBRATION_IMAGES, default 256."""
    value = env_number(CALIBRATION_IMAGES, 256, "is not a number of images; set it to e.g. 256, or 0 to skip.")
    if value != int(value) or value < 0:
        raise SettingsError(f"{CALIBRATION_IMAGES}={_raw(CALIBRATION_IMAGES)!r} is not a number of images; e.g. 256.")
    return int(value)


def hub_timeout() -> float:
    """Seconds to wait for the Hub's answer: CKA_LENS_HUB_TIMEOUT, default 10 (also for a non-positive value)."""
    value = env_number(HUB_TIMEOUT, DEFAULT_HUB_TIMEOUT_S, "is not a number of seconds; set it to e.g. 10.")
    return value if value > 0 else DEFAULT_HUB_TIMEOUT_S


def download_dir() -> Path:
    """Where a downloaded CIFAR-10 is kept: CKA_LENS_CACHE, else ~/.cache/cka-lens."""
    return Path(_raw(CACHE) or Path.home() / ".cache" / "cka-lens")


def store_dir() -> Path | None:
    """The result store's folder: CKA_LENS_STORE, else `store` in the download cache; None when set to 'off'."""
    raw = _raw(STORE)
    if raw.lower() in ("off", "0", "none"):
        return None
    return Path(raw) if raw else download_dir() / "store"


def shipped_dir() -> Path | None:
    """The results shipped with the app (read, never written): CKA_LENS_SHIPPED, else the app's data/shipped; None
    when set to 'off' (`make shipped` computes them again without reading them)."""
    raw = _raw(SHIPPED)
    if raw.lower() in ("off", "0", "none"):
        return None
    return Path(raw) if raw else Path(__file__).resolve().parent.parent / "data" / "shipped"


def store_bytes() -> int:
    """The result store's bound: CKA_LENS_STORE_MB megabytes, 2000 if unset."""
    megabytes = env_number(STORE_MB, 2000, "is not a number; set it to megabytes, e.g. 2000.")
    if megabytes <= 0:
        raise SettingsError(f"{STORE_MB}={_raw(STORE_MB)!r} must be positive; set {STORE}=off to keep nothing.")
    return int(megabytes * 1_000_000)


def spill_bytes() -> int:
    """How much of a fingerprint's per-batch parts stays in memory: CKA_LENS_SPILL_MB megabytes, 64 if unset.

    64 MB keeps a default analysis (1,000 images: ~51 MB per full-width ResNet-18) wholly in memory, and bounds
    what two fingerprints hold at any n (the rest is read back a batch at a time, from the page cache while it
    lasts); 0 puts every batch on disk."""
    megabytes = env_number(SPILL_MB, 64, "is not a number; set it to megabytes, e.g. 64.")
    if megabytes < 0:
        raise SettingsError(f"{SPILL_MB}={_raw(SPILL_MB)!r} must be 0 or more megabytes, e.g. 64.")
    return int(megabytes * 1_000_000)


def cifar10_dir() -> Path | None:
    """CIFAR10_DIR, if set."""
    return Path(_raw(CIFAR10_DIR)) if _raw(CIFAR10_DIR) else None


def world() -> tuple[int, int, int]:
    """(world size, rank, local rank) as torchrun sets them; (1, 0, 0) outside torchrun."""
    return int(_raw("WORLD_SIZE") or 1), int(_raw("RANK") or 0), int(_raw("LOCAL_RANK") or 0)


def hub_endpoint() -> str | None:
    """HF_ENDPOINT as it is now (huggingface_hub read it at import), or None for huggingface_hub's own."""
    return _raw("HF_ENDPOINT").rstrip("/") or None


def hub_cache_dir() -> str | None:
    """HF_HUB_CACHE, else HF_HOME/hub, as they are now; None leaves huggingface_hub's default."""
    if _raw("HF_HUB_CACHE"):
        return _raw("HF_HUB_CACHE")
    return os.path.join(_raw("HF_HOME"), "hub") if _raw("HF_HOME") else None


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as it is now."""
    return env_flag("HF_HUB_OFFLINE")
