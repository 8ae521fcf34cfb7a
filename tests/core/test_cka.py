"""core.cka against an independent float64 NumPy implementation of Kornblith et al.'s (2019) formulas,
plus the minibatch accumulation, invariances, estimator bias, degenerate layers and input validation.

The reference below is written from the definitions in shared/notes/cka.md, not copied: Gram matrices,
H K H centring with an explicit H, U-centring, the Song et al. (2012) unbiased HSIC written out term by
term, and the feature-space form of linear CKA (its debiased version derived in `ref_feature_space_cka`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.cka import (
    KERNELS,
    MAX_OFFSET_RATIO,
    MinibatchCKA,
    center_gram,
    centred_rows,
    cka,
    hsic_scale,
    is_constant,
    linear_gram,
    rbf_gram,
    self_product,
)
from core.errors import ContractError

# ---------------------------------------------------------------------------------------------------
# Independent float64 NumPy reference
# ---------------------------------------------------------------------------------------------------


def ref_gram_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x @ x.T


def ref_gram_rbf(x: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """exp(-d_ij^2 / (2 threshold^2 m)), m = median of all n^2 squared distances."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    sq_dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # direct differences, no dot-product trick
    return np.exp(-sq_dist / (2.0 * threshold**2 * np.median(sq_dist)))


def ref_center_gram(gram: np.ndarray, unbiased: bool = False) -> np.ndarray:
    k = np.array(gram, dtype=np.float64)
    n = k.shape[0]
    if not unbiased:
        h = np.eye(n) - np.ones((n, n)) / n  # dense H: fine for a reference on small n
        return h @ k @ h
    np.fill_diagonal(k, 0.0)
    r, c, total = k.sum(1), k.sum(0), k.sum()
    u = k - r[:, None] / (n - 2) - c[None, :] / (n - 2) + total / ((n - 1) * (n - 2))
    np.fill_diagonal(u, 0.0)
    return u


def ref_hsic(gram_x: np.ndarray, gram_y: np.ndarray, unbiased: bool) -> float:
    n = gram_x.shape[0]
    scale = 1.0 / (n * (n - 3)) if unbiased else 1.0 / (n - 1) ** 2
    return float((ref_center_gram(gram_x, unbiased) * ref_center_gram(gram_y, unbiased)).sum() * scale)


def ref_song_unbiased_hsic(gram_x: np.ndarray, gram_y: np.ndarray) -> float:
    """Song et al. (2012), term by term, with K~ and L~ the Grams with zeroed diagonals."""
    n = gram_x.shape[0]
    k, m = np.array(gram_x, dtype=np.float64), np.array(gram_y, dtype=np.float64)
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(m, 0.0)
    one = np.ones(n)
    value = (
        np.trace(k @ m) + (one @ k @ one) * (one @ m @ one) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (one @ k @ m @ one)
    )
    return float(value / (n * (n - 3)))


def ref_cka(gram_x: np.ndarray, gram_y: np.ndarray, debiased: bool = False) -> float:
    cx, cy = ref_center_gram(gram_x, debiased), ref_center_gram(gram_y, debiased)
    return float((cx * cy).sum() / math.sqrt((cx * cx).sum() * (cy * cy).sum()))


