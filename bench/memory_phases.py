"""Where the peak memory of one analysis comes from: resident memory read at every progress step and every second.

    CIFAR10_DIR=../shared/data/cifar10 .venv/bin/python bench/memory_phases.py --n 50000 --split train \
        --json bench/results/memory_phases.json

Two full-width random ResNet-18s, compare() with the default options, as `bench/end_to_end.py` runs it. The
peak (VmHWM) is reset once the networks are made, as there. A thread reads VmRSS, RssAnon (the heap and
torch's tensors) and RssFile (mapped libraries and files) every `--every` seconds; the report gives, for each
stage the engine reports, the highest of each and when it was reached, and the step at which the peak was set.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import torch  # noqa: E402

from core.options import AnalysisOptions  # noqa: E402
from core.pipeline import compare  # noqa: E402

FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def _status() -> dict[str, float]:
    """The FIELDS of /proc/self/status, in MiB."""
    return {field: round(common._status_kb(field) / 1024, 1) for field in FIELDS}


class Recorder:
    """The stage the engine last reported, and resident memory at each report and every `every` seconds."""

    def __init__(self, every: float) -> None:
        self.t0 = time.perf_counter()
        self.stage = "set-up"
        self.samples: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._thread.start()

    def record(self, where: str) -> None:
        with self._lock:
            t = round(time.perf_counter() - self.t0, 1)
            self.samples.append({"t": t, "stage": self.stage, "at": where, **_status()})

    def _sample(self, every: float) -> None:
        while not self._stop.wait(every):
            self.record("timer")

    def progress(self, stage: str, done: int, total: int) -> None:
        self.stage = stage
        self.record(f"{done}/{total}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.record("end")


def summary(samples: list[dict]) -> dict:
    """Per stage: the highest reading of each field and when; and the first reading at the final peak."""
    stages: dict[str, dict] = {}
    for s in samples:
        entry = stages.setdefault(s["stage"], {"from_s": s["t"], "to_s": s["t"]})
        entry["to_s"] = s["t"]
        for field in ("VmRSS", "RssAnon", "RssFile"):
            if s[field] > entry.get(f"max_{field}", -1):
                entry[f"max_{field}"] = s[field]
                entry[f"max_{field}_at_s"] = s["t"]
    peak = samples[-1]["VmHWM"]
    first = next(s for s in samples if s["VmHWM"] >= peak)
    return {"stages": stages, "peak_mib": peak, "peak_first_seen": first}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--split", default="train", choices=("train", "test"))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--every", type=float, default=1.0, help="seconds between timer readings")
    parser.add_argument("--json", type=Path, help="write the readings and the summary here")
    args = parser.parse_args(argv)
    common.set_threads(args.threads)
    model_a, model_b = common.random_resnets(2, 64, 18)
    reset = common.reset_peak_rss()
    recorder = Recorder(args.every)
    subset = common.cifar_images(args.n, split=args.split)
    recorder.stage = "set-up done"
    recorder.record("subset loaded")
    compare(model_a, model_b, subset, AnalysisOptions(batch_size=args.batch), torch.device("cpu"), recorder.progress)
    recorder.stop()
    report = {
        "machine": common.machine_summary(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "peak_counts_from": "the networks made" if reset else "process start",
        **summary(recorder.samples),
        "samples": recorder.samples,
    }
    for stage, entry in report["stages"].items():
        print(
            f"{stage:45s} {entry['from_s']:8.0f}-{entry['to_s']:6.0f} s  RSS max {entry['max_VmRSS']:7.0f} MiB "
            f"(anon {entry['max_RssAnon']:.0f}, file {entry['max_RssFile']:.0f})"
        )
    first = report["peak_first_seen"]
    print(f"peak {report['peak_mib']:.0f} MiB, first seen at {first['t']:.0f} s in '{first['stage']}' ({first['at']})")
    if args.json:
        args.json.write_text(json.dumps(report))  # ~2,500 readings at 50,000 images: one line


if __name__ == "__main__":
    main()
