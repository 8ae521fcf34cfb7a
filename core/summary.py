"""One-line findings computed from a result: where the two networks agree, where they part ways, and how the
cross-method numbers compare with the ceiling (two seeds of one method), the floor (two untrained networks of the
same architectures, core.floors) and the permutation null (an independence check, not a floor)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import rules
from core.ceilings import Ceilings, matched_at
from core.findings import HOLDS, UNSURE, Estimate, Finding, above, alike, below, findings_table, over_floor, within
from core.names import OUTPUT, RESIDUAL, block, kind, side_labels, stage
from core.result import AnalysisResult
from core.seeds import method_spread

SAME = rules.SAME.value  # read-outs equal within this margin (the whole interval of their difference inside it)


@dataclass(frozen=True)
class Summary:
    """Sentences about one result, and the block output from which they are no longer alike (rules.ALIKE) for good
    (None: alike to the last block, alike nowhere, or no untrained floor to tell)."""

    parting_layer: str | None
    lines: tuple[str, ...]


def summarise(result: AnalysisResult, ceilings: Ceilings | None = None) -> Summary:
    """Summary in reading order: block outputs and residual branches (each with the verdict of the study's finding
    it speaks of, from the same rules: core.rules), (given `ceilings`) each kind against the ceiling and the
    floor, the null, the objectives, the probes."""
    table = {f.key: f for f in findings_table(result, ceilings)}
    curve = {name: float(v) for name, v in zip(result.matched, result.matched_cka, strict=True)}
    outputs = [name for name, v in curve.items() if kind(name) == OUTPUT and np.isfinite(v)]
    parting, output_line = _outputs_line(result, outputs, table["2"])
    against = [] if ceilings is None else [_against_ceilings(result, ceilings, k) for k in (OUTPUT, RESIDUAL)]
    lines = [
        output_line,
        _residual_line(table["3"]),
        *against,
        _floor_line(result),
        _seeds_line(result, ceilings),
        _null_line(result),
        _objectives_line(result),
        _probe_line(result),
    ]
    return Summary(parting, tuple(line for line in lines if line))


def _verdict(finding: Finding) -> str:
    """The closing words of a line that speaks of one of the study's findings: its verdict, as the table says."""
    return f"finding {finding.key}: {finding.verdict}"


def _outputs_line(result: AnalysisResult, outputs: list[str], finding: Finding) -> tuple[str | None, str]:
    """Where the block outputs are alike (rules.ALIKE, layer by layer, as finding 2 reads each) and where they
    stop being alike for good: the first block output after the last alike one; and finding 2's verdict."""
    if not outputs:
        return None, "The two models share no block-output layers, so there is no matched curve to read."
    said = {name: alike(result, name) for name in outputs}
    if any(outcome is None for outcome in said.values()):
        return None, (
            "Block outputs: this result has no untrained floor, so whether they are alike (more alike than two "
            f"untrained networks of these architectures) cannot be read ({_verdict(finding)})."
        )
    margins = {name: over_floor(result, name) for name in outputs}
    kept = [name for name in outputs if said[name] == HOLDS]
    if not kept:
        closest = max(outputs, key=lambda n: margins[n].value)
        return None, (
            "Block outputs are not clearly more alike than untrained networks of these architectures at any block "
            f"(closest: {block(closest)}, {_against_floor(result, closest)}) ({_verdict(finding)})."
        )
    last = outputs.index(kept[-1])
    dips = [block(n) for n in outputs[:last] if said[n] != HOLDS]
    dip_text = f", apart from {', '.join(dips)}" if dips else ""
    if last == len(outputs) - 1:
        return None, (
            f"Block outputs are more alike than untrained networks of these architectures through the last block"
            f"{dip_text} (there {_against_floor(result, outputs[-1])}) ({_verdict(finding)})."
        )
    through_name, parting_name = outputs[last], outputs[last + 1]
    new_stage = stage(parting_name) != stage(through_name)
    through = stage(through_name) if new_stage else block(through_name)
    where = stage(parting_name) if new_stage else block(parting_name)
    return parting_name, (
        f"Block outputs are more alike than untrained networks of these architectures through {through}{dip_text}; "
        f"from {where} on they are not clearly so ({block(parting_name)}: {_against_floor(result, parting_name)}) "
        f"({_verdict(finding)})."
    )


