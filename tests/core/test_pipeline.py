"""The analysis pipeline end to end: real properties of its results, sharding, serialisation."""

from __future__ import annotations

import gc
import json
import pickle
import weakref
from dataclasses import replace

import numpy as np
import pytest
import torch

from core import settings
from core.cka import MinibatchCKA, centred_rows, cka_from_hsic
from core.comparison import finalize, merge_pair_terms, pair_terms
from core.data import SubsetSpec, load_subset, normalize
from core.distributed import Cluster
from core.features import FeatureExtractor
from core.fingerprint import fingerprint, fingerprint_steps, merge_fingerprints, view_generator
from core.options import AnalysisOptions
from core.pipeline import FingerprintShelf, compare, compare_many, compare_pairs, compare_with_ceilings
from core.progress import Course, Plan
from core.result import to_csv, to_json_dict
from core.spill import part_bytes
from core.store import Store, fingerprint_key
from models import load_model

CPU = torch.device("cpu")
FAST = AnalysisOptions(batch_size=20, permutations=5)  # 6 minibatches of the 120-image subset: an interval
CKA_ONLY = AnalysisOptions(batch_size=20, permutations=5, probes=False, invariance=False)


@pytest.fixture(scope="module")
def subset():
    return load_subset(SubsetSpec(per_class=12, seed=3))


@pytest.fixture(scope="module")
def models(tiny_specs):
    return {k: load_model(v) for k, v in tiny_specs.items()}


@pytest.fixture(scope="module")
def ab_run(models, subset):
    """A against B with every read-out, computed once for the module; with the progress it reported."""
    stages = []
    result = compare(models["a"], models["b"], subset, FAST, CPU, lambda s, d, t: stages.append((s, d, t)))
    return result, stages


def test_model_against_itself_is_one_on_the_matched_layers(models, subset):
    result = compare(models["a"], models["a"], subset, CKA_ONLY, CPU)
    np.testing.assert_allclose(result.matched_cka, 1.0, atol=1e-9)
    np.testing.assert_allclose(result.cross, result.self_a, atol=1e-9)
    np.testing.assert_allclose(result.self_a, result.self_a.T, atol=1e-12)


def test_cross_matches_minibatch_cka_on_the_same_features(models, subset, ab_run):
    """The pipeline's cross matrix is exactly MinibatchCKA over the same batches of features."""
    result = ab_run[0]
    ref = MinibatchCKA(len(result.layers_a), len(result.layers_b))
    fa = FeatureExtractor(models["a"].module, models["a"].layers, CPU)
    fb = FeatureExtractor(models["b"].module, models["b"].layers, CPU)
    for start in range(0, len(subset.labels), FAST.batch_size):
        x = subset.images[start : start + FAST.batch_size]
        ref.update(
            fa(normalize(x, models["a"].info.mean, models["a"].info.std)),
            fb(normalize(x, models["b"].info.mean, models["b"].info.std)),
        )
    np.testing.assert_allclose(result.cross, ref.compute().numpy(), atol=1e-6)
    self_a, self_b = ref.compute_self()
    np.testing.assert_allclose(result.self_b, self_b.numpy(), atol=1e-6)


def test_a_fingerprint_read_layer_by_layer_holds_the_grams_of_the_whole_batch_of_features(models, subset):
    """Each layer is read as the network makes it (FeatureExtractor.stream); its stored rows are, to the bit, those
    of the whole list of a batch's features."""
    model = models["a"]
    fp = fingerprint(model, subset, CKA_ONLY, CPU)
    extractor = FeatureExtractor(model.module, model.layers, CPU)
    for k, rows in enumerate(fp.rows):
        x = subset.images[k * CKA_ONLY.batch_size : (k + 1) * CKA_ONLY.batch_size]
        expected = centred_rows(extractor(normalize(x, model.info.mean, model.info.std))).float()
        assert torch.equal(rows, expected), k


def test_swapping_models_transposes_the_cross_matrix(models, subset, ab_run):
    ba = compare(models["b"], models["a"], subset, CKA_ONLY, CPU)
    np.testing.assert_allclose(ab_run[0].cross, ba.cross.T, atol=1e-9)
    np.testing.assert_allclose(ab_run[0].class_a, ba.class_b, atol=1e-12)


