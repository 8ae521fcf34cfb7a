"""The findings table: each verdict rule on constructed results whose answer is known (holds, does not hold,
cannot tell), with and without ceilings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.ceilings import Ceilings
from core.findings import (
    FAILS,
    HOLDS,
    STUDY,
    UNSURE,
    Comparison,
    Estimate,
    PairEstimates,
    above,
    all_of,
    below,
    block_structure,
    check_above,
    check_below,
    check_within,
    class_structure,
    conclude,
    findings_table,
    implicitly_fits,
    invariance,
    mean,
    outputs_part_at_the_end,
    probes_rise,
    residuals_differ,
    stalls_then_catches_up,
    t_upper,
    within,
)
from core.interval import t975
from core.names import OUTPUT, kind, stage
from core.result import AnalysisResult, SeedPairing
from tests.app.support import synthetic_result

FLAT = [0.9] * 8
PARTING = [0.9, 0.9, 0.88, 0.88, 0.85, 0.85, 0.5, 0.3]  # block outputs: alike, then apart in layer4
LOW_RESIDUALS = [0.5] * 8


def verdict(rule, result: AnalysisResult, *args) -> str:
    return conclude(rule(PairEstimates(result), *args)[1])[0]


def with_values(result: AnalysisResult, field: str, side: str, values: dict[str, float], rest: float) -> AnalysisResult:
    """`result` with read-out `field` ('class', 'invariance', 'probe') of model `side` set by layer name."""
    layers = result.layers_a if side == "a" else result.layers_b
    return replace(result, **{f"{field}_{side}": np.array([values.get(n, rest) for n in layers])})


@pytest.mark.parametrize(
    ("estimate", "threshold", "expected"),
    [
        (Estimate(0.5, 0.1), 0.3, HOLDS),
        (Estimate(0.35, 0.1), 0.3, UNSURE),
        (Estimate(0.15, 0.1), 0.3, FAILS),
        (Estimate(float("nan"), 0.1), 0.3, UNSURE),
        (Estimate(0.9, float("nan")), 0.3, UNSURE),
    ],
)
def test_a_comparison_holds_only_when_its_whole_interval_clears_the_threshold(estimate, threshold, expected):
    assert above(estimate, threshold) == expected
    assert below(estimate, threshold) == {HOLDS: FAILS, FAILS: HOLDS, UNSURE: UNSURE}[expected]


def test_a_finding_fails_on_any_failure_and_holds_only_when_all_hold():
    assert all_of([HOLDS, HOLDS]) == HOLDS
    assert all_of([HOLDS, UNSURE]) == UNSURE
    assert all_of([UNSURE, FAILS, HOLDS]) == FAILS
    assert all_of([]) == UNSURE


def test_differences_add_their_uncertainties():
    assert (Estimate(0.9, 0.02) - Estimate(0.4, 0.03)) == Estimate(pytest.approx(0.5), pytest.approx(0.05))


def own_map(layers: tuple[str, ...], within: float, across: float) -> np.ndarray:
    """A self-CKA map whose neighbouring block outputs are `within` inside a stage and `across` a boundary."""
    own = np.eye(len(layers))
    outputs = [n for n in layers if kind(n) == OUTPUT]
    for x, y in zip(outputs, outputs[1:], strict=False):
        i, j = layers.index(x), layers.index(y)
        own[i, j] = own[j, i] = within if stage(x) == stage(y) else across
    return own


@pytest.mark.parametrize(("within", "across", "expected"), [(0.9, 0.6, HOLDS), (0.6, 0.9, FAILS), (0.8, 0.78, UNSURE)])
def test_block_structure_compares_neighbours_within_and_across_stages(within, across, expected):
    r = synthetic_result(FLAT, LOW_RESIDUALS)  # intervals ± 0.05: a difference is uncertain by ± 0.1
    r = replace(r, self_a=own_map(r.layers_a, within, across), self_b=own_map(r.layers_b, within, across))
    assert verdict(block_structure, r) == expected


def test_block_structure_fails_when_one_network_lacks_it():
    r = synthetic_result(FLAT, LOW_RESIDUALS)
    r = replace(r, self_a=own_map(r.layers_a, 0.9, 0.6), self_b=own_map(r.layers_b, 0.6, 0.9))
    assert verdict(block_structure, r) == FAILS


def floored(result: AnalysisResult, high: float = 0.7) -> AnalysisResult:
    """`result` with an untrained floor whose 95th percentile is `high` at every matched layer."""
    m = len(result.matched)
    floor = {"floor_untrained": high - 0.1, "floor_untrained_low": high - 0.2, "floor_untrained_high": high}
    return replace(result, **{k: np.full(m, v) for k, v in floor.items()}, floor_pairs=8)


@pytest.mark.parametrize(
    ("outputs", "high", "expected"),
    [
        (PARTING, 0.7, HOLDS),  # 0.85 or more before layer4, 0.15 above the floor; a drop of 0.55 ± 0.10
        ([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.92], 0.7, FAILS),  # no drop at all
        ([0.9, 0.9, 0.88, 0.88, 0.85, 0.85, 0.8, 0.7], 0.7, UNSURE),  # a drop of 0.15 ± 0.10
        ([0.45, 0.45, 0.4, 0.4, 0.4, 0.4, 0.1, 0.1], 0.7, FAILS),  # a drop, but below the floor before it
        (PARTING, 0.85, UNSURE),  # 0.85 before layer4 is no clearer than the floor's 95th percentile there
        (PARTING, 0.95, FAILS),  # untrained networks are more alike than these before layer4
        (PARTING, None, UNSURE),  # no floor: whether they are alike cannot be read
    ],
)
def test_block_outputs_are_alike_beside_the_floor_and_part_in_the_final_stage(outputs, high, expected):
    result = synthetic_result(outputs, LOW_RESIDUALS)
    result = result if high is None else floored(result, high)
    assert verdict(outputs_part_at_the_end, result, Ceilings()) == expected


def test_a_drop_that_two_seeds_show_too_is_not_the_methods_parting():
    result = floored(synthetic_result(PARTING, LOW_RESIDUALS))  # a drop of 0.55 ± 0.10
    steady = synthetic_result(FLAT, LOW_RESIDUALS, methods=("simclr", "simclr"))
    same_drop = synthetic_result(PARTING, LOW_RESIDUALS, methods=("simclr", "simclr"))
    larger_drop = synthetic_result(PARTING[:6] + [0.4, 0.1], LOW_RESIDUALS, methods=("simclr", "simclr"))
    assert verdict(outputs_part_at_the_end, result, Ceilings(a=steady)) == HOLDS
    assert verdict(outputs_part_at_the_end, result, Ceilings(a=same_drop)) == UNSURE  # 0.00 ± 0.20 vs 0.1
    shows, found = outputs_part_at_the_end(PairEstimates(result), Ceilings(a=larger_drop))
    assert conclude(found)[0] == FAILS
    assert "A (simclr) vs another seed: 0.85 to 0.10 (a drop of 0.75 ± 0.10)" in shows


def test_block_outputs_of_one_stage_cannot_tell():
    r = synthetic_result(PARTING, LOW_RESIDUALS)
    keep = [i for i, n in enumerate(r.matched) if not (kind(n) == OUTPUT and stage(n) != "layer4")]
    r = replace(
        r,
        matched=tuple(r.matched[i] for i in keep),
        matched_cka=r.matched_cka[keep],
        interval_low=r.interval_low[keep],
        interval_high=r.interval_high[keep],
    )
    assert verdict(outputs_part_at_the_end, r, Ceilings()) == UNSURE


@pytest.mark.parametrize(
    ("outputs", "residuals", "expected"),
    [
        (FLAT, LOW_RESIDUALS, HOLDS),  # outputs 0.9, residuals 0.5
        ([0.7] * 8, [0.9] * 8, FAILS),  # residuals more alike than outputs
        ([0.9] * 8, [0.85] * 8, UNSURE),  # 0.05 ± 0.10
    ],
)
def test_residual_branches_are_less_alike_than_block_outputs(outputs, residuals, expected):
    assert verdict(residuals_differ, synthetic_result(outputs, residuals), Ceilings()) == expected


def test_a_residual_gap_two_seeds_share_as_much_is_not_the_methods():
    result = synthetic_result(FLAT, LOW_RESIDUALS)
    seeds_close = synthetic_result([0.95] * 8, [0.93] * 8, methods=("supervised", "supervised"))
    seeds_gap = synthetic_result([0.95] * 8, [0.25] * 8, methods=("supervised", "supervised"))
    assert verdict(residuals_differ, result, Ceilings(b=seeds_close)) == HOLDS
    assert verdict(residuals_differ, result, Ceilings(b=seeds_gap)) == FAILS


def stalling(result: AnalysisResult, lag: float, behind: float, ssl: str = "a") -> AnalysisResult:
    """A cross map where, in each stage after the first, the self-supervised network's first block output is
    `lag` more like the supervised network's previous block than its own, and its last block `behind` more."""
    cross = np.full((len(result.layers_a), len(result.layers_b)), 0.3)
    outputs = [n for n in result.matched if kind(n) == OUTPUT]
    for before, first, last in zip(outputs[1::2], outputs[2::2], outputs[3::2], strict=False):
        for own, other, value in (
            (first, before, 0.6 + lag),
            (first, first, 0.6),
            (last, first, 0.8 + behind),
            (last, last, 0.8),
        ):
            i, j = (own, other) if ssl == "a" else (other, own)
            cross[result.layers_a.index(i), result.layers_b.index(j)] = value
    return replace(result, cross=cross)


