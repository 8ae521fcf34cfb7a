"""The CPU's private copy of a network: its own channels-last weights (before) or the original's tensors shared.

    .venv/bin/python bench/private_copy.py --n 1000 --rounds 3 --json bench/results/private_copy.json

Each measurement is a fresh process: a full-width random ResNet-18 made, then `core.fingerprint.fingerprint` on n
test images with the default options (batch 100, invariance and probe features included), which prepares the
private copy. "copied" is the copy as it was made before (`copy.deepcopy`, weights converted to channels-last);
"shared" is `core.features.private_copy`. The input is channels-last in both. The peak (VmHWM) counts from after
the network is made. The two alternate, `--rounds` times; the centred Grams of the two must agree to the bit.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import torch  # noqa: E402

import core.features as features  # noqa: E402
from core.fingerprint import fingerprint  # noqa: E402
from core.options import AnalysisOptions  # noqa: E402

COPIES = {
    "copied": lambda module, device: copy.deepcopy(module).eval().to(device, memory_format=torch.channels_last),
    "shared": features.private_copy,
}


def work(args: argparse.Namespace) -> dict:
    common.set_threads(args.threads)
    features.private_copy = COPIES[args.worker]
    model = common.random_resnets(1, 64, 18)[0]
    subset = common.cifar_images(args.n)
    common.reset_peak_rss()
    setup = common.rss_mb()
    t0 = time.perf_counter()
    fp = fingerprint(model, subset, AnalysisOptions(), torch.device("cpu"))
    seconds = time.perf_counter() - t0
    torch.save(torch.stack(list(fp.self_hsic)), args.out)
    return {"seconds": seconds, "setup_mb": setup, "peak_mb": common.peak_rss_mb()}


def main(argv: list[str] | None = None) -> None:
    args = common.alternating_parser(__doc__, n=1000, rounds=3, workers=COPIES).parse_args(argv)
    if args.worker:
        common.emit(work(args))
        return
    grams = {name: Path(f"/tmp/private_copy_{name}.pt") for name in COPIES}
    extra = ["--n", str(args.n), "--threads", str(args.threads)]
    runs = common.alternating_runs(Path(__file__), list(COPIES), args.rounds, extra, grams)
    copied, shared = (torch.load(grams[name]) for name in COPIES)
    report = {
        "machine": common.machine_summary(),
        "args": {k: str(v) for k, v in vars(args).items() if k not in ("worker", "out")},
        "runs": runs,
        "median_s": {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()},
        "median_peak_mb": {name: statistics.median(r["peak_mb"] for r in rs) for name, rs in runs.items()},
        "median_setup_mb": {name: statistics.median(r["setup_mb"] for r in rs) for name, rs in runs.items()},
        "grams_identical": bool(torch.equal(copied, shared)),
    }
    print(json.dumps({k: report[k] for k in ("median_s", "median_peak_mb", "grams_identical")}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
