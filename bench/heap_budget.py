"""When a forward pass gives its freed activations back to the system, and what that does to the peak and the time.

    .venv/bin/python bench/heap_budget.py --n 6000 --rounds 2 --json bench/results/heap_budget.json

Each measurement is a fresh process: a full-width random ResNet-18 made, then `core.fingerprint.fingerprint_steps`
on n test images with the default options (batch 100, invariance and probe features). Policies:

- "batch": the C heap trimmed after each minibatch (`release_freed`), as before `core.memory.HeapBudget`;
- "never": never trimmed during the pass;
- "layer": trimmed after every layer read (a budget of no slack);
- "budget": `HeapBudget` as shipped (trimmed once the resident set passes its resting level, plus what the
  fingerprint holds, by 8 largest layer outputs).

The peak (VmHWM) is reset after each step, so each step's peak is read apart: the report gives each step's peak
above the resident set at the start, the highest over the first and over the last ten steps, and the time. The
centred Grams must agree to the bit between policies.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import torch  # noqa: E402

import core.memory as memory  # noqa: E402
from core.fingerprint import fingerprint_steps  # noqa: E402
from core.memory import release_freed  # noqa: E402
from core.options import AnalysisOptions  # noqa: E402

SLACK = {"batch": math.inf, "never": math.inf, "layer": 0.0, "budget": memory.HEAP_SLACK_LAYERS}


def work(args: argparse.Namespace) -> dict:
    common.set_threads(args.threads)
    memory.HEAP_SLACK_LAYERS = SLACK[args.worker]
    model = common.random_resnets(1, 64, 18)[0]
    subset = common.cifar_images(args.n)
    release_freed()
    common.reset_peak_rss()
    start = common.rss_mb()
    peaks = []
    t0 = time.perf_counter()
    for step in fingerprint_steps(model, subset, AnalysisOptions(), torch.device("cpu")):
        if args.worker == "batch":
            release_freed()
        peaks.append(round(common.peak_rss_mb() - start, 1))
        common.reset_peak_rss()
        whole = step
    seconds = time.perf_counter() - t0
    torch.save(torch.stack(list(whole.self_hsic)), args.out)
    return {
        "seconds": round(seconds, 2),
        "start_mb": round(start, 1),
        "peak_above_start_mb": max(peaks),
        "first_10_steps_mb": max(peaks[:10]),
        "last_10_steps_mb": max(peaks[-10:]),
        "held_at_end_mb": round(common.rss_mb() - start, 1),
        "steps_mb": peaks,
    }


def main(argv: list[str] | None = None) -> None:
    parser = common.alternating_parser(__doc__, n=6000, rounds=2, workers=SLACK)
    parser.add_argument("--policies", default=",".join(SLACK))
    args = parser.parse_args(argv)
    if args.worker:
        common.emit(work(args))
        return
    policies = args.policies.split(",")
    grams = {name: Path(f"/tmp/heap_budget_{name}.pt") for name in policies}
    extra = ["--n", str(args.n), "--threads", str(args.threads)]
    runs = common.alternating_runs(Path(__file__), policies, args.rounds, extra, grams)
    first = torch.load(grams[policies[0]])
    report = {
        "machine": common.machine_summary(),
        "args": {k: str(v) for k, v in vars(args).items() if k not in ("worker", "out")},
        "runs": runs,
        "median_s": {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()},
        "median_peak_above_start_mb": {
            name: statistics.median(r["peak_above_start_mb"] for r in rs) for name, rs in runs.items()
        },
        "grams_identical": all(torch.equal(first, torch.load(grams[name])) for name in policies),
    }
    print(json.dumps({k: report[k] for k in ("median_s", "median_peak_above_start_mb", "grams_identical")}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