@pytest.mark.parametrize(
    ("lag", "behind", "expected"),
    [
        (0.3, -0.3, HOLDS),  # lags at each stage's start, caught up by its end
        (-0.3, -0.3, FAILS),  # never lags
        (0.3, 0.3, FAILS),  # still behind at each stage's end
        (0.02, -0.3, UNSURE),  # a lag within the uncertainty
    ],
)
def test_simclr_stalls_at_the_start_of_each_stage_then_catches_up(lag, behind, expected):
    result = synthetic_result(FLAT, LOW_RESIDUALS)
    assert verdict(stalls_then_catches_up, stalling(result, lag, behind)) == expected


def test_the_stall_is_read_with_simclr_as_model_b_too():
    result = synthetic_result(FLAT, LOW_RESIDUALS, methods=("supervised", "simclr"))
    assert verdict(stalls_then_catches_up, stalling(result, 0.3, -0.3, ssl="b")) == HOLDS
    assert verdict(stalls_then_catches_up, stalling(result, 0.3, -0.3, ssl="a")) == FAILS


@pytest.mark.parametrize("rule", [stalls_then_catches_up, class_structure, invariance, implicitly_fits])
def test_findings_about_the_two_methods_cannot_tell_on_a_same_method_pair(rule):
    shows, found = rule(PairEstimates(synthetic_result(FLAT, LOW_RESIDUALS, methods=("simclr", "simclr"))))
    assert conclude(found)[0] == UNSURE
    assert shows == "needs one self-supervised and one supervised network; this pair is A (simclr) vs B (simclr)."


