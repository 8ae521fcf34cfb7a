"""Small files that declare huge memory: each is refused before it is allocated, in a process of its own whose
growth is measured, so a bomb that got through could not take the test run down with it.

One interpreter imports the loader once and forks a child per bomb: a forked child's peak resident memory starts at
what it inherits, so each child's growth is its own bomb's alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.models.hostile import BOMBS

MAX_GROWTH_MB = 400
DATA_LIMIT = 3 << 30  # past 3 GB of data a child dies rather than the machine swapping: a bomb that got through fails
# Given the data limit and the files: per file, a child that reads it and loads it, reporting the refusal and its
# peak memory's growth while loading.
_LOAD = """
import json, os, resource, sys
from pathlib import Path
from models import CheckpointError, load_uploaded

LIMIT = int(sys.argv[1])

def measure(path):
    resource.setrlimit(resource.RLIMIT_DATA, (LIMIT, LIMIT))
    data = Path(path).read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        load_uploaded(data, "upload.pt")
        refusal = None
    except CheckpointError as err:
        refusal = str(err)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {"refusal": refusal, "grown_mb": grown / 1024}

for path in sys.argv[2:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            outcome = measure(path)
        except BaseException as err:
            outcome = {"crashed": repr(err)[:500]}
        os.write(write, json.dumps(outcome).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"path": path, "status": status, "outcome": json.loads(text) if text else None}))
"""


@pytest.fixture(scope="module")
def outcomes(once_per_run) -> dict[str, dict]:
    """Per kind of bomb: how its child ended and what it reported (one interpreter per test run)."""
    return once_per_run("bombs", _outcomes)


def _outcomes(folder: Path) -> dict[str, dict]:
    paths = {}
    for i, (kind, make) in enumerate(sorted(BOMBS.items())):
        paths[kind] = folder / f"bomb{i}.pt"
        paths[kind].write_bytes(make())
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, str(DATA_LIMIT), *map(str, paths.values())],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    by_path = {line["path"]: line for line in map(json.loads, done.stdout.strip().splitlines())}
    return {kind: by_path[str(path)] | {"size": path.stat().st_size} for kind, path in paths.items()}


# the first kind is marked slow, so it runs early and makes the outcomes while the other kinds wait for nothing at
# the end (tests/conftest.py orders the tests)
@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=pytest.mark.slow) if i == 0 else k for i, k in enumerate(sorted(BOMBS))]
)
def test_a_bomb_is_refused_without_growing_the_process(kind, outcomes):
    ended = outcomes[kind]
    assert ended["size"] < 2_000_000 or kind == "many empty tensors"
    assert ended["status"] == 0 and ended["outcome"] is not None, ended  # the child was not killed
    outcome = ended["outcome"]
    assert "crashed" not in outcome, outcome
    assert outcome["refusal"] is not None and "Traceback" not in outcome["refusal"]
    assert len(outcome["refusal"]) < 600
    assert outcome["grown_mb"] < MAX_GROWTH_MB, outcome
