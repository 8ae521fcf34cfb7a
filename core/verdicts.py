"""The study's findings, each with a verdict computed from a result, its intervals and its ceilings.

Grigg et al. (2021) reported six findings and one conclusion in words. Each rule below turns one of them into
comparisons of estimates with thresholds, and every comparison has three outcomes: it holds when the whole 95%
interval of the estimate is on the claimed side of the threshold, it does not hold when the whole interval is
on the other side, and otherwise the data cannot tell at this sample size. A finding holds when all of its
comparisons hold, does not hold when any of them does not, and cannot be told otherwise (or when layers,
read-outs, intervals or the methods it speaks of are missing).

Uncertainties: a matched-layer CKA has its jackknife interval. A difference or a mean of several estimates takes
the sum or the mean of their half-widths, which bounds the half-width whatever their correlation. The result
carries no interval for self-CKA, class-structure CKA and invariance: those take the median half-width of the
result's matched-layer intervals (the same images and estimator), an approximation. A probe accuracy takes the
binomial (Wald) half-width on its held-out images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.ceilings import Ceilings, matched_at
from core.names import OUTPUT, block, kind, side_labels, stage
from core.result import AnalysisResult

HOLDS, FAILS, UNSURE = "holds", "does not hold", "cannot tell"
DROP = 0.10  # the least change (CKA or accuracy) read as "drops sharply", "rises", "much faster"
HIGH = 0.5  # cross-model CKA above this is "high" (more alike than not)
SHARE = 0.5  # "fits the supervised objective": SimCLR gains at least this share of the supervised gain
Z95 = 1.959964


@dataclass(frozen=True)
class Estimate:
    """A number and the half-width of its 95% interval (NaN: unknown)."""

    value: float
    half: float

    def __sub__(self, other: Estimate) -> Estimate:
        return Estimate(self.value - other.value, self.half + other.half)

    def scaled(self, factor: float) -> Estimate:
        return Estimate(self.value * factor, self.half * abs(factor))

    def __str__(self) -> str:
        return f"{self.value:.2f} ± {self.half:.2f}" if np.isfinite(self.half) else f"{self.value:.2f}"


@dataclass(frozen=True)
class Finding:
    """One row of the findings table."""

    key: str  # "1" .. "6b", or "conclusion"
    study: str  # what the study reported
    shows: str  # what this pair shows, with the numbers behind the verdict
    verdict: str  # HOLDS, FAILS or UNSURE


def above(estimate: Estimate, threshold: float) -> str:
    """Whether `estimate` exceeds `threshold`: HOLDS when its interval's low end does, FAILS when its high end
    does not, UNSURE when the interval straddles it or the estimate or its uncertainty is unknown."""
    if not (np.isfinite(estimate.value) and np.isfinite(estimate.half)):
        return UNSURE
    if estimate.value - estimate.half > threshold:
        return HOLDS
    if estimate.value + estimate.half <= threshold:
        return FAILS
    return UNSURE


def below(estimate: Estimate, threshold: float) -> str:
    """Whether `estimate` is under `threshold`, with the same three outcomes as `above`."""
    return above(estimate.scaled(-1), -threshold)


def all_of(verdicts: list[str]) -> str:
    """FAILS if any verdict fails, HOLDS if all hold (and there is at least one), UNSURE otherwise."""
    if FAILS in verdicts:
        return FAILS
    return HOLDS if verdicts and all(v == HOLDS for v in verdicts) else UNSURE


def mean(estimates: list[Estimate]) -> Estimate:
    """The mean of several estimates, its half-width the mean of theirs."""
    return Estimate(float(np.mean([e.value for e in estimates])), float(np.mean([e.half for e in estimates])))


class _Pair:
    """Accessors on one result: matched CKA with intervals, read-outs by layer name, the stage structure."""

    def __init__(self, result: AnalysisResult) -> None:
        self.result = result
        widths = (result.interval_high - result.interval_low) / 2
        finite = widths[np.isfinite(widths)]
        self.readout_half = float(np.median(finite)) if finite.size else np.nan
        defined = np.isfinite(result.matched_cka)
        self.outputs = [n for n, ok in zip(result.matched, defined, strict=True) if kind(n) == OUTPUT and ok]
        final = stage(self.outputs[-1]) if self.outputs else ""
        self.intermediate = [n for n in self.outputs if stage(n) != final]
        self.final = [n for n in self.outputs if stage(n) == final]
        self.deepest = result.matched[-1] if result.matched else ""
        self.first = result.matched[0] if result.matched else ""

    def matched(self, layer: str) -> Estimate:
        m = matched_at(self.result, layer)
        return Estimate(m.value, m.half_width)

    def readout(self, what: str, side: str, layer: str) -> Estimate:
        """'class' or 'invariance' of model `side` at `layer`, with the result's read-out uncertainty."""
        layers = self.result.layers_a if side == "a" else self.result.layers_b
        if layer not in layers:
            return Estimate(np.nan, np.nan)
        return Estimate(float(getattr(self.result, f"{what}_{side}")[layers.index(layer)]), self.readout_half)

    def probe(self, side: str, layer: str) -> Estimate:
        """Held-out probe accuracy of model `side` at `layer`, with its binomial half-width."""
        layers = self.result.layers_a if side == "a" else self.result.layers_b
        if layer not in layers:
            return Estimate(np.nan, np.nan)
        p = float(getattr(self.result, f"probe_{side}")[layers.index(layer)])
        held_out = max(1, int(round(self.result.used_images * self.result.options.probe_holdout)))
        return Estimate(p, Z95 * float(np.sqrt(max(p * (1 - p), 0.0) / held_out)) if np.isfinite(p) else np.nan)

    def cross(self, layer_a: str, layer_b: str) -> Estimate:
        """Cross-model CKA of A's `layer_a` with B's `layer_b`, with the matched half-width at `layer_a` (the
        result carries no interval off the diagonal: an approximation)."""
        r = self.result
        if layer_a not in r.layers_a or layer_b not in r.layers_b:
            return Estimate(np.nan, np.nan)
        value = float(r.cross[r.layers_a.index(layer_a), r.layers_b.index(layer_b)])
        return Estimate(value, self.matched(layer_a).half)

    def labels(self) -> tuple[str, str]:
        return side_labels(self.result.model_a.method, self.result.model_b.method)

    def methods(self) -> tuple[str, str] | None:
        """(self-supervised side, supervised side) as 'a'/'b', when the pair is one of each; else None."""
        a, b = self.result.model_a.method, self.result.model_b.method
        unknown = ("supervised", "unknown", "")
        if a == "supervised" and b not in unknown:
            return "b", "a"
        if b == "supervised" and a not in unknown:
            return "a", "b"
        return None


