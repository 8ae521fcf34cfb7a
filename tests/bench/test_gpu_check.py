"""bench/gpu_check.sh: its CPU dry run read back from the one JSON file it writes, and its wheel folder.

The dry run (`--device cpu --tiny`) goes through every step the GPU machine will run, the installation
from the wheel folder into a private folder included, so that a typo cannot wait for the first GPU.
`make test` fills the wheel folder first (`make gpu-wheels`); without it these tests fail and say so.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench import gpu_check

ROOT = Path(__file__).resolve().parents[2]
GPU_WHEELS = gpu_check.WHEELS / "cp312"  # the GPU machine's Python
HOST_WHEELS = gpu_check.WHEELS / f"cp{sys.version_info.major}{sys.version_info.minor}"  # ours, for the dry run
GPU_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux"}
GPU_MARKERS |= {"platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython"}
# what the GPU machine brings; torch and torchvision bring their own dependencies too
GPU_MACHINE = {"torch", "torchvision", "numpy", "safetensors", "huggingface-hub", "tqdm"}
OURS = {"core", "models", "tests", "bench", "conftest", "common", "cka_engine", "end_to_end", "gpu_check"}
# modules no distribution provides: the running script, Cython's and sysconfig's runtime modules, and one
# that torch.distributed generates from a template
PSEUDO = {"__main__", "__mp_main__", "sitecustomize", "cython_runtime", "_remote_module_non_scriptable"}
PSEUDO_PREFIXES = ("_cython_", "_sysconfigdata_", "test_")  # the last: test modules, imported by file
STEPS = ["environment", "install", "tests", "engine", "end_to_end"]
# written beside the dry run's PYTHONPATH: every Python process of the check lists its modules when it exits
RECORD_IMPORTS = """
import atexit, os, sys

def _record():
    path = os.path.join(os.environ["GPU_CHECK_IMPORTS"], f"{os.getpid()}.txt")
    with open(path, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))

atexit.register(_record)
"""


def _require_wheels() -> None:
    missing = [str(folder) for folder in (GPU_WHEELS, HOST_WHEELS) if not folder.is_dir()]
    if missing:
        pytest.fail(f"no wheel folder {missing}: run `make gpu-wheels` (`make test` does it first)")


def _pins() -> dict[str, str]:
    """bench/gpu_requirements.txt as {canonical name: version}."""
    lines = [line.strip() for line in gpu_check.REQUIREMENTS.read_text().splitlines()]
    reqs = [Requirement(line) for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(r.name): str(r.specifier).removeprefix("==") for r in reqs}


def _dist(wheel: Path) -> str:
    return canonicalize_name(wheel.name.split("-")[0])


def _owners() -> dict[str, set[str]]:
    """Top-level import name -> the distributions providing it: installed here, or in the host's wheels."""
    owners = {
        top: {canonicalize_name(d) for d in dists} for top, dists in importlib.metadata.packages_distributions().items()
    }
    for wheel in HOST_WHEELS.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                top = name.split("/")[0].removesuffix(".py")
                if not top.endswith((".dist-info", ".data")):
                    owners.setdefault(top, set()).add(_dist(wheel))
    return owners


@pytest.fixture(scope="module")
def dry_run(once_per_run) -> tuple[dict, str, set[str]]:
    """The dry run through the shell script: (its JSON report, its log, every module any of its processes imported),
    run once per test run (`once_per_run`)."""
    _require_wheels()
    made = once_per_run("gpu-check-dry-run", _run_dry)
    return made["report"], made["log"], set(made["modules"])


def _run_dry(tmp: Path) -> dict:
    for folder in ("hook", "imports"):
        (tmp / folder).mkdir(exist_ok=True)
    (tmp / "hook" / "sitecustomize.py").write_text(RECORD_IMPORTS)
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(tmp / "hook"), GPU_CHECK_IMPORTS=str(tmp / "imports"))
    out = tmp / "gpu_check.json"
    cmd = ["bash", "bench/gpu_check.sh", "--device", "cpu", "--tiny", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=590)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    records = [set(f.read_text().split()) for f in (tmp / "imports").iterdir()]
    # pip's process is pip's own affair (its vendored rich tries `import attr`, optional)
    modules = set().union(*(r for r in records if "pip._internal" not in r))
    log = out.with_suffix(".log").read_text()
    return {"report": json.loads(out.read_text()), "log": log, "modules": sorted(modules)}


@pytest.mark.slow
def test_every_step_ran_and_said_how_it_ended(dry_run):
    report, _, _ = dry_run
    assert list(report["steps"]) == STEPS and report["finished"]
    status = {name: step["status"] for name, step in report["steps"].items()}
    gpu_tests = "passed" if torch.cuda.is_available() else "skipped"
    assert status == {"environment": "passed", "install": "passed", "tests": gpu_tests, "engine": "passed"} | {
        "end_to_end": "passed"
    }
    assert all(step["seconds"] > 0 for step in report["steps"].values())
    assert report["total_s"] < report["budget_s"] == gpu_check.BUDGET_S
    assert report["sizes"]["e2e_n"] == gpu_check.TINY.e2e_n and report["device"] == "cpu"


