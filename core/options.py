"""How an analysis is computed: every default in one table, and the options that are part of every cache key."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.cka import KERNELS
from core.errors import OptionsError

ESTIMATORS = ("debiased", "biased")  # unbiased HSIC, or the plain (biased) estimate
SIGMA_RANGE = (0.05, 10.0)  # the RBF bandwidths a person may choose, as fractions of the median distance


@dataclass(frozen=True)
class Defaults:
    """Every analysis default, in one table: SubsetSpec, AnalysisOptions, the app's sidebar and the command line
    read them here, so the app and `python -m cli compare` start from the same analysis."""

    split: str = "test"  # CIFAR-10 split the subset is drawn from ("test" is embedded; "train" needs a download)
    classes: tuple[int, ...] = tuple(range(10))  # class indices 0-9: all ten
    per_class: int = 100  # images per class: 1,000 images for the ten classes
    series_per_class: int = 50  # images per class for `cli training`, whose every snapshot pair is an analysis
    subset_seed: int = 0  # chooses which images and their order
    estimator: str = "debiased"  # one of ESTIMATORS; the biased one is inflated for wide features
    kernel: str = "linear"  # "linear" or "rbf"
    sigma: float = 0.8  # RBF bandwidth as a fraction of the median distance
    batch_size: int = 100  # images per CKA minibatch (10 minibatches for 1,000 images: enough for an interval)
    invariance: bool = True  # also run each model on seeded SimCLR views (a second forward pass)
    probes: bool = True  # per-layer linear probes on pooled features
    probe_holdout: float = 0.3  # share of the subset held out to score the probes
    permutations: int = 20  # permutation-null samples for the matched layers
    seed: int = 0  # seeds the augmented views and the permutations
    # at least this many classes: with one, every label is the same, so a probe is right by default (100% at every
    # layer) and class structure (CKA with the labels) has nothing to measure
    min_classes: int = 2


DEFAULTS = Defaults()


@dataclass(frozen=True)
class AnalysisOptions:
    """How CKA and the read-outs are computed (defaults: DEFAULTS). Part of every cache key."""

    kernel: str = DEFAULTS.kernel
    debiased: bool = DEFAULTS.estimator == "debiased"
    sigma: float = DEFAULTS.sigma
    batch_size: int = DEFAULTS.batch_size
    invariance: bool = DEFAULTS.invariance
    probes: bool = DEFAULTS.probes
    probe_holdout: float = DEFAULTS.probe_holdout
    permutations: int = DEFAULTS.permutations
    seed: int = DEFAULTS.seed

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise OptionsError(f"kernel must be one of {KERNELS}, not {self.kernel!r}")
        if self.batch_size < (4 if self.debiased else 2):
            raise OptionsError("batch size must be at least 4 for the debiased estimator (2 for biased)")
        if not 0 < self.probe_holdout < 1:
            raise OptionsError("probe_holdout must be between 0 and 1")
        if not math.isfinite(self.sigma) or self.sigma <= 0 or self.permutations < 0:
            raise OptionsError("sigma must be a positive finite number; permutations must be >= 0")

    def check_subset(self, images: int) -> None:
        """Refuse a subset too small for these options before anything is computed: CKA needs at least one
        minibatch of `min_batch` images (a smaller last one is dropped)."""
        if images < self.min_batch:
            raise OptionsError(
                f"{images} images make no minibatch of at least {self.min_batch} (what the "
                f"{'debiased' if self.debiased else 'biased'} estimator needs); choose more classes or images per class"
            )

    def held_out(self, n: int) -> int:
        """How many of n images the linear probes are scored on (the last ones in the subset's seeded order); they
        train on the others."""
        return max(1, int(round(n * self.probe_holdout)))

    def min_per_class(self, classes: int) -> int:
        """The fewest images per class with which both parts of the probes' split (trained on, held out) have at
        least as many images as there are classes: fewer, and some class could not be in both."""
        k = 1
        while min(self.held_out(classes * k), classes * k - self.held_out(classes * k)) < classes:
            k += 1
        return k

    @property
    def min_batch(self) -> int:
        """The smallest minibatch the estimator accepts (4 debiased, 2 biased)."""
        return 4 if self.debiased else 2

    def batch_count(self, n: int) -> int:
        """Minibatches of a subset of n images (the last one may be smaller)."""
        return -(-n // self.batch_size)