def test_permutation_null_sits_near_zero_and_below_the_real_values(models, subset):
    result = compare(models["a"], models["a2"], subset, CKA_ONLY, CPU)
    assert np.all(np.abs(result.null_mean) < 0.1)
    assert np.all(result.matched_cka[:3] > result.null_p95[:3])
    assert np.all(result.interval_low <= result.matched_cka + 1e-9)
    assert np.all(result.matched_cka <= result.interval_high + 1e-9)


def test_no_interval_is_given_with_fewer_than_five_minibatches(models, subset):
    few = compare(
        models["a"], models["a2"], subset, AnalysisOptions(batch_size=40, probes=False, invariance=False), CPU
    )
    assert np.isfinite(few.matched_cka).all()
    assert np.isnan(few.interval_low).all() and np.isnan(few.interval_high).all()
    assert "fewer than 5 minibatches" in few.interval_method


def test_sharded_fingerprints_merge_to_the_single_process_result(models, subset, ab_run):
    single = ab_run[0]
    shards_a = [fingerprint(models["a"], subset, FAST, CPU, shard=(r, 3)) for r in range(3)]
    shards_b = [fingerprint(models["b"], subset, FAST, CPU, shard=(r, 3)) for r in range(3)]
    terms = merge_pair_terms([pair_terms(a, b, CPU) for a, b in zip(shards_a, shards_b, strict=True)])
    merged = finalize(merge_fingerprints(shards_a), merge_fingerprints(shards_b), terms, subset.spec)
    for name in ("cross", "self_a", "class_a", "invariance_b", "probe_a", "null_mean", "interval_low"):
        np.testing.assert_allclose(getattr(merged, name), getattr(single, name), atol=1e-9, err_msg=name)


def test_different_subset_changes_the_numbers(models, subset):
    other = load_subset(SubsetSpec(per_class=12, seed=4))
    r1 = compare(models["a"], models["b"], subset, CKA_ONLY, CPU)
    r2 = compare(models["a"], models["b"], other, CKA_ONLY, CPU)
    assert np.abs(r1.cross - r2.cross).max() > 1e-3


def test_readouts_have_one_value_per_layer_in_range(ab_run):
    result = ab_run[0]
    assert result.class_a.shape == (len(result.layers_a),)
    assert np.all(np.abs(result.class_a) <= 1 + 1e-9)
    assert result.invariance_a.shape == (len(result.layers_a),)
    assert np.all((result.probe_a >= 0) & (result.probe_a <= 1))


def test_progress_names_every_stage(ab_run):
    stages = ab_run[1]
    names = {s for s, _, _ in stages}
    assert any("forward" in s for s in names) and any("probes" in s for s in names)
    assert any("permutation" in s for s in names)
    assert all(0 < d <= t for _, d, t in stages)


def test_json_and_csv_hold_every_matrix(models, ab_run):
    result = ab_run[0]
    data = json.loads(json.dumps(to_json_dict(result)))
    assert np.allclose(np.array(data["cross"], dtype=float), result.cross)
    assert data["subset"]["per_class"] == 12 and data["options"]["kernel"] == "linear"
    assert data["model_a"]["sha256"] == models["a"].info.sha256
    csv = to_csv(result).splitlines()
    la, lb = len(result.layers_a), len(result.layers_b)
    assert sum(line.startswith("cross,") for line in csv) == la * lb


def test_dead_layer_is_reported_undefined_with_its_reason(models, subset):
    """Zero a block's last BatchNorm: its residual branch is constant, so its CKA is 0/0."""
    dead = load_model(models["b"].info.source)
    with torch.no_grad():
        bn = dead.module.layer2[0].bn2
        bn.weight.zero_()
        bn.bias.zero_()
    result = compare(models["a"], dead, subset, CKA_ONLY, CPU)
    k = result.layers_b.index("layer2.0 residual")
    assert "constant" in result.undefined_b[k]
    assert np.all(np.isnan(result.cross[:, k]))
    assert to_json_dict(result)["cross"][0][k] is None
    assert all(reason is None for reason in result.undefined_a)