def ref_feature_space_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA from d x d products of column-centred features.

    With column-centred X, K = X X^T has zero row sums, so with k_i = ||x_i||^2 (K's diagonal):
    tr(K~ L~) = ||Y^T X||_F^2 - k.l, 1^T K~ 1 = -sum(k), 1^T K~ L~ 1 = k.l, and n(n-3) HSIC_u =
    ||Y^T X||_F^2 - n/(n-2) k.l + sum(k) sum(l) / ((n-1)(n-2)).
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    x, y = x - x.mean(0), y - y.mean(0)
    n = x.shape[0]

    def unnormalised_hsic(a: np.ndarray, b: np.ndarray) -> float:
        value = np.linalg.norm(b.T @ a) ** 2
        if debiased:
            ka, kb = (a * a).sum(1), (b * b).sum(1)
            value += -n / (n - 2) * (ka @ kb) + ka.sum() * kb.sum() / ((n - 1) * (n - 2))
        return float(value)

    return unnormalised_hsic(x, y) / math.sqrt(unnormalised_hsic(x, x) * unnormalised_hsic(y, y))


def ref_gram(x: np.ndarray, kernel: str, sigma: float) -> np.ndarray:
    return ref_gram_linear(x) if kernel == "linear" else ref_gram_rbf(x, sigma)


# ---------------------------------------------------------------------------------------------------
# Data helpers
# ---------------------------------------------------------------------------------------------------


def related(rng: np.random.Generator, n: int, d1: int, d2: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Two feature matrices that share structure, so CKA is neither ~0 nor ~1."""
    x = rng.standard_normal((n, d1))
    y = np.tanh(x @ rng.standard_normal((d1, d2))) + noise * rng.standard_normal((n, d2))
    return x, y


def t64(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


# ---------------------------------------------------------------------------------------------------
# The reference agrees with itself (so that agreeing with it means something)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("debiased", [False, True])
def test_reference_example_space_matches_feature_space(debiased):
    x, y = related(np.random.default_rng(0), 40, 30, 12)
    a = ref_cka(ref_gram_linear(x), ref_gram_linear(y), debiased)
    b = ref_feature_space_cka(x, y, debiased)
    assert a == pytest.approx(b, abs=1e-12)


def test_reference_u_centring_matches_song_formula():
    rng = np.random.default_rng(1)
    x, y = related(rng, 15, 6, 4)
    for kx, ky in [(ref_gram_linear(x), ref_gram_linear(y)), (ref_gram_rbf(x, 0.5), ref_gram_rbf(y, 0.8))]:
        assert ref_hsic(kx, ky, unbiased=True) == pytest.approx(ref_song_unbiased_hsic(kx, ky), rel=1e-10, abs=1e-12)


# ---------------------------------------------------------------------------------------------------
# core.cka against the reference (float64)
# ---------------------------------------------------------------------------------------------------


def test_linear_gram_matches_reference_and_flattens():
    x = np.random.default_rng(2).standard_normal((9, 3, 4, 2))
    got = linear_gram(t64(x))
    assert got.shape == (9, 9) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), ref_gram_linear(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [3, 63, 64, 65, 257])
def test_self_product_is_the_gram(n):
    x = t64(np.random.default_rng(n).standard_normal((n, 40)))
    got = self_product(x)
    np.testing.assert_allclose(got.numpy(), (x @ x.T).numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("offset_ratio", [0.0, 0.5 * MAX_OFFSET_RATIO, 2 * MAX_OFFSET_RATIO, 1e6])
def test_float32_minibatch_agrees_with_float64_on_either_side_of_the_offset_limit(offset_ratio):
    """Below the limit the raw Gram is centred after the product, above it the features before: both
    must keep float32 CKA within 1e-6 of float64 (a 256-row batch of wide features, as in a ResNet)."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((256, 4096))
    y = x[:, :1024] @ rng.standard_normal((1024, 512)) + rng.standard_normal((256, 512))
    shift = rng.standard_normal(4096)
    x = x + shift * math.sqrt(offset_ratio * 4096 / (shift @ shift))  # |offset|^2 = ratio * spread
    want, got = MinibatchCKA(1, 1), MinibatchCKA(1, 1)
    want.update([t64(x)], [t64(y)])
    got.update([t64(x).float()], [t64(y).float()])
    assert float(got.compute()) == pytest.approx(float(want.compute()), abs=1e-6)


@pytest.mark.parametrize("sigma", [0.2, 0.5, 0.8, 1.0])
def test_rbf_gram_matches_reference(sigma):
    x = np.random.default_rng(3).standard_normal((25, 7)) * 3 + 5
    got = rbf_gram(t64(x), sigma)
    np.testing.assert_allclose(got.numpy(), ref_gram_rbf(x, sigma), rtol=0, atol=1e-9)
    assert torch.all(got.diagonal() == 1)


def test_rbf_gram_even_and_odd_counts_use_numpy_median():
    # n^2 is odd for n = 5 (a middle element) and even for n = 6 (mean of the two middle ones)
    for n in (5, 6):
        x = np.random.default_rng(n).standard_normal((n, 3))
        np.testing.assert_allclose(rbf_gram(t64(x), 0.7).numpy(), ref_gram_rbf(x, 0.7), atol=1e-12)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("kernel", KERNELS)
def test_center_gram_matches_reference(unbiased, kernel):
    x = np.random.default_rng(4).standard_normal((17, 5))
    k = ref_gram(x, kernel, 0.6)
    got = center_gram(t64(k), unbiased=unbiased)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), ref_center_gram(k, unbiased), rtol=0, atol=1e-10)
    if unbiased:
        assert torch.all(got.diagonal() == 0)
    else:  # H K H has zero row and column sums
        np.testing.assert_allclose(got.sum(0).numpy(), 0, atol=1e-10)