def test_probes_rise_with_depth_and_flat_probes_need_enough_images_to_say_so():
    result = synthetic_result(FLAT, LOW_RESIDUALS)  # probes rise from 0.10 to 0.90 and 0.95
    assert verdict(probes_rise, result) == HOLDS
    flat = with_values(with_values(result, "probe", "a", {}, 0.5), "probe", "b", {}, 0.5)
    assert verdict(probes_rise, flat) == UNSURE  # 30 held-out images: ± 0.18 each
    assert verdict(probes_rise, replace(flat, used_images=10_000)) == FAILS  # 3,000: ± 0.02
    assert probes_rise(PairEstimates(replace(result, probe_a=np.full(len(result.layers_a), np.nan)))) == (
        "Linear probes were not computed for this result.",
        [],
    )


def objectives(result: AnalysisResult, what: str, ssl: dict[str, float], sup: dict[str, float]) -> AnalysisResult:
    """Set a read-out at the stem, the last block output before layer4 and the pooled features (0.1 elsewhere)."""
    keys = ("stem", "layer3.1 output", "pooled")
    result = with_values(result, what, "a", dict(zip(keys, ssl.values(), strict=True)), 0.1)
    return with_values(result, what, "b", dict(zip(keys, sup.values(), strict=True)), 0.1)


@pytest.mark.parametrize(
    ("ssl", "sup", "expected"),
    [
        ((0.1, 0.2, 0.35), (0.1, 0.3, 0.9), HOLDS),  # both rise; supervised much faster over layer4
        ((0.1, 0.1, 0.9), (0.1, 0.5, 0.8), FAILS),  # SimCLR rises faster at the end
        ((0.2, 0.1, 0.1), (0.1, 0.3, 0.9), FAILS),  # SimCLR gains no class structure
        ((0.1, 0.2, 0.35), (0.1, 0.3, 0.6), UNSURE),  # supervised 0.15 faster: ± 0.2
    ],
)
def test_class_structure_rises_much_faster_in_supervised_final_layers(ssl, sup, expected):
    result = objectives(synthetic_result(FLAT, LOW_RESIDUALS), "class", dict(enumerate(ssl)), dict(enumerate(sup)))
    assert verdict(class_structure, result) == expected


