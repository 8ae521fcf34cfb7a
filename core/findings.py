"""The study's findings, each with a verdict computed from a result, its intervals and its ceilings.

Grigg et al. (2021) reported six findings and one conclusion in words. Each rule below turns one of them into
comparisons of estimates with thresholds, and every comparison has three outcomes: it holds when the whole 95%
interval of the estimate is on the claimed side of the threshold, it does not hold when the whole interval is
on the other side, and otherwise the data cannot tell at this sample size. A claim of equality ("equal within
±margin") holds when the whole interval lies inside the margin, and does not hold when it lies wholly outside.
A finding holds when all of its comparisons hold (each at its own 95% level: an intersection of claims needs no
correction), does not hold when any of them does not after Holm's correction over the finding's comparisons
(one-sided, family level 2.5%: a finding with six comparisons must not fail on one of six chances), and cannot
be told otherwise (or when layers, read-outs, intervals or the methods it speaks of are missing). Every threshold
is in core.rules, with its reason; the one-line summary (core.summary) reads the same rules.

Uncertainties: every quantity a verdict reads (a matched or off-diagonal CKA, a self-CKA, a read-out, and every
difference or mean of them, across the pair and its ceilings, which share the images) carries its values with
each minibatch left out, and its interval is the delete-one-minibatch jackknife of the quantity itself (paired:
the same minibatch is left out of every term). Results without those replicates (files written before them)
fall back to the older approximations: a difference adds half-widths, and self-CKA, class structure and
invariance take the median half-width of the matched-layer intervals. A probe accuracy takes the binomial (Wald)
half-width on its held-out images.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core import rules
from core.ceilings import Ceilings, matched_at
from core.interval import MIN_BATCHES, jackknife_interval, t975
from core.names import OUTPUT, block, kind, side_labels, stage
from core.result import AnalysisResult, SeedPairing

HOLDS, FAILS, UNSURE = "holds", "does not hold", "cannot tell"
FAMILY_ALPHA = 0.025  # Holm's family level for "does not hold" within a finding: one side of a 95% interval
DROP = rules.DROP.value  # the least change (CKA or accuracy) read as "drops sharply", "rises", "much faster"
SHARE = rules.SHARE.value  # "fits the supervised objective": SimCLR gains at least this share of the supervised gain
Z95 = 1.959964


@dataclass(frozen=True)
class Estimate:
    """A number and the half-width of its 95% interval (NaN: unknown); with `loo`, its values with each minibatch
    left out, from which the half-width is the jackknife's and with which differences and means stay paired."""

    value: float
    half: float
    loo: np.ndarray | None = field(default=None, compare=False, repr=False)  # [batches]

    @classmethod
    def jackknifed(cls, value: float, loo: np.ndarray) -> Estimate:
        """`value` with the delete-one-minibatch jackknife-t half-width of its replicates `loo` (core.interval)."""
        loo = np.asarray(loo, dtype=np.float64)
        _, high = jackknife_interval(np.array([value]), loo[:, None])
        return cls(float(value), float(high[0] - value), loo)

    def _paired(self, other: Estimate) -> bool:
        return self.loo is not None and other.loo is not None and self.loo.shape == other.loo.shape

    def __sub__(self, other: Estimate) -> Estimate:
        if self._paired(other):
            return Estimate.jackknifed(self.value - other.value, self.loo - other.loo)
        return Estimate(self.value - other.value, self.half + other.half)

    def shifted(self, by: float) -> Estimate:
        """This estimate minus a known constant `by` (a threshold read off elsewhere): the same interval, moved."""
        return Estimate(self.value - by, self.half, None if self.loo is None else self.loo - by)

    def scaled(self, factor: float) -> Estimate:
        if self.loo is not None:
            return Estimate(self.value * factor, self.half * abs(factor), self.loo * factor)
        return Estimate(self.value * factor, self.half * abs(factor))

    @property
    def standard_error(self) -> float:
        """The half-width over its quantile: the jackknife's t (minibatches - 1 degrees of freedom) or the normal."""
        if self.loo is not None and len(self.loo) >= max(MIN_BATCHES, 2):
            return self.half / t975(len(self.loo) - 1)
        return self.half / Z95

    def p_beyond(self, threshold: float, upward: bool) -> float:
        """One-sided p-value for the truth lying beyond `threshold` (above it when `upward`, below otherwise):
        small when the estimate lies far beyond it. A claim's p-value against it is this for the other side.
        1 when unknown."""
        se = self.standard_error
        if not (np.isfinite(self.value) and np.isfinite(se)):
            return 1.0
        distance = self.value - threshold if upward else threshold - self.value
        if se <= 0:  # no spread at all: the estimate is the truth's side
            return 0.0 if distance > 0 else 1.0 if distance < 0 else 0.5
        statistic = distance / se
        df = len(self.loo) - 1 if self.loo is not None and len(self.loo) >= max(MIN_BATCHES, 2) else None
        return t_upper(statistic, df)

    def __str__(self) -> str:
        return f"{self.value:.2f} ± {self.half:.2f}" if np.isfinite(self.half) else f"{self.value:.2f}"


