"""The GPU, proven in one short run: the GPU tests, the engine against pytorch-cka, the end-to-end figure.

`bash bench/gpu_check.sh` runs this on a machine with one NVIDIA GPU and no network, which brings its
own Python, torch and torchvision (not our pinned versions). Every step runs in its own process under
coreutils `timeout` (which ends the step's whole process group, benchmark workers included) within an
overall budget, and a step that fails never stops the next one. Each step's outcome (passed, failed or
skipped, and why), its seconds and its figures go into ONE JSON file, rewritten after every step so that
a run cut short still leaves what it measured; everything the steps print goes to a log beside it.

    environment  Python, torch, torchvision and numpy versions; the GPU as torch and nvidia-smi see it
    install      the few packages that machine lacks (bench/gpu_requirements.txt: pytest, pytorch-cka and
                 what they import) from the wheels in bench/gpu_wheels/cpXY (`make gpu-wheels`):
                 pip install --no-index --no-deps --target a temporary folder, put first on PYTHONPATH;
                 nothing goes into the system, and pip's own wheel stands in where pip is missing
    tests        the tests marked gpu (pytest; the JUnit XML read back)
    engine       bench/cka_engine.py: our engine, its float64 twin, the bare-Gram floor and pytorch-cka on
                 identical features held on the device
    end_to_end   bench/end_to_end.py --depth 50: compare() with the default options (every layer, the
                 augmented views' invariance, probes, permutation null, interval) on two randomly
                 initialised CIFAR-stem ResNet-50s and all 10,000 test images, after a warm-up on 500;
                 then one cross-architecture pair in its own process: untrained torchvision ViT-B/16 vs
                 ResNet-50, each at its own 224 px input, on 2,000 test images (torchvision's, since timm
                 is not on that machine)

`--device cpu --tiny` is the dry run of every step on a CPU with tiny sizes (tests/bench/test_gpu_check.py).
The targets are printed beside the figures, never asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "bench" / "gpu_requirements.txt"
WHEELS = ROOT / "bench" / "gpu_wheels"
AGREEMENT = 1e-3  # max |CKA difference| from pytorch-cka that still counts as agreeing (both float32)
TARGET_E2E_S = 10.0  # ResNet-50 pair, 10,000 images, end to end
TARGET_SPEEDUP = 2.0  # pytorch-cka's GPU time over ours, identical features
RESNET50_LAYERS = 35  # stem, 16 bottlenecks x (residual, output), pooled, logits
# seconds each step may take at most; together the 8.5-minute budget
LIMITS = {"environment": 30, "install": 60, "tests": 120, "engine": 120, "end_to_end": 180}
BUDGET_S = 510


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark step does."""

    engine_tools: tuple[str, ...]  # bench/cka_engine.py's tools, each in its own process
    engine_n: int  # images whose features every engine tool reads
    engine_width: int  # first-stage width of the engine's two ResNet-18s (64: standard)
    engine_batch: int  # CKA minibatch, images
    engine_repeats: int  # timed runs per tool (best reported), after one untimed warm-up
    e2e_n: int  # test images of the end-to-end figure
    e2e_width: int  # first-stage width of the two ResNet-50s (64: standard)
    e2e_batch: int  # the pipeline's CKA minibatch, images
    e2e_warmup_n: int  # images of a first compare() in the same process, timed apart
    threads: int  # torch intra-op threads per benchmark process (0: torch's default, one per core)
    pair: str  # the cross-architecture pair of the end-to-end step, 'SPEC_A vs SPEC_B'
    pair_n: int  # its test images


FULL = Sizes(
    engine_tools=("ours", "ours-f64", "gram-floor", "pytorch-cka"),
    engine_n=2000,
    engine_width=64,
    engine_batch=256,
    engine_repeats=3,
    e2e_n=10_000,
    e2e_width=64,
    e2e_batch=250,
    e2e_warmup_n=500,
    threads=0,
    pair="torchvision:vit_b_16 vs torchvision:resnet50",
    pair_n=2000,
)
# the dry run: every step and every code path of this file, in about a minute on two busy CPU cores
# (one thread: two threads spin against each other there; two engine tools: each is one more process)
TINY = Sizes(
    engine_tools=("ours", "pytorch-cka"),
    engine_n=128,
    engine_width=4,
    engine_batch=64,
    engine_repeats=1,
    e2e_n=200,
    e2e_width=4,
    e2e_batch=50,
    e2e_warmup_n=50,
    threads=1,
    pair="torchvision:mobilenet_v3_small vs torchvision:resnet18",  # the same code path, a few seconds on a CPU
    pair_n=20,
)


