"""The ridge probe's precision on every layer of a random full-width ResNet-18: float64, float32 products,
float32 products and eigendecomposition (accuracy and time of each, one thread).

    .venv/bin/python bench/probe_precision.py 3000
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself, for `common`

import common  # noqa: E402
import torch  # noqa: E402

from core.data import CLASSES  # noqa: E402
from core.fingerprint import fingerprint  # noqa: E402
from core.options import AnalysisOptions  # noqa: E402
from core.probes import ridge_probe  # noqa: E402

EIGH = torch.linalg.eigh


def _eigh_float64_out_of_float32(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A float64 eigensolver for the float32 probe (its d x d matrix, already rounded to float32, solved in float64)."""
    values, vectors = EIGH(matrix.double())
    return values, vectors


def main(n: int) -> None:
    torch.set_num_threads(1)
    options = AnalysisOptions(batch_size=250, invariance=False, permutations=0)
    network = common.random_resnets(1, 64, 18)[0]
    fp = fingerprint(network, common.cifar_images(n), options, torch.device("cpu"))
    y = torch.cat(fp.labels)
    split = len(y) - max(1, int(round(len(y) * options.probe_holdout)))
    variants = {
        "float64": (torch.float64, EIGH),
        "float32 products": (torch.float32, _eigh_float64_out_of_float32),
        "float32": (torch.float32, EIGH),
    }
    seconds, worst = dict.fromkeys(variants, 0.0), dict.fromkeys(variants, 0.0)
    for layer, batches in zip(fp.layers, fp.pooled, strict=True):
        accuracy = {}
        for name, (dtype, eigh) in variants.items():
            torch.linalg.eigh = eigh
            t0 = time.perf_counter()
            accuracy[name] = ridge_probe(batches, y, split, len(CLASSES), dtype)
            seconds[name] += time.perf_counter() - t0
            worst[name] = max(worst[name], abs(accuracy[name] - accuracy["float64"]))
        print(layer, batches[0].shape[1], accuracy, flush=True)
    torch.linalg.eigh = EIGH
    print("seconds", seconds, "max |accuracy - float64|", worst, "held-out images", len(y) - split)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
