"""Training series: snapshots of two runs put in training order, paired by progress, and read layer by layer.

A series is one run's snapshots in training order, each at a fraction of the run (its progress). Two series
are compared snapshot by snapshot: each snapshot of A with the snapshot of B at the nearest fraction of B's
training (SimCLR after epoch 10 of 50, 20%, with the supervised snapshot after epoch 4 of 18, 22%), and each
snapshot with its own run's final network. Every comparison is an ordinary pair analysis (core.pipeline);
this module only plans the pairs and gathers their matched-layer CKA into layer x snapshot tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePath

import numpy as np

from core.data import SubsetSpec
from core.errors import SeriesError
from core.options import AnalysisOptions
from core.result import AnalysisResult

_NUMBER = re.compile(r"\d+")
_NAMED_STEP = re.compile(r"(?:epoch|step|iter)[^\d]{0,2}(\d+)", re.IGNORECASE)  # epoch5, epoch-5, step=1000


@dataclass(frozen=True)
class Snapshot:
    """One network of a series."""

    spec: Hashable  # what loads it, a models.ModelSpec (bundled:NAME@epoch-K, file:PATH, upload:NAME): a key here
    label: str  # what a person reads: "epoch 5", or the file's name
    step: int  # the epoch (or step) it was taken after
    progress: float  # fraction of the run done: step / the run's length, in (0, 1]


@dataclass(frozen=True)
class Series:
    """One training run's snapshots in training order, and its final network when the run has one."""

    name: str  # "bundled:simclr-resnet18-w16-seed1", or what a person called their own series
    snapshots: tuple[Snapshot, ...]  # in training order (increasing step)
    length: int  # epochs (or steps) of the whole run: progress = step / length
    final: Hashable | None  # spec of the network at the end of the run; None while the run goes on
    rule: str  # how progress and the final network were found, said beside the results
    method: str = "unknown"  # training method, where the source says it


def step_in_name(name: str) -> int:
    """The epoch or step in a file's name without its suffix: the number after 'epoch', 'step' or 'iter' if there
    is one ('epoch5_resnet18.pt' -> 5), else the last number ('ckpt_20.pt' -> 20).

    Raises SeriesError when the name has no number, since a series is ordered by them.
    """
    stem = PurePath(name).stem if PurePath(name).suffix[1:].isalpha() else PurePath(name).name
    named = _NAMED_STEP.search(stem)
    if named:
        return int(named.group(1))
    numbers = _NUMBER.findall(stem)
    if not numbers:
        raise SeriesError(
            f"'{name}' carries no number, so its place in training is unknown; name each snapshot with its epoch "
            "or step (ckpt_epoch5.pt, ckpt_epoch20.pt, ...)"
        )
    return int(numbers[-1])


def series_of_files(name: str, files: Sequence[tuple[Hashable, str]]) -> Series:
    """A person's own series from (spec, file name) pairs, ordered by the number in each name.

    The largest number is taken as the end of the run: progress = number / largest, and that snapshot is
    the run's final network. Raises SeriesError for no files, a name without a number, or a repeated number.
    """
    if not files:
        raise SeriesError(f"{name} has no snapshots; give at least one")
    steps = [(step_in_name(file_name), spec, file_name) for spec, file_name in files]
    seen: dict[int, str] = {}
    for step, _, file_name in steps:
        if step in seen:
            raise SeriesError(
                f"'{seen[step]}' and '{file_name}' both carry the number {step}; give each snapshot its own epoch"
            )
        seen[step] = file_name
    steps.sort(key=lambda step: step[0])  # (the specs need not be ordered)
    length = steps[-1][0]
    if length == 0:
        raise SeriesError(f"the numbers in the names of {name} are all 0; name each snapshot with its epoch or step")
    snapshots = tuple(Snapshot(spec, file_name, step, step / length) for step, spec, file_name in steps)
    rule = (
        f"ordered by the epoch or step in each name; progress = that number / {length} (the largest), and "
        f"'{steps[-1][2]}' is taken as the final network"
    )
    return Series(name, snapshots, length, steps[-1][1], rule)


def pair_by_progress(a: Series, b: Series) -> tuple[int, ...]:
    """For each snapshot of `a`, the index of `b`'s snapshot at the nearest progress (the earlier one on a tie)."""
    if not b.snapshots:
        raise SeriesError(f"{b.name} has no snapshots to pair with")
    return tuple(
        min(range(len(b.snapshots)), key=lambda j: (round(abs(b.snapshots[j].progress - s.progress), 9), j))
        for s in a.snapshots
    )