@dataclass(frozen=True)
class Step:
    """One step's outcome, as written to the JSON file."""

    status: str  # "passed", "failed" or "skipped"
    seconds: float  # wall clock of the step, its processes' start-up included
    reason: str = ""  # why it failed or was skipped
    figures: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ran:
    """How one command under `timeout` ended."""

    rc: int | None  # exit status (124 or 137: `timeout` ended it); None: not started, the budget was spent
    output: str  # stdout and stderr together
    seconds: float
    limit: float  # the seconds it was given

    def failure(self) -> Step | None:
        """The Step for a command that did not end normally; None when it exited 0."""
        if self.rc is None:
            return Step("skipped", 0.0, "the budget was spent before this step")
        if self.rc in (124, 137):
            return Step("failed", self.seconds, f"timed out after {self.limit:.0f} s (its limit or what was left)")
        if self.rc != 0:
            return Step("failed", self.seconds, f"exit {self.rc}: " + " | ".join(self.output.strip().splitlines()[-3:]))
        return None

    def json_tail(self) -> dict:
        """The JSON object the command printed last (on a line of its own)."""
        return json.loads(next(line for line in reversed(self.output.splitlines()) if line.startswith("{")))


class Check:
    """Runs the steps within the budget, logging each and rewriting the JSON after each."""

    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.workdir = workdir
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.budget
        self.log = args.out.with_suffix(".log")
        self.env = _step_environment(workdir)
        sizes = TINY if args.tiny else FULL
        self.report: dict = {
            "what": "bench/gpu_check.sh: GPU tests, engine vs pytorch-cka, end to end",
            "command": [sys.executable, *sys.argv],
            "device": args.device,
            "tiny": args.tiny,
            "sizes": asdict(sizes),
            "budget_s": args.budget,
            "limits_s": LIMITS,
            "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "finished": False,
            "steps": {},
        }
        self.sizes = sizes

    def run(self, name: str, cmd: list[str]) -> Ran:
        """`cmd` under `timeout`, given this step's limit or what is left of the budget if less."""
        limit = min(LIMITS[name], self.deadline - time.monotonic())
        if limit < 5:
            return Ran(None, "", 0.0, limit)
        t0 = time.monotonic()
        proc = subprocess.run(
            ["timeout", "--kill-after=10", f"{limit:.0f}", *cmd],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        with self.log.open("a") as f:
            f.write(f"\n===== {name}: {' '.join(cmd)}\n{proc.stdout}\n===== {name}: exit {proc.returncode}\n")
        return Ran(proc.returncode, proc.stdout, time.monotonic() - t0, limit)

    def record(self, name: str, step: Step) -> None:
        self.report["steps"][name] = asdict(step)
        self.report["total_s"] = time.monotonic() - self.t0
        self.args.out.write_text(json.dumps(self.report, indent=1))
        line = f"{name:12s} {step.status:7s} {step.seconds:6.1f} s  {step.reason}"
        print(line, flush=True)
        with self.log.open("a") as f:
            f.write(line + "\n")


# --- the steps ----------------------------------------------------------------------------------


def _step_environment(workdir: Path) -> dict[str, str]:
    """What every step runs with: the packages installed in `workdir` first on the path, headless plots."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(workdir / "site"), env.get("PYTHONPATH")) if p)
    env["MPLBACKEND"] = "Agg"  # pytorch-cka imports matplotlib.pyplot; no display there
    env["MPLCONFIGDIR"] = str(workdir / "matplotlib")
    env["HF_HUB_OFFLINE"] = "1"  # no network: a Hub look-up must fail at once
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugins we bring (the tests step names them), on any machine
    return env


def step_environment(check: Check) -> Step:
    """Versions and the GPU, read by the Python that runs every step."""
    ran = check.run("environment", [sys.executable, str(Path(__file__)), "--environment"])
    if failure := ran.failure():
        return failure
    figures = ran.json_tail()
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,power.limit", "--format=csv,noheader"]
        try:
            smi = subprocess.run(query, capture_output=True, text=True, timeout=20)
            figures["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        except subprocess.TimeoutExpired:
            figures["nvidia_smi"] = "no answer within 20 s"
    if check.args.device == "cuda" and not figures["cuda_available"]:
        return Step("failed", ran.seconds, "torch sees no CUDA device", figures)
    return Step("passed", ran.seconds, "", figures)


def environment() -> dict:
    """What the steps will run on (printed as one JSON line by `--environment`)."""
    import numpy
    import torch
    import torchvision

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {
            "gpu": props.name,
            "gpu_count": torch.cuda.device_count(),
            "capability": list(torch.cuda.get_device_capability(0)),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "bf16": torch.cuda.is_bf16_supported(),
            "cudnn": torch.backends.cudnn.version(),
        }
    return info


def _pip(wheels: Path, from_wheel: bool) -> list[str]:
    """How to run pip: the Python's own, else (or if asked) pip's wheel in the wheel folder, run from its zip."""
    if importlib.util.find_spec("pip") is not None and not from_wheel:
        return [sys.executable, "-m", "pip"]
    wheel = next(iter(sorted(wheels.glob("pip-*.whl"))), None)
    if wheel is None:
        raise FileNotFoundError(f"this Python has no pip, and {wheels} holds no pip wheel")
    return [sys.executable, str(wheel / "pip")]


def step_install(check: Check) -> Step:
    """The missing packages from the wheel folder into the private target, then imported to prove it."""
    wheels = check.args.wheels / f"cp{sys.version_info.major}{sys.version_info.minor}"
    if not wheels.is_dir():
        reason = f"no wheel folder {wheels}: run `make gpu-wheels` where PyPI is reachable, and carry it along"
        return Step("failed", 0.0, reason)
    try:
        pip = _pip(wheels, check.args.pip_from_wheel)
    except FileNotFoundError as err:
        return Step("failed", 0.0, str(err))
    # pip's configuration on our machines adds local package folders: none of it may help here
    for key in [k for k in check.env if k.startswith("PIP_")]:
        del check.env[key]
    check.env["PIP_CONFIG_FILE"] = os.devnull
    target = check.workdir / "site"
    cmd = [*pip, "install", "--no-index", "--no-deps", "--find-links", str(wheels), "--target", str(target)]
    cmd += ["--disable-pip-version-check", "--no-warn-script-location", "--no-compile", "-q", "-r", str(REQUIREMENTS)]
    installed = check.run("install", cmd)
    if failure := installed.failure():
        return failure
    # what pytest and pytorch-cka import, without torch (the engine step imports cka itself)
    probe = (
        "import importlib, importlib.util, json; "
        "mods = [importlib.import_module(m) for m in ('pytest', 'pytest_timeout', 'matplotlib.pyplot')]; "
        "print(json.dumps({m.__name__: m.__file__ for m in mods} | {'cka': importlib.util.find_spec('cka').origin}))"
    )
    imported = check.run("install", [sys.executable, "-c", probe])
    seconds = installed.seconds + imported.seconds
    if failure := imported.failure():
        return Step(failure.status, seconds, "installed, but not importable: " + failure.reason)
    figures = {"wheels": str(wheels), "pip": " ".join(pip[1:]), "imported_from": imported.json_tail()}
    return Step("passed", seconds, "", figures)


def step_tests(check: Check) -> Step:
    """Every test marked gpu, in the files that mark any."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py") if "mark.gpu" in p.read_text())
    if not files:
        return Step("failed", 0.0, "no test file under tests/ marks a test gpu")
    xml = check.workdir / "tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-p", "pytest_timeout", "-p", "no:cacheprovider", "-m", "gpu"]
    cmd += ["--junitxml", str(xml), *files]
    ran = check.run("tests", cmd)
    if ran.rc is None or not xml.is_file():
        return ran.failure() or Step("failed", ran.seconds, "pytest wrote no report")
    tests = [_junit_case(case) for case in ET.parse(xml).iter("testcase")]
    counts = {outcome: sum(t["outcome"] == outcome for t in tests) for outcome in ("passed", "failed", "skipped")}
    figures = {"files": files, "counts": counts, "tests": tests}
    if ran.rc != 0 or counts["failed"] or not tests:
        return Step("failed", ran.seconds, f"pytest exit {ran.rc}: {counts}", figures)
    if counts["skipped"] == len(tests):
        return Step("skipped", ran.seconds, "every GPU test skipped: " + tests[0]["message"], figures)
    return Step("passed", ran.seconds, "", figures)


