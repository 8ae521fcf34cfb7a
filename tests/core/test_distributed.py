"""torchrun with 2 CPU processes (gloo) gives the single-process result (the same command run here) to 1e-9."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli.main import main

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--per-class", "8", "--batch-size", "20", "--permutations", "4", "--device", "cpu", "--floor-pairs", "2"]


def _torchrun(args: list[str], out: Path) -> dict:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cli"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*torchrun, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_two_gloo_processes_match_one(tiny_specs, tmp_path):
    common = ["compare", "--a", tiny_specs["a"], "--b", tiny_specs["b"], *ARGS]
    assert main([*common, "--out", str(tmp_path / "one.json")]) == 0  # one process: this one, on one thread
    one = json.loads((tmp_path / "one.json").read_text())
    two = _torchrun([*common, "--out", str(tmp_path / "two.json")], tmp_path / "two.json")
    keys = ("cross", "self_a", "self_b", "class_a", "invariance_a", "probe_b", "null_mean", "interval_high")
    for key in (*keys, "invariance_pooled_a", "floor_untrained", "floor_untrained_high", "untrained_b"):
        np.testing.assert_allclose(np.array(two[key], float), np.array(one[key], float), atol=1e-9, err_msg=key)
    assert two["used_images"] == one["used_images"] == 80
    for key in ("cross", "class_b", "invariance_pooled_a"):  # the jackknife's replicates, batch by batch
        np.testing.assert_allclose(
            np.array(two["leave_one_out"][key], float), np.array(one["leave_one_out"][key], float), atol=1e-9
        )
