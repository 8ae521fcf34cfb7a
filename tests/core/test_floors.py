"""Floors: untrained networks as training starts them, their CKA band, and trained-vs-untrained per layer, checked
against CKA computed independently (plain float64, full batch) on the same images."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torchvision.models.feature_extraction import create_feature_extractor

from core.data import SubsetSpec, load_subset, normalize
from core.distributed import Cluster
from core.errors import OptionsError
from core.fingerprint import fingerprint
from core.floors import (
    CPU_PAIRS,
    compute_floors,
    floor_fields,
    floor_options,
    init_pairs,
    matched_terms,
)
from core.options import AnalysisOptions
from core.pipeline import compare
from models import load_model
from models.resnet import build_resnet
from models.untrained import untrained_key, untrained_model

CPU = torch.device("cpu")
FAST = AnalysisOptions(batch_size=50, permutations=0, probes=False, invariance=False)


def debiased_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Full-batch debiased linear CKA in float64 from the formulas (Song et al.'s unbiased HSIC), independent of
    core.cka: zeroed-diagonal Grams and the three-term estimator."""

    def hsic(k: np.ndarray, g: np.ndarray) -> float:
        n = len(k)
        k, g = k.copy(), g.copy()
        np.fill_diagonal(k, 0)
        np.fill_diagonal(g, 0)
        ones = np.ones(n)
        return (
            np.trace(k @ g)
            + ones @ k @ ones * (ones @ g @ ones) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * ones @ k @ g @ ones
        ) / (n * (n - 3))

    gx, gy = x @ x.T, y @ y.T
    return hsic(gx, gy) / np.sqrt(hsic(gx, gx) * hsic(gy, gy))


def features(module: torch.nn.Module, node: str, images: torch.Tensor, mean, std) -> np.ndarray:
    """One layer's flattened output for `images`, through torchvision's own extractor, in float64."""
    extractor = create_feature_extractor(module.eval(), {node: "out"})
    with torch.no_grad():
        out = extractor(normalize(images, mean, std))["out"]
    return out.reshape(len(images), -1).double().numpy()


def test_matched_terms_give_the_comparison_s_matched_cka(tiny_specs):
    a, b = load_model(tiny_specs["a"]), load_model(tiny_specs["b"])
    subset = load_subset(SubsetSpec(per_class=10))
    options = replace(FAST, batch_size=20)
    fa, fb = (fingerprint(m, subset, options, CPU) for m in (a, b))
    terms = matched_terms(fa, fb)
    result = compare(a, b, subset, options, CPU)
    assert terms.matched == result.matched
    np.testing.assert_allclose(terms.cka(), result.matched_cka, atol=1e-6)
    lean = fingerprint(b, subset, floor_options(replace(options, invariance=True, probes=True)), CPU)
    np.testing.assert_allclose(matched_terms(fa, lean).cka(), result.matched_cka, atol=1e-6)  # views change no Gram
    with pytest.raises(OptionsError):
        matched_terms(fa, fingerprint(b, subset, replace(options, batch_size=25), CPU))


@pytest.mark.slow
def test_the_floor_band_holds_an_independent_mean_over_eight_untrained_pairs(tiny_specs):
    """At the stem and at layer1.1's output: the engine's band over 8 init pairs (minibatch CKA) holds the mean of
    plain full-batch float64 CKA over 8 untrained pairs built here from build_resnet under the same seeds."""
    a, b = (load_model(tiny_specs[side]) for side in "ab")  # CIFAR ResNet-18s as the bundled pair, narrower
    subset = load_subset(SubsetSpec(per_class=20))  # 200 test images
    options = replace(FAST, batch_size=40)
    fa, fb = (fingerprint(m, subset, options, CPU) for m in (a, b))
    floors = compute_floors(
        fa,
        fb,
        lambda seed: untrained_model(a.info, seed),
        lambda seed: untrained_model(b.info, seed),
        subset,
        Cluster.single(CPU),
    )
    assert floors.pairs == 8
    mean, low, high = floors.band()
    nodes = dict(a.layers)
    for layer in ("stem", "layer1.1 output"):
        independent = []
        for k in range(8):
            nets = []
            for info, seed in ((a.info, 2 * k), (b.info, 2 * k + 1)):
                torch.manual_seed(seed)
                nets.append(build_resnet(info.arch))
            x, y = (features(net, nodes[layer], subset.images, a.mean, a.std) for net in nets)
            independent.append(debiased_linear_cka(x, y))
        i = floors.matched.index(layer)
        assert low[i] <= np.mean(independent) <= high[i], (layer, low[i], np.mean(independent), high[i])
        assert abs(mean[i] - np.mean(independent)) < 0.05
    fields = floor_fields(floors, floors.matched, fa.layers, fb.layers)
    assert fields["floor_untrained"].shape == (len(floors.matched),)
    assert np.all(fields["floor_untrained_low"] <= fields["floor_untrained_high"])
    assert fields["untrained_a"].shape == (len(fa.layers),) and fields["floor_pairs"] == 8


def test_large_networks_on_a_cpu_run_fewer_pairs_and_say_so():
    assert init_pairs(700_000, CPU) == (8, "")
    pairs, note = init_pairs(11_000_000, CPU)
    assert pairs == CPU_PAIRS and "11M parameters" in note
    assert init_pairs(11_000_000, torch.device("cuda")) == (8, "")


def test_an_untrained_fingerprint_is_stored_under_its_identity_and_read_back(tiny_specs, tmp_path, monkeypatch):
    import core.floors as floors_module
    from core.store import Store

    info = load_model(tiny_specs["b"]).info
    subset = load_subset(SubsetSpec(per_class=4))
    store, cluster = Store(tmp_path, 10**9), Cluster.single(CPU)
    first = floors_module.untrained_fingerprint(untrained_model(info, 1), subset, FAST, cluster, store)
    assert first.model.source == untrained_key(info, 1) and not first.options.invariance

    def refuse(*args, **kwargs):
        raise AssertionError("a stored untrained fingerprint was computed again")

    monkeypatch.setattr(floors_module, "fingerprint", refuse)
    again = floors_module.untrained_fingerprint(untrained_model(info, 1), subset, FAST, cluster, store)
    assert again.batch_ids == first.batch_ids
    torch.testing.assert_close(torch.stack(list(again.rows)), torch.stack(list(first.rows)))
