"""Read-outs that say what a representation makes linearly or locally available: linear probes and kNN."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F


def pool_features(x: torch.Tensor, grid: int = 2) -> torch.Tensor:
    """Flatten a layer's output to a modest width for probing: conv maps [N, C, H, W] (core.features hands every
    map over channels first) are average-pooled to a
    `grid` x `grid` map (so 4C values), tokens [N, T, C] (core.features hands every 3-D output over so, a Conv1d's
    [N, C, L] transposed) to the class token (or first token) beside the mean of the others (2C values), vectors
    pass through."""
    if x.dim() == 4:
        x = F.adaptive_avg_pool2d(x.float(), grid)
    elif x.dim() == 3:
        x = torch.cat([x[:, 0].float(), x[:, 1:].float().mean(1) if x.shape[1] > 1 else x[:, 0].float()], 1)
    return x.reshape(x.shape[0], -1).float()


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    weight_decay: float = 1e-3,
    max_iter: int = 100,
) -> float:
    """Test accuracy of a multinomial logistic-regression probe fitted by full-batch L-BFGS.

    Features are standardised with the training statistics so one weight decay suits every layer.
    Full-batch L-BFGS converges in tens of iterations on pooled features and needs no learning rate.
    """
    train_x, test_x = train_x.float(), test_x.float()  # the weights are float32 (float64 input used to fail)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    xs, xt = (train_x - mean) / std, (test_x - mean) / std
    weight = torch.zeros(xs.shape[1], num_classes, device=xs.device, requires_grad=True)
    bias = torch.zeros(num_classes, device=xs.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(xs @ weight + bias, train_y) + weight_decay * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return float(((xt @ weight + bias).argmax(1) == test_y).float().mean())


RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # regularisation, relative to trace(X^T X) / n


def ridge_probe(
    batches: Sequence[torch.Tensor],
    labels: torch.Tensor,
    split: int,
    num_classes: int,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Test accuracy of a ridge (least-squares) classifier on one-hot targets, in closed form.

    `batches` are the features a batch of rows at a time (re-read on every pass, so they may come from disk);
    rows before `split` train, the rest test. Features are standardised with the training statistics. One
    eigendecomposition, of X^T X (d x d) or of X X^T (n x n), whichever is smaller, gives every candidate
    regularisation's fit and its leave-one-out predictions (hat matrix Z diag(1/(s+lam)) Z^T); the
    regularisation with the best leave-one-out accuracy on the training rows is used. With d <= n (the primal)
    every pass goes a batch at a time, so memory is O(batch d + d^2) whatever n; the dual holds the n x d
    training rows, fewer than d.

    `dtype` is that of the primal's two n x d x d products (each batch's Gram, summed over batches in float64,
    and the projection on the eigenbasis) and of its d x d eigendecomposition; all else is float64. float32
    takes 0.56x the time of float64 (one thread, 3,000 images of a full-width ResNet-18, 19 layers) and
    changed 1 of 900 held-out predictions on 2 of those layers, none on the bundled pair at 5,000 images
    (BENCHMARKS.md); its eigenvalue errors, ~6e-8 of the largest, sit far below the smallest regularisation
    (1e-3 of the mean eigenvalue) unless the spectrum spans over 4 decades. tests/core/test_probes.py holds it
    to 2 of 1,000 held-out images on ill-conditioned features.
    """
    train_y = labels[:split]
    targets = F.one_hot(train_y, num_classes).double()
    prior = targets.mean(0)
    y = targets - prior
    mean = sum(x.double().sum(0) for x, _ in _train_rows(batches, split)) / split
    if not bool(torch.isfinite(mean).all()):  # finite weights can still overflow to inf: no probe, not a crash
        return float("nan")
    d = len(mean)
    if d <= split:
        gram, xty = torch.zeros(d, d, dtype=torch.float64), torch.zeros(d, num_classes, dtype=torch.float64)
        for x, start in _train_rows(batches, split):
            xc = x.to(dtype) - mean.to(dtype)
            gram += (xc.T @ xc).double()
            xty += xc.double().T @ y[start : start + len(x)]
        std = (gram.diagonal() / (split - 1)).sqrt().clamp_min(1e-6)
        eigvals, basis = (t.double() for t in torch.linalg.eigh((gram / std[:, None] / std[None, :]).to(dtype)))
        zty = basis.T @ (xty / std[:, None])

        projection = (basis / std[:, None]).to(dtype)  # standardising folded into the basis

        def z_batches() -> Iterator[tuple[torch.Tensor, int]]:
            rows = _train_rows(batches, split)
            return ((((x.to(dtype) - mean.to(dtype)) @ projection).double(), start) for x, start in rows)

    else:
        xc = torch.cat([x.double() for x, _ in _train_rows(batches, split)]) - mean
        std = (xc.square().sum(0) / (split - 1)).sqrt().clamp_min(1e-6)
        xs = xc / std
        eigvals, basis = torch.linalg.eigh(xs @ xs.T)
        z = basis * eigvals.clamp_min(0).sqrt()  # the same hat matrix as the primal's

        def z_batches() -> Iterator[tuple[torch.Tensor, int]]:
            return iter([(z, 0)])

        zty = z.T @ y
    eigvals = eigvals.clamp_min(0)
    scale = float(eigvals.sum().clamp_min(1e-12)) / split
    lams = [alpha * scale for alpha in RIDGE_ALPHAS]
    correct = [0] * len(lams)
    for zb, start in z_batches():  # leave-one-out predictions of every candidate
        yb, z_sq = y[start : start + len(zb)], zb.square()
        for c, lam in enumerate(lams):
            inverse = 1 / (eigvals + lam)
            hat_diag = (z_sq @ inverse).clamp(max=1 - 1e-9)
            loo = (zb @ (inverse[:, None] * zty) - hat_diag[:, None] * yb) / (1 - hat_diag)[:, None]
            correct[c] += int(((loo + prior).argmax(1) == train_y[start : start + len(zb)]).sum())
    inverse = 1 / (eigvals + lams[max(range(len(lams)), key=lambda c: (correct[c], -c))])
    if d <= split:
        weights = basis @ (inverse[:, None] * zty) / std[:, None]
    else:
        weights = xs.T @ (basis @ (inverse[:, None] * (basis.T @ y))) / std[:, None]
    hits = 0
    for x, start in _rows(batches, split, len(labels)):
        hits += int((((x.double() - mean) @ weights + prior).argmax(1) == labels[start : start + len(x)]).sum())
    return hits / (len(labels) - split)


