"""The one-line findings: where the block outputs part ways, and what the read-outs say, from known numbers."""

import itertools
from dataclasses import replace

import numpy as np
import pytest

from core.ceilings import Ceilings
from core.findings import FAILS, HOLDS, UNSURE, alike, findings_table
from core.names import OUTPUT, kind, stage
from core.result import AnalysisResult, SeedPairing
from core.summary import summarise
from tests.app.support import synthetic_result

FALLING = [0.9, 0.6, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1]  # residual branches that fall off early
PARTING = [0.95, 0.94, 0.92, 0.9, 0.88, 0.85, 0.5, 0.31]  # block outputs: alike, then apart in layer4
ALIKE_WORDS = "Block outputs are more alike than untrained networks of these architectures"


def floored(result: AnalysisResult, high: float = 0.7) -> AnalysisResult:
    """`result` with an untrained floor whose 95th percentile is `high` at every matched layer (8 init pairs)."""
    m = len(result.matched)
    return replace(
        result,
        floor_untrained=np.full(m, high - 0.1),
        floor_untrained_low=np.full(m, high - 0.2),
        floor_untrained_high=np.full(m, high),
        floor_pairs=8,
        floor_method="untrained networks",
    )


def summary_and_table(result: AnalysisResult, ceilings: Ceilings | None = None):
    return summarise(result, ceilings=ceilings), {f.key: f for f in findings_table(result, ceilings)}


def test_outputs_part_ways_in_the_last_stage():
    found, table = summary_and_table(floored(synthetic_result(PARTING, FALLING)))
    assert found.parting_layer == "layer4.0 output"
    assert found.lines[0] == (
        f"{ALIKE_WORDS} through layer3; from layer4 on they are not clearly so (layer4.0: 0.50 against the floor's "
        "0.70) (finding 2: holds)."
    )
    assert table["2"].verdict == HOLDS


def test_parting_inside_a_stage_names_the_block():
    found = summarise(floored(synthetic_result([0.95, 0.94, 0.92, 0.9, 0.88, 0.85, 0.82, 0.4], FALLING)))
    assert found.parting_layer == "layer4.1 output"
    assert "through layer4.0; from layer4.1 on they are not clearly so (layer4.1: 0.40 against" in found.lines[0]


def test_a_dip_that_recovers_is_not_the_parting_point_and_leaves_finding_2_untold():
    found, table = summary_and_table(floored(synthetic_result([0.9, 0.7, 0.9, 0.9, 0.9, 0.85, 0.3, 0.2], FALLING)))
    assert found.parting_layer == "layer4.0 output"
    assert "through layer3, apart from layer1.1; from layer4 on" in found.lines[0]
    assert found.lines[0].endswith("(finding 2: cannot tell).") and table["2"].verdict == UNSURE  # 0.00 ± 0.05


def test_outputs_alike_to_the_end_have_no_parting_point():
    found = summarise(floored(synthetic_result([0.95, 0.9, 0.9, 0.88, 0.86, 0.84, 0.83, 0.81], FALLING)))
    assert found.parting_layer is None
    assert found.lines[0].startswith(f"{ALIKE_WORDS} through the last block (there 0.81 against the floor's 0.70)")


def test_outputs_never_above_the_floor_say_so_against_the_floor_not_against_zero():
    """Item 4 of issue 26: 0.62 and 0.75 are 'alike' or not only beside what untrained networks give."""
    outputs = [0.75, 0.7, 0.74, 0.73, 0.69, 0.62, 0.45, 0.4]  # the bundled pair's block outputs, rounded
    found, table = summary_and_table(floored(synthetic_result(outputs, FALLING), high=0.86))
    assert found.parting_layer is None
    assert found.lines[0] == (
        "Block outputs are not clearly more alike than untrained networks of these architectures at any block "
        "(closest: layer1.0, 0.75 against the floor's 0.86) (finding 2: does not hold)."
    )
    assert table["2"].verdict == FAILS
    found, table = summary_and_table(floored(synthetic_result(outputs, FALLING), high=0.5))  # the same, lower floor
    assert found.lines[0].startswith(f"{ALIKE_WORDS} through layer3;") and table["2"].verdict == HOLDS


