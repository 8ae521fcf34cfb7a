"""Verdict quantities carry their own intervals: the paired delete-one-minibatch jackknife of a difference, of a
read-out difference and of pooled invariance, checked against minibatch CKA recomputed by hand with each minibatch
left out (core.cka.MinibatchCKA on features from torchvision's extractor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.feature_extraction import create_feature_extractor

from core.augment import simclr_views
from core.cka import MinibatchCKA
from core.data import CLASSES, SubsetSpec, load_subset, normalize
from core.findings import PairEstimates
from core.fingerprint import view_generator
from core.interval import t975
from core.options import AnalysisOptions
from core.pipeline import compare
from core.result import from_json_dict, to_json_dict
from models import load_model

CPU = torch.device("cpu")
OPTIONS = AnalysisOptions(batch_size=20, permutations=0, probes=False, invariance=True, seed=3)
FIRST, LAST = "layer1.0 output", "layer4.1 output"


@pytest.fixture(scope="module")
def run(tiny_specs):
    a, b = load_model(tiny_specs["a"]), load_model(tiny_specs["b"])
    subset = load_subset(SubsetSpec(per_class=10))  # 100 images: 5 minibatches of 20
    return a, b, subset, compare(a, b, subset, OPTIONS, CPU)


def layer_features(network, images: torch.Tensor, layers: list[str]) -> list[torch.Tensor]:
    """The named layers' outputs for `images`, through torchvision's extractor (not the engine's)."""
    nodes = dict(network.layers)
    extractor = create_feature_extractor(network.module, {nodes[n]: n for n in layers})
    with torch.no_grad():
        out = extractor(normalize(images, network.mean, network.std))
    return [out[n].float() for n in layers]


def batches(subset) -> list[slice]:
    return [slice(k * OPTIONS.batch_size, (k + 1) * OPTIONS.batch_size) for k in range(5)]


def by_hand(values_without: list[float], full: float) -> tuple[float, float]:
    """(estimate, jackknife-t half-width) from the values with each minibatch left out, by the textbook formula."""
    loo = np.array(values_without)
    se = np.sqrt((len(loo) - 1) / len(loo) * ((loo - loo.mean()) ** 2).sum())
    return full, t975(len(loo) - 1) * se


def test_the_jackknife_of_a_matched_difference_is_the_jackknife_of_the_difference_itself(run):
    a, b, subset, result = run
    feats = [(layer_features(a, subset.images[s], [FIRST, LAST]), layer_features(b, subset.images[s], [FIRST, LAST]))
             for s in batches(subset)]  # fmt: skip

    def difference(keep: list[int]) -> float:
        acc = MinibatchCKA(2, 2)
        for k in keep:
            acc.update(*feats[k])
        cka = acc.compute().numpy()
        return float(cka[0, 0] - cka[1, 1])

    full = difference(list(range(5)))
    value, half = by_hand([difference([j for j in range(5) if j != k]) for k in range(5)], full)
    pair = PairEstimates(result)
    estimate = pair.matched(FIRST) - pair.matched(LAST)
    assert estimate.value == pytest.approx(value, abs=1e-5)
    assert estimate.half == pytest.approx(half, rel=1e-3, abs=1e-6)
    # adding half-widths (the old approximation) is wider than the paired jackknife on the same images
    assert estimate.half < pair.matched(FIRST).half + pair.matched(LAST).half


def test_class_structure_differences_are_jackknifed_from_per_batch_terms(run):
    a, _, subset, result = run
    onehot = F.one_hot(subset.labels, len(CLASSES)).float()
    feats = [(layer_features(a, subset.images[s], [FIRST, LAST]), [onehot[s]]) for s in batches(subset)]

    def rise(keep: list[int]) -> float:
        acc = MinibatchCKA(2, 1)
        for k in keep:
            acc.update(*feats[k])
        cka = acc.compute().numpy()[:, 0]
        return float(cka[1] - cka[0])

    value, half = by_hand([rise([j for j in range(5) if j != k]) for k in range(5)], rise(list(range(5))))
    pair = PairEstimates(result)
    estimate = pair.readout("class", "a", LAST) - pair.readout("class", "a", FIRST)
    assert estimate.value == pytest.approx(value, abs=1e-5)
    assert estimate.half == pytest.approx(half, rel=1e-3, abs=1e-6)


def test_pooled_invariance_compares_maps_averaged_over_space_with_its_own_jackknife(run):
    a, _, subset, result = run
    feats = []
    for k, s in enumerate(batches(subset)):
        views = simclr_views(subset.images[s], view_generator(OPTIONS.seed, k))
        x, t = (layer_features(a, images, [FIRST, LAST]) for images in (subset.images[s], views))
        feats.append([(fx.mean((2, 3)), ft.mean((2, 3))) for fx, ft in zip(x, t, strict=True)])

    def invariance(layer: int, keep: list[int]) -> float:
        acc = MinibatchCKA(1, 1)
        for k in keep:
            acc.update([feats[k][layer][0]], [feats[k][layer][1]])
        return float(acc.compute()[0, 0])

    i, j = result.layers_a.index(FIRST), result.layers_a.index(LAST)
    assert result.invariance_pooled_a[i] == pytest.approx(invariance(0, list(range(5))), abs=1e-5)
    assert result.invariance_pooled_a[j] == pytest.approx(invariance(1, list(range(5))), abs=1e-5)
    without = [invariance(1, [m for m in range(5) if m != k]) - invariance(0, [m for m in range(5) if m != k])
               for k in range(5)]  # fmt: skip
    value, half = by_hand(without, invariance(1, list(range(5))) - invariance(0, list(range(5))))
    pair = PairEstimates(result)
    estimate = pair.readout("invariance_pooled", "a", LAST) - pair.readout("invariance_pooled", "a", FIRST)
    assert estimate.value == pytest.approx(value, abs=1e-5) and estimate.half == pytest.approx(half, rel=1e-3)
    assert pair.invariance == "invariance_pooled"  # what finding 6 reads


def test_replicates_survive_the_json_round_trip_and_old_files_open_without_them(run):
    *_, result = run
    again = from_json_dict(to_json_dict(result))
    assert (
        set(again.leave_one_out) == set(result.leave_one_out) >= {"cross", "self_a", "class_b", "invariance_pooled_a"}
    )
    np.testing.assert_allclose(again.leave_one_out["cross"], result.leave_one_out["cross"])
    old = {k: v for k, v in to_json_dict(result).items() if k not in ("leave_one_out", "invariance_pooled_a")}
    opened = from_json_dict(old)
    assert opened.leave_one_out == {} and opened.invariance_pooled_a is None and opened.floor_untrained is None
    assert PairEstimates(opened).invariance == "invariance"  # finding 6 falls back to the flattened read-out
