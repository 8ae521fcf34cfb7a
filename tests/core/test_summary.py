"""The one-line findings: where the block outputs part ways, and what the read-outs say, from known numbers."""

from dataclasses import replace

import numpy as np
import pytest

from core.ceilings import Ceilings
from core.result import SeedPairing
from core.summary import summarise
from tests.app.support import synthetic_result

FALLING = [0.9, 0.6, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1]  # residual branches that fall off early


def test_outputs_part_ways_in_the_last_stage():
    found = summarise(synthetic_result([0.95, 0.94, 0.92, 0.9, 0.88, 0.85, 0.5, 0.31], FALLING))
    assert found.parting_layer == "layer4.0 output"
    assert found.lines[0] == (
        "Block outputs agree (CKA ≥ 0.8) through layer3; they part ways in layer4: 0.50 at layer4.0, "
        "0.31 at the last block."
    )


def test_parting_inside_a_stage_names_the_block():
    found = summarise(synthetic_result([0.95, 0.94, 0.92, 0.9, 0.88, 0.85, 0.82, 0.4], FALLING))
    assert found.parting_layer == "layer4.1 output"
    assert "through layer4.0; they part ways in layer4.1: 0.40 at layer4.1" in found.lines[0]


def test_a_dip_that_recovers_is_not_the_parting_point():
    found = summarise(synthetic_result([0.9, 0.7, 0.9, 0.9, 0.9, 0.85, 0.3, 0.2], FALLING))
    assert found.parting_layer == "layer4.0 output"
    assert "through layer3, apart from a dip at layer1.1;" in found.lines[0]


def test_agreement_to_the_end_has_no_parting_point():
    found = summarise(synthetic_result([0.95, 0.9, 0.9, 0.88, 0.86, 0.84, 0.83, 0.81], FALLING))
    assert found.parting_layer is None
    assert found.lines[0].startswith("Block outputs agree (CKA ≥ 0.8) through the last block (0.81)")
    assert "lowest 0.81 at layer4.1" in found.lines[0]


def test_never_agreeing_outputs_say_so():
    found = summarise(synthetic_result([0.5, 0.7, 0.6, 0.4, 0.3, 0.3, 0.2, 0.1], FALLING))
    assert found.parting_layer is None
    assert found.lines[0] == "Block outputs never agree (CKA < 0.8 at every block; highest 0.70 at layer1.1)."


def test_undefined_layers_are_skipped_not_counted():
    outputs = [0.95, float("nan"), 0.92, 0.9, 0.88, 0.85, 0.5, float("nan")]
    found = summarise(synthetic_result(outputs, FALLING))
    assert found.parting_layer == "layer4.0 output"
    assert "0.50 at layer4.0, 0.50 at the last block" in found.lines[0]


def test_residual_branches_below_outputs_are_reported():
    found = summarise(synthetic_result([0.95, 0.94, 0.92, 0.9, 0.88, 0.85, 0.5, 0.31], FALLING))
    expected_r, expected_o = np.mean(FALLING), np.mean([0.95, 0.94, 0.92, 0.9, 0.88, 0.85, 0.5, 0.31])
    assert found.lines[1] == (
        f"Residual branches agree less than block outputs (mean CKA {expected_r:.2f} vs {expected_o:.2f}; below 0.8 "
        "from layer1.1 on): similar outputs reached through dissimilar residual updates."
    )


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