@dataclass(frozen=True)
class SeriesPlan:
    """Two series, how A's snapshots pair with B's, and the pair analyses that this takes."""

    a: Series
    b: Series
    pairing: tuple[int, ...]  # for A's snapshot k, the index of B's paired snapshot

    @classmethod
    def of(cls, a: Series, b: Series) -> SeriesPlan:
        if not a.snapshots:
            raise SeriesError(f"{a.name} has no snapshots yet")
        return cls(a, b, pair_by_progress(a, b))

    def pairs(self) -> tuple[tuple[Hashable, Hashable], ...]:
        """Every (reference, other) spec pair to analyse, each once: B's snapshot with the A snapshots paired with
        it, then each final with its run's snapshots (core.pipeline.compare_pairs runs each network once)."""
        out: list[tuple[Hashable, Hashable]] = []
        for j in sorted(set(self.pairing)):
            out += [(self.b.snapshots[j].spec, s.spec) for k, s in enumerate(self.a.snapshots) if self.pairing[k] == j]
        for series in (self.a, self.b):
            if series.final is not None:
                out += [(series.final, s.spec) for s in series.snapshots]
        return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class SeriesCurves:
    """Matched-layer CKA over training: one row per layer, one column per snapshot."""

    layers: tuple[str, ...]  # layers the two runs share, in depth order
    cross: np.ndarray  # [L, len(A)]: A's snapshot k against B's snapshot pairing[k]
    final_a: np.ndarray | None  # [L, len(A)]: A's snapshot k against A's final network; None without one
    final_b: np.ndarray | None  # [L, len(B)]: likewise for B


def _column(result: AnalysisResult, layers: tuple[str, ...]) -> np.ndarray:
    """The result's matched-layer CKA over `layers` (NaN for a layer it lacks)."""
    values = dict(zip(result.matched, result.matched_cka, strict=True))
    return np.array([values.get(name, np.nan) for name in layers], dtype=np.float64)


def series_curves(plan: SeriesPlan, result_of: Callable[[str, str], AnalysisResult]) -> SeriesCurves:
    """Gather the plan's pair results (`result_of(reference, other)`, for every pair in `plan.pairs()`)."""
    a, b = plan.a, plan.b
    cross = [result_of(b.snapshots[j].spec, a.snapshots[k].spec) for k, j in enumerate(plan.pairing)]
    layers = cross[0].matched
    finals = [
        None
        if series.final is None
        else np.stack([_column(result_of(series.final, s.spec), layers) for s in series.snapshots], axis=1)
        for series in (a, b)
    ]
    return SeriesCurves(layers, np.stack([_column(r, layers) for r in cross], axis=1), *finals)


def _clean(values: np.ndarray | None) -> list | None:
    """A matrix as nested lists, NaN as None (JSON has no NaN)."""
    if values is None:
        return None
    return [[float(v) if np.isfinite(v) else None for v in row] for row in values]


def to_json_dict(plan: SeriesPlan, curves: SeriesCurves, subset: SubsetSpec, options: AnalysisOptions) -> dict:
    """The series analysis as a JSON-ready dict: both series, the pairing, and the layer x snapshot tables."""
    return {
        "series_a": _series_dict(plan.a),
        "series_b": _series_dict(plan.b),
        "pairing": [
            {
                "a": s.label,
                "a_progress": s.progress,
                "b": plan.b.snapshots[j].label,
                "b_progress": plan.b.snapshots[j].progress,
            }
            for s, j in zip(plan.a.snapshots, plan.pairing, strict=True)
        ],
        "layers": list(curves.layers),
        "cross": _clean(curves.cross),
        "final_a": _clean(curves.final_a),
        "final_b": _clean(curves.final_b),
        "subset": asdict(subset),
        "options": asdict(options),
    }


def _series_dict(series: Series) -> dict:
    """A series as a JSON-ready dict, each spec as its text."""
    snapshots = [asdict(s) | {"spec": str(s.spec)} for s in series.snapshots]
    return asdict(series) | {"snapshots": snapshots, "final": None if series.final is None else str(series.final)}


def to_csv(plan: SeriesPlan, curves: SeriesCurves) -> str:
    """Long-format CSV: section (cross, final_a, final_b), layer, snapshot, its progress, what it was compared
    with, CKA (empty: undefined or not computed)."""
    lines = ["section,layer,snapshot,progress,compared_with,cka"]
    tables = [
        ("cross", curves.cross, plan.a, [plan.b.snapshots[j].label for j in plan.pairing]),
        ("final_a", curves.final_a, plan.a, ["final"] * len(plan.a.snapshots)),
        ("final_b", curves.final_b, plan.b, ["final"] * len(plan.b.snapshots)),
    ]
    for section, matrix, series, partners in tables:
        if matrix is None:
            continue
        for i, layer in enumerate(curves.layers):
            for k, (snapshot, partner) in enumerate(zip(series.snapshots, partners, strict=True)):
                value = matrix[i, k]
                shown = repr(float(value)) if np.isfinite(value) else ""
                lines.append(
                    f"{section},{layer},{_csv_text(snapshot.label)},{snapshot.progress!r},{_csv_text(partner)},{shown}"
                )
    return "\n".join(lines) + "\n"


def _csv_text(text: str) -> str:
    """A CSV field: quoted when it holds a comma or a quote."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text
