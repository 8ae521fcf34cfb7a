"""Importing the engine: without a GPU, triton (~100 MiB resident, brought in by torchvision's import of
torch._dynamo) stays out of the process, and torchvision's feature extraction still works."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

CHECK = """
import sys
import core.features
import torch
from torchvision.models.feature_extraction import create_feature_extractor
net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
out = create_feature_extractor(net, {"1": "relu"})(torch.ones(1, 3))
print(repr(sys.modules.get("triton", "absent")), tuple(out["relu"].shape))
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU, triton is left to torch")
def test_without_a_gpu_triton_is_kept_out_and_torchvision_works():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["None", "(1,", "2)"]
