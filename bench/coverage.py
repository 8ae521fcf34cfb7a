"""Does the matched-layer "95% interval" cover the truth 95% of the time? Measured on disjoint slices.

The CIFAR-10 training split (test split when it is absent) is shuffled once; its first `--truth` images give an
independent truth (matched-layer CKA of the bundled pair, at the same minibatch size), and `--subsets` disjoint
slices of `--n` images after them are analysed as a person would. For each slice and layer: does the interval
contain the truth? From the same per-minibatch terms: the jackknife-t interval CKA Lens reports (none below
`core.interval.MIN_BATCHES` minibatches), the same without that minimum, and the percentile bootstrap over
minibatches it reported before (200 resamples), for comparison. Coverage counts (slice, layer) pairs that have an
interval.

    python bench/coverage.py --data-dir ../shared/data/cifar10 --json bench/results/coverage.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.comparison import pair_terms  # noqa: E402
from core.data import DataError, Subset, SubsetSpec, load_split  # noqa: E402
from core.fingerprint import fingerprint  # noqa: E402
from core.interval import jackknife_interval  # noqa: E402
from core.options import AnalysisOptions  # noqa: E402
from models import DEFAULT_PAIR, load_model  # noqa: E402

CPU = torch.device("cpu")


def _slice(images: np.ndarray, labels: np.ndarray, start: int, n: int, key: int) -> Subset:
    """Images [start, start + n) of the shuffled split as a Subset (the spec only names it for cache keys)."""
    chosen = torch.from_numpy(np.ascontiguousarray(images[start : start + n].transpose(0, 3, 1, 2)))
    return Subset(
        SubsetSpec("train", per_class=1, seed=key),
        chosen,
        torch.from_numpy(labels[start : start + n]),
        np.arange(start, start + n),
        "shuffled split",
    )


def _matched_terms(a, b, subset: Subset, options: AnalysisOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per minibatch and matched layer: cross HSIC, A's and B's self HSIC ([batches, layers] each)."""
    fa, fb = fingerprint(a, subset, options, CPU), fingerprint(b, subset, options, CPU)
    terms = pair_terms(fa, fb, CPU)
    index_b = {name: j for j, name in enumerate(fb.layers)}
    ia = [i for i, name in enumerate(fa.layers) if name in index_b]
    ib = [index_b[fa.layers[i]] for i in ia]
    cross = np.stack([c[ia, ib].numpy() for c in terms.cross])
    self_a = np.stack([s.diagonal()[ia].numpy() for s in fa.self_hsic])
    self_b = np.stack([s.diagonal()[ib].numpy() for s in fb.self_hsic])
    return cross, self_a, self_b


def _cka(cross: np.ndarray, self_a: np.ndarray, self_b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return (weights @ cross) / np.sqrt((weights @ self_a) * (weights @ self_b))


def _intervals(cross, self_a, self_b, rng) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    batches = len(cross)
    estimate = _cka(cross, self_a, self_b, np.ones(batches))
    loo = np.stack([_cka(cross, self_a, self_b, (np.arange(batches) != k).astype(float)) for k in range(batches)])
    counts = np.stack([np.bincount(rng.integers(0, batches, batches), minlength=batches) for _ in range(200)])
    boot = np.stack([_cka(cross, self_a, self_b, c.astype(float)) for c in counts])
    return {
        "jackknife-t": jackknife_interval(estimate, loo),  # as CKA Lens reports it: none below 5 minibatches
        "jackknife-t, any number of minibatches": jackknife_interval(estimate, loo, min_batches=2),
        "percentile bootstrap": (np.percentile(boot, 2.5, 0), np.percentile(boot, 97.5, 0)),
    }


def _share(hits, widths) -> float | None:
    """Coverage over the (slice, layer) pairs that have an interval; None when none has one."""
    given = np.isfinite(np.asarray(widths))
    return float(np.asarray(hits)[given].mean()) if given.any() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n", type=int, default=1000, help="images per analysed slice")
    parser.add_argument("--subsets", type=int, default=20)
    parser.add_argument("--truth", type=int, default=10000, help="images behind the truth")
    parser.add_argument("--batch-sizes", default="100,250", help="comma-separated")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    split = "train"
    try:
        images, labels, _ = load_split("train", args.data_dir)
    except DataError:
        split = "test"
        images, labels, _ = load_split("test", args.data_dir)
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels = images[order], labels[order]
    if args.truth + args.subsets * args.n > len(labels):
        raise SystemExit(f"the {split} split has {len(labels)} images: fewer than --truth + --subsets * --n")
    a, b = (load_model(spec) for spec in DEFAULT_PAIR)
    rng = np.random.default_rng(0)
    report = {"split": split, "n": args.n, "subsets": args.subsets, "truth_images": args.truth, "by_batch_size": {}}
    for batch in (int(x) for x in args.batch_sizes.split(",")):
        t0 = time.perf_counter()
        options = AnalysisOptions(batch_size=batch, invariance=False, probes=False, permutations=0)
        cross, self_a, self_b = _matched_terms(a, b, _slice(images, labels, 0, args.truth, -1), options)
        truth = _cka(cross, self_a, self_b, np.ones(len(cross)))
        hits = {"jackknife-t": [], "jackknife-t, any number of minibatches": [], "percentile bootstrap": []}
        widths = {name: [] for name in hits}
        for k in range(args.subsets):
            subset = _slice(images, labels, args.truth + k * args.n, args.n, k)
            for name, (low, high) in _intervals(*_matched_terms(a, b, subset, options), rng).items():
                hits[name].append((low <= truth) & (truth <= high))
                widths[name].append(high - low)
        report["by_batch_size"][batch] = {
            "minibatches": -(-args.n // batch),
            **{
                name: {
                    "given": float(np.mean(np.isfinite(widths[name]))),  # share of (slice, layer) with an interval
                    "coverage": _share(hits[name], widths[name]),
                    "coverage_per_subset_min": min(
                        (_share(h, w) for h, w in zip(hits[name], widths[name], strict=True) if np.isfinite(w).any()),
                        default=None,
                    ),
                    "median_width": float(np.median(widths[name])) if np.isfinite(widths[name]).any() else None,
                }
                for name in hits
            },
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps({batch: report["by_batch_size"][batch]}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