def _arrays(result) -> dict[str, np.ndarray]:
    return {k: v for k, v in vars(result).items() if isinstance(v, np.ndarray)}


def test_previews_refine_batch_by_batch_and_the_final_result_is_the_one_computed_in_one_go(models, subset):
    cluster = Cluster.single(CPU)
    seen: list[tuple] = []
    with_previews = compare_many(
        models["a"],
        [models["b"]],
        subset,
        FAST,
        cluster,
        preview=lambda r, done, total: seen.append((r, done, total)),
    )[0]
    in_one_go = compare_many(models["a"], [models["b"]], subset, FAST, cluster)[0]
    for name, value in _arrays(in_one_go).items():
        np.testing.assert_array_equal(getattr(with_previews, name), value, err_msg=name)  # to the last bit
    assert [done for _, done, _ in seen] == [1, 2, 3, 4, 5, 6] and {total for *_, total in seen} == {6}
    for preview, done, _ in seen:
        assert preview.used_images == 20 * done
        assert np.isnan(preview.probe_a).all() and np.isnan(preview.null_p95).all()  # they follow at the end
        assert np.isnan(preview.interval_low).all() == (done < 5)  # no interval on fewer than 5 minibatches
    # the preview of every batch is the final CKA (the read-outs are what follows)
    np.testing.assert_allclose(seen[-1][0].cross, in_one_go.cross, rtol=0, atol=1e-12)
    first_error = np.abs(seen[0][0].matched_cka - in_one_go.matched_cka).max()
    assert 0 < first_error < 0.3  # an estimate from 20 images: near, not equal


def test_the_first_preview_waits_for_no_augmented_views(models, subset, monkeypatch):
    import core.fingerprint

    views, at_preview = [], []
    real = core.fingerprint.simclr_views
    monkeypatch.setattr(core.fingerprint, "simclr_views", lambda *a: views.append(1) or real(*a))
    result = compare_many(
        models["a"], [models["b"]], subset, FAST, Cluster.single(CPU), preview=lambda *_: at_preview.append(len(views))
    )[0]
    assert at_preview[0] == 0  # both networks' first batch, no view yet
    assert at_preview[1:] == [4, 6, 8, 10, 12]  # then every batch with its views, each preview once
    assert result.seconds["forward"] > 0 and np.isfinite(result.invariance_a).all()


def test_a_cached_reference_previews_with_each_batch_of_the_other(models, subset):
    whole_a = fingerprint(models["a"], subset, FAST, CPU)
    seen: list[int] = []
    result = compare_many(
        models["a"],
        [models["b"], models["a"]],
        subset,
        FAST,
        Cluster.single(CPU),
        fingerprints=lambda net: [whole_a] if net is models["a"] else fingerprint_steps(net, subset, FAST, CPU),
        preview=lambda r, done, total: seen.append(done),
    )
    # B a batch at a time against the cached A; then A (cached) against itself: one preview of every batch
    assert len(result) == 2 and seen == [1, 2, 3, 4, 5, 6, 6]
    np.testing.assert_allclose(np.diag(result[1].cross), 1.0, atol=1e-9)


def test_pairs_that_share_networks_run_each_network_once(models, subset, monkeypatch):
    import core.pipeline

    runs = []
    real = core.pipeline.fingerprint_steps
    monkeypatch.setattr(
        core.pipeline, "fingerprint_steps", lambda net, *a, **k: runs.append(net.identity.source) or real(net, *a, **k)
    )
    a, a2, b = models["a"], models["a2"], models["b"]
    results = core.pipeline.compare_pairs([(a, b), (a, a2), (b, a2)], subset, CKA_ONLY, Cluster.single(CPU))
    assert sorted(runs) == sorted(m.identity.source for m in (a, a2, b))  # three networks, three passes
    for (first, second), result in zip([(a, b), (a, a2), (b, a2)], results, strict=True):
        alone = compare(first, second, subset, CKA_ONLY, CPU)
        assert result.model_a == first.identity and result.model_b == second.identity
        np.testing.assert_allclose(result.cross, alone.cross, atol=1e-12)


