"""Seed pairings: every cross pairing from kept fingerprints, in order, equal to comparing each pair alone, with
the same jackknife; between- against within-method spread."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from core.data import SubsetSpec, load_subset
from core.distributed import Cluster
from core.fingerprint import fingerprint
from core.interval import jackknife_interval
from core.options import AnalysisOptions
from core.pipeline import compare
from core.result import SeedPairing
from core.seeds import MethodSpread, method_spread, seed_pairings
from models import load_model
from tests.app.support import synthetic_result

CPU = torch.device("cpu")
OPTIONS = AnalysisOptions(batch_size=20, permutations=0, probes=False, invariance=False)


def test_every_cross_pairing_in_order_equals_each_pair_compared_alone(tiny_specs):
    a, a2, b = (load_model(tiny_specs[k]) for k in ("a", "a2", "b"))
    subset = load_subset(SubsetSpec(per_class=10))
    fps = {k: fingerprint(m, subset, OPTIONS, CPU) for k, m in (("a", a), ("a2", a2), ("b", b))}
    reference = compare(a, b, subset, OPTIONS, CPU)
    found = seed_pairings(
        [("A", fps["a"]), ("A2", fps["a2"])], [("B", fps["b"])], reference.matched, Cluster.single(CPU)
    )
    assert [(p.a, p.b) for p in found] == [("A", "B"), ("A2", "B")]
    np.testing.assert_allclose(found[0].matched_cka, reference.matched_cka, atol=1e-6)
    low, high = jackknife_interval(found[0].matched_cka, found[0].leave_one_out)
    np.testing.assert_allclose(low, reference.interval_low, atol=1e-6)
    np.testing.assert_allclose(high, reference.interval_high, atol=1e-6)
    np.testing.assert_allclose(found[1].matched_cka, compare(a2, b, subset, OPTIONS, CPU).matched_cka, atol=1e-6)


def test_between_method_values_are_read_against_within_method_ones():
    result = synthetic_result([0.7] * 8, [0.5] * 8)
    m = len(result.matched)
    pairings = (SeedPairing("A", "B", np.full(m, 0.7)), SeedPairing("A2", "B", np.full(m, 0.8)))
    ceiling = synthetic_result([0.75] * 8, [0.75] * 8, methods=("simclr", "simclr"))
    spread = method_spread(replace(result, seed_pairings=pairings), [ceiling], "layer2.0 output")
    assert spread.between == (0.7, 0.8) and spread.within == (0.75,)
    assert spread.separated is False  # one pairing (0.8) is above the ceiling (0.75)
    assert MethodSpread((0.6, 0.7), (0.75, 0.9), 2, 1).separated is True
    assert MethodSpread((0.7,), (), 1, 1).separated is None
    assert method_spread(result, [], "stem").rests_on.startswith("these two networks only")
