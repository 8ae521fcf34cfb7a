"""What concerns one network alone, per layer: class structure, invariance and probes (its own CKA heatmap comes
from the comparison's stacked HSIC, core.comparison.finalize)."""

from __future__ import annotations

import time
from dataclasses import dataclass

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


def readouts(fp: Fingerprint, progress: Progress = no_progress) -> Readouts:
    """Class structure, invariance and probes of one model from its fingerprint."""
    diag = sum(fp.self_hsic).diagonal()
    n_layers = len(fp.layers)
    class_cka = cka_from_hsic(fp.label_hsic[:-1], diag, fp.label_hsic[-1].expand(n_layers))
    invariance = cka_from_hsic(fp.inv_cross, diag, fp.inv_self) if fp.options.invariance else np.full(n_layers, np.nan)
    t0 = time.perf_counter()
    probes = _probe_layers(fp, progress) if fp.options.probes else np.full(n_layers, np.nan)
    return Readouts(class_cka, invariance, probes, time.perf_counter() - t0)


def no_readouts(fp: Fingerprint) -> Readouts:
    """Every read-out NaN: for a preview, whose sums and probe features are not complete."""
    missing = np.full(len(fp.layers), np.nan)
    return Readouts(missing, missing, missing, 0.0)


def _probe_layers(fp: Fingerprint, progress: Progress) -> np.ndarray:
    """Held-out accuracy of a linear probe per layer; the subset's seeded order fixes the split."""
    y = torch.cat(fp.labels)
    split = len(y) - max(1, int(round(len(y) * fp.options.probe_holdout)))
    accuracies = []
    for layer, batches in enumerate(fp.pooled):  # one layer's features read at a time, a batch at a time
        accuracies.append(ridge_probe(batches, y, split, len(CLASSES)))
        release_freed()  # the widest layers' d x d products (~150 MB at d = 2,048) stayed in the heap
        progress(f"{fp.model.source}: linear probes", layer + 1, len(fp.layers))
    return np.asarray(accuracies)
