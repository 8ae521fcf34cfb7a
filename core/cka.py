"""Centered kernel alignment (Kornblith et al. 2019), debiased (Song et al. 2012) and minibatch
(Nguyen et al. 2021) forms, with a fast path for every pair of layers.

The expensive part is one Gram matrix per layer per batch (b x b from b x d features). Everything
after it is cheap: each Gram is centred once, flattened to a row, and a single matrix product of the
stacked rows gives the HSIC of every pair of layers, of both models, at once (float64).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from core.errors import ContractError

KERNELS = ("linear", "rbf")


def _rows(x: torch.Tensor) -> torch.Tensor:
    """[n, ...] -> [n, d] without copying a channels-last feature map: its columns then come in memory
    order (h, w, c) instead of (c, h, w). Nothing CKA reads from the features (row products, column
    means, per-column comparisons) depends on the order of the columns."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        x = x.permute(0, 2, 3, 1)
    return x.reshape(x.shape[0], -1)


def _flat(x: torch.Tensor) -> torch.Tensor:
    """[n, ...] features -> [n, d], at least float32."""
    if x.dim() < 1 or x.shape[0] == 0:
        raise ContractError(f"features must have shape [n, ...] with n >= 1; got {tuple(x.shape)}")
    x = _rows(x)
    if not (x.is_floating_point() and x.dtype in (torch.float32, torch.float64)):
        x = x.float()
    return x


def linear_gram(x: torch.Tensor) -> torch.Tensor:
    """K = X X^T for features X of shape [n, ...] (trailing dimensions flattened).

    Returns:
        [n, n] Gram matrix in the features' dtype (float32 at least).
    """
    return self_product(_flat(x))


def rbf_gram(x: torch.Tensor, sigma: float = 0.8) -> torch.Tensor:
    """K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2 m)), m the median squared distance (over all n^2
    entries, as in Kornblith's reference), so `sigma` is a fraction of the median distance.

    Returns:
        [n, n] Gram matrix; all ones when every row is identical (no scale to measure).
    """
    if sigma <= 0:
        raise ContractError(f"sigma must be positive; got {sigma}")
    x = _flat(x)
    x = x - x.mean(0, keepdim=True)  # distances are translation-invariant; centring avoids cancellation
    dot = x @ x.T
    sq_norms = dot.diagonal()
    sq_dist = (sq_norms[:, None] + sq_norms[None, :] - 2 * dot).clamp_min_(0)
    values = sq_dist.flatten().sort().values
    mid = values.numel() // 2
    median = values[mid] if values.numel() % 2 else (values[mid - 1] + values[mid]) / 2
    return torch.exp(-sq_dist / (2 * sigma**2 * median.clamp_min(torch.finfo(x.dtype).tiny)))


