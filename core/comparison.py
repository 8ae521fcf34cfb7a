"""Two fingerprints -> one result: cross-model HSIC, the permutation null, the interval, the read-outs."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from core.cka import cka_from_hsic, normalise_hsic
from core.data import SubsetSpec
from core.device import synchronize
from core.errors import OptionsError
from core.fingerprint import Fingerprint, view_generator
from core.interval import jackknife_interval
from core.memory import release_freed
from core.names import BY_DEPTH, match_layers
from core.progress import Progress, no_progress
from core.readouts import no_readouts, readouts
from core.result import AnalysisResult


@dataclass(frozen=True)
class PairTerms:
    """Cross-model HSIC per batch and the permutation-null sums, for (a shard of) the batches."""

    batch_ids: tuple[int, ...]
    cross: tuple[torch.Tensor, ...]  # per batch: [La, Lb] float64
    null: torch.Tensor  # [permutations, matched] float64, summed over these batches
    seconds: float


def _versions() -> dict[str, str]:
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__}


def _matched(layers_a: tuple[str, ...], layers_b: tuple[str, ...]) -> list[tuple[int, int]]:
    """Pairs of indices of matched layers, in A's order: the same name (same architecture: all of them), or across
    architectures that share no block name, the same relative depth (core.names.match_layers)."""
    return match_layers(layers_a, layers_b)[0]


def permuted_hsic(rows_a: torch.Tensor, rows_b: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Per layer pair, sum(U_a * U_b with the examples shuffled by `perm`): HSIC against a permutation null.

    Shuffling examples permutes a centred Gram's rows and columns (centring commutes with it): one gather of
    the flattened [L, b*b] rows does both. The rows are float32 as stored, and their products are summed in
    float32 (torch's pairwise reduction): 4-6x faster than two gathers in float64 (b = 250, 19 layers, one
    thread: 0.13-0.2 s against 0.74-0.81 s for 20 permutations), within 1e-6 of float64 in CKA (tested).
    """
    b = perm.numel()
    shuffled = rows_b.index_select(1, (perm[:, None] * b + perm[None, :]).reshape(-1))
    return (rows_a * shuffled).sum(1).double()


def pair_terms(fa: Fingerprint, fb: Fingerprint, device: torch.device, progress: Progress = no_progress) -> PairTerms:
    """One matrix product per batch for every cross-model HSIC, and the permutation null."""
    if fa.subset_key != fb.subset_key or fa.options != fb.options or fa.batch_ids != fb.batch_ids:
        raise OptionsError("fingerprints were taken on different subsets or options; recompute one of them")
    t0 = time.perf_counter()
    pairs = _matched(fa.layers, fb.layers)
    ia = torch.tensor([i for i, _ in pairs], dtype=torch.long, device=device)
    ib = torch.tensor([j for _, j in pairs], dtype=torch.long, device=device)
    permutations = fa.options.permutations
    null = torch.zeros(permutations, len(pairs), dtype=torch.float64, device=device)
    cross = []
    for done, (k, ra, rb) in enumerate(zip(fa.batch_ids, fa.rows, fb.rows, strict=True), start=1):
        ra64, rb64 = ra.to(device, torch.float64), rb.to(device, torch.float64)
        cross.append((ra64 @ rb64.T).cpu())
        b = int(round(ra.shape[1] ** 0.5))
        g = view_generator(fa.options.seed, k)
        matched_a, matched_b = ra.to(device)[ia], rb.to(device)[ib]
        for p in range(permutations):
            null[p] += permuted_hsic(matched_a, matched_b, torch.randperm(b, generator=g).to(device))
        release_freed()  # each batch read back from disk left ~0.5 MB of the heap resident: 260 MB at 500 batches
        progress("cross-model CKA and permutation null", done, len(fa.rows))
    synchronize(device)
    return PairTerms(fa.batch_ids, tuple(cross), null.cpu(), time.perf_counter() - t0)