def test_without_previews_no_earlier_fingerprint_step_is_kept(models, subset, monkeypatch):
    """A fingerprint comes a minibatch at a time: keeping every step would grow with the square of the batches."""
    import core.pipeline

    real = core.pipeline.fingerprint_steps
    made, counts = [], []

    def watched(*args, **kwargs):
        for step in real(*args, **kwargs):
            gc.collect()
            counts.append(sum(ref() is not None for ref in made))  # besides the step just made
            made.append(weakref.ref(step))
            yield step

    monkeypatch.setattr(core.pipeline, "fingerprint_steps", watched)
    compare(models["a"], models["b"], subset, CKA_ONLY, CPU)
    assert counts == [0] + [1] * 5 + [1] + [2] * 5  # A's 6 steps, then B's beside A's whole fingerprint


@pytest.mark.parametrize("in_memory_batches", [0, 1])
def test_spilled_fingerprints_give_the_same_results_to_the_bit(models, subset, ab_run, monkeypatch, in_memory_batches):
    """With the spill bound at 0 (every batch on disk) or at 1.5 batches (the first in memory, the rest on disk):
    the same result, previews and torchrun-style merged shards as in memory, to the last bit."""
    whole = fingerprint(models["a"], subset, FAST, CPU)
    batch_bytes = part_bytes(whole.rows.parts[0]) + sum(part_bytes(layer.parts[0]) for layer in whole.pooled)
    spill_mb = str(1.5 * batch_bytes * in_memory_batches / 1e6)
    monkeypatch.setenv(settings.SPILL_MB, spill_mb)
    fa = fingerprint(models["a"], subset, FAST, CPU)
    assert fa.rows.spilled == len(fa.rows) - in_memory_batches and len(fa.rows) == 6
    assert all(layer.spilled == fa.rows.spilled for layer in fa.pooled)
    seen: list = []
    spilled = compare_many(
        models["a"], [models["b"]], subset, FAST, Cluster.single(CPU), preview=lambda r, *_: seen.append(r)
    )[0]
    for name, value in _arrays(ab_run[0]).items():
        np.testing.assert_array_equal(getattr(spilled, name), value, err_msg=name)
    monkeypatch.setenv(settings.SPILL_MB, "1000")
    in_memory: list = []
    compare_many(
        models["a"], [models["b"]], subset, FAST, Cluster.single(CPU), preview=lambda r, *_: in_memory.append(r)
    )
    assert len(seen) == len(in_memory) == 6
    for mine, theirs in zip(seen, in_memory, strict=True):
        for name, value in _arrays(theirs).items():
            np.testing.assert_array_equal(getattr(mine, name), value, err_msg=name)
    monkeypatch.setenv(settings.SPILL_MB, spill_mb)
    merged = _merged_shards(models, subset)
    monkeypatch.setenv(settings.SPILL_MB, "1000")
    for name, value in _arrays(_merged_shards(models, subset)).items():
        np.testing.assert_array_equal(getattr(merged, name), value, err_msg=name)


def _merged_shards(models, subset):
    """A against B as two torchrun processes would compute it: two shards of each fingerprint, merged."""
    shards_a = [fingerprint(models["a"], subset, FAST, CPU, shard=(r, 2)) for r in range(2)]
    shards_b = [fingerprint(models["b"], subset, FAST, CPU, shard=(r, 2)) for r in range(2)]
    terms = merge_pair_terms([pair_terms(a, b, CPU) for a, b in zip(shards_a, shards_b, strict=True)])
    return finalize(merge_fingerprints(shards_a), merge_fingerprints(shards_b), terms, subset.spec)


def test_a_pickled_fingerprint_holds_its_spilled_batches_in_memory(models, subset, monkeypatch):
    """torchrun's gather and the app's cache pickle fingerprints: the spill files belong to this process, so the
    pickle carries the tensors themselves."""
    monkeypatch.setenv(settings.SPILL_MB, "0")
    fa = fingerprint(models["a"], subset, FAST, CPU)
    copy = pickle.loads(pickle.dumps(fa))  # noqa: S301 - our own object, round-tripped
    assert copy.rows.spilled == 0 and fa.rows.spilled == 6
    assert all(torch.equal(x, y) for x, y in zip(copy.pooled[3], fa.pooled[3], strict=True))
    folder = fa.rows.parts[0].folder.path
    del fa
    gc.collect()
    assert not folder.exists()  # nothing refers to the spill folder any more: removed