@pytest.mark.parametrize(
    ("ssl", "sup", "expected"),
    [
        ((0.5, 0.5, 0.85), (0.5, 0.5, 0.4), HOLDS),  # SimCLR +0.35 over layer4, supervised -0.10
        ((0.5, 0.5, 0.85), (0.5, 0.4, 0.8), FAILS),  # supervised rises steeply too
        ((0.5, 0.5, 0.45), (0.5, 0.5, 0.4), FAILS),  # SimCLR does not rise
        ((0.5, 0.5, 0.65), (0.5, 0.5, 0.4), UNSURE),  # SimCLR +0.15 ± 0.10
    ],
)
def test_invariance_rises_in_simclr_final_layers_only(ssl, sup, expected):
    result = objectives(synthetic_result(FLAT, LOW_RESIDUALS), "invariance", dict(enumerate(ssl)), dict(enumerate(sup)))
    assert verdict(invariance, result) == expected


@pytest.mark.parametrize(
    ("ssl_class", "sup_invariance", "expected"),
    [
        ((0.1, 0.5, 0.6), (0.5, 0.4, 0.45), HOLDS),  # SimCLR gains 0.4 (half of supervised's: 0.15); never invariant
        ((0.2, 0.1, 0.6), (0.5, 0.4, 0.45), FAILS),  # SimCLR's intermediate layers gain no class structure
        ((0.1, 0.5, 0.6), (0.5, 0.4, 0.9), FAILS),  # the supervised network becomes as invariant
        ((0.1, 0.2, 0.6), (0.5, 0.4, 0.45), UNSURE),  # SimCLR gains 0.10 against 0.15: ± 0.15
    ],
)
def test_simclr_implicitly_fits_the_supervised_objective_and_not_the_reverse(ssl_class, sup_invariance, expected):
    result = synthetic_result(FLAT, LOW_RESIDUALS)
    result = objectives(result, "class", dict(enumerate(ssl_class)), dict(enumerate((0.1, 0.4, 0.9))))
    result = objectives(result, "invariance", dict(enumerate((0.5, 0.5, 0.85))), dict(enumerate(sup_invariance)))
    assert verdict(implicitly_fits, result) == expected


def test_the_table_has_every_finding_in_order_and_no_interval_means_cannot_tell():
    result = synthetic_result(PARTING, LOW_RESIDUALS)
    table = findings_table(result)
    assert [f.key for f in table] == list(STUDY) and [f.study for f in table] == list(STUDY.values())
    nan = np.full(len(result.matched), np.nan)
    no_interval = findings_table(replace(result, interval_low=nan, interval_high=nan.copy()))
    uncertain = [f.key for f in no_interval if f.verdict == UNSURE]
    assert uncertain == [f.key for f in no_interval if f.key != "5"]  # probes keep their binomial uncertainty


@pytest.mark.parametrize(
    ("estimate", "expected"),
    [
        (Estimate(0.02, 0.05), HOLDS),  # [-0.03, 0.07] inside ±0.10
        (Estimate(0.08, 0.05), UNSURE),  # [0.03, 0.13] crosses the margin
        (Estimate(-0.20, 0.05), FAILS),  # [-0.25, -0.15] wholly outside
        (Estimate(0.0, 0.10), UNSURE),  # the interval reaches the margin: not inside it
        (Estimate(0.0, float("nan")), UNSURE),
    ],
)
def test_equal_within_a_margin_needs_the_whole_interval_inside_it(estimate, expected):
    assert within(estimate, 0.10) == expected
    assert check_within("difference", estimate, 0.10).outcome == expected


def test_the_t_tail_matches_the_quantile_table():
    for df in (1, 2, 3, 4, 9, 10, 29, 30):
        assert t_upper(t975(df), df) == pytest.approx(0.025, abs=2e-5)
        assert t_upper(-t975(df), df) == pytest.approx(0.975, abs=2e-5)
    assert t_upper(0.0, 7) == pytest.approx(0.5)
    assert t_upper(1.959964, None) == pytest.approx(0.025, abs=1e-6)


def failing(p: float) -> Comparison:
    """A comparison that does not hold alone, with one-sided p-value `p` against its claim."""
    return Comparison("claim", 0.0, -0.1, -0.05, FAILS, FAILS, p)


def holding() -> Comparison:
    return Comparison("claim", 0.5, 0.4, 0.6, HOLDS, HOLDS, 0.999)  # far from failing: p against it near 1


