"""Ceilings: each model against another seed of its own method, read beside A vs B.

A cross-method CKA means little alone. Two networks trained with the same method and recipe, differing only in
their seed, show how alike two networks get when only chance differs: that is the ceiling a cross-method value
is read against (the floor is two untrained networks, core.floors; the permutation null only checks
independence). A ceiling is an ordinary pair result (A vs A', B vs B'), so it carries its own jackknife
intervals; computed from cached fingerprints, it costs one forward pass per sibling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import ResultFileError
from core.result import MAX_TEXT, AnalysisResult, from_json_dict, to_json_dict


@dataclass(frozen=True)
class Ceilings:
    """A vs A' and B vs B' (each None when that side has no sibling, with a plain sentence saying why)."""

    a: AnalysisResult | None = None  # model A against another seed of A's method
    b: AnalysisResult | None = None
    note_a: str = ""  # why there is no ceiling for A ("" when there is one, or when nobody asked)
    note_b: str = ""

    def side(self, side: str) -> tuple[AnalysisResult | None, str]:
        """('a' or 'b') -> that side's ceiling result and note."""
        return (self.a, self.note_a) if side == "a" else (self.b, self.note_b)


@dataclass(frozen=True)
class Matched:
    """One matched layer's CKA and its 95% interval (NaN where undefined or not given)."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN without an interval)."""
        return (self.high - self.low) / 2


def matched_at(result: AnalysisResult | None, layer: str) -> Matched:
    """A result's matched-layer CKA at `layer` with its interval; all NaN when the result or the layer is missing."""
    if result is None or layer not in result.matched:
        return Matched(np.nan, np.nan, np.nan)
    k = result.matched.index(layer)
    return Matched(float(result.matched_cka[k]), float(result.interval_low[k]), float(result.interval_high[k]))


def ceilings_to_json(ceilings: Ceilings) -> dict:
    """The ceilings as JSON: each side's full result (null when none) and its note."""
    return {
        side: None if result is None else to_json_dict(result)
        for side, result in (("a", ceilings.a), ("b", ceilings.b))
    } | {"note_a": ceilings.note_a, "note_b": ceilings.note_b}


def ceilings_from_json(data: object) -> Ceilings:
    """What `ceilings_to_json` wrote (absent: no ceilings); a ResultFileError saying what is wrong otherwise."""
    if data is None:
        return Ceilings()
    if not isinstance(data, dict):
        raise ResultFileError(f"its ceilings are a JSON object, not {type(data).__name__}")
    results = []
    for side in ("a", "b"):
        try:
            results.append(None if data.get(side) is None else from_json_dict(data[side]))
        except ResultFileError as err:
            raise ResultFileError(f"its ceiling for {side.upper()} cannot be read: {err}") from None
    notes = [data.get(f"note_{side}", "") for side in "ab"]
    if not all(isinstance(note, str) and len(note) <= MAX_TEXT for note in notes):
        raise ResultFileError(f"its ceilings' notes are not strings of at most {MAX_TEXT:,} characters")
    return Ceilings(*results, note_a=notes[0], note_b=notes[1])


def ceilings_csv_rows(ceilings: Ceilings) -> list[str]:
    """Long-format CSV rows (section, layer_a, layer_b, value) of each ceiling's matched curve and interval."""
    lines = []
    for side, result in (("a", ceilings.a), ("b", ceilings.b)):
        if result is None:
            continue
        for k, name in enumerate(result.matched):
            for what in ("matched_cka", "interval_low", "interval_high"):
                value = getattr(result, what)[k]
                lines.append(f"ceiling_{side}_{what},{name},{name},{repr(float(value)) if np.isfinite(value) else ''}")
    return lines