def merge_pair_terms(shards: list[PairTerms]) -> PairTerms:
    """One set of pair terms from the shards of several processes, batches in order."""
    order = sorted((k, s, i) for s, shard in enumerate(shards) for i, k in enumerate(shard.batch_ids))
    return PairTerms(
        batch_ids=tuple(k for k, _, _ in order),
        cross=tuple(shards[s].cross[i] for _, s, i in order),
        null=sum(s.null for s in shards),
        seconds=max(s.seconds for s in shards),
    )


def _leave_one_out(fa: Fingerprint, fb: Fingerprint, terms: PairTerms, ia: torch.Tensor, ib: torch.Tensor):
    """Matched-layer CKA with each minibatch left out in turn: [batches, matched] (the jackknife's replicates)."""
    cross = torch.stack([c[ia, ib] for c in terms.cross])
    self_a = torch.stack([s.diagonal()[ia] for s in fa.self_hsic])
    self_b = torch.stack([s.diagonal()[ib] for s in fb.self_hsic])
    return cka_from_hsic(cross.sum(0) - cross, self_a.sum(0) - self_a, self_b.sum(0) - self_b)


def preview_terms(fa: Fingerprint, fb: Fingerprint, kept: dict[int, torch.Tensor], device: torch.device) -> PairTerms:
    """The cross-model HSIC of the batches two fingerprints share, without the null; `kept` holds each batch's
    product once computed, so a preview after every batch costs one product per batch in all."""
    pairs = len(_matched(fa.layers, fb.layers))
    for i, k in enumerate(fa.batch_ids):
        if k not in kept:  # rows are read (perhaps from disk) only for a batch not seen before
            kept[k] = (fa.rows[i].to(device, torch.float64) @ fb.rows[i].to(device, torch.float64).T).cpu()
    cross = tuple(kept[k] for k in fa.batch_ids)
    return PairTerms(fa.batch_ids, cross, torch.zeros(0, pairs, dtype=torch.float64), 0.0)