def test_the_float32_permutation_null_is_within_1e_6_of_float64(models, subset):
    """The null's products summed in float32 (core.comparison.permuted_hsic) against the same permutations
    applied in float64 with two gathers, in CKA."""
    fa, fb = (fingerprint(models[k], subset, CKA_ONLY, CPU) for k in ("a", "a2"))  # every layer matched
    terms = pair_terms(fa, fb, CPU)
    exact = torch.zeros_like(terms.null)
    for k, ra, rb in zip(fa.batch_ids, fa.rows, fb.rows, strict=True):
        b, g = int(round(ra.shape[1] ** 0.5)), view_generator(CKA_ONLY.seed, k)
        for p in range(CKA_ONLY.permutations):
            perm = torch.randperm(b, generator=g)
            shuffled = rb.double().view(-1, b, b)[:, perm][:, :, perm].reshape(rb.shape[0], -1)
            exact[p] += (ra.double() * shuffled).sum(1)
    self_a, self_b = (sum(f.self_hsic).diagonal().expand_as(exact) for f in (fa, fb))
    fast, slow = cka_from_hsic(terms.null, self_a, self_b), cka_from_hsic(exact, self_a, self_b)
    assert np.abs(slow).max() > 1e-3  # a real null, not zeros
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-6)


def test_a_mapped_subset_gives_the_same_fingerprint_and_each_minibatch_is_released_after_it(
    models, subset, monkeypatch
):
    """A subset in a mapped file (core.data.Subset.mapping) is read exactly as one in memory, and the pass drops
    each minibatch's pages once it is done with them, so that the subset is never resident whole."""
    import core.data as data

    monkeypatch.setattr(data, "MAP_SUBSET_BYTES", 1000)
    mapped = load_subset(subset.spec)
    assert mapped.mapping is not None
    released = []
    release = data.Subset.release
    monkeypatch.setattr(data.Subset, "release", lambda self, rows: (released.append(rows), release(self, rows)))
    from_file = fingerprint(models["a"], mapped, FAST, CPU)
    assert released == [slice(k * 20, (k + 1) * 20) for k in range(6)]
    in_memory = fingerprint(models["a"], subset, FAST, CPU)
    assert torch.equal(torch.stack(list(from_file.rows)), torch.stack(list(in_memory.rows)))
    assert torch.equal(from_file.inv_cross, in_memory.inv_cross) and torch.equal(
        from_file.label_hsic, in_memory.label_hsic
    )


@pytest.fixture(scope="module")
def with_ceilings(models, subset):
    """A vs B with A's ceiling (A2), B's ceiling (A2 standing in for B's other seed) and one further reference pair,
    through the one assembly, with a step after them; with the networks whose passes ran, in order with each step
    begun (the plan, the step's number)."""
    import core.pipeline

    runs, real = [], core.pipeline.fingerprint_steps
    core.pipeline.fingerprint_steps = lambda net, *a, **k: runs.append(net.identity.source) or real(net, *a, **k)
    course = Course(lambda plan, k: runs.append((plan, k)))

    def compute(pairs, starting):
        return compare_pairs(pairs, subset, FAST, Cluster.single(CPU), starting=starting)

    try:
        a, a2, b = models["a"], models["a2"], models["b"]
        found = compare_with_ceilings(
            a, b, a2, a2, compute, references=[(a2, b)], course=course, then=lambda pair: ["floors"] * (pair is None)
        )
    finally:
        core.pipeline.fingerprint_steps = real
    return found, [run for run in runs if isinstance(run, str)], runs


def test_a_pair_with_its_ceilings_is_each_comparison_alone_to_the_bit_each_network_run_once(
    models, subset, with_ceilings
):
    found, runs, _ = with_ceilings
    a, a2, b = models["a"], models["a2"], models["b"]
    assert sorted(runs) == sorted(m.identity.source for m in (a, a2, b))  # three networks, three passes
    expected = [(found.pair, (a, b)), (found.ceiling_a, (a, a2)), (found.ceiling_b, (b, a2))]
    expected += [(found.references[0], (a2, b))]
    assert [id(r) for r in found.results] == [id(result) for result, _ in expected]
    for result, (first, second) in expected:
        alone = compare(first, second, subset, FAST, CPU)
        assert result.model_a == first.identity and result.model_b == second.identity
        for name, value in _arrays(alone).items():
            np.testing.assert_array_equal(getattr(result, name), value, err_msg=name)  # to the last bit
    ceilings = found.ceilings(note_b="B's is a stand-in")
    assert ceilings.a is found.ceiling_a and ceilings.b is found.ceiling_b and ceilings.note_b == "B's is a stand-in"


