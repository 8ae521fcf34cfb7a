"""A result store on disk: finished analyses and fingerprints, keyed by content, shared by the app and the CLI.

Keys are hashes of what determines an entry (the weights and how they were read, the subset, the options and
ENGINE_VERSION), so the CLI can fill the store and the app read it, across restarts. Every entry is written to a
temporary file and renamed into place, and carries a sha256 of its content: a half-written file never has an
entry's name, and a damaged entry is detected, deleted and recomputed, never shown. The store keeps at most
`max_bytes`, evicting the least recently used entries (a read touches its entry).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch

from core import settings
from core.data import SubsetSpec
from core.fingerprint import Fingerprint
from core.network import ModelIdentity
from core.options import AnalysisOptions
from core.result import AnalysisResult, from_json_dict, to_json_dict

# Bump when the numbers an entry holds would change for the same inputs: older entries are then never read.
ENGINE_VERSION = "2026.12.1"
STALE_TMP_S = 600  # a temporary file this old belongs to a writer that died
_LOCK = threading.Lock()  # eviction walks the folder: one at a time per process


def default_store() -> Store | None:
    """The store the settings name (CKA_LENS_STORE, CKA_LENS_STORE_MB); None when it is off."""
    folder = settings.store_dir()
    return None if folder is None else Store(folder, settings.store_bytes())


def result_key(key_a: str, key_b: str, subset: SubsetSpec, options: AnalysisOptions) -> str:
    """The store key of a comparison: both networks' content keys (ModelIdentity.key), subset, options."""
    return content_key("result", key_a, key_b, subset, options)


def fingerprint_key(key: str, subset: SubsetSpec, options: AnalysisOptions) -> str:
    return content_key("fingerprint", key, subset, options)


def content_key(*parts: object) -> str:
    """A stable hash of JSON-able parts (dataclasses as dicts), with the engine version."""
    plain = [asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts]
    text = json.dumps([ENGINE_VERSION, *plain], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Store:
    """Finished results (JSON) and fingerprints (torch files, read weights-only) under `root`, at most
    `max_bytes` in all."""

    def __init__(self, root: Path | str, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    # ------------------------------------------------------------------ results

    def result(self, key: str) -> AnalysisResult | None:
        data = self._read(key, ".json")
        if data is None:
            return None
        try:
            entry = json.loads(data)
            body = json.dumps(entry["result"], sort_keys=True)
            if entry.get("sha256") != _digest(body.encode()) or entry.get("engine") != ENGINE_VERSION:
                raise ValueError("checksum")
            return from_json_dict(entry["result"])
        except (ValueError, KeyError, TypeError):
            return self._discard(key, ".json")

    def put_result(self, key: str, result: AnalysisResult) -> None:
        body = json.dumps(to_json_dict(result), sort_keys=True)
        entry = {"engine": ENGINE_VERSION, "sha256": _digest(body.encode()), "result": json.loads(body)}
        self._write(key, ".json", json.dumps(entry).encode())

    # ------------------------------------------------------------------ fingerprints

    def fingerprint(self, key: str) -> Fingerprint | None:
        data = self._read(key, ".pt")
        if data is None:
            return None
        try:
            entry = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            tensors, meta = entry["tensors"], json.loads(entry["meta"])
            if meta.pop("sha256") != _tensor_digest(tensors, meta) or meta.get("engine") != ENGINE_VERSION:
                raise ValueError("checksum")
            return _fingerprint_from(tensors, meta)
        except Exception:  # noqa: BLE001 - anything unreadable is damage: recomputed, never shown
            return self._discard(key, ".pt")

    def put_fingerprint(self, key: str, fp: Fingerprint) -> None:
        tensors, meta = _fingerprint_parts(fp)
        meta["sha256"] = _tensor_digest(tensors, meta)
        buffer = io.BytesIO()
        torch.save({"tensors": tensors, "meta": json.dumps(meta)}, buffer)
        self._write(key, ".pt", buffer.getvalue())

    # ------------------------------------------------------------------ files

    def _path(self, key: str, suffix: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"a store key is a hex digest, not {key!r}")
        return self.root / f"{key}{suffix}"

    def _read(self, key: str, suffix: str) -> bytes | None:
        path = self._path(key, suffix)
        try:
            data = path.read_bytes()
            os.utime(path)  # least recently used goes first
        except OSError:
            return None
        return data

    def _discard(self, key: str, suffix: str) -> None:
        """A damaged entry: removed, so it is recomputed and written again."""
        self._path(key, suffix).unlink(missing_ok=True)
        return None

    def _write(self, key: str, suffix: str, data: bytes) -> None:
        """Write to a temporary name and rename into place; then keep the store within its bound."""
        if len(data) > self.max_bytes:
            return  # larger than the whole store: not kept
        tmp = self.root / f".{key}{suffix}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
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
        with _LOCK:
            now = time.time()
            entries = []
            for path in self.root.iterdir():
                try:
                    stat = path.stat()
                except OSError:
                    continue
                if path.name.endswith(".tmp"):
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

    def size(self) -> int:
        """Bytes held in entries (temporary files excluded)."""
        if not self.root.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.root.glob("*") if not p.name.endswith(".tmp"))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tensor_digest(tensors: dict[str, torch.Tensor], meta: dict) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _fingerprint_parts(fp: Fingerprint) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    for i, (rows, hsic, labels) in enumerate(zip(fp.rows, fp.self_hsic, fp.labels, strict=True)):
        tensors[f"rows.{i}"], tensors[f"self_hsic.{i}"], tensors[f"labels.{i}"] = rows, hsic, labels
        for j, pooled in enumerate(fp.pooled[i]):
            tensors[f"pooled.{i}.{j}"] = pooled
    for name in ("label_hsic", "inv_cross", "inv_self", "constant"):
        tensors[name] = getattr(fp, name)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {
        "engine": ENGINE_VERSION,
        "model": asdict(fp.model),
        "layers": list(fp.layers),
        "subset_key": fp.subset_key,
        "options": asdict(fp.options),
        "batch_ids": list(fp.batch_ids),
        "pooled_per_batch": [len(p) for p in fp.pooled],
        "seconds": fp.seconds,
    }
    return tensors, meta


def _fingerprint_from(tensors: dict[str, torch.Tensor], meta: dict) -> Fingerprint:
    batches = range(len(meta["batch_ids"]))
    return Fingerprint(
        model=ModelIdentity(**meta["model"]),
        layers=tuple(meta["layers"]),
        subset_key=meta["subset_key"],
        options=AnalysisOptions(**meta["options"]),
        batch_ids=tuple(meta["batch_ids"]),
        rows=tuple(tensors[f"rows.{i}"] for i in batches),
        self_hsic=tuple(tensors[f"self_hsic.{i}"] for i in batches),
        pooled=tuple(tuple(tensors[f"pooled.{i}.{j}"] for j in range(meta["pooled_per_batch"][i])) for i in batches),
        labels=tuple(tensors[f"labels.{i}"] for i in batches),
        label_hsic=tensors["label_hsic"],
        inv_cross=tensors["inv_cross"],
        inv_self=tensors["inv_self"],
        constant=tensors["constant"],
        seconds=dict(meta["seconds"]),
    )