def finalize(
    fa: Fingerprint,
    fb: Fingerprint,
    terms: PairTerms,
    subset: SubsetSpec,
    progress: Progress = no_progress,
    with_readouts: bool = True,
) -> AnalysisResult:
    """Normalise the summed terms into CKA, add each model's read-outs and the jackknife interval.

    Without read-outs (a preview of the batches so far), class structure, invariance and probes are NaN."""
    options = fa.options
    t0 = time.perf_counter()
    la, lb = len(fa.layers), len(fb.layers)
    pairs, matching = match_layers(fa.layers, fb.layers)
    ia = torch.tensor([i for i, _ in pairs], dtype=torch.long)
    ib = torch.tensor([j for _, j in pairs], dtype=torch.long)
    constant = torch.cat([fa.constant, fb.constant])

    def stacked_cka(weights: list[float]) -> tuple[torch.Tensor, list[str | None]]:
        """CKA of the stacked [A; B] layers, batch k weighted by weights[k] (all 1: the real data)."""
        hsic = torch.zeros(la + lb, la + lb, dtype=torch.float64)
        for w, cross, sa, sb in zip(weights, terms.cross, fa.self_hsic, fb.self_hsic, strict=True):
            if w:
                hsic[:la, :la] += w * sa
                hsic[la:, la:] += w * sb
                hsic[:la, la:] += w * cross
                hsic[la:, :la] += w * cross.T
        return normalise_hsic(hsic, constant)

    full, reasons = stacked_cka([1.0] * len(terms.cross))
    dropped = _stacked_leave_one_out(fa, fb, terms, constant) if with_readouts else None
    cross = full[:la, la:]
    self_a, self_b = sum(fa.self_hsic).diagonal(), sum(fb.self_hsic).diagonal()
    null_cka = cka_from_hsic(terms.null, self_a[ia].expand_as(terms.null), self_b[ib].expand_as(terms.null))
    leave_one_out = _leave_one_out(fa, fb, terms, ia, ib)
    ra, rb = (readouts(f, progress) if with_readouts else no_readouts(f) for f in (fa, fb))
    seconds = {
        "forward": fa.seconds["forward"] + fb.seconds["forward"],
        "cka": fa.seconds["cka"]
        + fb.seconds["cka"]
        + terms.seconds
        + time.perf_counter()
        - t0
        - ra.probe_seconds
        - rb.probe_seconds,
        "probes": ra.probe_seconds + rb.probe_seconds,
    }
    with warnings.catch_warnings():  # an undefined (dead) layer has an all-NaN null
        warnings.simplefilter("ignore", RuntimeWarning)
        null_mean = np.nanmean(null_cka, 0) if len(null_cka) else np.full(len(pairs), np.nan)
        null_p95 = np.nanpercentile(null_cka, 95, 0) if len(null_cka) else np.full(len(pairs), np.nan)
    low, high = jackknife_interval(cross[ia, ib].numpy(), leave_one_out)
    return AnalysisResult(
        model_a=fa.model,
        model_b=fb.model,
        subset=subset,
        options=options,
        used_images=sum(len(y) for y in fa.labels),
        layers_a=fa.layers,
        layers_b=fb.layers,
        cross=cross.numpy(),
        self_a=full[:la, :la].numpy(),
        self_b=full[la:, la:].numpy(),
        undefined_a=tuple(reasons[:la]),
        undefined_b=tuple(reasons[la:]),
        matched=tuple(fa.layers[i] for i, _ in pairs),
        matched_cka=cross[ia, ib].numpy(),
        null_mean=null_mean,
        null_p95=null_p95,
        interval_low=low,
        interval_high=high,
        class_a=ra.class_cka,
        class_b=rb.class_cka,
        invariance_a=ra.invariance,
        invariance_b=rb.invariance,
        probe_a=ra.probe_accuracy,
        probe_b=rb.probe_accuracy,
        seconds=seconds,
        versions=_versions(),
        invariance_pooled_a=ra.invariance_pooled,
        invariance_pooled_b=rb.invariance_pooled,
        leave_one_out=_replicates(dropped, la, ra, rb),
        matching=matching,
        matched_b=tuple(fb.layers[j] for _, j in pairs) if matching == BY_DEPTH else (),
        tokens_a=fa.tokens,
        tokens_b=fb.tokens,
        unknown_layout_a=fa.unknown_layout,
        unknown_layout_b=fb.unknown_layout,
    )


def _stacked_leave_one_out(fa: Fingerprint, fb: Fingerprint, terms: PairTerms, constant: torch.Tensor) -> torch.Tensor:
    """[batches, La + Lb, La + Lb] the CKA of the stacked [A; B] layers with each minibatch left out: every cell of
    the cross-model and own maps gets its jackknife replicates (one subtraction and normalisation per batch)."""
    la = len(fa.layers)
    blocks = []
    for cross, sa, sb in zip(terms.cross, fa.self_hsic, fb.self_hsic, strict=True):
        blocks.append(torch.cat([torch.cat([sa, cross], 1), torch.cat([cross.T, sb], 1)], 0))
    if not blocks:
        return torch.zeros(0, la + len(fb.layers), la + len(fb.layers), dtype=torch.float64)
    total = torch.stack(blocks).sum(0)
    return torch.stack([normalise_hsic(total - block, constant)[0] for block in blocks])


def _replicates(dropped: torch.Tensor | None, la: int, ra, rb) -> dict[str, np.ndarray]:
    """The result's leave-one-out replicates by quantity (core.result.AnalysisResult.leave_one_out); empty for a
    preview."""
    if dropped is None:
        return {}
    out = {
        "cross": dropped[:, :la, la:].numpy(),
        "self_a": dropped[:, :la, :la].numpy(),
        "self_b": dropped[:, la:, la:].numpy(),
    }
    for side, readout in (("a", ra), ("b", rb)):
        out |= {f"{name}_{side}": values for name, values in readout.leave_one_out.items()}
    return out
