"""CIFAR-10 sources and reproducible subsets.

Images stay uint8 until a model's own normalisation is applied (`normalize`), because the mean and
std belong to the checkpoint, not to the data.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import pickle
import socket
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from core import settings
from core.errors import DataError
from core.options import DEFAULTS, AnalysisOptions

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("test", "train")
EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "data" / "cifar10"
DOWNLOAD_DIR = settings.download_dir()
PER_CLASS = {"test": 1000, "train": 5000}
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # training-split statistics: what our own networks are trained with
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class SubsetSpec:
    """Which images to analyse. The same spec always gives the same images in the same order."""

    split: str = DEFAULTS.split  # "test" (embedded) or "train" (needs a data dir or a download)
    classes: tuple[int, ...] = DEFAULTS.classes  # class indices 0-9, see CLASSES
    per_class: int = DEFAULTS.per_class  # images taken from each chosen class
    seed: int = DEFAULTS.subset_seed  # chooses which images and their order

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(sorted({int(c) for c in self.classes})))
        if self.split not in SPLITS:
            raise DataError(f"split must be one of {SPLITS}, not {self.split!r}")
        bad = [c for c in self.classes if not 0 <= c < len(CLASSES)]
        if bad:
            raise DataError(f"class indices must be 0-9; got {bad}")
        if len(self.classes) < DEFAULTS.min_classes:
            chosen = f"only {CLASSES[self.classes[0]]} is chosen" if self.classes else "none is chosen"
            raise DataError(
                f"choose at least {DEFAULTS.min_classes} classes ({chosen}): with one class every image has the same "
                "label, so a linear probe is right by default and class structure has nothing to measure"
            )
        limit = PER_CLASS[self.split]
        if not 1 <= self.per_class <= limit:
            raise DataError(f"images per class must be between 1 and {limit} for the {self.split} split")

    @property
    def size(self) -> int:
        return len(self.classes) * self.per_class

    def check_for(self, options: AnalysisOptions) -> None:
        """Refuse, before anything is computed, a subset these options cannot use: too few images for a minibatch
        (AnalysisOptions.check_subset), or with probes, too few per class for each class to have room in both the
        images the probes train on and those they are scored on. The sidebar, a link and the command line all
        call this, so they refuse with the same words."""
        options.check_subset(self.size)
        least = options.min_per_class(len(self.classes))
        if options.probes and self.per_class < least:
            held = options.held_out(self.size)
            train = self.size - held
            raise DataError(
                f"with {len(self.classes)} classes, the linear probes need at least {least} images per class: they "
                f"train on {1 - options.probe_holdout:.0%} of the images and are scored on the other "
                f"{options.probe_holdout:.0%}, and with {self.per_class} per class one part would have fewer images "
                f"than there are classes ({train} to train on, {held} to score on), so some class could not be in "
                f"both; choose at least {least} images per class"
            )

    def key(self) -> str:
        """A stable hash of the spec, used as a cache key."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Subset:
    """The chosen images (uint8, N x 3 x 32 x 32), their labels and their indices in the split.

    A subset larger than MAP_SUBSET_BYTES keeps its images in an unnamed temporary file mapped into memory
    (`mapping`), so that a pass over it holds one minibatch's pages at a time (`release`), not all of them.
    """

    spec: SubsetSpec
    images: torch.Tensor
    labels: torch.Tensor
    indices: np.ndarray
    source: str
    mapping: mmap.mmap | None = field(default=None, compare=False, repr=False)

    def __reduce__(self):
        """Pickled with its images' values (the app's cache pickles subsets); a large one is mapped again."""
        return _restored, (self.spec, self.images.numpy(), self.labels, self.indices, self.source)

    def release(self, rows: slice) -> None:
        """Drop these rows' image pages from this process's resident set (a mapped subset only; the file
        keeps them, and they are read back when next touched)."""
        if self.mapping is None or not hasattr(self.mapping, "madvise"):
            return
        start, stop, _ = rows.indices(len(self.labels))
        if stop <= start:
            return
        row = self.images[0].numel()
        first = start * row // mmap.PAGESIZE * mmap.PAGESIZE
        self.mapping.madvise(mmap.MADV_DONTNEED, first, stop * row - first)


def parse_classes(text: str) -> tuple[int, ...]:
    """'0,3,cat' -> (0, 3): class indices or names, deduplicated and sorted; '' -> no class.

    Raises DataError naming the item that is neither.
    """
    out = set()
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item in CLASSES:
            out.add(CLASSES.index(item))
        elif item.isdigit() and int(item) < len(CLASSES):
            out.add(int(item))
        else:
            raise DataError(f"unknown class {item!r}; use 0-9 or one of {', '.join(CLASSES)}")
    return tuple(sorted(out))


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as data:
        return data["images"], data["labels"].astype(np.int64)