def test_the_environment_is_read_by_the_python_that_runs_the_steps(dry_run):
    figures = dry_run[0]["steps"]["environment"]["figures"]
    assert figures["torch"] == torch.__version__
    assert figures["python"] == ".".join(map(str, sys.version_info[:3]))
    assert figures["cuda_available"] == torch.cuda.is_available()


def test_packages_come_from_the_wheels_into_a_private_folder_that_is_removed(dry_run):
    figures = dry_run[0]["steps"]["install"]["figures"]
    assert figures["wheels"] == str(HOST_WHEELS) and figures["pip"] == "-m pip"
    places = figures["imported_from"]
    assert set(places) == {"pytest", "pytest_timeout", "matplotlib.pyplot", "cka"}
    sites = {Path(path).parts[: Path(path).parts.index("site") + 1] for path in places.values()}
    assert len(sites) == 1, places  # one private folder, not the venv's site-packages
    site = Path(*sites.pop())
    assert site.parent.name.startswith("cka-lens-gpu-check-") and not site.exists()


def test_the_gpu_tests_are_found_and_each_outcome_recorded(dry_run):
    step = dry_run[0]["steps"]["tests"]
    figures = step["figures"]
    assert figures["files"] == ["tests/core/test_gpu.py"]
    assert sum(figures["counts"].values()) == len(figures["tests"]) >= 3
    if not torch.cuda.is_available():
        assert figures["counts"]["skipped"] == len(figures["tests"])
        assert "needs a CUDA device" in step["reason"]


def test_the_engine_and_pytorch_cka_agree_on_identical_features(dry_run):
    figures = dry_run[0]["steps"]["engine"]["figures"]
    ours, peer = figures["ours"], figures["pytorch-cka"]
    assert figures["layers"] == 19  # every layer of a ResNet-18: stem, 8 blocks x 2, pooled, logits
    assert 0 < ours["best_s"] < 60 and 0 < peer["best_s"] < 60
    assert 0 <= peer["max_abs_diff_vs_ours"] <= gpu_check.AGREEMENT
    assert math.isclose(figures["speedup_vs_pytorch_cka"], peer["best_s"] / ours["best_s"])
    assert figures["target_met"] == (figures["speedup_vs_pytorch_cka"] >= gpu_check.TARGET_SPEEDUP)


def test_end_to_end_ran_two_resnet50s_with_every_readout(dry_run):
    figures = dry_run[0]["steps"]["end_to_end"]["figures"]
    assert figures["depth"] == 50 and figures["used_images"] == gpu_check.TINY.e2e_n
    assert figures["layers"] == gpu_check.RESNET50_LAYERS
    assert figures["finite"] == dict.fromkeys(("class_a", "invariance_a", "probe_a"), gpu_check.RESNET50_LAYERS)
    assert figures["warmup_n"] == gpu_check.TINY.e2e_warmup_n and figures["warmup_s"] > 0
    stages = figures["stages_s"]
    assert set(stages) >= {"forward", "cka", "probes"} and all(stages[k] > 0 for k in ("forward", "cka", "probes"))
    assert math.isclose(sum(stages.values()), figures["wall_s"], rel_tol=1e-6)
    assert figures["target_met"] == (figures["wall_s"] <= gpu_check.TARGET_E2E_S)


def test_end_to_end_ran_a_cross_architecture_pair_at_each_networks_input(dry_run):
    pair = dry_run[0]["steps"]["end_to_end"]["figures"]["cross_architecture"]
    assert pair["pair"] == gpu_check.TINY.pair and pair["used_images"] == gpu_check.TINY.pair_n
    assert pair["arch"] == [spec.strip() for spec in gpu_check.TINY.pair.split(" vs ")]
    assert all(layers > 2 for layers in pair["layers"]) and pair["wall_s"] > 0 and pair["estimate_mb"] > 0
    assert dry_run[0]["summary"]["cross_architecture_s"] == pair["wall_s"]


def test_the_summary_puts_each_figure_beside_its_target(dry_run):
    report = dry_run[0]
    summary, steps = report["summary"], report["steps"]
    assert summary["end_to_end_s"] == steps["end_to_end"]["figures"]["wall_s"]
    assert summary["engine_speedup_vs_pytorch_cka"] == steps["engine"]["figures"]["speedup_vs_pytorch_cka"]
    assert summary["end_to_end_target_s"] == 10 and summary["engine_speedup_target"] == 2
    assert summary["statuses"] == {name: step["status"] for name, step in steps.items()}


def test_the_log_holds_every_step(dry_run):
    _, log, _ = dry_run
    for name in STEPS:
        assert f"===== {name}: " in log
    assert "bench/cka_engine.py" in log and "bench/end_to_end.py" in log and "--depth 50" in log