def test_without_a_floor_whether_outputs_are_alike_is_not_read():
    found, table = summary_and_table(synthetic_result(PARTING, FALLING))
    assert found.parting_layer is None
    assert found.lines[0] == (
        "Block outputs: this result has no untrained floor, so whether they are alike (more alike than two untrained "
        "networks of these architectures) cannot be read (finding 2: cannot tell)."
    )
    assert table["2"].verdict == UNSURE


def test_undefined_layers_are_skipped_not_counted():
    outputs = [0.95, float("nan"), 0.92, 0.9, 0.88, 0.85, 0.5, float("nan")]
    found = summarise(floored(synthetic_result(outputs, FALLING)))
    assert found.parting_layer == "layer4.0 output"
    assert "(layer4.0: 0.50 against the floor's 0.70)" in found.lines[0]


def test_residual_branches_are_read_as_finding_3_reads_them():
    found, table = summary_and_table(floored(synthetic_result(PARTING, FALLING)))
    gap = table["3"].comparisons[0]
    assert gap.outcome == HOLDS and table["3"].verdict == HOLDS
    assert found.lines[1] == (
        "Residual branches are less alike than block outputs (from layer2.0 on: block outputs 0.73 ± 0.05, residual "
        f"branches 0.30 ± 0.05 (mean); output minus residual {gap.estimate:.2f} ± 0.10) (finding 3: holds)."
    )


def test_the_one_liners_and_the_verdicts_cannot_disagree():
    """Over results spanning every threshold (block outputs at a level, falling by a drop in the final stage,
    residual branches a gap below them, floors below, near and above them, ceilings or none), each one-liner that
    speaks of a finding carries its verdict, and what it says is what the finding's comparisons say; the grid
    reaches every verdict of both findings."""
    seen = set()
    grid = itertools.product((0.55, 0.92), (0.0, 0.15, 0.6), (0.3, 0.8, 0.9, None), (0.2, 0.05, -0.15))
    for level, drop, high, gap in grid:
        outputs = [level] * 6 + [level - drop / 2, level - drop]
        result = synthetic_result(outputs, [o - gap for o in outputs])
        result = result if high is None else floored(result, high)
        steady = synthetic_result([0.95] * 8, [0.9] * 8, methods=("simclr", "simclr"))
        same = replace(result, model_b=result.model_a)  # two seeds that part as A and B do
        for ceilings in (None, Ceilings(a=steady), Ceilings(a=same)):
            found, table = summary_and_table(result, ceilings)
            case = (level, drop, high, gap, ceilings is None)
            outputs_line, residual_line = found.lines[:2]
            two, three = table["2"], table["3"]
            seen |= {("2", two.verdict), ("3", three.verdict)}
            assert outputs_line.endswith(f"(finding 2: {two.verdict})."), case
            assert residual_line.endswith(f": {three.verdict})."), case
            intermediate = [alike(result, n) for n in result.matched if kind(n) == OUTPUT and stage(n) != "layer4"]
            if outputs_line.startswith("Block outputs are not clearly more alike"):  # alike nowhere
                assert two.verdict != HOLDS and HOLDS not in intermediate, case
            if two.verdict == HOLDS:  # alike through the intermediate stages: any parting is in the final stage
                assert set(intermediate) == {HOLDS} and outputs_line.startswith(ALIKE_WORDS), case
                assert found.parting_layer is None or found.parting_layer.startswith("layer4"), case
            if found.parting_layer is not None and not found.parting_layer.startswith("layer4"):
                assert two.verdict != HOLDS, case  # a parting before the final stage is not the study's finding 2
            said = {HOLDS: "are less alike than", UNSURE: "cannot be told apart from", FAILS: "are not less alike than"}
            assert residual_line.startswith(f"Residual branches {said[three.comparisons[0].outcome]} block"), case
    assert seen == {(key, v) for key in "23" for v in (HOLDS, FAILS, UNSURE)}


