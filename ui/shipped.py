"""The default comparison shipped with the app, so that a first visitor on a fresh clone sees the Overview at once.

A first visit asks for the bundled pair on the default subset and options, with each model's ceiling (against its
registered other seed), A vs B carrying its untrained floors and seed pairings. Those three results live in
data/shipped (settings.shipped_dir), which the result store reads where it has no entry of its own, under the very
keys it computes for them (core.store.result_key): a change of the engine (ENGINE_VERSION), of the weights' digest
or of the defaults gives other keys, and the shipped entries are then not found (and not shown) until regenerated.

Beside them are the four networks' calibrations (models.calibration: each one's accuracy on 256 test images, and
the choices it decided), keyed by the weights' content digest, so that loading the default networks measures
nothing either.

    make shipped               # computes all of them again on the CPU, reading no store, and writes data/shipped
    make shipped-calibrations  # only the calibrations (seconds), keeping the shipped results that still fit

tests/ui/test_shipped.py checks that they are what the app asks for, and recomputes them to compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import models
from core import settings
from core.data import SubsetSpec
from core.options import AnalysisOptions
from core.pipeline import PairWithCeilings, ceiling_pairs
from core.progress import Progress
from core.store import ENTRIES, RESULT, Store, StoreKey, result_key
from models import LoadedModel
from ui import choices, networks, service
from ui.analysis import load_sibling

ENTRY_LIMIT = 50_000_000  # bytes: a result entry is ~1 MB; this only bounds what the writer accepts


@dataclass(frozen=True)
class DefaultComparison:
    """What a first visit's Overview asks for: the bundled pair, each one's other seed, the default subset and
    options."""

    a: LoadedModel
    b: LoadedModel
    sibling_a: LoadedModel | None
    sibling_b: LoadedModel | None
    subset: SubsetSpec
    options: AnalysisOptions

    def keys(self) -> list[StoreKey]:
        """The store keys of its results, in the order `ceiling_pairs` lists them: A vs B, A's ceiling, B's."""
        pairs = ceiling_pairs(self.a, self.b, self.sibling_a, self.sibling_b)
        return [result_key(x.identity.key, y.identity.key, self.subset, self.options) for x, y in pairs]

    def at_hand(self) -> bool:
        """Whether all of its results are in memory or the store (the shipped ones included): nothing to compute."""
        return service.at_hand(self.a, self.b, self.sibling_a, self.sibling_b, self.subset, self.options)

    def compute(self, progress: Progress) -> PairWithCeilings:
        """Its results from the service (memory, the store, the shipped entries, else computed), as the Overview
        asks for them."""
        watch = service.Watch(progress=progress)
        return service.pair_with_ceilings(
            self.a, self.b, self.sibling_a, self.sibling_b, self.subset, self.options, watch
        )


def default_comparison() -> DefaultComparison:
    """The default comparison with its networks loaded (into the server's shared network cache)."""
    pair = models.DEFAULT_PAIR  # read at each call: a test may stand tiny networks in for the bundled pair
    a, b = (networks.load(spec) for spec in pair)
    sibling_a, sibling_b = (load_sibling(spec, None)[0] for spec in pair)
    subset, options = choices.subset_and_options({f.name: f.default for f in choices.FIELDS})
    return DefaultComparison(a, b, sibling_a, sibling_b, subset, options)


def printed(prefix: str, every_s: float = 5.0) -> Progress:
    """A Progress for a terminal: a line when a stage starts or ends, and at most one per `every_s` between."""
    last = {"stage": "", "at": 0.0}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != last["stage"] or done == total or now - last["at"] >= every_s:
            print(f"{prefix}{stage}: {done} of {total}", flush=True)
            last.update(stage=stage, at=now)

    return progress


@contextmanager
def _store_in(folder: Path) -> Iterator[None]:
    """The result store in `folder` meanwhile (CKA_LENS_STORE is read at each use), then off again."""
    os.environ[settings.STORE] = str(folder)
    try:
        yield
    finally:
        os.environ[settings.STORE] = "off"


def measured_afresh() -> tuple[DefaultComparison, dict[str, bytes]]:
    """The default comparison, its four networks loaded with their calibrations measured afresh into an empty
    store of their own, and those calibrations' entries by file name (self-checking files, copied as they are)."""
    with tempfile.TemporaryDirectory(prefix="cka-lens-calibrations-") as folder, _store_in(Path(folder)):
        default = default_comparison()
        return default, {p.name: p.read_bytes() for p in (Path(folder) / ENTRIES).glob(f"*{RESULT}")}


def write(
    found: PairWithCeilings | None, keys: list[StoreKey], calibrations: dict[str, bytes], root: Path
) -> list[Path]:
    """The default comparison's results (`found`; None keeps those already there under `keys`) and its networks'
    calibration entries, written as store entries under `root` (a store's folder), replacing every other entry
    there; the paths of the entries now there."""
    shipped = Store(root, ENTRY_LIMIT)
    shipped.folder.mkdir(parents=True, exist_ok=True)
    kept = set() if found is not None else {f"{key}{RESULT}" for key in keys}
    for old in shipped.folder.glob(f"*{RESULT}"):
        if old.name not in kept:
            old.unlink()
    if found is not None:
        results = [r for r in (found.pair, found.ceiling_a, found.ceiling_b) if r is not None]
        for key, result in zip(keys, results, strict=True):
            shipped.put_result(key, result)
    for name, data in calibrations.items():
        (shipped.folder / name).write_bytes(data)
    return sorted(shipped.folder.glob(f"*{RESULT}"))


def main() -> int:
    """`make shipped`: compute the default comparison and its networks' calibrations afresh on the CPU and ship
    them (about 20 minutes on 2 busy cores); `--calibrations` (make shipped-calibrations): only the calibrations."""
    parser = argparse.ArgumentParser(prog="make shipped", description=main.__doc__)
    parser.add_argument("--calibrations", action="store_true", help="only the networks' calibrations (seconds)")
    args = parser.parse_args()
    if settings.store_dir() is not None or settings.shipped_dir() is not None:
        print(
            f"Run this as `make shipped`: with {settings.STORE}=off and {settings.SHIPPED}=off nothing is read from "
            "a store, so the shipped results are computed afresh.",
            file=sys.stderr,
        )
        return 2
    from ui.serve import quiet_streamlit  # the warm-up's, for the same calls outside a script run

    root = Path(__file__).resolve().parent.parent / "data" / "shipped"
    start = time.perf_counter()
    quiet_streamlit()
    print("measuring the default networks' calibrations")
    default, calibrations = measured_afresh()
    keys = default.keys()
    found = None
    if not args.calibrations:
        print(f"computing the default comparison ({default.subset.size} images) and its ceilings on {service.device()}")
        found = default.compute(printed("  "))
    written = write(found, keys, calibrations, root)
    print(f"{len(written)} entries in {root / ENTRIES} ({len(calibrations)} calibrations written) after", end=" ")
    print(f"{time.perf_counter() - start:.0f} s")
    missing = [key for key in keys if root / ENTRIES / f"{key}{RESULT}" not in written]
    if missing:
        print(f"{len(missing)} of the default comparison's {len(keys)} results are not shipped: run `make shipped`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
