"""The rules the study's findings (core.findings) and the one-line summary (core.summary) read: every threshold
in one table, each with what crossing it means and why it is that value, and the same rules in words for the
page, so that a one-liner and a verdict can never read the same numbers two ways.

No rule reads a CKA against zero: "alike" is read against the untrained floor (two untrained networks of the
same architectures, core.floors), a change against the same change between two seeds of one method (the
ceiling), and every comparison with its 95% interval (core.findings).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Threshold:
    """One threshold of the rules: its value, what crossing it is read as, and why it is that value."""

    value: float
    means: str  # what the page says when an estimate's whole 95% interval is beyond it
    why: str  # why this value, in the reader's words


ALIKE = Threshold(
    0.0,
    "at a layer, the two networks are alike when A vs B's CKA, its whole 95% interval, is above the untrained "
    "floor's 95th percentile there (by more than 0)",
    "two untrained networks of these architectures already agree strongly (about 0.9 at the stem), so a CKA is "
    "read against them, never against zero: only above them did training, not the architecture and the images, "
    "make the layers alike",
)
DROP = Threshold(
    0.10,
    "a change of more than 0.10 (CKA, class structure, invariance or probe accuracy) is a drop, a rise or much "
    "faster; the parting in the final stage must also exceed the same drop between two seeds of one method by "
    "0.10",
    "a tenth of CKA's range and five times the typical 95% interval of a matched CKA (±0.01 to ±0.03, median "
    "±0.02, on the bundled pair's 1,000 default images), so a change this large is the networks', not the "
    "sample's",
)
SHARE = Threshold(
    0.5,
    "SimCLR fits the supervised objective when it gains at least half the class structure the supervised "
    "network gains before the final stage",
    "at least half means most of the way, so 'fits' is not said of a small side effect",
)
SAME = Threshold(
    0.02,
    "two read-outs are equal when their difference, its whole 95% interval, lies within ±0.02",
    "the typical 95% interval of one read-out is about that wide (class structure: median ±0.02 on the bundled "
    "pair's 1,000 default images), so a smaller difference cannot be told apart",
)
RULES = (ALIKE, DROP, SHARE, SAME)


def in_words() -> tuple[str, ...]:
    """The rules as sentences for the page: how a verdict is reached, then each threshold and why."""
    return (
        "A claim holds when the whole 95% interval of its estimate is on the claimed side of its threshold, does "
        "not hold when the whole interval is on the other side (after Holm's correction over the finding's "
        "comparisons), and cannot be told at this sample size otherwise.",
        *(f"{t.means[0].upper()}{t.means[1:]}: {t.why}." for t in RULES),
    )