def findings_table(result: AnalysisResult, ceilings: Ceilings | None = None) -> tuple[Finding, ...]:
    """Every finding of the study with what `result` (and its ceilings) shows and the verdict."""
    pair, ceilings = _Pair(result), ceilings or Ceilings()
    rules: list[tuple[str, str, Callable[[], tuple[str, str]]]] = [
        ("1", STUDY["1"], lambda: block_structure(pair)),
        ("2", STUDY["2"], lambda: outputs_part_at_the_end(pair, ceilings)),
        ("3", STUDY["3"], lambda: residuals_differ(pair, ceilings)),
        ("4", STUDY["4"], lambda: stalls_then_catches_up(pair)),
        ("5", STUDY["5"], lambda: probes_rise(pair)),
        ("6a", STUDY["6a"], lambda: class_structure(pair)),
        ("6b", STUDY["6b"], lambda: invariance(pair)),
        ("conclusion", STUDY["conclusion"], lambda: implicitly_fits(pair)),
    ]
    return tuple(Finding(key, study, *rule()) for key, study, rule in rules)


STUDY = {
    "1": "Each network's own CKA map shows block structure, for SimCLR as for supervised.",
    "2": "Across the networks, block outputs stay alike through the intermediate stages and part sharply in the "
    "final stage.",
    "3": "Residual branches are far less alike than block outputs after the early layers: similar outputs through "
    "dissimilar means.",
    "4": "SimCLR stalls at the start of each stage, then catches up.",
    "5": "Linear-probe accuracy rises with depth in both networks.",
    "6a": "Class structure rises in both; much faster in the supervised network's final layers.",
    "6b": "Augmentation invariance rises steeply in SimCLR's final layers, not in the supervised network's.",
    "conclusion": "SimCLR implicitly fits the supervised objective in intermediate layers; the reverse is not true.",
}
NEEDS_METHODS = "needs one self-supervised and one supervised network; this pair is {} vs {}"