def _junit_case(case: ET.Element) -> dict:
    """One <testcase> of pytest's JUnit XML: its id, outcome, seconds and message."""
    outcome, message = "passed", ""
    for child in case:
        if child.tag in ("failure", "error", "skipped"):
            outcome = "skipped" if child.tag == "skipped" else "failed"
            message = child.get("message", "")
    return {
        "test": f"{case.get('classname')}::{case.get('name')}",
        "outcome": outcome,
        "seconds": float(case.get("time", 0)),
        "message": message,
    }


def step_engine(check: Check) -> Step:
    """bench/cka_engine.py on the device: each tool in its own process on the same stored features."""
    s = check.sizes
    out = check.workdir / "engine.json"
    cmd = [sys.executable, "bench/cka_engine.py", "--device", check.args.device, "--tools", ",".join(s.engine_tools)]
    cmd += ["--n", str(s.engine_n), "--width", str(s.engine_width), "--batch", str(s.engine_batch)]
    cmd += ["--repeats", str(s.engine_repeats), "--threads", str(s.threads), "--timeout", str(LIMITS["engine"])]
    cmd += ["--json", str(out), "--cache", str(check.workdir / "engine-features")]
    ran = check.run("engine", cmd)
    shutil.rmtree(check.workdir / "engine-features", ignore_errors=True)
    if failure := ran.failure():
        return failure
    report = json.loads(out.read_text())
    tools = report["tools"]
    figures: dict = {
        "features_mb": report["features"]["feature_mb"],
        "layers": len(report["features"]["models"]["a"]["layers"]),
    }
    for name in s.engine_tools:
        run = tools[name]
        figures[name] = (
            {"error": run["error"]}
            if "error" in run
            else {
                "best_s": min(run["times_s"]),
                "times_s": run["times_s"],
                "peak_extra_mb": run["peak_extra_mb"],
                "gpu_peak_extra_mb": run["gpu_peak_extra_mb"],
                "max_abs_diff_vs_ours": run.get("values", {}).get("max_abs_diff"),
            }
        )
    broken = [name for name in s.engine_tools if "error" in tools[name]]
    if broken:
        return Step("failed", ran.seconds, "tools that failed: " + ", ".join(broken), figures)
    ours, peer = figures["ours"]["best_s"], figures["pytorch-cka"]["best_s"]
    diff = figures["pytorch-cka"]["max_abs_diff_vs_ours"]
    figures["speedup_vs_pytorch_cka"] = peer / ours
    figures["target"] = f"ours at least {TARGET_SPEEDUP:g}x faster than pytorch-cka"
    figures["target_met"] = peer / ours >= TARGET_SPEEDUP
    if diff is None or diff > AGREEMENT:
        return Step("failed", ran.seconds, f"ours and pytorch-cka disagree: max |diff| {diff} > {AGREEMENT}", figures)
    return Step("passed", ran.seconds, "", figures)