def test_the_gpu_path_imports_only_what_the_gpu_machine_has(dry_run):
    """Every module any process of the check imported, worker processes included, is the standard
    library's, ours, or comes from a distribution the GPU machine has or the wheel folder brings."""
    _, _, modules = dry_run
    allowed = {canonicalize_name(name) for name in GPU_MACHINE | set(_pins())}
    todo = ["torch", "torchvision"]
    while todo:  # what torch and torchvision depend on (their own installation brings it)
        for spec in importlib.metadata.requires(todo.pop()) or []:
            req = Requirement(spec)
            name = canonicalize_name(req.name)
            if name not in allowed and (req.marker is None or req.marker.evaluate(GPU_MARKERS | {"extra": ""})):
                allowed.add(name)
                todo.append(name)
    owners = _owners()
    tops = {m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - OURS - PSEUDO
    tops = {top for top in tops if not top.startswith(PSEUDO_PREFIXES)}
    foreign = {top: owners.get(top) for top in tops if not owners.get(top, set()) & allowed}
    assert not foreign, f"imported on the GPU path but not on the GPU machine: {foreign}"
    assert {"cka", "matplotlib", "pytest"} <= tops  # the record saw the worker processes and pytest


def test_every_pin_has_one_wheel_for_each_python():
    _require_wheels()
    pins = _pins()
    for folder in (GPU_WHEELS, HOST_WHEELS):
        found = {}
        for wheel in folder.glob("*.whl"):
            found.setdefault(_dist(wheel), []).append(wheel.name)
        assert sorted(found) == sorted(pins), folder
        for name, wheels in found.items():
            assert len(wheels) == 1 and wheels[0].split("-")[1] == pins[name], wheels
    binary = [w.name for w in GPU_WHEELS.glob("*.whl") if not w.name.endswith("-none-any.whl")]
    # built for CPython 3.12, or for the stable ABI of every CPython since (psutil's abi3 wheel)
    assert all(("-cp312-" in name or "-abi3-" in name) and "x86_64" in name for name in binary), binary


def test_the_wheels_import_nothing_the_gpu_machine_lacks():
    """With --no-deps nothing is resolved there: every dependency of a wheel must be listed or there."""
    _require_wheels()
    have = set(_pins()) | {canonicalize_name(name) for name in GPU_MACHINE}
    missing = {}
    for wheel in GPU_WHEELS.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        for line in meta.splitlines():
            if line.startswith("Requires-Dist:"):
                req = Requirement(line.removeprefix("Requires-Dist:").strip())
                needed = req.marker is None or req.marker.evaluate(GPU_MARKERS | {"extra": ""})
                if needed and canonicalize_name(req.name) not in have:
                    missing.setdefault(wheel.name, []).append(str(req))
    assert not missing


def test_pip_runs_from_its_own_wheel_where_the_python_has_none(tmp_path):
    _require_wheels()
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, "bench/gpu_check.py", "--device", "cpu", "--steps", "install", "--pip-from-wheel"]
    subprocess.run([*cmd, "--out", str(out)], cwd=ROOT, check=True, capture_output=True, timeout=300)
    step = json.loads(out.read_text())["steps"]["install"]
    assert step["status"] == "passed", step
    assert step["figures"]["pip"].endswith(".whl/pip") and "/site/" in step["figures"]["imported_from"]["cka"]


def test_missing_wheels_fail_the_install_and_say_what_to_do(tmp_path):
    out = tmp_path / "gpu_check.json"
    rc = gpu_check.main(["--steps", "install", "--wheels", str(tmp_path / "none"), "--out", str(out)])
    step = json.loads(out.read_text())["steps"]["install"]
    assert rc == 1 and step["status"] == "failed" and "make gpu-wheels" in step["reason"]


def test_a_step_that_raises_is_recorded_and_the_next_still_runs(tmp_path, monkeypatch):
    def broken(check):
        raise KeyError("typo")

    monkeypatch.setitem(gpu_check.STEPS, "environment", broken)
    monkeypatch.setitem(gpu_check.STEPS, "install", lambda check: gpu_check.Step("passed", 1.0))
    out = tmp_path / "gpu_check.json"
    rc = gpu_check.main(["--steps", "environment,install", "--out", str(out)])
    steps = json.loads(out.read_text())["steps"]
    assert rc == 1 and steps["environment"]["reason"] == "KeyError: 'typo'"
    assert steps["environment"]["status"] == "failed" and steps["install"]["status"] == "passed"


def test_a_spent_budget_skips_what_is_left_and_still_writes_the_file(tmp_path):
    _require_wheels()
    out = tmp_path / "gpu_check.json"
    rc = gpu_check.main(["--device", "cpu", "--budget", "0", "--out", str(out)])
    report = json.loads(out.read_text())
    assert rc == 0 and report["finished"] and list(report["steps"]) == STEPS
    for step in report["steps"].values():
        assert step["status"] == "skipped" and "budget" in step["reason"]