@pytest.mark.parametrize(
    ("null", "expected"),
    [
        (0.02, "Every matched layer is above the permutation null (its 95th percentile is at most 0.02)."),
        (
            0.35,
            "4 of 18 matched layers are within the permutation null (layer3.0 residual, layer3.1 residual, layer4.0",
        ),
    ],
)
def test_null_line_counts_layers_within_the_null(null, expected):
    found = summarise(synthetic_result([0.95] * 8, FALLING, null_p95=null))
    assert found.lines[2].startswith(expected)


def test_objectives_and_probes_name_the_model_and_layer():
    lines = summarise(synthetic_result([0.95] * 8, FALLING)).lines
    # synthetic read-outs at 'pooled': invariance A 0.90 vs B 0.45, class structure A 0.54 vs B 0.90
    assert lines[3] == (
        "At the pooled layer, A (simclr) is more augmentation-invariant (0.90 vs 0.45) and B (supervised) is more "
        "class-structured (0.90 vs 0.54)."
    )
    assert lines[4] == "Best linear probe: A (simclr) 90% at pooled; B (supervised) 95% at logits."


def test_same_method_pair_keeps_sides_apart():
    lines = summarise(synthetic_result([0.95] * 8, FALLING, methods=("simclr", "simclr"))).lines
    assert "A (simclr)" in lines[3] and "B (simclr)" in lines[3]


def test_each_kind_of_layer_is_read_against_the_ceilings_and_the_floor():
    result = synthetic_result([0.7] * 8, [0.5] * 8, null_p95=0.004)
    seeds_b = synthetic_result([0.96] * 8, [0.8] * 8, methods=("supervised", "supervised"))
    lines = summarise(result, ceilings=Ceilings(b=seeds_b, note_a="none was asked for")).lines
    assert lines[2] == (
        "Block outputs, mean over 8 layers: A (simclr) vs B (supervised) 0.70; A (simclr) vs another seed: none; "
        "B (supervised) vs another seed 0.96; permutation null below 0.01."
    )
    assert lines[3].startswith("Residual branches, mean over 8 layers: A (simclr) vs B (supervised) 0.50;")
    assert "B (supervised) vs another seed 0.80" in lines[3]
    assert len(summarise(result).lines) == len(lines) - 2  # without ceilings, no such lines


def test_the_floor_line_counts_layers_clear_of_the_untrained_band():
    result = synthetic_result([0.95] * 8, [0.95] * 8)  # every matched layer 0.9 or 0.95, intervals ± 0.05
    m = len(result.matched)
    floor = np.full(m, 0.5)
    floor[:3] = 0.93  # the first three layers: the interval's low end (>= 0.85) is not above 0.96
    result = replace(
        result,
        floor_untrained=floor,
        floor_untrained_low=floor - 0.1,
        floor_untrained_high=floor + 0.03,
        floor_pairs=8,
    )
    line = next(x for x in summarise(result).lines if x.startswith("Against untrained"))
    clear = int(np.sum(result.interval_low > floor + 0.03))
    assert f"above the floor's 95th percentile at {clear} of {m} matched layers" in line
    assert clear == m - 3 and "8 pairs of init seeds" in line and "untrained 0.93 (0.83-0.96)" in line


def test_the_seeds_line_compares_every_pairing_with_the_ceilings_and_says_what_it_rests_on():
    result = synthetic_result([0.7] * 8, [0.5] * 8)
    m = len(result.matched)
    pairings = tuple(SeedPairing(a, b, np.full(m, v)) for a, b, v in (("A", "B", 0.7), ("A2", "B", 0.72)))
    ceiling = synthetic_result([0.96] * 8, [0.8] * 8, methods=("supervised", "supervised"))
    line = next(x for x in summarise(replace(result, seed_pairings=pairings), ceilings=Ceilings(b=ceiling)).lines
                if x.startswith("Between methods"))  # fmt: skip
    below = sum(max(0.7, 0.72) < c for c in ceiling.matched_cka)  # every pairing below the ceiling there
    assert f"at {below} of {m} matched layers" in line and "2 seed(s) of A's method and 1 of B's" in line
    one = tuple(SeedPairing("A", "B", np.full(m, 0.7)) for _ in range(1))
    lines = summarise(replace(result, seed_pairings=one), ceilings=Ceilings(b=ceiling)).lines
    assert any("these two networks only" in x for x in lines)