def block_structure(pair: _Pair) -> tuple[str, str]:
    """Finding 1. In each network's own map, neighbouring block outputs within a stage are more alike than
    neighbouring block outputs across a stage boundary (the same distance apart, so depth alone cannot explain
    it): holds when that difference is above 0 for both networks, its uncertainty twice the read-out one."""
    r, parts, verdicts = pair.result, [], []
    for label, layers, own in zip(pair.labels(), (r.layers_a, r.layers_b), (r.self_a, r.self_b), strict=True):
        outputs = [n for n in layers if kind(n) == OUTPUT]
        within, across = [], []
        for x, y in zip(outputs, outputs[1:], strict=False):
            value = float(own[layers.index(x), layers.index(y)])
            if np.isfinite(value):
                (within if stage(x) == stage(y) else across).append(value)
        if not within or not across:
            parts.append(f"{label}: too few blocks per stage to compare")
            verdicts.append(UNSURE)
            continue
        w, a = float(np.mean(within)), float(np.mean(across))
        difference = Estimate(w - a, 2 * pair.readout_half)
        parts.append(f"{label}: {w:.2f} within a stage vs {a:.2f} across a boundary (difference {difference})")
        verdicts.append(above(difference, 0.0))
    return "Neighbouring block outputs, own CKA: " + "; ".join(parts) + ".", all_of(verdicts)


def outputs_part_at_the_end(pair: _Pair, ceilings: Ceilings) -> tuple[str, str]:
    """Finding 2. With `low` the lowest block output before the final stage and `end` the last block output:
    holds when `low` is above HIGH, `low` - `end` is above DROP, and for each ceiling the drop exceeds the same
    drop between two seeds of one method by more than DROP (so the parting is the methods', not chance's)."""
    if not pair.intermediate or not pair.final:
        return "The block outputs do not span an intermediate and a final stage.", UNSURE
    low_layer = min(pair.intermediate, key=lambda n: pair.matched(n).value)
    end_layer = pair.final[-1]
    low, end = pair.matched(low_layer), pair.matched(end_layer)
    drop = low - end
    text = (
        f"Block outputs: lowest before {stage(end_layer)} {low} ({block(low_layer)}), last {end} "
        f"({block(end_layer)}): a drop of {drop}"
    )
    verdicts = [above(low, HIGH), above(drop, DROP)]
    for label, (ceiling, _) in zip(pair.labels(), (ceilings.side("a"), ceilings.side("b")), strict=True):
        if ceiling is None:
            continue
        c_low, c_end = matched_at(ceiling, low_layer), matched_at(ceiling, end_layer)
        c_drop = Estimate(c_low.value, c_low.half_width) - Estimate(c_end.value, c_end.half_width)
        text += f"; {label} vs another seed: {c_low.value:.2f} to {c_end.value:.2f} (a drop of {c_drop})"
        verdicts.append(above(drop - c_drop, DROP))
    if ceilings.a is None and ceilings.b is None:
        text += "; no other seed to compare the drop with"
    return text + ".", all_of(verdicts)