def step_end_to_end(check: Check) -> Step:
    """bench/end_to_end.py's pipeline section on two ResNet-50s, in one process after a warm-up run."""
    s = check.sizes
    out = check.workdir / "end_to_end.json"
    cmd = [sys.executable, "bench/end_to_end.py", "--device", check.args.device, "--depth", "50"]
    cmd += ["--width", str(s.e2e_width), "--sizes", str(s.e2e_n), "--batch", str(s.e2e_batch)]
    cmd += ["--warmup-n", str(s.e2e_warmup_n), "--threads", str(s.threads), "--peer-sizes", "", "--reuse-n", "0"]
    cmd += ["--pairs", s.pair, "--pairs-n", str(s.pair_n)]
    cmd += ["--timeout", str(LIMITS["end_to_end"]), "--json", str(out)]
    ran = check.run("end_to_end", cmd)
    if failure := ran.failure():
        return failure
    report = json.loads(out.read_text())
    run, pair = report["pipeline"][0], report["pairs"][0]
    if "error" in run:
        return Step("failed", ran.seconds, "the pipeline process failed: " + run["error"], run)
    figures = run | {"target": f"at most {TARGET_E2E_S:g} s", "target_met": run["wall_s"] <= TARGET_E2E_S}
    figures["cross_architecture"] = pair
    if "error" in pair or pair["used_images"] != s.pair_n:
        reason = pair.get("error") or f"{pair['used_images']} of {s.pair_n} images"
        return Step("failed", ran.seconds, f"the cross-architecture pair {s.pair}: {reason}", figures)
    empty = [name for name, count in run["finite"].items() if count == 0]
    if run["used_images"] != s.e2e_n or run["layers"] != RESNET50_LAYERS or empty:
        reason = f"{run['used_images']} of {s.e2e_n} images, {run['layers']} of {RESNET50_LAYERS} layers"
        return Step("failed", ran.seconds, reason + (f", nothing finite in {empty}" if empty else ""), figures)
    return Step("passed", ran.seconds, "", figures)


