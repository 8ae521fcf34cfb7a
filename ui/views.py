"""The Images page's views: the first images of the subset and their SimCLR views, as the invariance read-out
draws them. Computed here, drawn by the page."""

from __future__ import annotations

import threading

import numpy as np
from cachetools import LRUCache, cached

from core.augment import simclr_views
from core.data import SubsetSpec
from core.fingerprint import view_generator
from core.options import AnalysisOptions
from ui.service import subset_of


@cached(LRUCache(maxsize=4), lock=threading.Lock())
def augmented_views(
    spec: SubsetSpec, options: AnalysisOptions, count: int, device: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first `count` images of the first minibatch and their SimCLR views, drawn exactly as the invariance
    analysis draws them (same seed, same device, the whole minibatch at once): uint8 HWC arrays and the labels."""
    subset = subset_of(spec)
    batch = subset.images[: options.batch_size].to(device)
    views = simclr_views(batch, view_generator(options.seed, 0, device))[:count]
    originals = batch[:count].permute(0, 2, 3, 1).cpu().numpy()
    drawn = (views.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype("uint8")
    return originals, drawn, subset.labels[:count].numpy()