def test_one_marginal_failure_among_six_comparisons_does_not_decide_a_finding():
    # alone, p = 0.02 < 0.025 fails; Holm over six asks the smallest p to be below 0.025 / 6
    verdict_of, corrected, note = conclude([failing(0.02)] + [holding()] * 5)
    assert verdict_of == UNSURE and corrected[0].outcome == UNSURE and corrected[0].alone == FAILS
    assert "1 fail alone, 0 after the correction" in note
    # a clear failure still decides it, and a second one is judged at the next Holm level (0.025 / 5)
    verdict_of, corrected, _ = conclude([failing(0.001), failing(0.004)] + [holding()] * 4)
    assert verdict_of == FAILS and [c.outcome for c in corrected[:2]] == [FAILS, FAILS]
    _, corrected, _ = conclude([failing(0.001), failing(0.006)] + [holding()] * 4)
    assert [c.outcome for c in corrected[:2]] == [FAILS, UNSURE]
    # all holding: an intersection of claims, no correction
    assert conclude([holding()] * 6)[0] == HOLDS


def test_jackknifed_estimates_stay_paired_through_differences_and_means():
    loo_x, loo_y = np.array([0.50, 0.52, 0.49, 0.51, 0.50]), np.array([0.40, 0.42, 0.39, 0.41, 0.40])
    x, y = Estimate.jackknifed(0.5, loo_x), Estimate.jackknifed(0.4, loo_y)
    assert (x - y).half == pytest.approx(0.0, abs=1e-12)  # the same minibatch moves both alike
    assert (x - y).half < x.half + y.half
    assert mean([x, y]).half == pytest.approx(Estimate.jackknifed(0.45, (loo_x + loo_y) / 2).half)


def test_verdicts_say_whether_they_rest_on_two_networks_or_on_seeds_of_each_method():
    result = synthetic_result(FLAT, LOW_RESIDUALS)
    assert findings_table(result)[0].rests_on.startswith("these two networks only")
    seeds = synthetic_result(FLAT, LOW_RESIDUALS, methods=("simclr", "simclr"))
    assert findings_table(result, Ceilings(a=seeds))[0].rests_on == "2 seed(s) of A's method and 1 of B's"
    m = len(result.matched)
    pairings = tuple(SeedPairing(a, b, np.full(m, 0.9)) for b in ("B", "B2") for a in ("A", "A2"))
    found = findings_table(replace(result, seed_pairings=pairings))[0].rests_on
    assert found == "2 seed(s) of A's method and 2 of B's, 4 cross pairings"


def pairing(name_a: str, name_b: str, result: AnalysisResult, outputs: list[float]) -> SeedPairing:
    """A seed pairing whose block outputs are `outputs` (other layers as in `result`), with replicates spread by
    ±0.005 over 5 minibatches."""
    values = synthetic_result(outputs, LOW_RESIDUALS).matched_cka
    noise = np.linspace(-0.005, 0.005, 5)[:, None] * np.ones(len(result.matched))
    return SeedPairing(name_a, name_b, values, values[None, :] + noise)


def test_a_parting_every_seed_pairing_shows_holds_and_one_it_lacks_does_not():
    result = floored(synthetic_result(PARTING, LOW_RESIDUALS))  # A x B: a drop of 0.55 ± 0.10
    same = (pairing("A", "B", result, PARTING), pairing("A2", "B", result, PARTING))
    assert verdict(outputs_part_at_the_end, replace(result, seed_pairings=same), Ceilings()) == HOLDS
    lacking = (pairing("A", "B", result, PARTING), pairing("A2", "B", result, FLAT))  # A' x B: no drop
    shows, found = outputs_part_at_the_end(PairEstimates(replace(result, seed_pairings=lacking)), Ceilings())
    assert "A' x B: a drop of 0.00 ± 0.00" in shows
    assert conclude(found)[0] == FAILS and found[-1].what == "drop in A' x B > 0.10"


def test_a_comparison_fails_alone_exactly_when_its_p_value_against_the_claim_is_below_the_family_level():
    rng = np.random.default_rng(0)
    for _ in range(200):
        loo = rng.normal(0, rng.uniform(0.001, 0.05), 8)
        estimate = Estimate.jackknifed(float(rng.uniform(-0.3, 0.3)), loo)
        for made in (check_above("x", estimate, 0.05), check_below("x", estimate, 0.05)):
            assert (made.alone == FAILS) == (made.p_fail < 0.025), (made, estimate)
            assert (made.alone == HOLDS) == (made.p_fail > 0.975), (made, estimate)