def _against_floor(result: AnalysisResult, layer: str) -> str:
    """A vs B at `layer` beside the untrained floor's 95th percentile there."""
    k = result.matched.index(layer)
    return f"{result.matched_cka[k]:.2f} against the floor's {result.floor_untrained_high[k]:.2f}"


def _residual_line(finding: Finding) -> str:
    """Residual branches against block outputs, the study's 'similar outputs through dissimilar means', as finding
    3 reads them: the mean gap from the second stage on, its interval, and the verdict."""
    if not finding.comparisons:
        return ""
    gap = finding.comparisons[0]
    said = {
        HOLDS: "Residual branches are less alike than block outputs",
        UNSURE: "Residual branches cannot be told apart from block outputs",
    }.get(gap.outcome, "Residual branches are not less alike than block outputs")
    means, difference = finding.shows.rstrip(".").split("; ")[:2]  # the cross-model numbers, before the seeds'
    seeds = ", which also reads the gap against two seeds of one method" if len(finding.comparisons) > 1 else ""
    return f"{said} ({means[0].lower()}{means[1:]}; {difference}) (finding 3{seeds}: {finding.verdict})."


def _against_ceilings(result: AnalysisResult, ceilings: Ceilings, which: str) -> str:
    """One kind of layer (block outputs or residual branches), mean CKA over its matched layers: A vs B, each
    model against another seed of its method (the ceiling) and the permutation null's 95th percentile (an
    independence check)."""
    names = [n for n, v in zip(result.matched, result.matched_cka, strict=True) if kind(n) == which and np.isfinite(v)]
    if not names:
        return ""
    label_a, label_b = side_labels(result.model_a.method, result.model_b.method)
    cross = np.mean([matched_at(result, n).value for n in names])
    parts = [f"{label_a} vs {label_b} {cross:.2f}"]
    for label, (ceiling, _) in ((label_a, ceilings.side("a")), (label_b, ceilings.side("b"))):
        values = [matched_at(ceiling, n).value for n in names]
        known = [v for v in values if np.isfinite(v)]
        parts.append(f"{label} vs another seed {np.mean(known):.2f}" if known else f"{label} vs another seed: none")
    floors = [result.null_p95[result.matched.index(n)] for n in names]
    known_floors = [v for v in floors if np.isfinite(v)]
    if known_floors:
        parts.append(f"permutation null below {max(np.ceil(max(known_floors) * 100) / 100, 0.01):.2f}")
    title = "Block outputs" if which == OUTPUT else "Residual branches"
    return f"{title}, mean over {len(names)} layers: " + "; ".join(parts) + "."


def _floor_line(result: AnalysisResult) -> str:
    """Where A vs B stands clear of the untrained floor (its interval above the floor's 95th percentile), and the
    first matched layer's numbers; "" for a result without floors."""
    floor, high = result.floor_untrained, result.floor_untrained_high
    if floor is None or high is None or not np.isfinite(floor).any():
        return ""
    low_end = result.interval_low if np.isfinite(result.interval_low).any() else result.matched_cka
    known = np.isfinite(low_end) & np.isfinite(high)
    clear = int((low_end[known] > high[known]).sum())
    first = result.matched[0]
    note = f" ({result.floor_note})" if result.floor_note else ""
    return (
        f"Against untrained networks of the same architectures ({result.floor_pairs} pairs of init seeds{note}): "
        f"above the floor's 95th percentile at {clear} of {int(known.sum())} matched layers; at {first} "
        f"{result.matched_cka[0]:.2f} against an untrained {floor[0]:.2f} ({result.floor_untrained_low[0]:.2f}-"
        f"{high[0]:.2f})."
    )


def _seeds_line(result: AnalysisResult, ceilings: Ceilings | None) -> str:
    """Between methods (every seed pairing) against within a method (the ceilings), over the matched layers, and
    what that rests on; "" without other seeds."""
    if not result.seed_pairings:
        return ""
    within_method = [c for c in (ceilings.a, ceilings.b) if c is not None] if ceilings else []
    spreads = [method_spread(result, within_method, name) for name in result.matched]
    told = [s.separated for s in spreads if s.separated is not None]
    if not told:
        return ""
    rests = spreads[0].rests_on
    return (
        f"Between methods ({rests}): every pairing is below every within-method ceiling at {sum(told)} of "
        f"{len(told)} matched layers."
    )


