"""Two fingerprints -> one result: the cross-model HSIC terms, the permutation null and the finished CKA."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.cka import center_gram, centred_rows, cka, hsic_scale, linear_gram
from core.comparison import PairTerms, finalize, merge_pair_terms, pair_terms, permuted_hsic, preview_terms
from core.errors import OptionsError
from core.fingerprint import fingerprint, view_generator
from core.names import BY_DEPTH, BY_NAME
from core.options import AnalysisOptions
from core.result import from_json_dict, to_json_dict
from tests.core.tiny import features, tiny_network, tiny_subset

CPU = torch.device("cpu")
CKA_ONLY = AnalysisOptions(batch_size=8, permutations=3, probes=False, invariance=False)


@pytest.fixture(scope="module")
def pair():
    subset = tiny_subset(24)
    a, b = tiny_network(0, "a"), tiny_network(1, "b")
    return a, b, subset, fingerprint(a, subset, CKA_ONLY, CPU), fingerprint(b, subset, CKA_ONLY, CPU)


def test_each_batch_cross_term_is_the_unbiased_hsic_of_the_two_layers(pair):
    """cross[k][i, j] = sum(U_a_i * U_b_j) / (b (b - 3)), with U the U-centred linear Gram of batch k's features."""
    a, b, subset, fa, fb = pair
    terms = pair_terms(fa, fb, CPU)
    batch = subset.images[8:16]  # batch 1
    grams_a = [center_gram(linear_gram(f)) for f in features(a, batch)]
    grams_b = [center_gram(linear_gram(f)) for f in features(b, batch)]
    expected = torch.tensor([[float((ga * gb).sum()) for gb in grams_b] for ga in grams_a]) * hsic_scale(8, True)
    assert terms.batch_ids == (0, 1, 2)
    assert terms.cross[1].shape == (4, 4) and terms.cross[1].dtype == torch.float64
    torch.testing.assert_close(terms.cross[1], expected.double(), rtol=1e-4, atol=1e-8)


def test_one_batch_gives_the_direct_debiased_cka_of_the_same_features(pair):
    """With a single minibatch, minibatch CKA is plain debiased CKA (core.cka.cka) of each pair of layers."""
    a, b, _, _, _ = pair
    subset = tiny_subset(12, seed=5)
    options = replace(CKA_ONLY, batch_size=12)
    fa, fb = fingerprint(a, subset, options, CPU), fingerprint(b, subset, options, CPU)
    result = finalize(fa, fb, pair_terms(fa, fb, CPU), subset.spec, with_readouts=False)
    feats_a, feats_b = features(a, subset.images), features(b, subset.images)
    expected = np.array([[cka(x, y) for y in feats_b] for x in feats_a])
    np.testing.assert_allclose(result.cross, expected, atol=2e-5)


def test_permuted_hsic_is_the_hsic_of_the_second_layer_with_its_examples_shuffled():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 6, generator=g), torch.randn(10, 3, 2, generator=g)
    perm = torch.randperm(10, generator=g)
    rows_x, rows_y = centred_rows([x]).float(), centred_rows([y]).float()
    shuffled = centred_rows([y[perm]]).float()  # centring the shuffled features = shuffling the centred Gram
    got = permuted_hsic(rows_x, rows_y, perm)
    assert got.dtype == torch.float64 and got.shape == (1,)
    assert float(got[0]) == pytest.approx(float((rows_x.double() * shuffled.double()).sum()), rel=1e-5, abs=1e-8)
    identity = permuted_hsic(rows_x, rows_y, torch.arange(10))
    assert float(identity[0]) == pytest.approx(float((rows_x.double() * rows_y.double()).sum()), rel=1e-6)


def test_the_null_has_one_row_per_permutation_and_one_column_per_matched_layer(pair):
    _, _, _, fa, fb = pair
    terms = pair_terms(fa, fb, CPU)
    assert terms.null.shape == (CKA_ONLY.permutations, 4)
    again = pair_terms(fa, fb, CPU)  # permutations are seeded per (seed, batch): the same null every time
    torch.testing.assert_close(again.null, terms.null, rtol=0, atol=0)


def test_each_batchs_null_shuffles_b_by_the_permutations_of_its_own_seed_and_batch(pair):
    """Null sample p of batch k: HSIC of A's layer with B's layer on the examples shuffled by the p-th permutation
    drawn from view_generator(seed, k), whichever process holds the batch."""
    a, b, subset, _, _ = pair
    shard_a, shard_b = (fingerprint(net, subset, CKA_ONLY, CPU, shard=(1, 3)) for net in (a, b))
    null = pair_terms(shard_a, shard_b, CPU).null  # batch 1 alone
    g = view_generator(CKA_ONLY.seed, 1)
    batch = subset.images[8:16]
    for p in range(CKA_ONLY.permutations):
        perm = torch.randperm(8, generator=g)
        for j, (x, y) in enumerate(zip(features(a, batch), features(b, batch), strict=True)):
            ga, gb = center_gram(linear_gram(x)), center_gram(linear_gram(y[perm]))
            assert float(null[p, j]) == pytest.approx(float((ga * gb).sum()) * hsic_scale(8, True), rel=1e-4, abs=1e-9)


