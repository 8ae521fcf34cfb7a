"""The direction of dependency: the engine imports no networks, app or Streamlit; networks import no app.

One fresh interpreter imports every module of each package, lowest floor first, and notes after each package
what has been loaded so far, so an import hidden in a function body that runs at import time is caught too. Since
a floor may import those below it, what is loaded after a floor and all below it is that floor's own reach.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ("core", "models", "training")  # lowest first
PROBE = """
import importlib, json, pkgutil, sys
found = {}
for floor in sys.argv[1:]:
    package = importlib.import_module(floor)
    modules = [m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("__")]
    names = [floor] + [f"{floor}.{m}" for m in modules]
    for name in names:
        importlib.import_module(name)
    found[floor] = {"imported": names, "loaded": sorted({m.split(".")[0] for m in sys.modules})}
print(json.dumps(found))
"""


def _probe(_: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, *FLOORS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def loaded(once_per_run) -> dict:
    """What importing each floor and every floor below it loaded (one interpreter per test run)."""
    return once_per_run("floor-imports", _probe)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        # marked slow: it runs early and makes what the other tests here read (tests/conftest.py orders the tests)
        pytest.param("core", {"models", "ui", "streamlit", "cli", "training", "pages"}, marks=pytest.mark.slow),
        ("models", {"ui", "streamlit", "cli", "training", "pages"}),
        ("training", {"ui", "streamlit", "cli", "pages"}),
    ],
)
def test_lower_floors_never_import_upper_ones(loaded, package, forbidden):
    found = loaded[package]
    assert len(found["imported"]) > 3, found["imported"]  # every module of the package was really imported
    assert not forbidden & set(found["loaded"]), sorted(forbidden & set(found["loaded"]))


def test_the_engine_needs_only_torch_and_numpy(loaded):
    third_party = {"huggingface_hub", "safetensors", "altair", "pandas"}  # (torchvision itself loads tqdm)
    found = third_party & set(loaded["core"]["loaded"])
    assert not found, sorted(found)


# The engine's own imports, chosen deliberately: torch and torchvision (feature extraction), numpy, and psutil
# (free and resident memory for the memory plan and the heap budget, instead of reading /proc by hand).
ENGINE_IMPORTS = {"core", "torch", "torchvision", "numpy", "psutil"}


def test_the_engine_imports_only_the_standard_library_and_its_chosen_packages():
    imported = set()
    for path in (ROOT / "core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert "psutil" in imported  # the memory readings go through it
    third_party = imported - set(sys.stdlib_module_names)
    assert third_party <= ENGINE_IMPORTS, sorted(third_party - ENGINE_IMPORTS)