STEPS = {
    "environment": step_environment,
    "install": step_install,
    "tests": step_tests,
    "engine": step_engine,
    "end_to_end": step_end_to_end,
}


# --- the run ------------------------------------------------------------------------------------


def summary(report: dict) -> dict:
    """The headline figures beside their targets (None where a step did not give them)."""
    engine = report["steps"].get("engine", {}).get("figures", {})
    e2e = report["steps"].get("end_to_end", {}).get("figures", {})
    return {
        "end_to_end_s": e2e.get("wall_s"),
        "end_to_end_target_s": TARGET_E2E_S,
        "end_to_end_warmup_s": e2e.get("warmup_s"),
        "cross_architecture_s": e2e.get("cross_architecture", {}).get("wall_s"),
        "engine_speedup_vs_pytorch_cka": engine.get("speedup_vs_pytorch_cka"),
        "engine_speedup_target": TARGET_SPEEDUP,
        "engine_max_abs_diff_vs_pytorch_cka": engine.get("pytorch-cka", {}).get("max_abs_diff_vs_ours"),
        "statuses": {name: step["status"] for name, step in report["steps"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="where the benchmarks run (default cuda)")
    p.add_argument("--tiny", action="store_true", help=f"the dry run's sizes: {TINY}")
    p.add_argument(
        "--budget", type=float, default=BUDGET_S, help=f"seconds for every step together (default {BUDGET_S})"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "results" / "gpu_check.json",
        help="the JSON file; the log goes beside it",
    )
    p.add_argument(
        "--steps",
        type=lambda text: text.split(","),
        default=list(STEPS),
        help="comma-separated, in this order, of: " + ", ".join(STEPS) + " (default: all)",
    )
    p.add_argument("--wheels", type=Path, default=WHEELS, help=f"the wheel folder (default {WHEELS.relative_to(ROOT)})")
    p.add_argument("--pip-from-wheel", action="store_true", help="install with pip's wheel even where pip exists")
    p.add_argument("--environment", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.steps) - STEPS.keys()
    if unknown:
        p.error(f"unknown steps {sorted(unknown)}; choose from {list(STEPS)}")
    if args.environment:
        print(json.dumps(environment()))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".log").write_text("")
    with tempfile.TemporaryDirectory(prefix="cka-lens-gpu-check-") as tmp:
        check = Check(args, Path(tmp))
        for name, step in STEPS.items():
            if name not in args.steps:
                continue
            try:
                result = step(check)
            except Exception as err:  # noqa: BLE001 - one step's bug must not stop the others
                result = Step("failed", 0.0, f"{type(err).__name__}: {err}")
            check.record(name, result)
    check.report["finished"] = True
    check.report["summary"] = summary(check.report)
    args.out.write_text(json.dumps(check.report, indent=1))
    print(json.dumps(check.report["summary"], indent=1))
    return 0 if all(step["status"] != "failed" for step in check.report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