def center_gram(gram: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Centre a Gram matrix so that sum(center(K) * center(L)) is proportional to HSIC.

    unbiased=True: U-centring (Szekely & Rizzo 2014); sum(U_K * U_L) / (n (n - 3)) is the unbiased
    HSIC estimator of Song et al. (2012). Needs n >= 4.
    unbiased=False: H K H with H = I - 11^T / n, computed from row and column means (never the dense H).

    `gram` is one [n, n] matrix or a stack [..., n, n], each centred on its own (a stack of every
    layer of a batch is centred in a few vectorised float64 passes instead of a few per layer).
    """
    if gram.dim() < 2 or gram.shape[-1] != gram.shape[-2]:
        raise ContractError(f"a Gram matrix must be square; got {tuple(gram.shape)}")
    n = gram.shape[-1]
    g = gram.to(torch.float64, copy=True)  # always a copy: the caller's Gram is never modified
    if not unbiased:
        means = g.mean(-2, keepdim=True)  # column means; K is symmetric, so row means too
        return g.sub_(means).sub_(means.mT).add_(means.mean(-1, keepdim=True))
    if n < 4:
        raise ContractError(f"the debiased estimator needs at least 4 examples; got {n}")
    diagonal = g.diagonal(dim1=-2, dim2=-1)
    diagonal.zero_()
    sums = g.sum(-2, keepdim=True).div_(n - 2)  # column sums / (n - 2); K is symmetric, so rows too
    g.sub_(sums).sub_(sums.mT).add_(sums.sum(-1, keepdim=True).div_(n - 1))
    diagonal.zero_()
    return g


def _gram(x: torch.Tensor, kernel: str, sigma: float) -> torch.Tensor:
    """The Gram matrix that gets centred (see `_centrable_linear_gram` for the linear kernel)."""
    if kernel == "linear":
        return _centrable_linear_gram(_flat(x), {})
    if kernel == "rbf":
        return rbf_gram(x, sigma)
    raise ContractError(f"kernel must be one of {KERNELS}; got {kernel!r}")


# A float32 Gram of uncentred features loses about (1 + ratio) times more of the centred part's
# precision than one of centred features, where ratio = |mean row|^2 / mean |row - mean row|^2.
# Real layers sit at 0-2 (every layer of the bundled pair, 256 test images); at 8 the CKA error of
# a [256, 4096] float32 batch is ~2e-7. Up to it the centring pass over [n, d] is skipped.
MAX_OFFSET_RATIO = 8.0


def self_product(x: torch.Tensor) -> torch.Tensor:
    """X X^T for X [n, d] from three half-size products instead of the full one.

    The Gram is symmetric, so the lower-left block is the transpose of the upper-right: 3/4 of the
    multiply-adds of x @ x.T (measured ~15% faster for [256, 65536] float32 on one CPU core).
    """
    n = x.shape[0]
    if n < 2:
        return x @ x.T
    h = n // 2
    top, bottom = x[:h], x[h:]
    out = torch.empty(n, n, dtype=x.dtype, device=x.device)
    out[:h, :h] = top @ top.T
    out[h:, h:] = bottom @ bottom.T
    corner = top @ bottom.T
    out[:h, h:] = corner
    out[h:, :h] = corner.T
    return out


def _offset_ratio(gram: torch.Tensor) -> float:
    """|mean row|^2 / mean |row - mean row|^2, read off an uncentred linear Gram (in float64)."""
    g = gram.double()
    n = g.shape[0]
    mean_sq = g.sum() / n**2
    spread = g.diagonal().sum() / n - mean_sq
    return float(mean_sq / spread) if spread > 0 else float("inf")


def _centrable_linear_gram(x: torch.Tensor, scratch: dict) -> torch.Tensor:
    """A linear Gram of x [n, d] that U- or H-centring turns into the centred Gram to float32 precision.

    Both centrings remove any common offset of the rows, so the Gram of the raw features is enough
    unless the offset dwarfs the spread (say 1000 + unit noise: a float32 Gram then keeps almost no
    significant digits of the centred part). On the CPU the offset is read off the raw Gram (n^2 work)
    and the features are column-centred (an [n, d] pass) only when it is too large; on a GPU, where
    reading the ratio would stall the device, they are always centred. `scratch` holds one reusable
    buffer per dtype and device for the centred copy: on the CPU, first touching a fresh 64 MB buffer
    costs more in page faults than the centring.
    """
    if x.device.type == "cpu":
        gram = self_product(x)
        if _offset_ratio(gram) <= MAX_OFFSET_RATIO:
            return gram
    key = (x.dtype, x.device)
    if key not in scratch or scratch[key].numel() < x.numel():
        scratch[key] = torch.empty(x.numel(), dtype=x.dtype, device=x.device)
    centred = scratch[key][: x.numel()].view(x.shape)
    torch.sub(x, x.mean(0, keepdim=True), out=centred)
    return self_product(centred)


def hsic_scale(n: int, unbiased: bool) -> float:
    """The factor that turns sum(centred K * centred L) into HSIC for a batch of n examples."""
    if n < (4 if unbiased else 2):
        need = "at least 4 examples for the debiased" if unbiased else "at least 2 examples for the biased"
        raise ContractError(f"HSIC needs {need} estimator; got {n}")
    return 1.0 / (n * (n - 3)) if unbiased else 1.0 / (n - 1) ** 2


def _check_finite(x: torch.Tensor) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ContractError("features contain NaN or infinite values")


def cka(
    x: torch.Tensor, y: torch.Tensor, *, kernel: str = "linear", debiased: bool = True, sigma: float = 0.8
) -> float:
    """CKA between two feature matrices with the same number of rows (examples).

    Returns:
        CKA as a float; a debiased estimate can be slightly negative and is returned as it is.
        NaN only when a side has no variance (CKA is 0/0), which `MinibatchCKA` reports with a reason.
    """
    x, y = _flat(x), _flat(y)
    if x.shape[0] != y.shape[0]:
        raise ContractError(f"x and y must have the same number of rows; got {x.shape[0]} and {y.shape[0]}")
    _check_finite(x)
    _check_finite(y)
    if kernel not in KERNELS:
        raise ContractError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    if debiased and x.shape[0] < 4:
        raise ContractError(f"the debiased estimator needs at least 4 examples; got {x.shape[0]}")
    if bool(is_constant([x, y]).any()):
        return float("nan")  # 0/0; rounding would otherwise turn it into an arbitrary finite number
    # CKA is invariant to isotropic scaling (both kernels), so scale each side to max |value| 1: finite
    # inputs of any magnitude then cannot overflow the Gram or the sums below.
    kx = center_gram(_gram(x / x.abs().amax(), kernel, sigma), debiased)
    ky = center_gram(_gram(y / y.abs().amax(), kernel, sigma), debiased)
    xy, xx, yy = (kx * ky).sum(), (kx * kx).sum(), (ky * ky).sum()
    if xx <= 0 or yy <= 0:
        return float("nan")
    return float(xy / (xx * yy).sqrt())


def centred_rows(
    feats: Sequence[torch.Tensor], *, kernel: str = "linear", debiased: bool = True, sigma: float = 0.8
) -> torch.Tensor:
    """One centred Gram per layer, flattened: [len(feats), b*b] float64 with the batch's HSIC scale
    folded in as sqrt(scale), so a row product is directly a per-batch HSIC contribution."""
    if not feats:
        raise ContractError("need at least one layer")
    n = feats[0].shape[0]
    if any(f.shape[0] != n for f in feats):
        raise ContractError("every layer of a batch must have the same number of examples")
    if debiased and n < 4:
        raise ContractError(f"the debiased estimator needs batches of at least 4 examples; got {n}")
    if not debiased and n < 2:
        raise ContractError(f"the biased estimator needs batches of at least 2 examples; got {n}")
    scale = hsic_scale(n, debiased) ** 0.5
    return center_gram(stacked_grams(feats, kernel, sigma), debiased).flatten(1).mul_(scale)


def stacked_grams(feats: Sequence[torch.Tensor], kernel: str, sigma: float) -> torch.Tensor:
    """Every layer's Gram before U- or H-centring, stacked [L, n, n] (float64 if any layer is)."""
    if kernel != "linear":
        return torch.stack([_gram(f, kernel, sigma) for f in feats])
    scratch: dict = {}
    return torch.stack([_centrable_linear_gram(_flat(f), scratch) for f in feats])


def _constant(x: torch.Tensor) -> torch.Tensor:
    """Whether all rows of x [n, d] are equal, exactly, as a bool tensor on x's device.

    A column is constant when its largest and smallest values are equal (NaN makes both NaN, so never
    constant): two reductions, no [n, d] mask. On the CPU, where reading a value costs no device
    sync, a layer whose first two rows already differ (almost every real layer) is answered at once.
    """
    if x.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=x.device)
    if x.device.type == "cpu" and x.shape[0] > 1 and not bool((x[0] == x[1]).all()):
        return torch.zeros((), dtype=torch.bool)
    return (x.amax(0) == x.amin(0)).all()


