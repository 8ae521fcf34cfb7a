"""Helpers shared by the benchmarks: the model pair, the images, memory readings, worker processes.

Every measurement of time and memory runs in a fresh child process (`run_worker`), so one tool's
allocations, caches and thread pools never colour the next one's numbers. Peak memory is read from
the kernel (VmHWM in /proc/self/status), which sees every allocation, torch's included; tracemalloc
would not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the scripts run as `python bench/NAME.py` from the repository root
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import torch  # noqa: E402

from core.data import CIFAR10_MEAN, CIFAR10_STD, Subset, SubsetSpec, load_subset, normalize  # noqa: E402
from models import LoadedModel, ModelInfo  # noqa: E402
from models.resnet import ArchConfig, build_resnet, resnet_layers  # noqa: E402

RESULT_PREFIX = "BENCH-RESULT "  # a worker's last stdout line starting with this carries its JSON result
PEER_PACKAGES = ("pytorch-cka", "torch-cka", "ckatorch", "cka-pytorch")


# --- memory -------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS: resident now, VmHWM: peak resident).

    Read here rather than through psutil (which the engine uses for its memory readings): psutil gives the
    resident set now but neither the kernel's peak (VmHWM) nor its reset (`reset_peak_rss`), nor the split into
    RssAnon and RssFile that bench/memory_phases.py reports; the peak and the current value come from one reading.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def rss_mb() -> float:
    """Resident set size of this process now, in MiB."""
    return _status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    """Peak resident set size of this process (since start or the last `reset_peak_rss`), in MiB."""
    return _status_kb("VmHWM") / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, `echo 5 > /proc/self/clear_refs`).

    Returns:
        False where the kernel refuses; the peak then counts from process start (say so in reports).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --- models and images --------------------------------------------------------------------------


def _weights_sha256(module: torch.nn.Module) -> str:
    """Hash of the parameters and buffers, standing in for a checkpoint file's sha256."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def _calibrate_batchnorm(module: torch.nn.Module, images: torch.Tensor) -> None:
    """Set BatchNorm running statistics from one train-mode pass (cumulative average), so the
    randomly initialised network's activations are scaled as in a trained one; weights unchanged."""
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    module.train()
    module(normalize(images, CIFAR10_MEAN, CIFAR10_STD))
    module.eval()


def random_resnet(seed: int, width: int = 64, calibration: torch.Tensor | None = None, depth: int = 18) -> LoadedModel:
    """A randomly initialised CIFAR-stem ResNet-`depth` (torch.manual_seed(seed)), wrapped like a loaded
    checkpoint. `calibration` images (uint8) set its BatchNorm statistics when given."""
    arch = ArchConfig(depth=depth, width=width, stem="cifar", num_classes=10)
    torch.manual_seed(seed)
    module = build_resnet(arch).eval()
    if calibration is not None:
        _calibrate_batchnorm(module, calibration)
    layers = tuple(resnet_layers(arch))
    info = ModelInfo(
        arch=arch,
        stem=arch.stem,
        method="random-init",
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        num_classes=arch.num_classes,
        source=f"random:resnet{depth}-w{width}-seed{seed}",
        sha256=_weights_sha256(module),
        notes=(f"random initialisation, torch.manual_seed({seed}); BatchNorm statistics from one pass",),
        metrics={},
        layers=layers,
    )
    return LoadedModel(module=module, info=info)


def random_resnets(count: int, width: int, depth: int) -> list[LoadedModel]:
    """`count` random ResNets with seeds 0, 1, ... and BatchNorm statistics from 512 test images."""
    calibration = cifar_images(512, seed=1).images
    return [random_resnet(seed, width, calibration, depth) for seed in range(count)]


def cifar_images(n: int, seed: int = 0, split: str = "test") -> Subset:
    """The first `n` images of a seeded, class-interleaved subset of a CIFAR-10 split (the test split is
    embedded; the train split is looked for where `core.data.load_split` looks, e.g. $CIFAR10_DIR)."""
    per_class = -(-n // 10)
    subset = load_subset(SubsetSpec(split=split, per_class=per_class, seed=seed))
    if n == subset.spec.size:
        return subset
    return Subset(subset.spec, subset.images[:n], subset.labels[:n], subset.indices[:n], subset.source, subset.mapping)


def module_name(node: str) -> str:
    """The module a hook-based library must hook to read the fx node `node` of resnet_layers.

    `relu_1` (second call of a block's ReLU, the block output) is the module `relu`: a hook keeps its
    last call. `flatten` (pooled features) is `avgpool` (same values, shape [b, C, 1, 1])."""
    if node == "flatten":
        return "avgpool"
    if node.endswith(".relu_1"):
        return node[: -len("_1")]
    return node


# --- worker processes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerResult:
    """What a child process reported, or why it reported nothing."""

    ok: bool
    data: dict
    wall_s: float
    error: str = ""


def emit(result: dict) -> None:
    """Print a worker's result as the last stdout line, for `run_worker` to read."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_worker(script: Path, args: list[str], timeout_s: float | None, log: Path | None = None) -> WorkerResult:
    """Run `python script *args` in a fresh process and parse its `emit`ted JSON."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout_s, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return WorkerResult(False, {}, time.perf_counter() - t0, f"timed out after {timeout_s:.0f} s")
    wall = time.perf_counter() - t0
    if log is not None:
        log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return WorkerResult(False, {}, wall, f"exit {proc.returncode}: " + " | ".join(tail))
    return WorkerResult(True, json.loads(lines[-1][len(RESULT_PREFIX) :]), wall)


def alternating_parser(doc: str, n: int, rounds: int, workers: Iterable[str]) -> argparse.ArgumentParser:
    """The options of a benchmark that alternates fresh worker processes (`alternating_runs`): the images, the
    rounds, the threads, the JSON report, and the worker's own two (hidden)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=n)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", choices=workers, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser


def alternating_runs(script: Path, names: list[str], rounds: int, extra: list[str], outs: dict[str, Path]) -> dict:
    """`script --worker NAME --out outs[NAME] *extra` for each name in turn, `rounds` times, each in a fresh
    process: {name: [the workers' results]}. A failed worker stops the benchmark."""
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            done = run_worker(script, [*extra, "--out", str(outs[name]), "--worker", name], None)
            if not done.ok:
                raise SystemExit(f"{name}: {done.error}")
            runs[name].append(done.data)
            print(name, json.dumps({k: v for k, v in done.data.items() if not isinstance(v, list)}), flush=True)
    return runs


def set_threads(threads: int) -> None:
    """Use `threads` intra-op threads (0: torch's default, one per core)."""
    if threads > 0:
        torch.set_num_threads(threads)


# --- reporting ----------------------------------------------------------------------------------


def machine_summary() -> dict:
    """The facts a timing needs next to it: CPU, cores, memory, load, versions, threads."""
    # psutil does not name the CPU model
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (pastes straight into BENCHMARKS.md)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "| " + " | ".join("-" * w for w in widths) + " |", *(line(r) for r in rows)])


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for a table; '-' for missing."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def fmt_sci(value: float | None) -> str:
    """A small difference for a table, e.g. 3.1e-07; '-' for missing."""
    return "-" if value is None else f"{value:.1e}"
