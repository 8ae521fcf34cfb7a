"""A result store on disk: finished analyses and fingerprints, keyed by content, shared by the app and the CLI.

A fingerprint entry (`.fp`) is a JSON header naming each tensor, the tensors' raw bytes one after another, and a
sha256 of all that: it is written and read a tensor at a time, so neither direction needs the whole fingerprint in
memory (reading it back keeps batches beyond CKA_LENS_SPILL_MB on disk, as computing it does), and reading it runs
nothing but a JSON parser.

Keys are hashes of what determines an entry (the weights and how they were read, the subset, the options and
ENGINE_VERSION), so the CLI can fill the store and the app read it, across restarts. Every entry is written to a
temporary file and renamed into place, and carries a sha256 of its content: a half-written file never has an
entry's name, and a damaged entry is detected, deleted and recomputed, never shown. The store keeps at most
`max_bytes`, evicting the least recently used entries (a read touches its entry).

The store trusts nothing it reads: each entry records its key (the digest and the full description it digests)
and is served only under that key; links are never followed; eviction and clean-up touch only regular files of
the store's own naming, in its own subfolder of the configured folder, which may be shared with anything else.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import secrets
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

import torch

from core import settings
from core.data import SubsetSpec
from core.errors import ContractError, LensError, StoreEntryDamaged
from core.fingerprint import Fingerprint, keep_batch
from core.network import ModelIdentity
from core.options import AnalysisOptions
from core.result import AnalysisResult, from_json_dict, to_json_dict
from core.spill import Batches, OnDisk, Part, Spiller, bytes_of, part_bytes

# Bump when the numbers an entry holds would change for the same inputs: older entries are then never read.
ENGINE_VERSION = "2026.12.3"
STALE_TMP_S = 600  # a temporary file this old belongs to a writer that died
FINGERPRINT = ".fp"
RESULT = ".json"  # two lines of JSON: the engine and a sha256, then the result
DIGEST_BYTES = 64  # the sha256 in hex that ends a fingerprint entry
_DTYPES = {str(d): d for d in (torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.bool)}
ENTRIES = "cka-lens-entries"  # the subfolder of the configured folder that holds the store's files, and only them
_KEY = re.compile(r"[0-9a-f]{32}")
_ENTRY = re.compile(r"[0-9a-f]{32}\.(json|fp)")  # the store's own names: nothing else in its folder is touched
_TMP = re.compile(r"\.[0-9a-f]{32}\.(json|fp)\.\d+\.[0-9a-f]{8}\.tmp")
_LOCK = threading.Lock()  # eviction walks the folder: one at a time per process


def default_store() -> Store | None:
    """The store the settings name (CKA_LENS_STORE, CKA_LENS_STORE_MB), reading the results shipped with the app
    (CKA_LENS_SHIPPED) where it has none of its own; None when it is off."""
    folder, shipped = settings.store_dir(), settings.shipped_dir()
    if folder is None:
        return None
    return Store(folder, settings.store_bytes(), None if shipped is None else Store(shipped, 0, read_only=True))


def result_key(key_a: str, key_b: str, subset: SubsetSpec, options: AnalysisOptions) -> StoreKey:
    """The store key of a comparison: both networks' content keys (ModelIdentity.key), subset, options."""
    return content_key("result", key_a, key_b, subset, options)


def fingerprint_key(key: str, subset: SubsetSpec, options: AnalysisOptions) -> StoreKey:
    return content_key("fingerprint", key, subset, options)


class StoreKey(str):
    """A store key (a hex digest) that also carries the full description it digests, which each entry records so
    an entry is served only for the very models, subset, options and engine it was computed from."""

    text: str

    def __new__(cls, text: str) -> StoreKey:
        key = super().__new__(cls, hashlib.sha256(text.encode()).hexdigest()[:32])
        key.text = text
        return key


def content_key(*parts: object) -> StoreKey:
    """A stable hash of JSON-able parts (dataclasses as dicts), with the engine version."""
    plain = [asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts]
    return StoreKey(json.dumps([ENGINE_VERSION, *plain], sort_keys=True, default=str))


def _key_fields(key: str) -> dict[str, str]:
    """What an entry records of its key: the digest, and the description where the key carries one."""
    return {"key": str(key), **({"described": key.text} if isinstance(key, StoreKey) else {})}