def is_constant(feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per layer, whether every example has the same features (a bool tensor; no host sync on a GPU)."""
    return torch.stack([_constant(_rows(f)) for f in feats])


def normalise_hsic(hsic: torch.Tensor, constant: torch.Tensor) -> tuple[torch.Tensor, list[str | None]]:
    """HSIC matrix of a stacked set of layers -> CKA matrix, and per layer why it is undefined (or None).

    A layer whose self-HSIC is not positive, or whose features were constant in every batch (its
    self-HSIC is then 0 up to rounding), has no CKA with anything: its row and column are NaN and its
    reason says why. Negative cross terms are kept as they are.
    """
    diag = hsic.diagonal()
    finite = torch.isfinite(diag)
    ok = finite & (diag > 0) & ~constant
    norms = torch.where(ok, diag, torch.ones_like(diag)).sqrt()
    out = hsic / (norms[:, None] * norms[None, :])
    out[~ok, :] = float("nan")
    out[:, ~ok] = float("nan")
    reasons: list[str | None] = []
    for good, flat, fin in zip(ok.tolist(), constant.tolist(), finite.tolist(), strict=True):
        if good:
            reasons.append(None)
        elif not fin:
            reasons.append("features contain NaN or infinite values, or are too large (the Gram overflowed)")
        elif flat:
            reasons.append("constant features (a dead layer): CKA is 0/0")
        else:
            reasons.append("self-similarity estimate is not positive (too few examples for the debiased estimator)")
    return out, reasons


def cka_from_hsic(cross: torch.Tensor, self_x: torch.Tensor, self_y: torch.Tensor) -> np.ndarray:
    """Elementwise CKA from summed HSIC terms; NaN where a self term is not positive."""
    denom = (self_x * self_y).clamp_min(0).sqrt()
    out = torch.where(denom > 0, cross / torch.where(denom > 0, denom, torch.ones_like(denom)), torch.nan)
    return out.cpu().numpy()


class MinibatchCKA:
    """Minibatch CKA between every layer of model A and every layer of model B.

    Call `update(feats_a, feats_b)` once per minibatch with each model's list of per-layer features
    (any shape [b, ...]; both models see the same images in the same order), then `compute()`.
    Batches may differ in size: each batch's HSIC carries its own 1/(b(b-3)) factor. Each model's own
    layer-by-layer CKA comes from the same accumulation (`compute_self`). Features may live on any
    device; nothing is copied to the host until `compute`.
    """

    def __init__(self, n_a: int, n_b: int, *, kernel: str = "linear", debiased: bool = True, sigma: float = 0.8):
        if kernel not in KERNELS:
            raise ContractError(f"kernel must be one of {KERNELS}; got {kernel!r}")
        if n_a < 1 or n_b < 1:
            raise ContractError("each model needs at least one layer")
        self.n_a, self.n_b = n_a, n_b
        self.options = {"kernel": kernel, "debiased": debiased, "sigma": sigma}
        self.hsic: torch.Tensor | None = None
        self.constant: torch.Tensor | None = None
        self.batches = 0

    def update(self, feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor]) -> None:
        if len(feats_a) != self.n_a or len(feats_b) != self.n_b:
            raise ContractError(f"expected {self.n_a} and {self.n_b} layers; got {len(feats_a)} and {len(feats_b)}")
        feats = [*feats_a, *feats_b]
        rows = centred_rows(feats, **self.options)
        product = rows @ rows.T
        constant = is_constant(feats)
        if self.hsic is None:
            self.hsic, self.constant = product, constant
        else:
            self.hsic += product
            self.constant &= constant
        self.batches += 1

    def _normalised(self) -> tuple[torch.Tensor, list[str | None]]:
        if self.hsic is None:
            raise ContractError("no batches: call update() before compute()")
        return normalise_hsic(self.hsic.cpu(), self.constant.cpu())

    def compute(self) -> torch.Tensor:
        """[n_a, n_b] float64 cross-model CKA; NaN rows/columns for undefined layers (see `undefined`)."""
        full, _ = self._normalised()
        return full[: self.n_a, self.n_a :]

    def compute_self(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each model's own [n, n] layer-by-layer CKA, from the same accumulation."""
        full, _ = self._normalised()
        return full[: self.n_a, : self.n_a], full[self.n_a :, self.n_a :]

    def undefined(self) -> tuple[list[str | None], list[str | None]]:
        """Per layer of A and of B: why its CKA is undefined, or None."""
        _, reasons = self._normalised()
        return reasons[: self.n_a], reasons[self.n_a :]