def test_fingerprints_of_different_options_are_refused(pair):
    a, _, subset, fa, _ = pair
    other = fingerprint(a, subset, replace(CKA_ONLY, seed=1), CPU)
    with pytest.raises(OptionsError, match="different subsets or options"):
        pair_terms(fa, other, CPU)


def test_merged_shards_put_batches_in_order_and_sum_the_null():
    def shard(ids: tuple[int, ...], fill: float, seconds: float) -> PairTerms:
        cross = tuple(torch.full((2, 2), float(k), dtype=torch.float64) for k in ids)
        return PairTerms(ids, cross, torch.full((3, 2), fill, dtype=torch.float64), seconds)

    merged = merge_pair_terms([shard((1, 3), 1.0, 2.0), shard((0, 2, 4), 10.0, 5.0)])
    assert merged.batch_ids == (0, 1, 2, 3, 4)
    assert [float(c[0, 0]) for c in merged.cross] == [0.0, 1.0, 2.0, 3.0, 4.0]
    torch.testing.assert_close(merged.null, torch.full((3, 2), 11.0, dtype=torch.float64))
    assert merged.seconds == 5.0  # shards run side by side: the slowest one's time


def test_preview_terms_match_the_full_terms_and_reuse_kept_products(pair):
    _, _, _, fa, fb = pair
    kept: dict[int, torch.Tensor] = {}
    preview = preview_terms(fa.first(2), fb.first(2), kept, CPU)
    full = pair_terms(fa, fb, CPU)
    assert preview.batch_ids == (0, 1) and set(kept) == {0, 1}
    for got, expected in zip(preview.cross, full.cross[:2], strict=True):
        torch.testing.assert_close(got, expected)
    assert preview.null.shape == (0, 4)
    kept[0] = torch.zeros(4, 4, dtype=torch.float64)  # a product kept from before is used as it is
    assert float(preview_terms(fa, fb, kept, CPU).cross[0].abs().sum()) == 0.0


def test_finalize_without_permutations_has_no_null_and_names_the_matched_layers(pair):
    subset = pair[2]
    options = replace(CKA_ONLY, permutations=0)
    a, b = tiny_network(0, "a"), tiny_network(1, "b")
    fa, fb = fingerprint(a, subset, options, CPU), fingerprint(b, subset, options, CPU)
    result = finalize(fa, fb, pair_terms(fa, fb, CPU), subset.spec, with_readouts=False)
    assert result.matched == ("conv", "down", "flat", "logits")
    assert np.isnan(result.null_mean).all() and np.isnan(result.null_p95).all()
    assert result.used_images == 24
    np.testing.assert_allclose(result.matched_cka, np.diag(result.cross))
    np.testing.assert_allclose(np.diag(result.self_a), 1.0, atol=1e-9)
    assert np.isnan(result.probe_a).all()  # a preview has no read-outs


def test_a_dead_layer_is_undefined_with_its_reason():
    subset = tiny_subset(24)
    fa = fingerprint(tiny_network(0, "a", dead=True), subset, CKA_ONLY, CPU)
    fb = fingerprint(tiny_network(1, "b"), subset, CKA_ONLY, CPU)
    result = finalize(fa, fb, pair_terms(fa, fb, CPU), subset.spec, with_readouts=False)
    assert "constant features" in result.undefined_a[1]
    assert np.isnan(result.cross[1]).all() and np.isfinite(result.cross[0]).all()
    assert result.undefined_b == (None, None, None, None)


def test_architectures_sharing_no_block_name_are_paired_by_relative_depth_and_the_result_says_so(pair):
    """A 'transformer' (its layers named as blocks with attention branches) against a 'ResNet': the matched CKA is
    the cross-model CKA of each A layer with its partner in B, the result names both and how they were paired, and
    it reads back from its JSON form."""
    a, b, subset = pair[0], pair[1], pair[2]
    options = replace(CKA_ONLY, permutations=2)
    vit_like = replace(a, layers=(("blocks.0 attention branch", "1"), ("blocks.0 output", "3"), ("pooled", "5")))
    resnet_like = replace(b, layers=(("layer1.0 residual", "1"), ("layer1.0 output", "3"), ("layer2.0 output", "5")))
    fa, fb = fingerprint(vit_like, subset, options, CPU), fingerprint(resnet_like, subset, options, CPU)
    result = finalize(fa, fb, pair_terms(fa, fb, CPU), subset.spec, with_readouts=False)
    assert result.matching == BY_DEPTH
    assert result.matched == ("blocks.0 attention branch", "blocks.0 output")
    assert result.matched_b == ("layer1.0 residual", "layer2.0 output")  # the deepest output with the deepest
    np.testing.assert_allclose(result.matched_cka, [result.cross[0, 0], result.cross[1, 2]])
    assert result.partner("blocks.0 output") == "layer2.0 output" and result.null_mean.shape == (2,)
    back = from_json_dict(json.loads(json.dumps(to_json_dict(result))))
    assert (back.matching, back.matched_b) == (BY_DEPTH, result.matched_b)
    same_names = finalize(pair[3], pair[4], pair_terms(pair[3], pair[4], CPU), subset.spec, with_readouts=False)
    assert (same_names.matching, same_names.matched_b) == (BY_NAME, ())