def test_center_gram_unbiased_hsic_is_songs_estimator():
    x, y = related(np.random.default_rng(5), 11, 4, 3)
    kx, ky = ref_gram_linear(x), ref_gram_linear(y)
    got = float((center_gram(t64(kx)) * center_gram(t64(ky))).sum()) * hsic_scale(11, True)
    assert got == pytest.approx(ref_song_unbiased_hsic(kx, ky), rel=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n", [6, 30, 80])
def test_cka_matches_reference_example_space(kernel, debiased, n):
    x, y = related(np.random.default_rng(n), n, 20, 8)
    want = ref_cka(ref_gram(x, kernel, 0.8), ref_gram(y, kernel, 0.8), debiased)
    got = cka(t64(x), t64(y), kernel=kernel, debiased=debiased, sigma=0.8)
    assert isinstance(got, float)
    assert got == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("shape", [(50, 10, 6), (12, 300, 200), (64, 700, 3)])
def test_linear_cka_matches_reference_feature_space(debiased, shape):
    n, d1, d2 = shape
    x, y = related(np.random.default_rng(d1), n, d1, d2)
    got = cka(t64(x), t64(y), kernel="linear", debiased=debiased)
    assert got == pytest.approx(ref_feature_space_cka(x, y, debiased), abs=1e-6)


@pytest.mark.parametrize("sigma", [0.2, 0.5])
def test_rbf_cka_uses_sigma(sigma):
    x, y = related(np.random.default_rng(6), 40, 10, 5)
    got = cka(t64(x), t64(y), kernel="rbf", sigma=sigma)
    assert got == pytest.approx(ref_cka(ref_gram_rbf(x, sigma), ref_gram_rbf(y, sigma), True), abs=1e-6)
    assert got != pytest.approx(cka(t64(x), t64(y), kernel="rbf", sigma=1.0), abs=1e-3)


def test_cka_flattens_image_shaped_features():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((20, 4, 3, 3))
    y = x.reshape(20, -1)[:, :10] ** 2 + rng.standard_normal((20, 10))
    flat = x.reshape(20, -1)
    for kernel in KERNELS:
        got = cka(t64(x), t64(y), kernel=kernel)
        assert got == cka(t64(flat), t64(y), kernel=kernel)
        assert got == pytest.approx(ref_cka(ref_gram(flat, kernel, 0.8), ref_gram(y, kernel, 0.8), True), abs=1e-6)


# ---------------------------------------------------------------------------------------------------
# MinibatchCKA
# ---------------------------------------------------------------------------------------------------


def layers(rng: np.random.Generator, n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Model A: 3 layers (one image-shaped), model B: 2 layers; all functions of one input."""
    z = rng.standard_normal((n, 6))
    a = [z @ rng.standard_normal((6, 10)), np.maximum(z @ rng.standard_normal((6, 2 * 3 * 3)), 0).reshape(n, 2, 3, 3)]
    a.append(np.tanh(a[0]) + 0.5 * rng.standard_normal((n, 10)))
    b = [z[:, :3] + 0.3 * rng.standard_normal((n, 3)), rng.standard_normal((n, 7)) + z[:, 4:5]]
    return [t64(v) for v in a], [t64(v) for v in b]


@pytest.mark.parametrize("debiased", [True, False])
@pytest.mark.parametrize("kernel", KERNELS)
def test_minibatch_one_batch_equals_full_cka(kernel, debiased):
    feats_a, feats_b = layers(np.random.default_rng(8), 37)
    m = MinibatchCKA(3, 2, kernel=kernel, debiased=debiased)
    m.update(feats_a, feats_b)
    got = m.compute()
    assert got.shape == (3, 2) and got.dtype == torch.float64
    for i, fa in enumerate(feats_a):
        for j, fb in enumerate(feats_b):
            assert float(got[i, j]) == pytest.approx(cka(fa, fb, kernel=kernel, debiased=debiased), abs=1e-9)
    self_a, self_b = m.compute_self()
    assert self_a.shape == (3, 3) and self_b.shape == (2, 2)
    for i, fi in enumerate(feats_a):
        for j, fj in enumerate(feats_a):
            assert float(self_a[i, j]) == pytest.approx(cka(fi, fj, kernel=kernel, debiased=debiased), abs=1e-9)
    assert float(self_b[0, 1]) == pytest.approx(cka(*feats_b, kernel=kernel, debiased=debiased), abs=1e-9)
    assert m.undefined() == ([None] * 3, [None] * 2)


@pytest.mark.parametrize("debiased", [True, False])
def test_minibatch_unequal_batches_keep_per_batch_factor(debiased):
    rng = np.random.default_rng(9)
    batches = [layers(rng, n) for n in (5, 12, 40, 8)]
    m = MinibatchCKA(3, 2, debiased=debiased)
    for feats_a, feats_b in batches:
        m.update(feats_a, feats_b)
    assert m.batches == 4

    def hsic_sum(i: int, j: int, side_i: int, side_j: int, keep_factor: bool = True) -> float:
        total = 0.0
        for batch in batches:
            kx = ref_gram_linear(batch[side_i][i].numpy())
            ky = ref_gram_linear(batch[side_j][j].numpy())
            n = kx.shape[0]
            h = ref_hsic(kx, ky, debiased)
            total += h if keep_factor else h * (n * (n - 3) if debiased else (n - 1) ** 2)
        return total

    def hand(i: int, j: int, keep_factor: bool = True) -> float:
        xy = hsic_sum(i, j, 0, 1, keep_factor)
        return xy / math.sqrt(hsic_sum(i, i, 0, 0, keep_factor) * hsic_sum(j, j, 1, 1, keep_factor))

    got = m.compute()
    for i in range(3):
        for j in range(2):
            assert float(got[i, j]) == pytest.approx(hand(i, j), abs=1e-9)
    # dropping the per-batch factor (right only for equal sizes) gives a measurably different answer
    assert max(abs(float(got[i, j]) - hand(i, j, keep_factor=False)) for i in range(3) for j in range(2)) > 1e-3
    # and every batch counts: the last batch alone gives something else
    last = MinibatchCKA(3, 2, debiased=debiased)
    last.update(*batches[-1])
    assert not torch.allclose(last.compute(), got, atol=1e-3)


def test_minibatch_self_diagonal_is_one_and_symmetric():
    rng = np.random.default_rng(10)
    m = MinibatchCKA(3, 2, kernel="rbf")
    for n in (16, 9, 30):
        m.update(*layers(rng, n))
    self_a, self_b = m.compute_self()
    for s in (self_a, self_b):
        assert s.dtype == torch.float64
        np.testing.assert_allclose(s.diagonal().numpy(), 1.0, atol=1e-12)
        np.testing.assert_allclose(s.numpy(), s.T.numpy(), atol=1e-12)


def test_minibatch_float32_features_accumulate_in_float64():
    feats_a, feats_b = layers(np.random.default_rng(11), 24)
    m64, m32 = MinibatchCKA(3, 2), MinibatchCKA(3, 2)
    m64.update(feats_a, feats_b)
    m32.update([f.float() for f in feats_a], [f.float() for f in feats_b])
    assert m32.compute().dtype == torch.float64
    np.testing.assert_allclose(m32.compute().numpy(), m64.compute().numpy(), atol=1e-5)


def test_centred_rows_products_are_hsic():
    x, y = related(np.random.default_rng(12), 10, 5, 3)
    rows = centred_rows([t64(x), t64(y)], debiased=True)
    assert rows.shape == (2, 100) and rows.dtype == torch.float64
    assert float(rows[0] @ rows[1]) == pytest.approx(ref_song_unbiased_hsic(ref_gram_linear(x), ref_gram_linear(y)))


# ---------------------------------------------------------------------------------------------------
# Invariances and estimator behaviour
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("debiased", [True, False])
@pytest.mark.parametrize("kernel", KERNELS)
def test_self_similarity_is_one(kernel, debiased):
    x = t64(np.random.default_rng(13).standard_normal((30, 12)))
    assert cka(x, x, kernel=kernel, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("debiased", [True, False])
@pytest.mark.parametrize("kernel", KERNELS)
def test_invariant_to_orthogonal_transforms_and_isotropic_scaling(kernel, debiased):
    rng = np.random.default_rng(14)
    x, y = related(rng, 40, 12, 6)
    q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    base = cka(t64(x), t64(y), kernel=kernel, debiased=debiased)
    assert abs(base) > 0.1  # a non-trivial value, so invariance is not 0 == 0
    assert cka(t64(x @ q), t64(y), kernel=kernel, debiased=debiased) == pytest.approx(base, abs=1e-9)
    assert cka(t64(x * 37.5), t64(y), kernel=kernel, debiased=debiased) == pytest.approx(base, abs=1e-9)
    assert cka(t64(x * 1e-3), t64(y * 1e4), kernel=kernel, debiased=debiased) == pytest.approx(base, abs=1e-9)


@pytest.mark.parametrize("debiased", [True, False])
def test_linear_cka_invariant_to_feature_offsets(debiased):
    x, y = related(np.random.default_rng(15), 40, 12, 6)
    base = cka(t64(x), t64(y), debiased=debiased)
    assert cka(t64(x + 3.0), t64(y - np.arange(6)), debiased=debiased) == pytest.approx(base, abs=1e-9)


def test_not_invariant_to_general_invertible_maps():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((100, 10))
    y = x[:, :2] + 0.1 * rng.standard_normal((100, 2))
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    a = np.diag([0.1, 0.1] + [3.0] * 8) @ q  # shrinks the two features y depends on, then rotates
    assert np.linalg.cond(a) < 100  # comfortably invertible
    for debiased in (True, False):
        before = cka(t64(x), t64(y), debiased=debiased)
        after = cka(t64(x @ a), t64(y), debiased=debiased)
        assert before - after > 0.2, (before, after)


def test_biased_cka_is_inflated_for_wide_features_and_debiased_is_not():
    rng = np.random.default_rng(17)
    x, y = t64(rng.standard_normal((64, 5000))), t64(rng.standard_normal((64, 5000)))
    assert cka(x, y, debiased=False) > 0.9
    assert abs(cka(x, y, debiased=True)) < 0.05
    # the default is the debiased estimator
    assert cka(x, y) == cka(x, y, debiased=True)


@pytest.mark.parametrize("debiased", [True, False])
@pytest.mark.parametrize("kernel", KERNELS)
def test_float32_agrees_with_float64(kernel, debiased):
    x, y = related(np.random.default_rng(18), 50, 64, 16)
    x = x + 100.0  # a large common offset: float32 Grams lose the centred part without care
    want = cka(t64(x), t64(y), kernel=kernel, debiased=debiased)
    got = cka(t64(x).float(), t64(y).float(), kernel=kernel, debiased=debiased)
    assert got == pytest.approx(want, abs=1e-5)


def test_integer_and_half_inputs_are_accepted():
    rng = np.random.default_rng(19)
    x = rng.integers(0, 5, (20, 8))
    y = x[:, :4] * 2 + rng.integers(0, 3, (20, 4))
    want = ref_cka(ref_gram_linear(x), ref_gram_linear(y), True)
    assert cka(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(want, abs=1e-6)
    assert cka(torch.from_numpy(x).half(), torch.from_numpy(y).to(torch.int32)) == pytest.approx(want, abs=1e-6)


def test_finite_inputs_of_extreme_magnitude_do_not_overflow():
    x, y = related(np.random.default_rng(20), 30, 8, 4)
    base = cka(t64(x), t64(y))
    assert cka(t64(x * 1e150), t64(y)) == pytest.approx(base, abs=1e-9)
    assert cka(t64(x).float() * 1e30, t64(y).float()) == pytest.approx(base, abs=1e-5)
    assert cka(t64(x).float() * 1e-30, t64(y).float()) == pytest.approx(base, abs=1e-5)


# ---------------------------------------------------------------------------------------------------
# Degenerate layers and negative estimates
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, 0.37, 6.460674285888672])
@pytest.mark.parametrize("debiased", [True, False])
@pytest.mark.parametrize("kernel", KERNELS)
def test_cka_with_a_constant_side_is_nan(kernel, debiased, value):
    # nonzero constants used to come out as arbitrary finite numbers (rounding in the centring)
    y = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    x = torch.full((7, 45), value)
    assert math.isnan(cka(x, y, kernel=kernel, debiased=debiased))
    assert math.isnan(cka(y, x, kernel=kernel, debiased=debiased))


@pytest.mark.parametrize("kernel", KERNELS)
def test_minibatch_dead_layer_is_undefined_with_a_reason(kernel):
    rng = np.random.default_rng(21)
    m = MinibatchCKA(3, 2, kernel=kernel)
    for n in (10, 7, 13):
        feats_a, feats_b = layers(rng, n)
        feats_a[1] = torch.full((n, 2, 3, 3), 0.37, dtype=torch.float32)  # a dead ReLU layer, say
        feats_b[0] = torch.zeros(n, 3)
        m.update(feats_a, feats_b)
    cross = m.compute()
    assert torch.isnan(cross[1]).all() and torch.isnan(cross[:, 0]).all()
    assert torch.isfinite(cross[[0, 2]][:, [1]]).all()
    self_a, self_b = m.compute_self()
    assert torch.isnan(self_a[1]).all() and torch.isnan(self_a[:, 1]).all()
    assert torch.isfinite(self_a[[0, 2]][:, [0, 2]]).all() and float(self_a[0, 0]) == pytest.approx(1.0)
    assert torch.isnan(self_b[0]).all() and float(self_b[1, 1]) == pytest.approx(1.0)
    reasons_a, reasons_b = m.undefined()
    assert reasons_a[0] is None and reasons_a[2] is None and reasons_b[1] is None
    assert "constant" in reasons_a[1] and "constant" in reasons_b[0]


def test_minibatch_layer_constant_in_one_batch_only_is_defined():
    rng = np.random.default_rng(22)
    m = MinibatchCKA(3, 2)
    feats_a, feats_b = layers(rng, 10)
    feats_a[0] = torch.ones(10, 10, dtype=torch.float64)
    m.update(feats_a, feats_b)
    m.update(*layers(rng, 10))
    assert torch.isfinite(m.compute()).all()
    assert m.undefined() == ([None] * 3, [None] * 2)


def test_minibatch_nan_features_are_reported_not_mislabelled():
    feats_a, feats_b = layers(np.random.default_rng(23), 12)
    feats_a[2] = feats_a[2].clone()
    feats_a[2][3, 1] = float("nan")
    m = MinibatchCKA(3, 2)
    m.update(feats_a, feats_b)
    assert torch.isnan(m.compute()[2]).all() and torch.isfinite(m.compute()[:2]).all()
    reason = m.undefined()[0][2]
    assert "NaN" in reason and "too few" not in reason


def test_negative_debiased_estimate_is_returned_unclamped():
    rng = np.random.default_rng(4)  # a seed where two small independent samples give a negative estimate
    x, y = rng.standard_normal((12, 3)), rng.standard_normal((12, 3))
    want = ref_cka(ref_gram_linear(x), ref_gram_linear(y), debiased=True)
    got = cka(t64(x), t64(y))
    assert want < -0.1
    assert got == pytest.approx(want, abs=1e-9)
    m = MinibatchCKA(1, 1)
    m.update([t64(x)], [t64(y)])
    assert float(m.compute()[0, 0]) == pytest.approx(want, abs=1e-9)
    assert m.undefined() == ([None], [None])


def test_is_constant_flags_only_constant_layers():
    flags = is_constant([torch.full((4, 2, 2), 3.0), torch.arange(8.0).view(4, 2), torch.zeros(1, 5)])
    assert flags.tolist() == [True, False, True]


# ---------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------


def test_cka_rejects_mismatched_rows():
    with pytest.raises(ContractError, match=r"same number of rows; got 10 and 9"):
        cka(torch.randn(10, 3), torch.randn(9, 3))


def test_cka_rejects_too_few_examples_for_debiased():
    with pytest.raises(ContractError, match="debiased estimator needs at least 4 examples; got 3"):
        cka(torch.randn(3, 5), torch.randn(3, 2))
    assert math.isfinite(cka(torch.randn(3, 5), torch.randn(3, 2), debiased=False))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_cka_rejects_non_finite_features(bad):
    x = torch.randn(8, 4)
    x[2, 1] = bad
    with pytest.raises(ContractError, match="NaN or infinite"):
        cka(x, torch.randn(8, 2))
    with pytest.raises(ContractError, match="NaN or infinite"):
        cka(torch.randn(8, 2), x)


def test_bad_kernel_is_rejected():
    with pytest.raises(ContractError, match=r"kernel must be one of \('linear', 'rbf'\); got 'poly'"):
        cka(torch.randn(8, 3), torch.randn(8, 3), kernel="poly")
    with pytest.raises(ContractError, match="kernel must be one of"):
        MinibatchCKA(1, 1, kernel="cosine")


def test_bad_shapes_and_parameters_are_rejected():
    with pytest.raises(ContractError, match="shape \\[n, ...\\]"):
        cka(torch.tensor(1.0), torch.tensor(2.0))
    with pytest.raises(ContractError, match="shape \\[n, ...\\]"):
        cka(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ContractError, match="sigma must be positive"):
        rbf_gram(torch.randn(5, 2), sigma=0.0)
    with pytest.raises(ContractError, match="must be square"):
        center_gram(torch.randn(4, 5))
    with pytest.raises(ContractError, match="must be square"):
        center_gram(torch.tensor(2.0))
    with pytest.raises(ContractError, match="at least 4 examples"):
        center_gram(torch.eye(3), unbiased=True)
    with pytest.raises(ContractError, match="at least 4 examples"):
        hsic_scale(3, True)
    with pytest.raises(ContractError, match="at least 2 examples"):
        hsic_scale(1, False)
    with pytest.raises(ContractError, match="at least one layer"):
        MinibatchCKA(0, 2)


def test_minibatch_update_errors():
    m = MinibatchCKA(2, 1)
    with pytest.raises(ContractError, match="expected 2 and 1 layers; got 1 and 1"):
        m.update([torch.randn(8, 3)], [torch.randn(8, 3)])
    with pytest.raises(ContractError, match="expected 2 and 1 layers; got 2 and 2"):
        m.update([torch.randn(8, 3)] * 2, [torch.randn(8, 3)] * 2)
    with pytest.raises(ContractError, match="same number of examples"):
        m.update([torch.randn(8, 3), torch.randn(8, 3)], [torch.randn(9, 3)])
    with pytest.raises(ContractError, match="at least 4 examples; got 3"):
        m.update([torch.randn(3, 3)] * 2, [torch.randn(3, 3)])
    with pytest.raises(ContractError, match="at least 2 examples; got 1"):
        MinibatchCKA(1, 1, debiased=False).update([torch.randn(1, 3)], [torch.randn(1, 3)])
    assert m.batches == 0 and m.hsic is None  # failed updates leave no trace


@pytest.mark.parametrize("method", ["compute", "compute_self", "undefined"])
def test_results_before_update_are_an_error(method):
    with pytest.raises(ContractError, match=r"no batches: call update\(\) before compute\(\)"):
        getattr(MinibatchCKA(2, 2), method)()


# ---------------------------------------------------------------------------------------------------
# Property-based: cka() never fails in an unexpected way
# ---------------------------------------------------------------------------------------------------

DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64}


@st.composite
def feature_matrix(draw, n: int, dtype: str, magnitude: float) -> np.ndarray:
    shape = (n, *draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    np_dtype = DTYPES[dtype]
    if dtype == "int64":
        arr = draw(hnp.arrays(np_dtype, shape, elements=st.integers(-5, 5), fill=st.nothing()))
    else:
        unit = st.floats(-1.0, 1.0, width=32 if dtype == "float32" else 64)
        unit_arr = draw(hnp.arrays(np_dtype, shape, elements=unit, fill=st.nothing()))
        arr = (unit_arr * np_dtype(magnitude)).astype(np_dtype)
    arr = arr.reshape(n, -1)
    if arr.shape[1] > 1 and draw(st.booleans()):  # a constant column
        arr[:, draw(st.integers(0, arr.shape[1] - 1))] = arr[0, 0]
    if draw(st.integers(0, 9)) == 0:  # a constant (dead) side
        arr[:] = arr[:1]
    return arr.reshape(shape)


def ref_relative_self_similarity(a: np.ndarray, kernel: str, sigma: float, debiased: bool) -> float:
    """||centred K||^2 / ||K||^2 in the reference: 0 (up to rounding) when CKA is 0/0, small when the
    problem is ill-conditioned (then two correct implementations may disagree)."""
    x = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    if (x == x[:1]).all():
        return 0.0
    with np.errstate(all="ignore"):
        x = x / np.abs(x).max()
        k = ref_gram(x - x.mean(0), kernel, sigma)
        if not np.isfinite(k).all():
            return 0.0
        c = ref_center_gram(k, debiased)
        return float((c * c).sum() / (k * k).sum())


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cka_property_raises_contract_error_or_returns_a_sensible_float(data):
    n = data.draw(st.integers(1, 12), label="n")
    dtype_x = data.draw(st.sampled_from(list(DTYPES)), label="dtype_x")
    dtype_y = data.draw(st.sampled_from(list(DTYPES)), label="dtype_y")
    magnitude = data.draw(st.sampled_from([1.0, 1e3, 1e-20, 1e30]), label="magnitude")
    n_y = n + data.draw(st.sampled_from([0] * 6 + [1, -1]), label="row_offset") if n > 1 else n
    x = data.draw(feature_matrix(n, dtype_x, magnitude), label="x")
    y = data.draw(feature_matrix(n_y, dtype_y, 1.0), label="y")
    non_finite = False
    if dtype_x != "int64" and data.draw(st.integers(0, 7), label="inject") == 0:
        x.reshape(-1)[data.draw(st.integers(0, x.size - 1))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        non_finite = True
    kernel = data.draw(st.sampled_from(KERNELS), label="kernel")
    debiased = data.draw(st.booleans(), label="debiased")
    sigma = data.draw(st.sampled_from([0.3, 0.8]), label="sigma")
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    expected_error = n != n_y or non_finite or (debiased and n < 4)
    try:
        value = cka(tx, ty, kernel=kernel, debiased=debiased, sigma=sigma)
    except ContractError as error:
        event("ContractError")
        assert expected_error, f"unexpected ContractError: {error}"
        assert len(str(error)) > 10
        return
    assert not expected_error, "an invalid input was accepted"
    assert isinstance(value, float)
    constant = any(bool((a.reshape(len(a), -1) == a.reshape(len(a), -1)[:1]).all()) for a in (x, y))
    event("constant side" if constant else "NaN" if math.isnan(value) else "finite")
    if constant:
        assert math.isnan(value), "a constant side must give NaN (CKA is 0/0)"
    elif math.isnan(value):
        degenerate = any(ref_relative_self_similarity(a, kernel, sigma, debiased) < 1e-12 for a in (x, y))
        assert degenerate, "NaN although neither side is constant or degenerate"
    else:
        assert -1 - 1e-6 <= value <= 1 + 1e-6
        # well-conditioned float64 linear cases agree with the reference
        if kernel == "linear" and dtype_x == dtype_y == "float64" and magnitude == 1.0:
            if all(ref_relative_self_similarity(a, kernel, sigma, debiased) > 1e-6 for a in (x, y)):
                want = ref_cka(ref_gram_linear(x), ref_gram_linear(y), debiased)
                assert value == pytest.approx(want, abs=1e-6)
