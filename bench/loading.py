"""Loading a checkpoint and measuring what its weights cannot say, as an upload arrives: bytes -> LoadedModel.

For a full-width CIFAR ResNet-18 (11.2 M parameters) saved three ways, each timed in this process after one
warm-up load (so the CIFAR-10 test split is already read, as it is in a running app):

- `bare`: a bare state dict with nothing beside it: max-pool, stem padding and normalisation all measured
  (the starting choice on all 256 calibration images, 3 other stem structures and 3 other normalisations on
  the first 128: 1,024 images forwarded, a quarter of them behind a max-pool; random weights send no finalist
  to the second half);
- `stated`: the same weights with a config.json-like source (a bundled or Hub model): accuracy measured once;
- `unmeasured`: CKA_LENS_CALIBRATION_IMAGES=0, parsing and the strict load alone.

    .venv/bin/python bench/loading.py --json bench/results/loading.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core import settings  # noqa: E402
from models import ArchConfig, build_resnet, calibration, load_uploaded  # noqa: E402
from models.loaded import SourceHints  # noqa: E402
from models.loader import load_bytes  # noqa: E402

STATED = SourceHints(method="supervised", mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.2435, 0.2616), origin="bench")


FORWARDED: list[int] = []  # images in each calibration forward pass of the latest load


def _counted(real):
    def run(module, images, mean, std):
        FORWARDED.append(len(images))
        return real(module, images, mean, std)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    calibration.run = _counted(calibration.run)  # run_many goes through it too
    torch.manual_seed(0)
    net = build_resnet(ArchConfig(depth=18, width=64, num_classes=10)).eval()
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    data = buffer.getvalue()
    cases = {
        "bare": lambda: load_uploaded(data, "resnet18.pt"),
        "stated": lambda: load_bytes(data, "resnet18.pt", "bench", STATED),
        "unmeasured": lambda: load_uploaded(data, "resnet18.pt"),
    }
    rows = {}
    for name, load in cases.items():
        os.environ[settings.CALIBRATION_IMAGES] = "0" if name == "unmeasured" else "256"
        load()  # warm-up: the test split read once, as in a running server
        times = []
        for _ in range(args.repeats):
            FORWARDED.clear()
            t0 = time.perf_counter()
            loaded = load()
            times.append(time.perf_counter() - t0)
        evidence = loaded.info.calibration
        rows[name] = {
            "median_s": round(statistics.median(times), 2),
            "max_s": round(max(times), 2),
            "images_forwarded": sum(FORWARDED),
            "measured": list(evidence.measured) if evidence else [],
        }
        print(f"{name:<11} median {rows[name]['median_s']:.2f} s, max {rows[name]['max_s']:.2f} s, {rows[name]}")
    report = {
        "what": "bytes -> LoadedModel for a full-width CIFAR ResNet-18 (torch.save of a state dict, 44.8 MB)",
        "calibration_images": 256,
        "threads": args.threads,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cases": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
