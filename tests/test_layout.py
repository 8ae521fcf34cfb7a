"""The direction of dependency: the engine imports no networks, app or Streamlit; networks import no app.

Each check imports every module of a package in a fresh interpreter and looks at what else got loaded,
so an import hidden in a function body that runs at import time is caught too.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [sys.argv[1]] + [f"{sys.argv[1]}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
                         if not m.name.startswith("__")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


@functools.cache
def _load(package: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, package], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("core", {"models", "ui", "streamlit", "cli", "training", "pages"}),
        ("models", {"ui", "streamlit", "cli", "training", "pages"}),
        ("training", {"ui", "streamlit", "cli", "pages"}),
    ],
)
def test_lower_floors_never_import_upper_ones(package, forbidden):
    found = _load(package)
    assert len(found["imported"]) > 3, found["imported"]  # every module of the package was really imported
    assert not forbidden & set(found["loaded"]), sorted(forbidden & set(found["loaded"]))


def test_the_engine_needs_only_torch_and_numpy():
    loaded = set(_load("core")["loaded"])
    third_party = {"huggingface_hub", "safetensors", "altair", "pandas"}  # (torchvision itself loads tqdm)
    assert not third_party & loaded, sorted(third_party & loaded)


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