def _train_rows(batches: Sequence[torch.Tensor], split: int) -> Iterator[tuple[torch.Tensor, int]]:
    return _rows(batches, 0, split)


def _rows(batches: Sequence[torch.Tensor], start: int, stop: int) -> Iterator[tuple[torch.Tensor, int]]:
    """Rows start:stop of the concatenated batches, a batch at a time, each with the index of its first row."""
    row = 0
    for x in batches:
        lo, hi = max(start - row, 0), min(stop - row, len(x))
        if lo < hi:
            yield x[lo:hi], row + lo
        row += len(x)
        if row >= stop:
            return


def knn_accuracy(
    bank: torch.Tensor,
    bank_y: torch.Tensor,
    query: torch.Tensor,
    query_y: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1000,
) -> float:
    """Weighted kNN accuracy with cosine similarity (Wu et al. 2018): each of the k nearest bank
    features votes for its class with weight exp(similarity / temperature)."""
    bank = F.normalize(bank.float(), dim=1)
    correct = 0
    for start in range(0, len(query), chunk):
        q = F.normalize(query[start : start + chunk].float(), dim=1)
        sims, idx = (q @ bank.T).topk(min(k, len(bank)), dim=1)
        votes = torch.zeros(len(q), num_classes, device=q.device)
        votes.scatter_add_(1, bank_y[idx], (sims / temperature).exp())
        correct += int((votes.argmax(1) == query_y[start : start + chunk]).sum())
    return correct / len(query)