def t_upper(t: float, df: int | None) -> float:
    """P(T >= t) for Student's t with `df` degrees of freedom (None: the normal), exact for integer df
    (Abramowitz and Stegun 26.7.3-4: a finite sum in the angle atan(t / sqrt(df)))."""
    if df is None:
        return 0.5 * math.erfc(t / math.sqrt(2))
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 3) // 2 + 1):
            term *= c * c * (2 * k) / (2 * k + 1)
            total += term
        inside = 2 / math.pi * (theta + (s * c * total if df > 1 else 0.0))
    else:
        term, total = 1.0, 1.0
        for k in range(1, (df - 2) // 2 + 1):
            term *= c * c * (2 * k - 1) / (2 * k)
            total += term
        inside = s * total
    upper = (1 - inside) / 2  # P(T >= |t|)
    return upper if t >= 0 else 1 - upper


@dataclass(frozen=True)
class Comparison:
    """One comparison of a finding: the quantity, its interval, the claim and its outcome."""

    what: str  # the quantity and the claim, e.g. "SimCLR's final-stage invariance rise > 0.10"
    estimate: float
    low: float  # 95% interval (NaN: unknown)
    high: float
    outcome: str  # HOLDS, FAILS or UNSURE, after Holm's correction within the finding
    alone: str  # the outcome of this comparison by itself, before the correction
    p_fail: float  # one-sided p-value against the claim (what Holm's correction reads)


def _comparison(what: str, estimate: Estimate, outcome: str, p_fail: float) -> Comparison:
    low, high = estimate.value - estimate.half, estimate.value + estimate.half
    return Comparison(what, estimate.value, low, high, outcome, outcome, p_fail)


def check_above(what: str, estimate: Estimate, threshold: float) -> Comparison:
    """The claim `estimate` > `threshold`, as a comparison (outcome as in `above`)."""
    claim = f"{what} > {threshold:.2f}"
    return _comparison(claim, estimate, above(estimate, threshold), estimate.p_beyond(threshold, upward=False))


def check_below(what: str, estimate: Estimate, threshold: float) -> Comparison:
    """The claim `estimate` < `threshold`, as a comparison (outcome as in `below`)."""
    claim = f"{what} < {threshold:.2f}"
    return _comparison(claim, estimate, below(estimate, threshold), estimate.p_beyond(threshold, upward=True))


def check_within(what: str, estimate: Estimate, margin: float) -> Comparison:
    """The claim that `estimate` is 0 within ±`margin`, as a comparison (outcome as in `within`)."""
    side = margin if estimate.value >= 0 else -margin
    p = estimate.p_beyond(side, upward=estimate.value >= 0)
    return _comparison(f"{what} within ±{margin:.2f}", estimate, within(estimate, margin), p)


def unknown(what: str) -> Comparison:
    """A comparison that cannot be made (a missing layer or read-out): it can only leave the finding untold."""
    return Comparison(what, np.nan, np.nan, np.nan, UNSURE, UNSURE, 1.0)


def holm(comparisons: list[Comparison], alpha: float = FAMILY_ALPHA) -> list[Comparison]:
    """`comparisons` with each "does not hold" kept only where Holm's step-down procedure over all of them
    rejects the claim at family level `alpha` (else it becomes "cannot tell"); "holds" is left as it is."""
    order = sorted(range(len(comparisons)), key=lambda i: comparisons[i].p_fail)
    rejected, stopped = set(), False
    for rank, i in enumerate(order):
        stopped = stopped or comparisons[i].p_fail > alpha / (len(comparisons) - rank)
        if not stopped:
            rejected.add(i)
    out = []
    for i, c in enumerate(comparisons):
        outcome = FAILS if c.alone == FAILS and i in rejected else (UNSURE if c.alone == FAILS else c.alone)
        out.append(Comparison(c.what, c.estimate, c.low, c.high, outcome, c.alone, c.p_fail))
    return out


def conclude(comparisons: list[Comparison]) -> tuple[str, tuple[Comparison, ...], str]:
    """A finding's verdict from its comparisons after Holm's correction, the corrected comparisons, and a
    sentence saying what the correction did."""
    corrected = holm(comparisons)
    verdict = all_of([c.outcome for c in corrected])
    alone = sum(c.alone == FAILS for c in comparisons)
    after = sum(c.outcome == FAILS for c in corrected)
    note = f"Holm over {len(comparisons)} comparison(s): {alone} fail alone, {after} after the correction"
    return verdict, tuple(corrected), note


@dataclass(frozen=True)
class Finding:
    """One row of the findings table."""

    key: str  # "1" .. "6b", or "conclusion"
    study: str  # what the study reported
    shows: str  # what this pair shows, with the numbers behind the verdict
    verdict: str  # HOLDS, FAILS or UNSURE
    comparisons: tuple[Comparison, ...] = ()  # what the verdict rests on, each with its interval and outcome
    multiplicity: str = ""  # what Holm's correction within the finding did
    rests_on: str = ""  # the networks behind it: these two only, or how many seeds of each method


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


def within(estimate: Estimate, margin: float) -> str:
    """Whether `estimate` is 0 within ±`margin`: HOLDS when its whole interval lies inside (-margin, margin),
    FAILS when it lies wholly outside [-margin, margin], UNSURE otherwise or when unknown."""
    if not (np.isfinite(estimate.value) and np.isfinite(estimate.half)):
        return UNSURE
    low, high = estimate.value - estimate.half, estimate.value + estimate.half
    if -margin < low and high < margin:
        return HOLDS
    if low >= margin or high <= -margin:
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
    """The mean of several estimates: jackknifed from the mean of their replicates when all have them (paired),
    else with the mean of their half-widths."""
    value = float(np.mean([e.value for e in estimates]))
    loo = [e.loo for e in estimates]
    if all(x is not None for x in loo) and len({x.shape for x in loo}) == 1:
        return Estimate.jackknifed(value, np.mean(loo, 0))
    return Estimate(value, float(np.mean([e.half for e in estimates])))


def matched_estimate(result: AnalysisResult | None, layer: str) -> Estimate:
    """A result's matched-layer CKA at `layer`: jackknifed from its replicates when the result has them, else with
    its interval's half-width; all NaN when the result or the layer is missing."""
    m = matched_at(result, layer)
    loo = result.leave_one_out.get("cross") if result is not None else None
    if loo is None or not loo.size or not np.isfinite(m.value):
        return Estimate(m.value, m.half_width)
    i, j = result.layers_a.index(layer), result.layers_b.index(result.partner(layer))
    return Estimate.jackknifed(m.value, loo[:, i, j])


def over_floor(result: AnalysisResult, layer: str) -> Estimate | None:
    """A vs B's matched CKA at `layer` minus the untrained floor's 95th percentile there (rules.ALIKE reads it
    against 0), with the matched CKA's interval; None when the result has no floor at that layer."""
    high = result.floor_untrained_high
    if high is None or layer not in result.matched:
        return None
    floor = float(high[result.matched.index(layer)])
    return matched_estimate(result, layer).shifted(floor) if np.isfinite(floor) else None


def alike(result: AnalysisResult, layer: str) -> str | None:
    """Whether the two networks are alike at `layer` (rules.ALIKE), this comparison alone: HOLDS, FAILS or
    UNSURE; None when there is no floor to read it against."""
    margin = over_floor(result, layer)
    return None if margin is None else above(margin, rules.ALIKE.value)


def pairing_estimate(result: AnalysisResult, pairing: SeedPairing, layer: str) -> Estimate:
    """One seed pairing's matched CKA at `layer`, jackknifed from its replicates (the pair's images)."""
    if layer not in result.matched:
        return Estimate(np.nan, np.nan)
    k = result.matched.index(layer)
    value = float(pairing.matched_cka[k])
    if pairing.leave_one_out is None or not pairing.leave_one_out.size or not np.isfinite(value):
        return Estimate(value, np.nan)
    return Estimate.jackknifed(value, pairing.leave_one_out[:, k])


def other_pairings(result: AnalysisResult) -> list[tuple[str, SeedPairing]]:
    """The seed pairings besides A x B itself (the first), each with a short label ("A' x B" ...)."""
    first = result.seed_pairings[0] if result.seed_pairings else None
    out = []
    for p in result.seed_pairings[1:]:
        label = ("A'" if first and p.a != first.a else "A") + " x " + ("B'" if first and p.b != first.b else "B")
        out.append((label, p))
    return out


class PairEstimates:
    """Accessors on one result: CKA and read-outs with their uncertainties by layer name, the stage structure."""

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
        pooled = result.invariance_pooled_a is not None and result.invariance_pooled_b is not None
        # finding 6 reads invariance of maps averaged over space: a crop's misalignment is not a lack of invariance
        self.invariance = "invariance_pooled" if pooled else "invariance"

    def _estimate(self, value: float, key: str, index: tuple[int, ...], fallback: float) -> Estimate:
        """`value` jackknifed from the result's replicates of `key` at `index`, else with the `fallback` half."""
        loo = self.result.leave_one_out.get(key)
        if loo is None or not loo.size or not np.isfinite(value):
            return Estimate(value, fallback)
        return Estimate.jackknifed(value, loo[(slice(None), *index)])

    def _layers(self, side: str) -> tuple[str, ...]:
        return self.result.layers_a if side == "a" else self.result.layers_b

    def matched(self, layer: str) -> Estimate:
        return matched_estimate(self.result, layer)

    def readout(self, what: str, side: str, layer: str) -> Estimate:
        """'class', 'invariance' or 'invariance_pooled' of model `side` at `layer`, with its uncertainty."""
        layers, values = self._layers(side), getattr(self.result, f"{what}_{side}")
        if layer not in layers or values is None:
            return Estimate(np.nan, np.nan)
        i = layers.index(layer)
        return self._estimate(float(values[i]), f"{what}_{side}", (i,), self.readout_half)

    def own(self, side: str, x: str, y: str) -> Estimate:
        """Model `side`'s own CKA between its layers `x` and `y`, with its uncertainty."""
        layers, own = self._layers(side), self.result.self_a if side == "a" else self.result.self_b
        i, j = layers.index(x), layers.index(y)
        return self._estimate(float(own[i, j]), f"self_{side}", (i, j), self.readout_half)

    def probe(self, side: str, layer: str) -> Estimate:
        """Held-out probe accuracy of model `side` at `layer`, with its binomial half-width."""
        layers = self._layers(side)
        if layer not in layers:
            return Estimate(np.nan, np.nan)
        p = float(getattr(self.result, f"probe_{side}")[layers.index(layer)])
        held_out = self.result.options.held_out(self.result.used_images)
        return Estimate(p, Z95 * float(np.sqrt(max(p * (1 - p), 0.0) / held_out)) if np.isfinite(p) else np.nan)

    def cross(self, layer_a: str, layer_b: str) -> Estimate:
        """Cross-model CKA of A's `layer_a` with B's `layer_b`, jackknifed; without replicates, with the matched
        half-width at `layer_a` (an approximation)."""
        r = self.result
        if layer_a not in r.layers_a or layer_b not in r.layers_b:
            return Estimate(np.nan, np.nan)
        i, j = r.layers_a.index(layer_a), r.layers_b.index(layer_b)
        return self._estimate(float(r.cross[i, j]), "cross", (i, j), self.matched(layer_a).half)

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


Rule = Callable[[], tuple[str, list[Comparison]]]


def findings_table(result: AnalysisResult, ceilings: Ceilings | None = None) -> tuple[Finding, ...]:
    """Every finding of the study with what `result` (and its ceilings) shows, the comparisons behind the verdict
    and the verdict."""
    pair, ceilings = PairEstimates(result), ceilings or Ceilings()
    rules: list[tuple[str, str, Rule]] = [
        ("1", STUDY["1"], lambda: block_structure(pair)),
        ("2", STUDY["2"], lambda: outputs_part_at_the_end(pair, ceilings)),
        ("3", STUDY["3"], lambda: residuals_differ(pair, ceilings)),
        ("4", STUDY["4"], lambda: stalls_then_catches_up(pair)),
        ("5", STUDY["5"], lambda: probes_rise(pair)),
        ("6a", STUDY["6a"], lambda: class_structure(pair)),
        ("6b", STUDY["6b"], lambda: invariance(pair)),
        ("conclusion", STUDY["conclusion"], lambda: implicitly_fits(pair)),
    ]
    rests_on = rests_on_seeds(result, ceilings)
    table = []
    for key, study, rule in rules:
        shows, comparisons = rule()
        verdict, corrected, note = conclude(comparisons)
        table.append(Finding(key, study, shows, verdict, corrected, note if comparisons else "", rests_on))
    return tuple(table)


def rests_on_seeds(result: AnalysisResult, ceilings: Ceilings) -> str:
    """What a verdict about the methods rests on: with one network per method, these two networks only; with
    other seeds, how many of each (in the seed pairings or the ceilings)."""
    seeds_a = len({p.a for p in result.seed_pairings}) or (2 if ceilings.a is not None else 1)
    seeds_b = len({p.b for p in result.seed_pairings}) or (2 if ceilings.b is not None else 1)
    if seeds_a == seeds_b == 1:
        return "these two networks only (one seed per method): it says nothing of the methods beyond them"
    pairings = f", {len(result.seed_pairings)} cross pairings" if result.seed_pairings else ""
    return f"{seeds_a} seed(s) of A's method and {seeds_b} of B's{pairings}"


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


def block_structure(pair: PairEstimates) -> tuple[str, list[Comparison]]:
    """Finding 1. In each network's own map, neighbouring block outputs within a stage are more alike than
    neighbouring block outputs across a stage boundary (the same distance apart, so depth alone cannot explain
    it): holds when that difference of means is above 0 for both networks."""
    r, parts, comparisons = pair.result, [], []
    for side, label, layers in zip("ab", pair.labels(), (r.layers_a, r.layers_b), strict=True):
        outputs = [n for n in layers if kind(n) == OUTPUT]
        within_stage, across = [], []
        for x, y in zip(outputs, outputs[1:], strict=False):
            value = pair.own(side, x, y)
            if np.isfinite(value.value):
                (within_stage if stage(x) == stage(y) else across).append(value)
        if not within_stage or not across:
            parts.append(f"{label}: too few blocks per stage to compare")
            comparisons.append(unknown(f"{label}: block structure"))
            continue
        w, a = mean(within_stage), mean(across)
        difference = w - a
        parts.append(f"{label}: {w.value:.2f} within a stage vs {a.value:.2f} across a boundary ({difference})")
        comparisons.append(check_above(f"{label}: own CKA within minus across a stage boundary", difference, 0.0))
    return "Neighbouring block outputs, own CKA: " + "; ".join(parts) + ".", comparisons


def outputs_part_at_the_end(pair: PairEstimates, ceilings: Ceilings) -> tuple[str, list[Comparison]]:
    """Finding 2. Holds when every block output before the final stage is alike (rules.ALIKE: above the untrained
    floor's 95th percentile; read on the block whose interval reaches lowest and the one whose interval ends
    lowest, so that Holm's correction counts two comparisons, not one per block), the drop from the lowest of them
    (`low`) to the last block output (`end`) is above DROP, for each ceiling the drop exceeds the same drop between
    two seeds of one method by more than DROP (so the parting is the methods', not chance's), and every other seed
    pairing of the two methods shows a drop above DROP too. Without a floor, whether the block outputs are alike
    cannot be told."""
    if not pair.intermediate or not pair.final:
        return "The block outputs do not span an intermediate and a final stage.", []
    low_layer = min(pair.intermediate, key=lambda n: pair.matched(n).value)
    end_layer = pair.final[-1]
    low, end = pair.matched(low_layer), pair.matched(end_layer)
    drop = low - end
    margins = {n: over_floor(pair.result, n) for n in pair.intermediate}
    before = f"before {stage(end_layer)}"
    if any(m is None for m in margins.values()):
        text = f"Block outputs {before}: no untrained floor to read them against"
        comparisons = [unknown(f"block outputs {before} above the untrained floor's 95th percentile")]
    else:
        over = sum(above(m, rules.ALIKE.value) == HOLDS for m in margins.values())
        # every block is alike when the lowest low end of their intervals is above the threshold, and one is clearly
        # not when the lowest high end is below it: those two blocks (one, when it is both) decide the claim
        deciding = dict.fromkeys(
            min(margins, key=lambda n, e=e: margins[n].value + e * margins[n].half) for e in (-1, 1)
        )
        text = (
            f"Block outputs {before} above the untrained floor's 95th percentile at {over} of {len(margins)} blocks "
            f"({'; '.join(_from_floor(block(n), margins[n]) for n in deciding)})"
        )
        comparisons = [
            check_above(f"{block(n)} minus the untrained floor's 95th percentile", margins[n], rules.ALIKE.value)
            for n in deciding
        ]
    text += f"; lowest {before} {low} ({block(low_layer)}), last {end} ({block(end_layer)}): a drop of {drop}"
    comparisons.append(check_above(f"drop to the last block output ({block(end_layer)})", drop, DROP))
    for label, (ceiling, _) in zip(pair.labels(), (ceilings.side("a"), ceilings.side("b")), strict=True):
        if ceiling is None:
            continue
        c_low, c_end = matched_estimate(ceiling, low_layer), matched_estimate(ceiling, end_layer)
        c_drop = c_low - c_end
        text += f"; {label} vs another seed: {c_low.value:.2f} to {c_end.value:.2f} (a drop of {c_drop})"
        comparisons.append(check_above(f"drop minus {label}'s drop between two seeds", drop - c_drop, DROP))
    if ceilings.a is None and ceilings.b is None:
        text += "; no other seed to compare the drop with"
    for label, p in other_pairings(pair.result):  # the methods' drop, not one pair of seeds'
        seed_drop = pairing_estimate(pair.result, p, low_layer) - pairing_estimate(pair.result, p, end_layer)
        text += f"; {label}: a drop of {seed_drop}"
        comparisons.append(check_above(f"drop in {label}", seed_drop, DROP))
    return text + ".", comparisons


def _from_floor(name: str, margin: Estimate) -> str:
    """'layer1.1 0.23 ± 0.01 below it': how far a block's CKA is from the untrained floor's 95th percentile."""
    return f"{name} {margin if margin.value >= 0 else margin.scaled(-1)} {'above' if margin.value >= 0 else 'below'} it"


def residuals_differ(pair: PairEstimates, ceilings: Ceilings) -> tuple[str, list[Comparison]]:
    """Finding 3. Over the blocks after the first stage, block output CKA minus residual branch CKA (mean over
    blocks): holds when above 0 and, for each ceiling, above the same gap between two seeds of one method (so
    the dissimilar residual updates are the methods', not chance's), and above 0 in every other seed pairing."""
    first = stage(pair.outputs[0]) if pair.outputs else ""
    blocks = [block(n) for n in pair.outputs if stage(n) != first and f"{block(n)} residual" in pair.result.matched]
    if not blocks:
        return "No residual branches beyond the first stage to compare.", []

    def gap(get: Callable[[str], Estimate]) -> Estimate:
        return mean([get(f"{b} output") - get(f"{b} residual") for b in blocks])

    cross_gap = gap(pair.matched)
    outputs = mean([pair.matched(f"{b} output") for b in blocks])
    residuals = mean([pair.matched(f"{b} residual") for b in blocks])
    text = (
        f"From {blocks[0]} on: block outputs {outputs}, residual branches {residuals} (mean); output minus residual "
        f"{cross_gap}"
    )
    comparisons = [check_above("block output minus residual branch CKA (mean)", cross_gap, 0.0)]
    for label, (ceiling, _) in zip(pair.labels(), (ceilings.side("a"), ceilings.side("b")), strict=True):
        if ceiling is None:
            continue
        seed_gap = gap(lambda n, c=ceiling: matched_estimate(c, n))
        text += f"; the same gap between two seeds of {label}: {seed_gap}"
        comparisons.append(check_above(f"the gap minus {label}'s gap between two seeds", cross_gap - seed_gap, 0.0))
    if ceilings.a is None and ceilings.b is None:
        text += "; no other seed to compare the gap with"
    for label, p in other_pairings(pair.result):  # the methods' gap, not one pair of seeds'
        pairing_gap = gap(lambda n, p=p: pairing_estimate(pair.result, p, n))
        text += f"; {label}: a gap of {pairing_gap}"
        comparisons.append(check_above(f"output minus residual in {label}", pairing_gap, 0.0))
    return text + ".", comparisons


def stalls_then_catches_up(pair: PairEstimates) -> tuple[str, list[Comparison]]:
    """Finding 4, read on the cross-model map. At the first block output F of each stage after the first, the
    self-supervised network's F is more like the supervised network's previous block output than like its F
    (it lags: CKA difference above 0); at the stage's last block output E it is not more like the supervised
    block before E than like its E (caught up: difference below 0). Holds when every stage does both; with two
    comparisons per stage, Holm's correction keeps one stray failure from deciding it."""
    sides = pair.methods()
    if sides is None:
        return NEEDS_METHODS.format(*pair.labels()) + ".", []
    ssl, _ = sides

    def like(own: str, other: str) -> Estimate:
        return pair.cross(own, other) if ssl == "a" else pair.cross(other, own)

    stages = list(dict.fromkeys(stage(n) for n in pair.outputs))  # in depth order
    parts, comparisons = [], []
    for s in stages[1:]:
        in_stage = [n for n in pair.outputs if stage(n) == s]
        f, e = in_stage[0], in_stage[-1]
        before_f = pair.outputs[pair.outputs.index(f) - 1]
        comparisons.append(check_above(f"{block(f)} lags {block(before_f)}", like(f, before_f) - like(f, f), 0.0))
        part = f"{block(f)}: {like(f, before_f).value:.2f} with {block(before_f)} vs {like(f, f).value:.2f} matched"
        if e != f:
            before_e = pair.outputs[pair.outputs.index(e) - 1]
            behind = like(e, before_e) - like(e, e)
            comparisons.append(check_below(f"{block(e)} still lags {block(before_e)}", behind, 0.0))
            part += f", {block(e)}: {like(e, before_e).value:.2f} with {block(before_e)} vs {like(e, e).value:.2f}"
        else:
            comparisons.append(unknown(f"{s} catches up (one block only)"))
        parts.append(part)
    if not parts:
        return "Only one stage of block outputs.", []
    label = pair.labels()[0 if ssl == "a" else 1]
    return f"{label}'s block outputs against the supervised network's: " + "; ".join(parts) + ".", comparisons


def probes_rise(pair: PairEstimates) -> tuple[str, list[Comparison]]:
    """Finding 5. For each network, probe accuracy at the deepest shared layer minus at the first layer: holds
    when above DROP for both (binomial uncertainties on the held-out images)."""
    parts, comparisons = [], []
    for side, label in zip("ab", pair.labels(), strict=True):
        first, deep = pair.probe(side, pair.first), pair.probe(side, pair.deepest)
        if not (np.isfinite(first.value) and np.isfinite(deep.value)):
            return "Linear probes were not computed for this result.", []
        parts.append(f"{label} {first.value:.0%} at {pair.first} to {deep.value:.0%} at {pair.deepest}")
        comparisons.append(check_above(f"{label}: probe accuracy rise", deep - first, DROP))
    return "Probe accuracy: " + "; ".join(parts) + ".", comparisons


def _final_stage_rise(pair: PairEstimates, what: str, side: str) -> Estimate:
    """A read-out's rise over the final stage: at the deepest shared layer minus at the last block output
    before the final stage."""
    return pair.readout(what, side, pair.deepest) - pair.readout(what, side, pair.intermediate[-1])


def _objective_sides(pair: PairEstimates) -> tuple[str, str, dict[str, str]] | str:
    """(self-supervised side, supervised side, labels by side) for the objective findings, or why they cannot be
    read: the methods are not one of each, or there are no block outputs before the final stage."""
    sides = pair.methods()
    if sides is None:
        return NEEDS_METHODS.format(*pair.labels()) + "."
    if not pair.intermediate:
        return "Needs block outputs before the final stage."
    return (*sides, dict(zip("ab", pair.labels(), strict=True)))


def class_structure(pair: PairEstimates) -> tuple[str, list[Comparison]]:
    """Finding 6a. Class-structure CKA at the deepest shared layer minus at the first layer is above DROP in both
    networks, and over the final stage the supervised network's rise exceeds the self-supervised one's by more
    than DROP."""
    sides = _objective_sides(pair)
    if isinstance(sides, str):
        return sides, []
    ssl, sup, labels = sides
    rises = {s: pair.readout("class", s, pair.deepest) - pair.readout("class", s, pair.first) for s in "ab"}
    final = {s: _final_stage_rise(pair, "class", s) for s in "ab"}
    text = (
        f"Class structure from {pair.first} to {pair.deepest}: {labels[ssl]} rises by {rises[ssl]}, "
        f"{labels[sup]} by {rises[sup]}; over the final stage by {final[ssl]} and {final[sup]}."
    )
    comparisons = [
        check_above(f"{labels[ssl]}: class structure rise", rises[ssl], DROP),
        check_above(f"{labels[sup]}: class structure rise", rises[sup], DROP),
        check_above("final-stage rise, supervised minus self-supervised", final[sup] - final[ssl], DROP),
    ]
    return text, comparisons


def invariance(pair: PairEstimates) -> tuple[str, list[Comparison]]:
    """Finding 6b. Over the final stage the self-supervised network's invariance rises by more than DROP and the
    supervised network's by less than DROP. Read on maps averaged over space where the result has them (a random
    crop moves content, so flattened maps of x and t(x) differ by misalignment too, most of all before the
    average pool); on flattened maps otherwise, and the text says so."""
    sides = _objective_sides(pair)
    if isinstance(sides, str):
        return sides, []
    ssl, sup, labels = sides
    final = {s: _final_stage_rise(pair, pair.invariance, s) for s in "ab"}
    if not all(np.isfinite(final[s].value) for s in "ab"):
        return "Augmentation invariance was not computed for this result.", []
    how = "maps averaged over space" if pair.invariance == "invariance_pooled" else "flattened maps (misalignment too)"
    text = (
        f"Invariance of {how} over the final stage (from {block(pair.intermediate[-1])} to {pair.deepest}): "
        f"{labels[ssl]} rises by {final[ssl]}, {labels[sup]} by {final[sup]}."
    )
    comparisons = [
        check_above(f"{labels[ssl]}: final-stage invariance rise", final[ssl], DROP),
        check_below(f"{labels[sup]}: final-stage invariance rise", final[sup], DROP),
    ]
    return text, comparisons


def implicitly_fits(pair: PairEstimates) -> tuple[str, list[Comparison]]:
    """The conclusion. (i) From the first layer to the last block output before the final stage, the
    self-supervised network gains at least SHARE of the class structure the supervised one gains; (ii) the
    supervised network's invariance, at every matched layer, stays below the self-supervised network's at the
    deepest shared layer by more than DROP (invariance as finding 6b reads it)."""
    sides = _objective_sides(pair)
    if isinstance(sides, str):
        return sides, []
    ssl, sup, labels = sides
    mid = pair.intermediate[-1]
    gains = {s: pair.readout("class", s, mid) - pair.readout("class", s, pair.first) for s in "ab"}
    invariances = [pair.readout(pair.invariance, sup, n) for n in pair.result.matched]
    known = [e for e in invariances if np.isfinite(e.value)]
    if not known:
        return "Augmentation invariance was not computed for this result.", []
    most = max(known, key=lambda e: e.value)
    ssl_deep = pair.readout(pair.invariance, ssl, pair.deepest)
    text = (
        f"Class structure gained by {block(mid)}: {labels[ssl]} {gains[ssl]}, {labels[sup]} {gains[sup]}; "
        f"{labels[sup]}'s highest invariance {most.value:.2f} vs {labels[ssl]}'s {ssl_deep.value:.2f} at "
        f"{pair.deepest}."
    )
    comparisons = [
        check_above(f"class gain, {labels[ssl]} - {SHARE} x {labels[sup]}", gains[ssl] - gains[sup].scaled(SHARE), 0),
        check_above(f"{labels[ssl]}'s deepest invariance minus {labels[sup]}'s highest", ssl_deep - most, DROP),
    ]
    return text, comparisons
