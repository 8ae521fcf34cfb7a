"""What concerns one network alone, per layer: class structure, invariance and probes (its own CKA heatmap comes
from the comparison's stacked HSIC, core.comparison.finalize)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from core.cka import cka_from_hsic
from core.data import CLASSES
from core.fingerprint import Fingerprint
from core.memory import release_freed
from core.probes import ridge_probe
from core.progress import Progress, no_progress

PROBE_METHOD = (
    "ridge classifier on one-hot targets (closed form, regularisation chosen by leave-one-out) on standardised "
    "features average-pooled to a 2x2 map, trained on the first 70% of the subset and scored on the rest"
)


@dataclass(frozen=True)
class Readouts:
    """What concerns one model alone, per layer."""

    class_cka: np.ndarray  # [L] CKA with the one-hot label kernel
    invariance: np.ndarray  # [L] CKA(layer(x), layer(t(x))); NaN when not computed
    probe_accuracy: np.ndarray  # [L] held-out linear-probe accuracy; NaN when not computed
    probe_seconds: float
    invariance_pooled: np.ndarray | None = None  # [L] the same on maps averaged over space; None when not computed
    # [batches, L] each read-out with one minibatch left out (keys class, invariance, invariance_pooled); empty
    # for a fingerprint without per-batch read-out terms
    leave_one_out: dict[str, np.ndarray] = field(default_factory=dict)


def readouts(fp: Fingerprint, progress: Progress = no_progress) -> Readouts:
    """Class structure, invariance and probes of one model from its fingerprint."""
    diag = sum(fp.self_hsic).diagonal()
    n_layers = len(fp.layers)
    class_cka = cka_from_hsic(fp.label_hsic[:-1], diag, fp.label_hsic[-1].expand(n_layers))
    invariance = cka_from_hsic(fp.inv_cross, diag, fp.inv_self) if fp.options.invariance else np.full(n_layers, np.nan)
    t0 = time.perf_counter()
    probes = _probe_layers(fp, progress) if fp.options.probes else np.full(n_layers, np.nan)
    seconds = time.perf_counter() - t0
    if not fp.batch_readouts:
        return Readouts(class_cka, invariance, probes, seconds)
    whole, dropped = _readout_cka(fp)
    pooled = whole["invariance_pooled"] if fp.options.invariance else None
    return Readouts(class_cka, invariance, probes, seconds, pooled, dropped)


def _readout_cka(fp: Fingerprint) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each read-out from the per-batch terms: over every batch ([L]) and with each batch left out ([batches, L]).
    Without invariance only class structure is there."""
    n = len(fp.layers)
    terms = torch.stack(fp.batch_readouts)  # [batches, terms, L + 1]
    diag = torch.stack([s.diagonal() for s in fp.self_hsic])  # [batches, L]
    out: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
    for k, (t, d) in enumerate(((terms.sum(0), diag.sum(0)), (terms.sum(0) - terms, diag.sum(0) - diag))):
        label, views, pooled = t[..., 0, :n], t[..., 1, :n], t[..., 3, :n]
        out[k]["class"] = cka_from_hsic(label, d, t[..., 0, n : n + 1].expand_as(label))
        if fp.options.invariance:
            out[k]["invariance"] = cka_from_hsic(views, d, t[..., 2, :n])
            out[k]["invariance_pooled"] = cka_from_hsic(pooled, t[..., 4, :n], t[..., 5, :n])
    return out


def no_readouts(fp: Fingerprint) -> Readouts:
    """Every read-out NaN: for a preview, whose sums and probe features are not complete."""
    missing = np.full(len(fp.layers), np.nan)
    return Readouts(missing, missing, missing, 0.0, missing if fp.options.invariance else None)


def _probe_layers(fp: Fingerprint, progress: Progress) -> np.ndarray:
    """Held-out accuracy of a linear probe per layer; the subset's seeded order fixes the split."""
    y = torch.cat(fp.labels)
    split = len(y) - fp.options.held_out(len(y))
    accuracies = []
    for layer, batches in enumerate(fp.pooled):  # one layer's features read at a time, a batch at a time
        accuracies.append(ridge_probe(batches, y, split, len(CLASSES)))
        release_freed()  # the widest layers' d x d products (~150 MB at d = 2,048) stayed in the heap
        progress(f"{fp.model.source}: linear probes", layer + 1, len(fp.layers))
    return np.asarray(accuracies)