def _read_batches(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's `cifar-10-batches-py` layout (python pickles of numpy arrays)."""
    names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    images, labels = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")  # noqa: S301 - the dataset's own format
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _candidates(data_dir: str | Path | None) -> list[Path]:
    places = [Path(p) for p in (data_dir, settings.cifar10_dir()) if p]
    return [*places, DOWNLOAD_DIR, EMBEDDED_DIR]


def _split_in(folder: Path, split: str) -> Path | None:
    """Where `folder` holds the split: its `split.npz`, or a folder in torchvision's batches layout; else None."""
    if (folder / f"{split}.npz").is_file():
        return folder / f"{split}.npz"
    for batches in (folder, folder / "cifar-10-batches-py"):
        if (batches / ("test_batch" if split == "test" else "data_batch_1")).is_file():
            return batches
    return None


def _read(found: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    return _read_npz(found) if found.is_file() else _read_batches(found, split)


def _download(split: str, timeout_s: float = 10.0) -> bool:
    """Fetch CIFAR-10 through torchvision when online; False (quietly) when offline."""
    from torchvision.datasets import CIFAR10

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        CIFAR10(str(DOWNLOAD_DIR), train=split == "train", download=True)
        return True
    except (OSError, RuntimeError):
        return False
    finally:
        socket.setdefaulttimeout(previous)


_SPLIT_CACHE: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, str]] = {}
KEEP_SPLIT_BYTES = 64 * 2**20  # a split this small stays in memory between calls (the test split: 30 MB)


def _found(cache_key: tuple[str, str], found: tuple[np.ndarray, np.ndarray], folder: Path):
    """A split read from `folder`, kept for the next call when it is small."""
    entry = (*found, str(folder))
    if found[0].nbytes <= KEEP_SPLIT_BYTES:
        _SPLIT_CACHE[cache_key] = entry
    return entry


def _find(split: str, data_dir: str | Path | None) -> tuple[Path, Path]:
    """The folder holding the split and the split's file or batches folder in it.

    Looks in order at: `data_dir`, $CIFAR10_DIR, the download cache, the embedded test split; then
    tries torchvision's download. Raises DataError naming every place looked at.
    """
    places = _candidates(data_dir)
    for folder in places:
        found = _split_in(folder, split)
        if found is not None:
            return folder, found
    if _download(split):
        # Look once more, in the download cache only: looking everywhere again would never end if
        # the download reported success but left no readable files.
        found = _split_in(DOWNLOAD_DIR, split)
        if found is not None:
            return DOWNLOAD_DIR, found
    looked = ", ".join(str(p) for p in places)
    raise DataError(
        f"CIFAR-10 {split} split not found; looked in {looked} and the download failed. "
        f"Pass --data-dir (or set CIFAR10_DIR) to a folder with {split}.npz or cifar-10-batches-py."
    )