def _null_line(result: AnalysisResult) -> str:
    """How many matched layers stand clear of the permutation null (rows of B shuffled)."""
    value, null = result.matched_cka, result.null_p95
    known = np.isfinite(value) & np.isfinite(null)
    if not known.any():
        return ""
    within = [name for name, v, n, k in zip(result.matched, value, null, known, strict=True) if k and v <= n]
    top = float(np.nanmax(null[known]))
    if not within:
        return f"Every matched layer is above the permutation null (its 95th percentile is at most {top:.2f})."
    shown = ", ".join(within[:3]) + (", ..." if len(within) > 3 else "")
    return (
        f"{len(within)} of {int(known.sum())} matched layers are within the permutation null ({shown}): "
        "there the two networks are no more alike than shuffled images."
    )


def _last_common(result: AnalysisResult) -> int | None:
    """Index in A of the deepest layer both models have (the pooled features for a SimCLR/supervised pair)."""
    common = [i for i, name in enumerate(result.layers_a) if name in result.layers_b]
    return common[-1] if common else None


def _objectives_line(result: AnalysisResult) -> str:
    """At the deepest shared layer: which model is more augmentation-invariant, which has more class structure."""
    i = _last_common(result)
    if i is None:
        return ""
    name = result.layers_a[i]
    j = result.layers_b.index(name)
    label_a, label_b = side_labels(result.model_a.method, result.model_b.method)
    parts = []
    for values_a, values_b, what in (
        (result.invariance_a, result.invariance_b, "augmentation-invariant"),
        (result.class_a, result.class_b, "class-structured"),
    ):
        a, b = float(values_a[i]), float(values_b[j])
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        key = "invariance" if what == "augmentation-invariant" else "class"
        difference = _difference(result, key, i, j)
        if difference is not None:
            parts.append(_compared(difference, what, label_a, label_b, a, b))
        elif abs(a - b) < SAME:
            parts.append(f"both are about equally {what} ({a:.2f} and {b:.2f})")
        else:
            more, high, low = (label_a, a, b) if a > b else (label_b, b, a)
            parts.append(f"{more} is more {what} ({high:.2f} vs {low:.2f})")
    return f"At the {name} layer, " + " and ".join(parts) + "." if parts else ""


def _difference(result: AnalysisResult, key: str, i: int, j: int) -> Estimate | None:
    """A's read-out `key` at its layer i minus B's at its layer j, jackknifed from the result's replicates (the
    same minibatches left out of both); None for a result without them."""
    loo_a, loo_b = result.leave_one_out.get(f"{key}_a"), result.leave_one_out.get(f"{key}_b")
    if loo_a is None or loo_b is None or loo_a.shape[0] != loo_b.shape[0]:
        return None
    value = float(getattr(result, f"{key}_a")[i] - getattr(result, f"{key}_b")[j])
    return Estimate.jackknifed(value, loo_a[:, i] - loo_b[:, j])


def _compared(difference: Estimate, what: str, label_a: str, label_b: str, a: float, b: float) -> str:
    """Equal within ±SAME, one more than the other (the difference's interval wholly on one side), or neither."""
    if within(difference, SAME) == HOLDS:
        return f"both are equally {what} within ±{SAME:.2f} ({a:.2f} and {b:.2f})"
    if above(difference, 0.0) == HOLDS or below(difference, 0.0) == HOLDS:
        more, high, low = (label_a, a, b) if a > b else (label_b, b, a)
        gap = difference.scaled(-1) if difference.value < 0 else difference
        return f"{more} is more {what} ({high:.2f} vs {low:.2f}, difference {gap})"
    return f"neither is clearly more {what} ({a:.2f} vs {b:.2f}, difference {difference})"


def _probe_line(result: AnalysisResult) -> str:
    """The best linear probe of each model and where it sits."""
    parts = []
    for label, layers, acc in zip(
        side_labels(result.model_a.method, result.model_b.method),
        (result.layers_a, result.layers_b),
        (result.probe_a, result.probe_b),
        strict=True,
    ):
        if np.isfinite(acc).any():
            k = int(np.nanargmax(acc))
            parts.append(f"{label} {acc[k]:.0%} at {layers[k]}")
    return "Best linear probe: " + "; ".join(parts) + "." if parts else ""
