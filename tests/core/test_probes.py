"""core.probes: the linear probe learns what is linearly there (and nothing else), kNN matches a brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.probes import knn_accuracy, linear_probe, pool_features


def clusters(rng: np.random.Generator, n_per: int, centres: np.ndarray, spread: float = 1.0):
    k, d = centres.shape
    x = np.concatenate([c + spread * rng.standard_normal((n_per, d)) for c in centres])
    y = np.repeat(np.arange(k), n_per)
    order = rng.permutation(len(y))
    return torch.from_numpy(x[order]).float(), torch.from_numpy(y[order])


def test_linear_probe_separates_linearly_separable_clusters():
    rng = np.random.default_rng(0)
    centres = 4.0 * rng.standard_normal((4, 12))
    train_x, train_y = clusters(rng, 60, centres)
    test_x, test_y = clusters(rng, 60, centres)
    acc = linear_probe(train_x, train_y, test_x, test_y, num_classes=4)
    assert acc > 0.9


def test_linear_probe_needs_linear_structure():
    # classes that differ only by the sign of x0 * x1 (XOR): no linear read-out exists
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((800, 2))).float()
    y = ((x[:, 0] * x[:, 1]) > 0).long()
    acc = linear_probe(x[:400], y[:400], x[400:], y[400:], num_classes=2)
    assert 0.35 < acc < 0.65


def test_linear_probe_on_random_labels_is_at_chance():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((1200, 20))).float()
    y = torch.from_numpy(rng.integers(0, 4, 1200))
    acc = linear_probe(x[:400], y[:400], x[400:], y[400:], num_classes=4)
    assert abs(acc - 0.25) < 0.06  # 800 test points: chance 0.25 with std ~0.015


def test_linear_probe_is_scale_free_and_accepts_float64():
    rng = np.random.default_rng(3)
    centres = 2.0 * rng.standard_normal((3, 6))
    train_x, train_y = clusters(rng, 40, centres, spread=1.5)
    test_x, test_y = clusters(rng, 40, centres, spread=1.5)
    base = linear_probe(train_x, train_y, test_x, test_y, 3)
    assert 0.5 < base < 1.0  # a task that is neither trivial nor hopeless
    scale = torch.tensor([1e3, 1e-3, 1.0, 50.0, 1.0, 0.01])  # standardisation removes per-feature scale
    assert linear_probe(train_x * scale, train_y, test_x * scale, test_y, 3) == pytest.approx(base, abs=0.02)
    assert linear_probe(train_x.double(), train_y, test_x.double(), test_y, 3) == pytest.approx(base, abs=1e-9)


def brute_force_knn(bank, bank_y, query, num_classes, k, temperature):
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    predictions = []
    for q in query:
        sims = bank @ q
        nearest = np.argsort(-sims)[:k]
        votes = np.zeros(num_classes)
        for i in nearest:
            votes[bank_y[i]] += np.exp(sims[i] / temperature)
        predictions.append(int(np.argmax(votes)))
    return np.asarray(predictions)


def test_knn_is_perfect_on_its_own_distinct_clusters():
    rng = np.random.default_rng(4)
    centres = 10.0 * rng.standard_normal((5, 16))
    x, y = clusters(rng, 30, centres)
    for k in (1, 10, 200):
        assert knn_accuracy(x, y, x, y, num_classes=5, k=k) == 1.0


@pytest.mark.parametrize(("k", "temperature", "chunk"), [(1, 0.1, 1000), (20, 0.1, 7), (50, 0.5, 64), (500, 0.07, 33)])
def test_knn_matches_brute_force_weighted_knn(k, temperature, chunk):
    rng = np.random.default_rng(k)
    bank = rng.standard_normal((300, 16))
    bank_y = rng.integers(0, 5, 300)
    query = rng.standard_normal((90, 16)) * rng.uniform(0.1, 10.0, (90, 1))  # norms must not matter
    want = brute_force_knn(bank, bank_y, query, 5, min(k, 300), temperature)
    args = (torch.from_numpy(bank), torch.from_numpy(bank_y), torch.from_numpy(query))
    kwargs = {"num_classes": 5, "k": k, "temperature": temperature, "chunk": chunk}
    # the brute force's own predictions as labels: every query must be right, and all wrong when shifted
    assert knn_accuracy(*args, torch.from_numpy(want), **kwargs) == 1.0
    assert knn_accuracy(*args, torch.from_numpy((want + 1) % 5), **kwargs) == 0.0
    labels = rng.integers(0, 5, 90)
    assert knn_accuracy(*args, torch.from_numpy(labels), **kwargs) == pytest.approx(float(np.mean(want == labels)))


def test_pool_features_pools_maps_and_passes_vectors():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    pooled = pool_features(x)
    assert pooled.shape == (2, 12) and pooled.dtype == torch.float32
    quadrants = x.view(2, 3, 2, 2, 2, 2).mean(dim=(3, 5)).reshape(2, 12)  # 2 x 2 grid of 2 x 2 blocks
    torch.testing.assert_close(pooled, quadrants)
    assert pool_features(x, grid=1).shape == (2, 3)
    v = torch.randn(5, 7, dtype=torch.float64)
    assert torch.equal(pool_features(v), v.float())


def test_ridge_probe_separates_clusters_and_is_at_chance_on_random_labels():
    from core.probes import ridge_probe

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 40, generator=g) * 3
    y = torch.arange(500) % 5
    x = centres[y] + torch.randn(500, 40, generator=g)
    assert ridge_probe([x], y, 300, 5) > 0.95
    noise = torch.randn(2000, 40, generator=g)
    labels = torch.randint(0, 5, (2000,), generator=g)
    assert abs(ridge_probe([noise], labels, 1000, 5) - 0.2) < 0.05


def test_ridge_probe_in_the_dual_handles_more_features_than_examples():
    from core.probes import ridge_probe

    g = torch.Generator().manual_seed(1)
    centres = torch.randn(3, 2000, generator=g)
    y = torch.arange(90) % 3
    x = centres[y] + 0.5 * torch.randn(90, 2000, generator=g)
    assert ridge_probe([x], y, 60, 3) == 1.0


def test_ridge_probe_primal_and_dual_agree():
    """Below and above d = n the probe switches eigendecompositions; both are the same classifier."""
    from core.probes import ridge_probe

    g = torch.Generator().manual_seed(2)
    centres = torch.randn(4, 60, generator=g)
    y = torch.arange(200) % 4
    x = centres[y] + 1.5 * torch.randn(200, 60, generator=g)
    wide = torch.cat([x, torch.zeros(200, 100)], 1)  # 160 features > 140 training rows: the dual
    narrow_acc = ridge_probe([x], y, 140, 4)
    assert narrow_acc == ridge_probe([wide], y, 140, 4) and narrow_acc > 0.5


def _dense_ridge_reference(x: torch.Tensor, y: torch.Tensor, split: int, num_classes: int) -> float:
    """The ridge probe written out densely in float64 (explicit hat matrix, n x n), as a reference."""
    from core.probes import RIDGE_ALPHAS

    x = x.double()
    mean, std = x[:split].mean(0), x[:split].std(0).clamp_min(1e-6)
    xs, xt = (x[:split] - mean) / std, (x[split:] - mean) / std
    targets = torch.nn.functional.one_hot(y[:split], num_classes).double()
    prior = targets.mean(0)
    centred = targets - prior
    gram = xs.T @ xs
    scale = float(torch.linalg.eigvalsh(gram).clamp_min(0).sum()) / split
    best = (-1, None)
    for alpha in RIDGE_ALPHAS:
        inverse = torch.linalg.inv(gram + alpha * scale * torch.eye(len(gram), dtype=torch.float64))
        hat = xs @ inverse @ xs.T
        loo = (hat @ centred - hat.diagonal()[:, None] * centred) / (1 - hat.diagonal())[:, None]
        correct = int(((loo + prior).argmax(1) == y[:split]).sum())
        if correct > best[0]:
            best = (correct, inverse @ xs.T @ centred)
    return float(((xt @ best[1] + prior).argmax(1) == y[split:]).double().mean())


@pytest.mark.parametrize("batch", [7, 50, 400])
def test_ridge_probe_a_batch_at_a_time_matches_the_dense_reference(batch):
    """Fed in batches of any size (the split falling inside a batch or not), the streamed probe is the dense
    closed form: the same accuracy, on features where the regularisation matters (noisy, 30 wide)."""
    from core.probes import ridge_probe

    g = torch.Generator().manual_seed(3)
    centres = torch.randn(5, 30, generator=g)
    y = torch.randint(0, 5, (400,), generator=g)
    x = (centres[y] + 2.0 * torch.randn(400, 30, generator=g)) * torch.rand(30, generator=g) * 10 + 3
    x = x.to(torch.bfloat16)  # as the fingerprint keeps them
    expected = _dense_ridge_reference(x, y, 280, 5)
    assert 0.3 < expected < 0.95  # neither chance nor trivially separable
    assert ridge_probe(list(x.split(batch)), y, 280, 5, torch.float64) == expected


def test_ridge_probe_in_float32_stays_within_two_held_out_images_of_float64():
    """The default float32 products against float64, on ill-conditioned features (ReLU of correlated Gaussians,
    300 wide, 2,000 training rows, bfloat16 as kept): at most 2 of the 1,000 held-out images change class."""
    from core.probes import ridge_probe

    g = torch.Generator().manual_seed(4)
    mixing = torch.randn(300, 300, generator=g) * torch.logspace(0, -3, 300)  # singular values over 3 decades
    y = torch.randint(0, 10, (3000,), generator=g)
    x = ((torch.randn(10, 300, generator=g)[y] * 0.1 + torch.randn(3000, 300, generator=g)) @ mixing).relu()
    batches = list(x.to(torch.bfloat16).split(250))
    exact = ridge_probe(batches, y, 2000, 10, torch.float64)
    assert 0.15 < exact < 0.9
    assert abs(ridge_probe(batches, y, 2000, 10) - exact) <= 2 / 1000


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_features_that_overflowed_give_no_probe_rather_than_an_error(bad):
    """Finite weights can still overflow to inf in a deep layer: that layer has no probe accuracy (NaN, shown as
    undefined), and the analysis goes on."""
    from core.probes import ridge_probe

    x = torch.randn(40, 8)
    x[3, 2] = bad
    y = torch.arange(40) % 4
    assert np.isnan(ridge_probe([x], y, 30, 4))
