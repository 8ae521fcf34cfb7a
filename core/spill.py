"""Per-batch tensors kept in memory up to a bound and in files on disk beyond it, read back one at a time.

A fingerprint keeps, per minibatch, each layer's centred Gram and pooled probe features: for two full-width
ResNet-18s over 50,000 images that is gigabytes. `Spiller` keeps a fingerprint's batches in memory until they
pass a bound (CKA_LENS_SPILL_MB) and writes the rest to files in a temporary folder; `Batches` is the sequence
either way. Files are read with plain reads into fresh tensors, never memory-mapped: pages of a mapping that
are touched count in the resident set while it stays mapped, so reading one batch at a time would not bound it.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch


class SpillFolder:
    """A temporary folder of spilled tensors, removed once nothing refers to it (or at exit)."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="cka-lens-spill-"))
        self._sizes: dict[str, int] = {}
        weakref.finalize(self, shutil.rmtree, self.path, True)

    def append(self, name: str, tensor: torch.Tensor) -> OnDisk:
        """Write `tensor` at the end of file `name`; where to find it again."""
        data = tensor.detach().cpu().contiguous()
        offset = self._sizes.get(name, 0)
        with open(self.path / name, "ab") as f:
            f.write(bytes_of(data))
        self._sizes[name] = offset + data.numel() * data.element_size()
        return OnDisk(self, name, offset, tuple(data.shape), data.dtype)


def bytes_of(tensor: torch.Tensor) -> memoryview:
    """The raw bytes of a contiguous CPU tensor, without a copy (any dtype, bfloat16 included)."""
    return memoryview(tensor.reshape(-1).view(torch.uint8).numpy())


@dataclass(frozen=True, eq=False)
class OnDisk:
    """One tensor in a spill file: where it is and what it is."""

    folder: SpillFolder  # held so the folder lives as long as anything refers to it
    name: str
    offset: int  # bytes
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def load(self) -> torch.Tensor:
        """The tensor, read from its file with a plain read into a fresh tensor."""
        out = torch.empty(self.shape, dtype=self.dtype)
        with open(self.folder.path / self.name, "rb") as f:
            f.seek(self.offset)
            if f.readinto(bytes_of(out)) != self.nbytes:
                raise OSError(f"spill file {self.name} is shorter than expected")
        return out


Part = torch.Tensor | OnDisk


def part_bytes(part: Part) -> int:
    """Bytes a part holds (in memory or in its file)."""
    return part.nbytes if isinstance(part, OnDisk) else part.numel() * part.element_size()


@dataclass(frozen=True, eq=False)
class Batches(Sequence[torch.Tensor]):
    """A sequence of per-batch tensors, each in memory or in a spill file; indexing reads one batch back.

    Slicing gives a `Batches` of the same parts (no reads); pickling (torchrun's gather, the app's cache) reads
    every part into memory, since the files belong to this process.
    """

    parts: tuple[Part, ...] = ()

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Batches(self.parts[index])
        part = self.parts[index]
        return part.load() if isinstance(part, OnDisk) else part

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[i] for i in range(len(self)))

    def __reduce__(self):
        return Batches, (tuple(self),)

    @property
    def nbytes(self) -> int:
        return sum(part_bytes(p) for p in self.parts)

    @property
    def spilled(self) -> int:
        """How many parts are in files."""
        return sum(isinstance(p, OnDisk) for p in self.parts)


class Spiller:
    """Keeps batches in memory while their total stays within `bound` bytes, later ones in a temporary folder.

    Every part of one batch is kept the same way, so a fingerprint is whole in memory, or its first batches in
    memory and the rest on disk; what is computed from it does not depend on which.
    """

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.held = 0
        self.folder: SpillFolder | None = None

    def keep(self, named: list[tuple[str, torch.Tensor]]) -> list[Part]:
        """One batch's tensors (each named by the file it goes to when spilled), as parts."""
        size = sum(t.numel() * t.element_size() for _, t in named)
        if self.held + size <= self.bound:
            self.held += size
            return [t for _, t in named]
        if self.folder is None:
            self.folder = SpillFolder()
        return [self.folder.append(name, t) for name, t in named]