def test_the_plan_names_each_comparison_once_in_order_and_each_begins_before_its_passes(models, with_ceilings):
    _, _, told = with_ceilings
    a, a2, b = (models[name].identity.source for name in ("a", "a2", "b"))
    plan = Plan(("A vs B", "A vs its other seed", "B vs its other seed", f"{a2} vs {b}", "floors"))  # then the caller's
    assert told == [(plan, 1), a, b, (plan, 2), a2, (plan, 3), (plan, 4)]  # the caller begins its own step
    assert plan.line(2) == "step 2 of 5: A vs its other seed"


def test_known_results_are_taken_and_only_the_others_computed(models, with_ceilings):
    found, _, _ = with_ceilings
    a, a2, b = models["a"], models["a2"], models["b"]
    elsewhere = replace(found.pair, model_a=a2.identity)  # a cache keyed by content: the same weights by another name
    asked: list[list] = []

    def compute(pairs, starting):
        asked.append([(first.identity.source, second.identity.source) for first, second in pairs])
        starting(0)
        return [found.ceiling_a]

    def known(first, second):
        return elsewhere if (first, second) == (a, b) else None

    told: list[tuple[Plan, int]] = []
    then: list = []
    course = Course(lambda plan, k: told.append((plan, k)))
    taken = compare_with_ceilings(
        a, b, a2, None, compute, known, course=course, then=lambda pair: then.append(pair) or []
    )
    assert asked == [[(a.identity.source, a2.identity.source)]]  # the pair was known; its ceiling was computed
    assert told == [(Plan(("A vs its other seed",)), 1)] and then == [elsewhere]  # a known pair is no step
    assert taken.pair.model_a == a.identity and taken.pair.cross is found.pair.cross  # renamed, not recomputed
    assert taken.ceiling_a is found.ceiling_a and taken.ceiling_b is None

    def nothing(pairs, starting):
        raise AssertionError("computed although every result was known")

    both = {(a, b): found.pair, (a, a2): found.ceiling_a}
    again = compare_with_ceilings(a, b, a2, None, nothing, lambda x, y: both.get((x, y)), course=course)
    assert len(told) == 1 and course.plan == Plan()  # nothing to compute: an empty plan, no step begun
    assert len(again.results) == 2  # the same arrays, not copies
    assert all(mine.cross is theirs.cross for mine, theirs in zip(again.results, found.results, strict=False))


def test_a_shelf_keeps_a_finished_fingerprint_in_memory_and_in_the_store(models, subset, tmp_path):
    a = models["a"]
    computed: list[str] = []

    def compute(network):
        computed.append(network.identity.source)
        return fingerprint_steps(network, subset, CKA_ONLY, CPU)

    store = Store(tmp_path / "store", 10**9)
    key = lambda network: fingerprint_key(network.identity.key, subset.spec, CKA_ONLY)  # noqa: E731
    steps = list(FingerprintShelf({}).source(compute, key, store)(a))
    assert computed == [a.identity.source] and len(steps) == 6  # a minibatch at a time, for previews
    shelf = FingerprintShelf({})
    (from_store,) = shelf.source(compute, key, store)(a)  # a fresh memory: read whole from the store
    (from_memory,) = shelf.source(compute, key)(a)
    assert computed == [a.identity.source] and from_memory.batch_ids == steps[-1].batch_ids
    for kept in (from_store, from_memory):
        assert all(torch.equal(x, y) for x, y in zip(kept.self_hsic, steps[-1].self_hsic, strict=True))
    shelf.drop(key(a))
    list(shelf.source(compute, key)(a))
    assert computed == [a.identity.source] * 2  # dropped, and no store behind it: computed again
