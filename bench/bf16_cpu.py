"""bf16 autocast forward passes on the CPU: their speed, and what they do to the read-outs of the bundled pair.

Only the forward passes run under CPU bf16 autocast (the feature extractor's call and stream wrapped; the features
are cast back to float32, by the wrapper or by the Grams, which the stream runs with autocast off); Grams, CKA and
probes are unchanged. One thread; n test images, default options (batch 100).

    .venv/bin/python bench/bf16_cpu.py 500
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself, for `common`

import common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import core.features as features  # noqa: E402
from core.data import SubsetSpec, load_subset, normalize  # noqa: E402
from core.options import AnalysisOptions  # noqa: E402
from core.pipeline import compare  # noqa: E402
from models import DEFAULT_PAIR, load_model  # noqa: E402

FLOAT32_CALL = features.FeatureExtractor.__call__
FLOAT32_STREAM = features.FeatureExtractor.stream


def _bf16_call(self, images: torch.Tensor) -> list[torch.Tensor]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return [f.float() for f in FLOAT32_CALL(self, images)]


def _bf16_stream(self, images: torch.Tensor, consume) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        FLOAT32_STREAM(self, images, consume)


def _best_of_3(call, extractor, images: torch.Tensor) -> float:
    call(extractor, images)  # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        call(extractor, images)
        times.append(time.perf_counter() - t0)
    return min(times)


def _errors(f32, bf) -> dict:
    """How far bf16 moved each read-out from float32 (matched CKA also against its interval's half-width)."""
    half_width = (f32.interval_high - f32.interval_low) / 2
    moved = np.abs(bf.matched_cka - f32.matched_cka)
    out = {
        "matched max |diff|": float(np.nanmax(moved)),
        "matched |diff| / half-width max": float(np.nanmax(moved / half_width)),
        "half-width min": float(np.nanmin(half_width)),
        "cross max |diff|": float(np.nanmax(np.abs(bf.cross - f32.cross))),
    }
    for key in ("class_a", "class_b", "invariance_a", "invariance_b", "probe_a", "probe_b"):
        out[f"{key} max |diff|"] = float(np.nanmax(np.abs(getattr(bf, key) - getattr(f32, key))))
    return out


def main(n: int) -> None:
    torch.set_num_threads(1)
    out: dict = {"n": n, "capability": torch.backends.cpu.get_cpu_capability()}
    subset = load_subset(SubsetSpec(per_class=n // 10, seed=0))
    pairs = {
        "bundled w16": tuple(load_model(spec) for spec in DEFAULT_PAIR),
        "resnet18-w64 (random, seeds 0 and 1)": tuple(common.random_resnets(2, 64, 18)),
    }
    for name, (a, b) in pairs.items():
        extractor = features.FeatureExtractor(a.module, a.layers, torch.device("cpu"))
        images = normalize(subset.images[:250], a.info.mean, a.info.std)
        for label, call in (("float32", FLOAT32_CALL), ("bf16", _bf16_call)):
            out[f"{name}: forward {label} s per 250 images"] = _best_of_3(call, extractor, images)
        results = {}
        for label, stream in (("float32", FLOAT32_STREAM), ("bf16", _bf16_stream)):
            features.FeatureExtractor.stream = stream  # the fingerprint's forward passes
            t0 = time.perf_counter()
            results[label] = compare(a, b, subset, AnalysisOptions(), torch.device("cpu"))
            out[f"{name}: compare {label} s"] = time.perf_counter() - t0
            out[f"{name}: compare {label} stages"] = results[label].seconds
        features.FeatureExtractor.stream = FLOAT32_STREAM
        out[f"{name}: errors"] = _errors(results["float32"], results["bf16"])
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