def residuals_differ(pair: _Pair, ceilings: Ceilings) -> tuple[str, str]:
    """Finding 3. Over the blocks after the first stage, block output CKA minus residual branch CKA (mean over
    blocks): holds when above 0 and, for each ceiling, above the same gap between two seeds of one method (so
    the dissimilar residual updates are the methods', not chance's)."""
    first = stage(pair.outputs[0]) if pair.outputs else ""
    blocks = [block(n) for n in pair.outputs if stage(n) != first and f"{block(n)} residual" in pair.result.matched]
    if not blocks:
        return "No residual branches beyond the first stage to compare.", UNSURE

    def gap(get: Callable[[str], Estimate]) -> Estimate:
        return mean([get(f"{b} output") - get(f"{b} residual") for b in blocks])

    cross_gap = gap(pair.matched)
    outputs = mean([pair.matched(f"{b} output") for b in blocks])
    residuals = mean([pair.matched(f"{b} residual") for b in blocks])
    text = (
        f"From {blocks[0]} on: block outputs {outputs}, residual branches {residuals} (mean); output minus residual "
        f"{cross_gap}"
    )
    verdicts = [above(cross_gap, 0.0)]
    for label, (ceiling, _) in zip(pair.labels(), (ceilings.side("a"), ceilings.side("b")), strict=True):
        if ceiling is None:
            continue
        seed_gap = gap(lambda n, c=ceiling: Estimate(matched_at(c, n).value, matched_at(c, n).half_width))
        text += f"; the same gap between two seeds of {label}: {seed_gap}"
        verdicts.append(above(cross_gap - seed_gap, 0.0))
    if ceilings.a is None and ceilings.b is None:
        text += "; no other seed to compare the gap with"
    return text + ".", all_of(verdicts)


def stalls_then_catches_up(pair: _Pair) -> tuple[str, str]:
    """Finding 4, read on the cross-model map. At the first block output F of each stage after the first, the
    self-supervised network's F is more like the supervised network's previous block output than like its F
    (it lags: CKA difference above 0); at the stage's last block output E it is not more like the supervised
    block before E than like its E (caught up: difference below 0). Each CKA off the diagonal takes the
    matched half-width of its row. Holds when every stage does both."""
    sides = pair.methods()
    if sides is None:
        return NEEDS_METHODS.format(*pair.labels()) + ".", UNSURE
    ssl, _ = sides

    def like(own: str, other: str) -> Estimate:
        return pair.cross(own, other) if ssl == "a" else pair.cross(other, own)

    stages = list(dict.fromkeys(stage(n) for n in pair.outputs))  # in depth order
    parts, verdicts = [], []
    for s in stages[1:]:
        in_stage = [n for n in pair.outputs if stage(n) == s]
        f, e = in_stage[0], in_stage[-1]
        before_f = pair.outputs[pair.outputs.index(f) - 1]
        lag = like(f, before_f) - like(f, f)
        stage_verdicts = [above(lag, 0.0)]
        part = f"{block(f)}: {like(f, before_f).value:.2f} with {block(before_f)} vs {like(f, f).value:.2f} matched"
        if e != f:
            before_e = pair.outputs[pair.outputs.index(e) - 1]
            behind = like(e, before_e) - like(e, e)
            stage_verdicts.append(below(behind, 0.0))
            part += f", {block(e)}: {like(e, before_e).value:.2f} with {block(before_e)} vs {like(e, e).value:.2f}"
        else:
            stage_verdicts.append(UNSURE)
        parts.append(part)
        verdicts.append(all_of(stage_verdicts))
    if not parts:
        return "Only one stage of block outputs.", UNSURE
    label = pair.labels()[0 if ssl == "a" else 1]
    return f"{label}'s block outputs against the supervised network's: " + "; ".join(parts) + ".", all_of(verdicts)


def probes_rise(pair: _Pair) -> tuple[str, str]:
    """Finding 5. For each network, probe accuracy at the deepest shared layer minus at the first layer: holds
    when above DROP for both (binomial uncertainties on the held-out images)."""
    parts, verdicts = [], []
    for side, label in zip("ab", pair.labels(), strict=True):
        first, deep = pair.probe(side, pair.first), pair.probe(side, pair.deepest)
        if not (np.isfinite(first.value) and np.isfinite(deep.value)):
            return "Linear probes were not computed for this result.", UNSURE
        parts.append(f"{label} {first.value:.0%} at {pair.first} to {deep.value:.0%} at {pair.deepest}")
        verdicts.append(above(deep - first, DROP))
    return "Probe accuracy: " + "; ".join(parts) + ".", all_of(verdicts)


