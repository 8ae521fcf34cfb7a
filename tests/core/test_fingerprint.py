"""One network's pass over a subset: what a fingerprint holds, its shapes, and that it is reproducible."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch
import torch.nn.functional as F

from core.augment import simclr_views
from core.cka import center_gram, hsic_scale, linear_gram
from core.features import FeatureExtractor
from core.fingerprint import fingerprint, fingerprint_steps, merge_fingerprints, view_generator
from core.network import InputConfig, preprocess
from core.options import AnalysisOptions
from tests.core.tiny import LAYERS, MEAN, STD, TinyNetwork, features, tiny_network, tiny_subset

CPU = torch.device("cpu")
CKA_ONLY = AnalysisOptions(batch_size=8, permutations=0, probes=False, invariance=False)


@pytest.fixture(scope="module")
def net():
    return tiny_network(0)


def test_shapes_per_batch_and_per_layer(net):
    fp = fingerprint(net, tiny_subset(24), CKA_ONLY, CPU)
    assert fp.layers == ("conv", "down", "flat", "logits")
    assert fp.batch_ids == (0, 1, 2) and len(fp.rows) == len(fp.self_hsic) == len(fp.labels) == 3
    assert all(r.shape == (4, 64) and r.dtype == torch.float32 for r in fp.rows)  # [L, b*b]
    assert all(s.shape == (4, 4) and s.dtype == torch.float64 for s in fp.self_hsic)
    assert fp.label_hsic.shape == (5,) and fp.constant.shape == (4,) and not fp.constant.any()
    assert fp.pooled == () and fp.model == net.identity


def test_the_same_pass_twice_gives_the_same_fingerprint_to_the_bit(net):
    subset = tiny_subset(24)
    one, two = fingerprint(net, subset, CKA_ONLY, CPU), fingerprint(net, subset, CKA_ONLY, CPU)
    for r1, r2 in zip(one.rows, two.rows, strict=True):
        assert torch.equal(r1, r2)
    assert torch.equal(one.label_hsic, two.label_hsic)
    assert one.subset_key == two.subset_key == subset.spec.key()


def test_rows_are_the_scaled_u_centred_grams_of_the_layers(net):
    subset = tiny_subset(24)
    fp = fingerprint(net, subset, CKA_ONLY, CPU)
    scale = hsic_scale(8, True) ** 0.5
    for j, f in enumerate(features(net, subset.images[16:24])):
        expected = (center_gram(linear_gram(f)) * scale).flatten()
        torch.testing.assert_close(fp.rows[2][j].double(), expected, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(fp.self_hsic[2], fp.rows[2].double() @ fp.rows[2].double().T, rtol=1e-4, atol=1e-9)


def test_the_label_term_is_the_hsic_of_the_one_hot_labels_with_themselves(net):
    subset = tiny_subset(24)
    fp = fingerprint(net, subset, CKA_ONLY, CPU)
    expected = 0.0
    for k in range(3):
        onehot = F.one_hot(subset.labels[k * 8 : (k + 1) * 8], 10).double()
        gram = center_gram(linear_gram(onehot))
        expected += float((gram * gram).sum()) * hsic_scale(8, True)
    assert float(fp.label_hsic[-1]) == pytest.approx(expected, rel=1e-9)


def test_a_tail_too_small_for_the_estimator_is_left_out(net):
    fp = fingerprint(net, tiny_subset(19), CKA_ONLY, CPU)  # batches of 8, 8 and 3: the 3 are too few
    assert fp.batch_ids == (0, 1) and sum(len(y) for y in fp.labels) == 16


def test_a_dead_layer_and_everything_after_it_are_flagged_constant():
    fp = fingerprint(tiny_network(0, dead=True), tiny_subset(16), CKA_ONLY, CPU)
    assert fp.constant.tolist() == [False, True, True, True]  # zeros in, the same flattened map and logits out


def test_steps_grow_batch_by_batch_and_end_with_the_whole_fingerprint(net):
    subset = tiny_subset(24)
    steps = list(fingerprint_steps(net, subset, CKA_ONLY, CPU))
    assert [s.batch_ids for s in steps] == [(0,), (0, 1), (0, 1, 2)]
    whole = fingerprint(net, subset, CKA_ONLY, CPU)
    assert torch.equal(steps[-1].label_hsic, whole.label_hsic)


def test_first_cuts_the_batches_and_keeps_the_sums(net):
    fp = fingerprint(net, tiny_subset(24), CKA_ONLY, CPU)
    cut = fp.first(1)
    assert cut.batch_ids == (0,) and len(cut.rows) == len(cut.self_hsic) == len(cut.labels) == 1
    assert torch.equal(cut.rows[0], fp.rows[0]) and torch.equal(cut.label_hsic, fp.label_hsic)


def test_shards_take_every_world_th_batch_and_merge_back_to_the_whole(net):
    subset = tiny_subset(32)
    shards = [fingerprint(net, subset, CKA_ONLY, CPU, shard=(rank, 2)) for rank in range(2)]
    assert shards[0].batch_ids == (0, 2) and shards[1].batch_ids == (1, 3)
    merged, whole = merge_fingerprints(shards), fingerprint(net, subset, CKA_ONLY, CPU)
    assert merged.batch_ids == whole.batch_ids
    for got, expected in zip(merged.rows, whole.rows, strict=True):
        assert torch.equal(got, expected)
    torch.testing.assert_close(merged.label_hsic, whole.label_hsic, rtol=1e-12, atol=0)


def test_invariance_and_probes_add_their_terms():
    net = tiny_network(2)
    options = replace(CKA_ONLY, invariance=True, probes=True)
    fp = fingerprint(net, tiny_subset(16, size=32), options, CPU)
    assert fp.inv_cross.shape == fp.inv_self.shape == (4,) and (fp.inv_self > 0).all()
    assert len(fp.pooled) == 4 and all(len(layer) == 2 for layer in fp.pooled)  # per layer, per batch
    assert fp.pooled[0][0].dtype == torch.bfloat16 and fp.pooled[0][0].shape[0] == 8


def test_view_generator_depends_on_seed_and_batch_only():
    draw = lambda seed, batch: torch.rand(4, generator=view_generator(seed, batch))  # noqa: E731
    assert torch.equal(draw(0, 3), draw(0, 3))
    assert not torch.equal(draw(0, 3), draw(0, 4)) and not torch.equal(draw(0, 3), draw(1, 3))


@dataclass(frozen=True)
class SizedNetwork(TinyNetwork):
    """A tiny network that takes its images at a size of its own."""

    layers: tuple[tuple[str, str], ...] = LAYERS
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    input: InputConfig | None = None


def test_images_and_their_views_reach_the_network_at_its_input_size_views_made_at_the_images_size(monkeypatch):
    """Both networks of a comparison see the same images: each batch and its augmented views (made from the subset's
    own images, at their size) are resized to the network's input size and normalised with its mean and std."""
    net = tiny_network(0)
    sized = SizedNetwork(net.module, net.identity, input=InputConfig((16, 16), "bicubic", net.mean, net.std))
    subset = tiny_subset(24)
    seen: list[torch.Tensor] = []
    stream = FeatureExtractor.stream
    monkeypatch.setattr(FeatureExtractor, "stream", lambda self, x, consume: (seen.append(x), stream(self, x, consume)))
    fingerprint(sized, subset, AnalysisOptions(batch_size=12, permutations=0, probes=False), torch.device("cpu"))
    assert [tuple(x.shape) for x in seen] == [(12, 3, 16, 16)] * 4  # two batches, each with its views
    views = simclr_views(subset.images[:12], view_generator(0, 0))
    assert torch.equal(seen[0], preprocess(subset.images[:12], sized.input))
    assert torch.equal(seen[1], preprocess(views, sized.input))
