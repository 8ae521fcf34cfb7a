"""The CUDA path against the CPU path: skipped (and reported as skipped) where there is no CUDA device.

On a GPU the features come from a bf16 forward pass and the Grams are float32 products accumulated
in float64; these tests bound what that costs in CKA against the float64 CPU engine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.cka import MinibatchCKA
from core.data import SubsetSpec, load_subset
from core.options import AnalysisOptions
from core.pipeline import compare
from models import load_model

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


def _wide_related_layers(seed: int, n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Two 'models' of three ReLU layers each, related through shared inputs, some 16,384 wide."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 512, generator=g, dtype=torch.float64)
    maps = [torch.randn(512, d, generator=g, dtype=torch.float64) for d in (16384, 4096, 256)]
    a = [(base @ m).relu() for m in maps]
    b = [(base @ m + 0.5 * torch.randn(n, m.shape[1], generator=g, dtype=torch.float64)).relu() for m in maps]
    return a, b


@pytest.mark.parametrize("tf32", [False, True])
def test_float32_grams_on_the_gpu_match_the_float64_cpu_engine(tf32, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", tf32)
    a, b = _wide_related_layers(0, 512)
    want, got = MinibatchCKA(3, 3), MinibatchCKA(3, 3)
    for rows in (slice(0, 256), slice(256, 512)):
        want.update([f[rows] for f in a], [f[rows] for f in b])
        got.update([f[rows].float().to(CUDA) for f in a], [f[rows].float().to(CUDA) for f in b])
    np.testing.assert_allclose(got.compute().numpy(), want.compute().numpy(), atol=1e-4)


def test_pipeline_on_the_gpu_matches_the_cpu(tiny_specs):
    """Same models and images: bf16 features move CKA, class structure and invariance only slightly."""
    subset = load_subset(SubsetSpec(per_class=20, seed=0))
    options = AnalysisOptions(batch_size=50, permutations=0, probes=False)
    a, b = load_model(tiny_specs["a"]), load_model(tiny_specs["b"])
    on_cpu = compare(a, b, subset, options, torch.device("cpu"))
    on_gpu = compare(a, b, subset, options, CUDA)
    np.testing.assert_allclose(on_gpu.cross, on_cpu.cross, atol=2e-2)
    np.testing.assert_allclose(on_gpu.class_a, on_cpu.class_a, atol=2e-2)
    assert on_gpu.layers_a == on_cpu.layers_a and on_gpu.used_images == on_cpu.used_images