def _final_stage_rise(pair: _Pair, what: str, side: str) -> Estimate:
    """A read-out's rise over the final stage: at the deepest shared layer minus at the last block output
    before the final stage."""
    return pair.readout(what, side, pair.deepest) - pair.readout(what, side, pair.intermediate[-1])


def _objective_sides(pair: _Pair) -> tuple[str, str, dict[str, str]] | str:
    """(self-supervised side, supervised side, labels by side) for the objective findings, or why they cannot be
    read: the methods are not one of each, or there are no block outputs before the final stage."""
    sides = pair.methods()
    if sides is None:
        return NEEDS_METHODS.format(*pair.labels()) + "."
    if not pair.intermediate:
        return "Needs block outputs before the final stage."
    return (*sides, dict(zip("ab", pair.labels(), strict=True)))


def class_structure(pair: _Pair) -> tuple[str, str]:
    """Finding 6a. Class-structure CKA at the deepest shared layer minus at the first layer is above DROP in both
    networks, and over the final stage the supervised network's rise exceeds the self-supervised one's by more
    than DROP."""
    sides = _objective_sides(pair)
    if isinstance(sides, str):
        return sides, UNSURE
    ssl, sup, labels = sides
    rises = {s: pair.readout("class", s, pair.deepest) - pair.readout("class", s, pair.first) for s in "ab"}
    final = {s: _final_stage_rise(pair, "class", s) for s in "ab"}
    text = (
        f"Class structure from {pair.first} to {pair.deepest}: {labels[ssl]} rises by {rises[ssl]}, "
        f"{labels[sup]} by {rises[sup]}; over the final stage by {final[ssl]} and {final[sup]}."
    )
    verdicts = [above(rises[ssl], DROP), above(rises[sup], DROP), above(final[sup] - final[ssl], DROP)]
    return text, all_of(verdicts)


def invariance(pair: _Pair) -> tuple[str, str]:
    """Finding 6b. Over the final stage the self-supervised network's invariance rises by more than DROP and the
    supervised network's by less than DROP."""
    sides = _objective_sides(pair)
    if isinstance(sides, str):
        return sides, UNSURE
    ssl, sup, labels = sides
    final = {s: _final_stage_rise(pair, "invariance", s) for s in "ab"}
    if not all(np.isfinite(final[s].value) for s in "ab"):
        return "Augmentation invariance was not computed for this result.", UNSURE
    text = (
        f"Invariance over the final stage (from {block(pair.intermediate[-1])} to {pair.deepest}): {labels[ssl]} "
        f"rises by {final[ssl]}, {labels[sup]} by {final[sup]}."
    )
    return text, all_of([above(final[ssl], DROP), below(final[sup], DROP)])


def implicitly_fits(pair: _Pair) -> tuple[str, str]:
    """The conclusion. (i) From the first layer to the last block output before the final stage, the
    self-supervised network gains at least SHARE of the class structure the supervised one gains; (ii) the
    supervised network's invariance, at every matched layer, stays below the self-supervised network's at the
    deepest shared layer by more than DROP."""
    sides = _objective_sides(pair)
    if isinstance(sides, str):
        return sides, UNSURE
    ssl, sup, labels = sides
    mid = pair.intermediate[-1]
    gains = {s: pair.readout("class", s, mid) - pair.readout("class", s, pair.first) for s in "ab"}
    invariances = [pair.readout("invariance", sup, n) for n in pair.result.matched]
    known = [e for e in invariances if np.isfinite(e.value)]
    if not known:
        return "Augmentation invariance was not computed for this result.", UNSURE
    most = max(known, key=lambda e: e.value)
    ssl_deep = pair.readout("invariance", ssl, pair.deepest)
    text = (
        f"Class structure gained by {block(mid)}: {labels[ssl]} {gains[ssl]}, {labels[sup]} {gains[sup]}; "
        f"{labels[sup]}'s highest invariance {most.value:.2f} vs {labels[ssl]}'s {ssl_deep.value:.2f} at "
        f"{pair.deepest}."
    )
    verdicts = [above(gains[ssl] - gains[sup].scaled(SHARE), 0.0), above(ssl_deep - most, DROP)]
    return text, all_of(verdicts)
