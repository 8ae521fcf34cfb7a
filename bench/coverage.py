"""Does the matched-layer "95% interval" cover the truth 95% of the time? Measured on disjoint slices.

The CIFAR-10 training split (test split when it is absent) is shuffled once; its first `--truth` images give an
independent truth (matched-layer CKA of the bundled pair, at the same minibatch size), and `--subsets` disjoint
slices of `--n` images after them are analysed as a person would. For each slice and layer: does the interval
contain the truth? From the same per-minibatch terms: the jackknife-t interval CKA Lens reports (none below
`core.interval.MIN_BATCHES` minibatches), the same without that minimum, and the percentile bootstrap over
minibatches it reported before (200 resamples), for comparison. Coverage counts (slice, layer) pairs that have an
interval.

With --verdicts, the quantities the findings' verdicts read are checked too, each with the interval CKA Lens gives
it (the paired delete-one-minibatch jackknife on the quantity itself, core.findings): differences of matched CKA
between neighbouring block outputs, each read-out per layer (class structure, pooled invariance), final-stage
rises of the read-outs, the ceiling (A vs another seed of A's method) per layer and the pair's drop minus the
ceiling's. Coverage is given per family, with each slice's hits. --split test uses the test split (10,000 images:
e.g. --truth 5000 --subsets 5 --n 1000).

    python bench/coverage.py --data-dir ../shared/data/cifar10 --json bench/results/coverage.json
    python bench/coverage.py --split test --truth 5000 --subsets 5 --verdicts --batch-sizes 100
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
from core.distributed import Cluster  # noqa: E402
from core.findings import Estimate, PairEstimates, matched_estimate  # noqa: E402
from core.fingerprint import fingerprint  # noqa: E402
from core.interval import jackknife_interval  # noqa: E402
from core.names import OUTPUT, kind  # noqa: E402
from core.options import AnalysisOptions  # noqa: E402
from core.pipeline import compare_pairs  # noqa: E402
from core.result import AnalysisResult  # noqa: E402
from models import DEFAULT_PAIR, load_model, siblings  # noqa: E402

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


def verdict_quantities(result: AnalysisResult, ceiling: AnalysisResult) -> dict[str, dict[str, Estimate]]:
    """By family, the named quantities the verdicts read, each an Estimate with its jackknife interval."""
    pair = PairEstimates(result)
    outputs = [n for n in result.matched if kind(n) == OUTPUT]
    end = outputs[-1]
    families: dict[str, dict[str, Estimate]] = {"difference": {}, "read-out": {}, "read-out rise": {}}
    for x, y in zip(outputs, outputs[1:], strict=False):
        families["difference"][f"{x} - {y}"] = pair.matched(x) - pair.matched(y)
    for what in ("class", "invariance_pooled"):
        for side, layers in (("a", result.layers_a), ("b", result.layers_b)):
            for layer in layers:
                families["read-out"][f"{what}_{side} {layer}"] = pair.readout(what, side, layer)
            rise = pair.readout(what, side, result.matched[-1]) - pair.readout(what, side, pair.intermediate[-1])
            families["read-out rise"][f"{what}_{side} final stage"] = rise
    families["ceiling"] = {n: matched_estimate(ceiling, n) for n in result.matched}
    low = min(pair.intermediate, key=lambda n: pair.matched(n).value)
    drop = pair.matched(low) - pair.matched(end)
    families["ceiling difference"] = {
        "drop minus the ceiling's drop": drop - (matched_estimate(ceiling, low) - matched_estimate(ceiling, end))
    }
    return families


def verdict_coverage(images, labels, args, batch: int) -> dict:
    """Coverage per family of the verdicts' quantities: truth from the first --truth images, one interval per
    slice, hits per slice."""
    a, b = (load_model(spec) for spec in DEFAULT_PAIR)
    a2 = load_model(siblings(DEFAULT_PAIR[0]).specs[0])
    options = AnalysisOptions(batch_size=batch, probes=False, permutations=0)

    def quantities(subset: Subset) -> dict[str, dict[str, Estimate]]:
        pair, ceiling = compare_pairs([(a, b), (a, a2)], subset, options, Cluster.single(CPU))
        return verdict_quantities(pair, ceiling)

    truth = quantities(_slice(images, labels, 0, args.truth, -1))
    hits: dict[str, list[list[bool]]] = {family: [] for family in truth}
    widths: dict[str, list[float]] = {family: [] for family in truth}
    for k in range(args.subsets):
        found = quantities(_slice(images, labels, args.truth + k * args.n, args.n, k))
        for family, named in found.items():
            given = [(e, truth[family][n].value) for n, e in named.items() if np.isfinite(e.half)]
            hits[family].append([bool(e.value - e.half <= t <= e.value + e.half) for e, t in given])
            widths[family] += [2 * e.half for e, _ in given]
    return {
        family: {
            "coverage": float(np.mean([h for per in hits[family] for h in per])) if widths[family] else None,
            "hits_per_slice": [f"{sum(per)}/{len(per)}" for per in hits[family]],
            "median_width": float(np.median(widths[family])) if widths[family] else None,
        }
        for family in hits
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n", type=int, default=1000, help="images per analysed slice")
    parser.add_argument("--subsets", type=int, default=20)
    parser.add_argument("--truth", type=int, default=10000, help="images behind the truth")
    parser.add_argument("--batch-sizes", default="100,250", help="comma-separated")
    parser.add_argument("--json", default=None)
    parser.add_argument("--split", default="train", choices=("train", "test"), help="train falls back to test")
    parser.add_argument("--verdicts", action="store_true", help="also the verdicts' quantities, per family")
    args = parser.parse_args()
    torch.manual_seed(0)
    split = args.split
    try:
        images, labels, _ = load_split(split, args.data_dir)
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
            **({"verdicts": verdict_coverage(images, labels, args, batch)} if args.verdicts else {}),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps({batch: report["by_batch_size"][batch]}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
