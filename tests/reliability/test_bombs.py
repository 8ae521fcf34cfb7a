"""Small files that declare huge memory: each is refused before it is allocated, in a process of its own whose
growth is measured, so a bomb that got through could not take the test run down with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.models.hostile import BOMBS

MAX_GROWTH_MB = 400
# Reads one file and loads it; prints the refusal and the growth of the process's peak memory while loading.
_LOAD = """
import json, resource, sys
from pathlib import Path
from models import CheckpointError, load_uploaded
data = Path(sys.argv[1]).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_uploaded(data, "upload.pt")
    refusal = None
except CheckpointError as err:
    refusal = str(err)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"refusal": refusal, "grown_mb": grown / 1024}))
"""


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_bomb_is_refused_without_growing_the_process(kind, tmp_path):
    path = tmp_path / "bomb.pt"
    path.write_bytes(BOMBS[kind]())
    assert path.stat().st_size < 2_000_000 or kind == "many empty tensors"
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[2],
        preexec_fn=_limit_memory,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["refusal"] is not None and "Traceback" not in outcome["refusal"]
    assert len(outcome["refusal"]) < 600
    assert outcome["grown_mb"] < MAX_GROWTH_MB, outcome


def _limit_memory() -> None:
    """Past 3 GB of data the child dies rather than the machine swapping: a bomb that got through fails the test."""
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))