def load_split(split: str, data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """All images (uint8, N x 32 x 32 x 3) and labels of a split, and where they came from (see `_find`).

    The test split is kept in memory after its first read. The train split (150 MB) is read again on each call
    (a fraction of a second) rather than kept: a 50,000-image subset would otherwise be held twice.
    """
    cache_key = (split, str(data_dir))
    if cache_key in _SPLIT_CACHE:
        return _SPLIT_CACHE[cache_key]
    folder, found = _find(split, data_dir)
    return _found(cache_key, _read(found, split), folder)


def select_indices(labels: np.ndarray, spec: SubsetSpec) -> np.ndarray:
    """Indices of the subset: the first `per_class` of each chosen class in a seeded shuffle of the split, then
    shuffled once more with the same seed.

    The second shuffle matters: taking classes in shuffled order fills the rarer classes last, so without it
    the tail of the subset is class-skewed (the last 50 of 1,000 images held 6.3 of 10 classes on average) and
    minibatches are not interchangeable. After it, every minibatch is a random draw from the subset. (Exactly
    class-stratified minibatches would change the rate of same-class pairs with the batch size.)
    """
    rng = np.random.default_rng(spec.seed)
    order = rng.permutation(len(labels))
    taken = {c: 0 for c in spec.classes}
    keep = []
    for index in order:
        label = int(labels[index])
        if label in taken and taken[label] < spec.per_class:
            taken[label] += 1
            keep.append(index)
    short = {CLASSES[c]: n for c, n in taken.items() if n < spec.per_class}
    if short:
        raise DataError(f"not enough images for {short}; choose at most {min(short.values())} per class")
    return rng.permutation(np.asarray(keep, dtype=np.int64))


MAP_SUBSET_BYTES = 16 * 2**20  # a subset's images beyond this go to a mapped file (5,461 images; Subset)
CHUNK_ROWS = 4096  # rows of a split read and gathered at a time (12 MB of CIFAR-10)


def load_subset(spec: SubsetSpec, data_dir: str | Path | None = None) -> Subset:
    """The images of `spec` as uint8 tensors in N x 3 x H x W order.

    A split too large to keep in memory (the train split) is read from its npz a chunk of rows at a time, as it
    is decompressed, so that loading holds neither the whole split nor a copy of it beside the subset.
    """
    cache_key = (spec.split, str(data_dir))
    cached = _SPLIT_CACHE.get(cache_key)
    if cached is None:
        folder, found = _find(spec.split, data_dir)
        if found.is_file() and _npz_images_bytes(found) > KEEP_SPLIT_BYTES:
            with np.load(found) as npz:
                labels = npz["labels"].astype(np.int64)
            return _subset(spec, labels, _npz_rows(found), str(folder))
        cached = _found(cache_key, _read(found, spec.split), folder)
    images, labels, source = cached
    return _subset(spec, labels, (images[s : s + CHUNK_ROWS] for s in range(0, len(images), CHUNK_ROWS)), source)


def _subset(spec: SubsetSpec, labels: np.ndarray, rows: Iterator[np.ndarray], source: str) -> Subset:
    """The subset of `spec` from the split's labels and its images (N x H x W x C) in consecutive chunks."""
    keep = select_indices(labels, spec)
    images, mapping = _image_buffer(len(keep))
    subset = Subset(spec, images, torch.from_numpy(labels[keep]), keep, source, mapping)
    _gather(rows, keep, images.numpy(), release=lambda: subset.release(slice(None)))
    return subset


def _image_buffer(n: int) -> tuple[torch.Tensor, mmap.mmap | None]:
    """An uninitialised n x 3 x 32 x 32 uint8 tensor: in memory, or beyond MAP_SUBSET_BYTES in an unnamed
    temporary file mapped shared (so pages dropped from memory are read back from the file, never lost)."""
    shape = (n, 3, 32, 32)
    nbytes = n * 3 * 32 * 32
    if nbytes <= MAP_SUBSET_BYTES:
        return torch.empty(shape, dtype=torch.uint8), None
    with tempfile.TemporaryFile(prefix="cka-lens-subset-") as f:  # unnamed; the mapping keeps it alive
        f.truncate(nbytes)
        mapping = mmap.mmap(f.fileno(), nbytes)
    return torch.frombuffer(mapping, dtype=torch.uint8).view(shape), mapping


def _restored(spec: SubsetSpec, images: np.ndarray, labels: torch.Tensor, indices: np.ndarray, source: str) -> Subset:
    buffer, mapping = _image_buffer(len(images))
    buffer.numpy()[:] = images
    subset = Subset(spec, buffer, labels, indices, source, mapping)
    subset.release(slice(None))
    return subset


def _gather(rows: Iterator[np.ndarray], keep: np.ndarray, out: np.ndarray, release: Callable[[], None]) -> None:
    """out[i] = image keep[i] of the split in C x H x W order, from the split's images (N x H x W x C) read in
    consecutive chunks; `release` runs after each chunk."""
    order = np.argsort(keep, kind="stable")
    wanted = keep[order]
    start = taken = 0
    for chunk in rows:
        stop = taken + int(np.searchsorted(wanted[taken:], start + len(chunk)))
        out[order[taken:stop]] = chunk[wanted[taken:stop] - start].transpose(0, 3, 1, 2)
        start, taken = start + len(chunk), stop
        release()
    if taken < len(keep):
        raise DataError(f"the split ended after {start} images; the subset needs image {int(wanted[taken])}")


def _npz_images_bytes(path: Path) -> int:
    """The uncompressed size of an npz's images."""
    try:
        with zipfile.ZipFile(path) as z:
            return z.getinfo("images.npy").file_size
    except (zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{path.name} is not an npz with the arrays 'images' and 'labels' ({e})") from None


def _npz_rows(path: Path, chunk: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """An npz's images (uint8, N x 32 x 32 x 3), `chunk` rows at a time as they are decompressed."""
    with zipfile.ZipFile(path) as z, z.open("images.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if fortran or dtype != np.uint8 or len(shape) != 4 or shape[1:] != (32, 32, 3):
            raise DataError(f"{path.name}: images must be uint8 N x 32 x 32 x 3 in C order, not {dtype} {shape}")
        row = 32 * 32 * 3
        for start in range(0, shape[0], chunk):
            count = min(chunk, shape[0] - start)
            data = f.read(count * row)
            if len(data) != count * row:
                raise DataError(f"{path.name}: the images end after {start + len(data) // row} of {shape[0]}")
            yield np.frombuffer(data, dtype=np.uint8).reshape(count, 32, 32, 3)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 or [0, 1] float images -> float32 normalised with a checkpoint's mean and std."""
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s