def _matches(meta: dict, key: str) -> bool:
    """Whether an entry's recorded key is the one asked for (an entry copied or linked under another name is not)."""
    if meta.get("key") != str(key):
        return False
    described = meta.get("described")
    if isinstance(key, StoreKey):
        return described == key.text
    return described is None or StoreKey(str(described)) == key


class Store:
    """Finished results (JSON) and fingerprints (a header and raw tensors) in a subfolder of `root` of their own
    (ENTRIES), at most `max_bytes` in all; a result it lacks is read from `shipped`, if given. A `read_only` store
    (the results shipped with the app) is read and verified as any other, but never written, touched or pruned."""

    def __init__(self, root: Path | str, max_bytes: int, shipped: Store | None = None, read_only: bool = False) -> None:
        self.root = Path(root)
        self.folder = self.root / ENTRIES  # the store's own folder: `root` may be shared with anything else
        self.max_bytes = max_bytes
        self.shipped = shipped
        self.read_only = read_only

    # ------------------------------------------------------------------ results

    def result(self, key: str) -> AnalysisResult | None:
        data = self.record(key)
        if data is None:
            return None
        try:
            return from_json_dict(data)
        except (LensError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return self.discard_record(key)

    def has_result(self, key: str) -> bool:
        """Whether an entry for `key` is there (not read: it may still turn out damaged, and be recomputed)."""
        path = self._path(key, RESULT)
        return (path.is_file() and not path.is_symlink()) or (self.shipped is not None and self.shipped.has_result(key))

    def put_result(self, key: str, result: AnalysisResult) -> None:
        self.put_record(key, to_json_dict(result))

    # ------------------------------------------------------------------ records: a result, or any small JSON object

    def record(self, key: str) -> dict | None:
        """The JSON object kept under `key` (a result, a network's calibration), read from the shipped store where
        this one has none; None when there is none, or it was damaged (then deleted, to be computed again)."""
        data = self._read(key, RESULT)
        if data is None:
            return None if self.shipped is None else self.shipped.record(key)
        try:
            head, newline, body = data.partition(b"\n")
            meta = json.loads(head)
            if not newline or meta.get("sha256") != _digest(body) or meta.get("engine") != ENGINE_VERSION:
                raise StoreEntryDamaged("checksum")
            if not _matches(meta, key):
                raise StoreEntryDamaged("an entry of another key")
            found = json.loads(body)
            if not isinstance(found, dict):
                raise StoreEntryDamaged("not a JSON object")
            return found
        except (StoreEntryDamaged, ValueError, AttributeError, RecursionError):
            return self.discard_record(key)

    def put_record(self, key: str, data: dict) -> None:
        """A line of JSON naming the engine and the sha256 of what follows it, then `data` as JSON: the digest
        covers the bytes as written, so any change to them is caught (a digest of the parsed and re-written JSON
        would miss a changed last digit that parses to the same float)."""
        body = json.dumps(data, sort_keys=True).encode()
        head = json.dumps({"engine": ENGINE_VERSION, "sha256": _digest(body), **_key_fields(key)}).encode()
        self._write(key, RESULT, [head, b"\n", body], len(head) + 1 + len(body))

    def discard_record(self, key: str) -> None:
        """Delete the record under `key` (one its reader found damaged), so it is computed and written again."""
        return self._discard(key, RESULT)

    # ------------------------------------------------------------------ fingerprints

    def fingerprint(self, key: str) -> Fingerprint | None:
        try:
            with _open_entry(self._path(key, FINGERPRINT)) as f:
                meta, start = _verified_header(f)
                if not _matches(meta, key):
                    raise StoreEntryDamaged("an entry of another key")
                fp = _fingerprint_from(f, start, meta)
                if not self.read_only:
                    os.utime(f.fileno())  # least recently used goes first
            return fp
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - anything unreadable is damage: recomputed, never shown
            return self._discard(key, FINGERPRINT)

    def put_fingerprint(self, key: str, fp: Fingerprint) -> None:
        """Keep `fp`, a tensor at a time (spilled batches are read back one by one); an entry larger than the
        whole store is refused from the parts' sizes, before anything is read or written."""
        parts, meta = _fingerprint_parts(fp)
        meta["tensors"] = [[name, str(p.dtype), list(p.shape)] for name, p in parts]
        meta |= _key_fields(key)
        header = json.dumps(meta).encode()
        size = 8 + len(header) + sum(part_bytes(p) for _, p in parts) + DIGEST_BYTES
        self._write(key, FINGERPRINT, _entry_chunks(header, parts), size)

    # ------------------------------------------------------------------ files

    def _path(self, key: str, suffix: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ContractError(f"a store key is a hex digest, not {key[:40]!r}")
        return self.folder / f"{key}{suffix}"

    def _read(self, key: str, suffix: str) -> bytes | None:
        try:
            with _open_entry(self._path(key, suffix)) as f:
                data = f.read()
                if not self.read_only:
                    os.utime(f.fileno())  # least recently used goes first
        except FileNotFoundError:
            return None
        except OSError:  # a link or a folder under an entry's name: not ours, never read
            return self._discard(key, suffix)
        return data

    def _discard(self, key: str, suffix: str) -> None:
        """A damaged entry: removed (a link itself, never what it points to), so it is recomputed and written
        again; a folder under an entry's name is left alone. A read-only store's entries stay as they are."""
        if self.read_only:
            return None
        try:
            self._path(key, suffix).unlink(missing_ok=True)
        except OSError:
            pass
        return None

    def _write(self, key: str, suffix: str, chunks: Iterable[bytes | memoryview], size: int) -> None:
        """Write `size` bytes, `chunks` one after another, to a temporary name and rename into place; then keep
        the store within its bound. Nothing is drawn from `chunks` for an entry larger than the whole store."""
        if size > self.max_bytes or self.read_only:
            return  # larger than the whole store, or a store that is only read: not kept
        tmp = self.folder / f".{key}{suffix}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path(key, suffix))
        except OSError:  # a full or read-only disk, or no folder: the entry is simply not kept
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            return
        self._evict(keep=self._path(key, suffix))

    def _evict(self, keep: Path) -> None:
        """Drop the least recently used entries beyond the bound, and temporary files of dead writers: only
        regular files of the store's own naming; anything else in the folder is never touched."""
        with _LOCK:
            now = time.time()
            entries = []
            for path, stat in self._own_files():
                if _TMP.fullmatch(path.name):
                    if now - stat.st_mtime > STALE_TMP_S:
                        path.unlink(missing_ok=True)
                    continue
                entries.append((stat.st_mtime, stat.st_size, path))
            total = sum(size for _, size, _ in entries)
            for _, size, path in sorted(entries):
                if total <= self.max_bytes:
                    break
                if path != keep:
                    path.unlink(missing_ok=True)
                    total -= size

    def _own_files(self) -> list[tuple[Path, os.stat_result]]:
        """The store's entries and temporary files: regular files (not links, not folders) named as it names
        them; anything else in the folder belongs to someone else."""
        found = []
        try:
            listing = list(os.scandir(self.folder))
        except OSError:
            return []
        for item in listing:
            if not (_ENTRY.fullmatch(item.name) or _TMP.fullmatch(item.name)):
                continue
            try:
                stat = item.stat(follow_symlinks=False)
            except OSError:
                continue
            if S_ISREG(stat.st_mode):
                found.append((Path(item.path), stat))
        return found

    def size(self) -> int:
        """Bytes held in entries (temporary files and foreign files excluded)."""
        return sum(stat.st_size for path, stat in self._own_files() if _ENTRY.fullmatch(path.name))


def _open_entry(path: Path) -> BinaryIO:
    """An entry opened for reading without following a link; anything but a regular file is an OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    if not S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(f"{path.name} is not a regular file")
    return os.fdopen(fd, "rb")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry_chunks(header: bytes, parts: list[tuple[str, Part]]) -> Iterator[bytes | memoryview]:
    """A fingerprint entry's bytes: header length, header, each tensor's raw bytes, then their sha256 in hex."""
    digest = hashlib.sha256()
    tensors = ((p.load() if isinstance(p, OnDisk) else p.detach().cpu().contiguous()) for _, p in parts)
    for chunk in itertools.chain([struct.pack("<Q", len(header)), header], map(bytes_of, tensors)):
        digest.update(chunk)
        yield chunk
    yield digest.hexdigest().encode()


def _verified_header(f: BinaryIO) -> tuple[dict, int]:
    """The header of a fingerprint entry and where its tensors start, once the whole file's sha256 checks out."""
    total = os.fstat(f.fileno()).st_size
    digest = hashlib.sha256()
    remaining = total - DIGEST_BYTES
    while remaining > 0:
        chunk = f.read(min(remaining, 1 << 24))
        if not chunk:
            raise StoreEntryDamaged("truncated")
        digest.update(chunk)
        remaining -= len(chunk)
    if f.read() != digest.hexdigest().encode():
        raise StoreEntryDamaged("checksum")
    f.seek(0)
    (length,) = struct.unpack("<Q", f.read(8))
    meta = json.loads(f.read(length))
    if meta.get("engine") != ENGINE_VERSION:
        raise StoreEntryDamaged("engine version")
    return meta, 8 + length


def _fingerprint_parts(fp: Fingerprint) -> tuple[list[tuple[str, Part]], dict]:
    """Every tensor of a fingerprint, named, in the order an entry holds them (a batch's parts together), and
    the rest as JSON."""
    parts: list[tuple[str, Part]] = []
    for i, (rows, hsic, labels) in enumerate(zip(fp.rows.parts, fp.self_hsic, fp.labels, strict=True)):
        parts += [(f"rows.{i}", rows), (f"self_hsic.{i}", hsic), (f"labels.{i}", labels)]
        parts += [(f"pooled.{j}.{i}", layer.parts[i]) for j, layer in enumerate(fp.pooled)]
        parts += [(f"readouts.{i}", fp.batch_readouts[i])] if fp.batch_readouts else []
    parts += [(name, getattr(fp, name)) for name in ("label_hsic", "inv_cross", "inv_self", "constant")]
    meta = {
        "engine": ENGINE_VERSION,
        "model": asdict(fp.model),
        "layers": list(fp.layers),
        "subset_key": fp.subset_key,
        "options": asdict(fp.options),
        "batch_ids": list(fp.batch_ids),
        "pooled_layers": len(fp.pooled),
        "readouts": bool(fp.batch_readouts),
        "seconds": fp.seconds,
        "unknown_layout": list(fp.unknown_layout),
        "tokens": list(fp.tokens),
    }
    return parts, meta


def _fingerprint_from(f: BinaryIO, start: int, meta: dict) -> Fingerprint:
    """A fingerprint from a verified entry, read a tensor at a time; batches beyond the spill bound go to files."""
    f.seek(start)
    entries = iter(meta["tensors"])
    left = [os.fstat(f.fileno()).st_size - start - DIGEST_BYTES]  # bytes the entry holds for its tensors

    def read(expected: str) -> torch.Tensor:
        name, dtype, shape = next(entries)
        if name != expected:
            raise StoreEntryDamaged(f"entry holds {name} where {expected} belongs")
        if not all(type(d) is int and d >= 0 for d in shape):
            raise StoreEntryDamaged("a shape that is not a shape")
        left[0] -= math.prod(shape) * _DTYPES[dtype].itemsize
        if left[0] < 0:  # declared larger than the entry: never allocated
            raise StoreEntryDamaged("truncated")
        tensor = torch.empty(shape, dtype=_DTYPES[dtype])
        if f.readinto(bytes_of(tensor)) != tensor.numel() * tensor.element_size():
            raise StoreEntryDamaged("truncated")
        return tensor

    spiller, rows, pooled = Spiller(settings.spill_bytes()), [], [[] for _ in range(meta["pooled_layers"])]
    self_hsic, labels, readouts = [], [], []
    for i in range(len(meta["batch_ids"])):
        batch_rows, hsic, batch_labels = read(f"rows.{i}"), read(f"self_hsic.{i}"), read(f"labels.{i}")
        keep_batch(spiller, rows, pooled, batch_rows, [read(f"pooled.{j}.{i}") for j in range(len(pooled))])
        self_hsic.append(hsic)
        labels.append(batch_labels)
        readouts += [read(f"readouts.{i}")] if meta.get("readouts") else []
    sums = {name: read(name) for name in ("label_hsic", "inv_cross", "inv_self", "constant")}
    return Fingerprint(
        model=ModelIdentity(**meta["model"]),
        layers=tuple(meta["layers"]),
        subset_key=meta["subset_key"],
        options=AnalysisOptions(**meta["options"]),
        batch_ids=tuple(meta["batch_ids"]),
        rows=Batches(tuple(rows)),
        self_hsic=tuple(self_hsic),
        pooled=tuple(Batches(tuple(layer)) for layer in pooled),
        labels=tuple(labels),
        seconds=dict(meta["seconds"]),
        batch_readouts=tuple(readouts),
        unknown_layout=tuple(meta.get("unknown_layout", ())),
        tokens=tuple(meta.get("tokens", ())),
        **sums,
    )
