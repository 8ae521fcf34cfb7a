"""The CKA engine alone: the same held-in-memory features through our MinibatchCKA and the PyPI peers.

Two randomly initialised CIFAR-stem ResNet-18s (seeds 0 and 1, BatchNorm statistics set from one
pass) read every layer `resnet_layers` lists on `--n` images of the embedded CIFAR-10 test split.
The features are computed ONCE, written to a cache folder as float32 [n, d] arrays, and each tool
then runs in its own fresh process that loads all of them into memory first. Time is wall-clock
around the CKA computation only, after one untimed warm-up call on the first minibatch (best of
`--repeats`; a tool slower than `--repeat-limit` seconds runs once). Memory is the process's peak
resident set during the warm-up and timed runs, read from the kernel (VmHWM, reset once the features
are loaded), reported as the rise over the resident set at that point ("peak extra").

Peers get the features through their own public entry points; where a library only takes models
and a data loader, it gets `FeatureReplay` modules that hand back slices (views, no copy) of the
stored tensors, so its hooks see exactly the arrays our engine sees. Every call is listed in TOOLS.

    .venv/bin/python bench/cka_engine.py --n 2000 --width 64 --json bench/results/cka_engine.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself, for `common`

import common  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from core.cka import MinibatchCKA, center_gram, hsic_scale, is_constant, stacked_grams  # noqa: E402
from core.device import pick_device, synchronize  # noqa: E402
from core.features import FeatureExtractor  # noqa: E402

Feats = list[torch.Tensor]
SEEDS = (0, 1)


# --- features, computed once ----------------------------------------------------------------------


def extract_features(n: int, width: int, folder: Path, forward_batch: int = 250) -> dict:
    """Run both networks once over `n` test images and store every layer as float32 [n, d] .npy.

    Returns:
        The folder's metadata (layer names, widths, bytes). An existing folder with the same
        metadata key is reused as it is.
    """
    key = {"n": n, "width": width, "seeds": list(SEEDS), "version": 1}
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta["key"] == key:
            return meta
    folder.mkdir(parents=True, exist_ok=True)
    images = common.cifar_images(n)
    calibration = common.cifar_images(512, seed=1).images
    t0 = time.perf_counter()
    meta: dict = {"key": key, "models": {}}
    for side, seed in zip("ab", SEEDS, strict=True):
        model = common.random_resnet(seed, width, calibration)
        extractor = FeatureExtractor(model.module, model.layers, torch.device("cpu"))
        stores: list[np.ndarray] = []
        for start in range(0, n, forward_batch):
            x = common.normalize(images.images[start : start + forward_batch], model.info.mean, model.info.std)
            for i, f in enumerate(extractor(x)):
                flat = f.reshape(f.shape[0], -1).float().contiguous()  # NCHW order, like a plain flatten
                if start == 0:
                    path = folder / f"{side}_{i:02d}.npy"
                    stores.append(np.lib.format.open_memmap(path, "w+", np.float32, (n, flat.shape[1])))
                stores[i][start : start + len(flat)] = flat.numpy()
        for store in stores:
            store.flush()
        meta["models"][side] = {
            "source": model.info.source,
            "sha256": model.info.sha256,
            "layers": [name for name, _ in model.layers],
            "nodes": [node for _, node in model.layers],
            "widths": [int(s.shape[1]) for s in stores],
        }
        del stores
    meta["feature_mb"] = sum(4 * n * w for m in meta["models"].values() for w in m["widths"]) / 2**20
    meta["extract_s"] = time.perf_counter() - t0
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


def load_features(folder: Path, side: str, count: int) -> Feats:
    """All layers of one model, read fully into (anonymous) memory: no lazy file mapping."""
    return [torch.from_numpy(np.load(folder / f"{side}_{i:02d}.npy")) for i in range(count)]


def batches(n: int, size: int) -> list[slice]:
    """The CKA minibatches: consecutive slices, the last one possibly shorter."""
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


# --- the tools: each maps (features A, features B, batch size) to an [La, Lb] CKA matrix ------------


def run_ours(fa: Feats, fb: Feats, size: int) -> np.ndarray:
    """core.cka.MinibatchCKA: update() per minibatch, then compute()."""
    engine = MinibatchCKA(len(fa), len(fb))
    for s in batches(len(fa[0]), size):
        engine.update([f[s] for f in fa], [f[s] for f in fb])
    return engine.compute().numpy()


def run_ours_f64(fa: Feats, fb: Feats, size: int) -> np.ndarray:
    """The same with every feature cast to float64 first: the float32 error of our engine."""
    engine = MinibatchCKA(len(fa), len(fb))
    for s in batches(len(fa[0]), size):
        engine.update([f[s].double() for f in fa], [f[s].double() for f in fb])
    return engine.compute().numpy()


def run_floor(fa: Feats, fb: Feats, size: int) -> None:
    """The physical floor: one float32 X X^T per layer per batch, nothing else."""
    for s in batches(len(fa[0]), size):
        for f in (*fa, *fb):
            x = f[s]
            torch.mm(x, x.T)


class _Stored(nn.Module):
    """Returns rows of one stored [n, d] tensor as a view: a 'layer' whose output is a feature."""

    def __init__(self, features: torch.Tensor):
        super().__init__()
        self.features = features

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.features[int(index[0]) : int(index[-1]) + 1]  # loader batches are consecutive


class FeatureReplay(nn.Module):
    """A 'network' whose children l00, l01, ... return stored features for a batch of row indices, in
    layer order, so hook-based libraries read precomputed features through their public API."""

    def __init__(self, features: Feats):
        super().__init__()
        for i, f in enumerate(features):
            self.add_module(f"l{i:02d}", _Stored(f))

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        out = index
        for child in self.children():
            out = child(index)
        return out


def _replay(fa: Feats, fb: Feats, size: int) -> tuple[FeatureReplay, FeatureReplay, list[str], DataLoader]:
    """Replay modules, their layer names, and a loader yielding (row indices, dummy label) batches."""
    n = len(fa[0])
    names = [f"l{i:02d}" for i in range(max(len(fa), len(fb)))]
    loader = DataLoader(TensorDataset(torch.arange(n), torch.zeros(n)), batch_size=size, shuffle=False)
    return FeatureReplay(fa), FeatureReplay(fb), names, loader


def _reorder(matrix: torch.Tensor, rows: Sequence[str], cols: Sequence[str]) -> np.ndarray:
    """A peer's matrix with its own layer order -> ours (l00, l01, ...)."""
    ri = np.argsort([int(r[1:]) for r in rows])
    ci = np.argsort([int(c[1:]) for c in cols])
    return matrix.detach().double().cpu().numpy()[np.ix_(ri, ci)]


def run_pytorch_cka(fa: Feats, fb: Feats, size: int) -> np.ndarray:
    """pytorch-cka (imports as `cka`): cka.compute_cka(A, B, loader, layers=..., model2_layers=...,
    device='cpu', progress=False)[0] on FeatureReplay modules."""
    import cka

    a, b, names, loader = _replay(fa, fb, size)
    out = cka.compute_cka(
        a, b, loader, layers=names[: len(fa)], model2_layers=names[: len(fb)], device=fa[0].device, progress=False
    )
    return out[0].double().cpu().numpy()


def run_torch_cka(fa: Feats, fb: Feats, size: int) -> np.ndarray:
    """torch-cka: torch_cka.CKA(A, B, model1_layers=..., model2_layers=..., device='cpu').compare(loader),
    then .export()['CKA'] in the order of export()['model1_layers'] / ['model2_layers']."""
    from torch_cka import CKA

    a, b, names, loader = _replay(fa, fb, size)
    layers = {"model1_layers": names[: len(fa)], "model2_layers": names[: len(fb)]}
    engine = CKA(a, b, "A", "B", **layers, device=str(fa[0].device))
    engine.compare(loader, loader)
    out = engine.export()
    return _reorder(out["CKA"], out["model1_layers"], out["model2_layers"])


def run_cka_pytorch(fa: Feats, fb: Feats, size: int) -> np.ndarray:
    """cka-pytorch: cka_pytorch.CKACalculator(A, B, model1_layers=..., model2_layers=..., device=cpu,
    verbose=False).calculate_cka_matrix(loader, num_epochs=1) (its default is 10 epochs over the
    same data, which only multiplies every sum by 10)."""
    from cka_pytorch import CKACalculator

    a, b, names, loader = _replay(fa, fb, size)
    calc = CKACalculator(
        a, b, model1_layers=names[: len(fa)], model2_layers=names[: len(fb)], device=fa[0].device, verbose=False
    )
    out = calc.calculate_cka_matrix(loader, num_epochs=1)
    return _reorder(out, calc.hook_manager1.module_names, calc.hook_manager2.module_names)


def run_ckatorch(fa: Feats, fb: Feats, size: int) -> np.ndarray:
    """ckatorch's building blocks: per batch, ckatorch.linear_kernel(x.double()) once per layer (float64,
    as its cka_batch does), ckatorch.hsic1 for every pair and every layer with itself, summed over
    batches, CKA = sum xy / sqrt(sum xx * sum yy). (Its CKA class keeps only the last batch and needs
    3-D features; its cka_batch needs equal batches stacked: see `run_ckatorch_cka_batch`.)"""
    import ckatorch

    la, lb = len(fa), len(fb)
    kw = {"dtype": torch.float64, "device": fa[0].device}
    xy, xx, yy = torch.zeros(la, lb, **kw), torch.zeros(la, **kw), torch.zeros(lb, **kw)
    for s in batches(len(fa[0]), size):
        ga = [ckatorch.linear_kernel(f[s].double())[None] for f in fa]
        gb = [ckatorch.linear_kernel(f[s].double())[None] for f in fb]
        for i in range(la):
            xx[i] += ckatorch.hsic1(ga[i], ga[i])[0]
            for j in range(lb):
                xy[i, j] += ckatorch.hsic1(ga[i], gb[j])[0]
        for j in range(lb):
            yy[j] += ckatorch.hsic1(gb[j], gb[j])[0]
    return (xy / (xx[:, None] * yy[None, :]).sqrt()).cpu().numpy()


def run_ckatorch_cka_batch(fa: Feats, fb: Feats, size: int) -> np.ndarray:
    """ckatorch.cka_batch(x, y) per layer pair, x = the layer's batches stacked [k, b, d] (its
    documented minibatch API: Grams recomputed per pair, float64). Needs n divisible by the batch."""
    import ckatorch

    n = len(fa[0])
    if n % size:
        raise ValueError(f"ckatorch.cka_batch needs equal batches: --n must be a multiple of {size}")
    stack = lambda f: f.view(n // size, size, -1)  # noqa: E731
    return np.array([[float(ckatorch.cka_batch(stack(x), stack(y))) for y in fb] for x in fa])


TOOLS: dict[str, Callable[[Feats, Feats, int], np.ndarray | None]] = {
    "ours": run_ours,
    "ours-f64": run_ours_f64,
    "gram-floor": run_floor,
    "pytorch-cka": run_pytorch_cka,
    "torch-cka": run_torch_cka,
    "cka-pytorch": run_cka_pytorch,
    "ckatorch": run_ckatorch,
    "ckatorch-cka_batch": run_ckatorch_cka_batch,
}
DEFAULT_TOOLS = ("ours", "ours-f64", "gram-floor", "pytorch-cka", "torch-cka", "cka-pytorch", "ckatorch")


def profile_ours(fa: Feats, fb: Feats, size: int) -> dict[str, float]:
    """Where our engine's time goes: the steps of MinibatchCKA.update timed one by one (same calls)."""
    stages = dict.fromkeys(("Grams (f32)", "U-centring (f64)", "row product (f64)", "is_constant"), 0.0)

    def timed(stage: str, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        t0 = time.perf_counter()
        out = fn()
        stages[stage] += time.perf_counter() - t0
        return out

    for s in batches(len(fa[0]), size):
        feats = [f[s] for f in (*fa, *fb)]
        scale = hsic_scale(feats[0].shape[0], True) ** 0.5
        grams = timed("Grams (f32)", lambda feats=feats: stacked_grams(feats, "linear", 0.8))
        rows = timed(
            "U-centring (f64)", lambda grams=grams, scale=scale: center_gram(grams, True).flatten(1).mul_(scale)
        )
        timed("row product (f64)", lambda rows=rows: rows @ rows.T)
        timed("is_constant", lambda feats=feats: is_constant(feats))
    return stages


# --- one tool in its own process ----------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    """Load the features, run one tool (best of --repeats), report time, memory and the matrix."""
    common.set_threads(args.threads)
    device = pick_device(args.device)
    meta = json.loads((args.features / "meta.json").read_text())
    fa = [f.to(device) for f in load_features(args.features, "a", len(meta["models"]["a"]["widths"]))]
    fb = [f.to(device) for f in load_features(args.features, "b", len(meta["models"]["b"]["widths"]))]
    baseline = common.rss_mb()  # before the warm-up: freed heap memory stays resident, so measure from here
    reset_ok = common.reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    gpu_base = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else None
    tool = TOOLS[args.worker]
    tool([f[: args.batch] for f in fa], [f[: args.batch] for f in fb], args.batch)  # warm-up: first minibatch, untimed
    times, out = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = tool(fa, fb, args.batch)
        synchronize(device)
        times.append(time.perf_counter() - t0)
        if times[-1] > args.repeat_limit:
            break
    peak = common.peak_rss_mb()
    gpu_extra = torch.cuda.max_memory_allocated(device) / 2**20 - gpu_base if gpu_base is not None else None
    profile = profile_ours(fa, fb, args.batch) if args.worker == "ours" else None
    if out is not None:
        np.save(args.out, np.asarray(out, dtype=np.float64))
    common.emit(
        {
            "tool": args.worker,
            "times_s": times,
            "baseline_mb": baseline,
            "peak_mb": peak,
            "peak_extra_mb": peak - baseline if reset_ok else None,
            "peak_reset": reset_ok,
            "gpu_peak_extra_mb": gpu_extra,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "profile_s": profile,
        }
    )


# --- orchestration ------------------------------------------------------------------------------


def compare_values(ours: np.ndarray, other: np.ndarray) -> dict:
    """Agreement with our matrix: max |diff| over entries finite in both, and what differs in kind."""
    both = np.isfinite(ours) & np.isfinite(other)
    diff = np.abs(ours - other)[both]
    return {
        "max_abs_diff": float(diff.max()) if diff.size else None,
        "mean_abs_diff": float(diff.mean()) if diff.size else None,
        "nan_mismatch": int((np.isfinite(ours) != np.isfinite(other)).sum()),
        "ours_negative": int((ours < 0).sum()),
        "other_min": float(np.nanmin(other)),
        "other_max": float(np.nanmax(other)),
        "argmax": [int(i) for i in np.unravel_index(np.argmax(np.where(both, np.abs(ours - other), -1)), ours.shape)],
    }


def orchestrate(args: argparse.Namespace) -> dict:
    """Compute the features once, run every tool in its own process, print and return the results."""
    summary = common.machine_summary()
    cache = args.cache or Path(tempfile.gettempdir()) / "cka-lens-bench" / f"features-n{args.n}-w{args.width}"
    print(f"machine: {summary}", flush=True)
    print(f"features: n={args.n}, width={args.width} -> {cache}", flush=True)
    meta = extract_features(args.n, args.width, cache)
    print(
        f"features: {meta['feature_mb']:.0f} MB for both models, extracted in {meta.get('extract_s', 0):.1f} s",
        flush=True,
    )
    results, matrices = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for tool in args.tools:
            out = Path(tmp) / f"{tool}.npy"
            cmd = ["--worker", tool, "--features", str(cache), "--batch", str(args.batch), "--out", str(out)]
            cmd += [
                "--repeats",
                str(args.repeats),
                "--repeat-limit",
                str(args.repeat_limit),
                "--threads",
                str(args.threads),
                "--device",
                args.device,
            ]
            res = common.run_worker(Path(__file__), cmd, args.timeout)
            results[tool] = res.data if res.ok else {"error": res.error}
            if res.ok and out.is_file():
                matrices[tool] = np.load(out)
            status = f"best {min(res.data['times_s']):.2f} s" if res.ok else res.error
            print(f"  {tool:20s} {status}", flush=True)
    if not args.keep_features and args.cache is None:
        shutil.rmtree(cache, ignore_errors=True)
    for tool, matrix in matrices.items():
        if "ours" in matrices and tool != "ours":
            results[tool]["values"] = compare_values(matrices["ours"], matrix)
    report = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": summary,
        "features": meta,
        "tools": results,
    }
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return report


def print_report(report: dict) -> None:
    """Every tool's time, memory and agreement with ours, then our stage profile and the floor ratio."""
    tools = report["tools"]
    ours = min(tools["ours"]["times_s"]) if "times_s" in tools.get("ours", {}) else None
    layers = report["features"]["models"]["a"]["layers"]
    rows = []
    for name, r in tools.items():
        if "error" in r:
            rows.append([name, "-", "failed", "-", "-", "-", r["error"][:80]])
            continue
        best = min(r["times_s"])
        values = r.get("values", {})
        note = f"GPU peak +{r['gpu_peak_extra_mb']:.0f} MB; " if r.get("gpu_peak_extra_mb") is not None else ""
        if values.get("nan_mismatch"):
            note += f"{values['nan_mismatch']} NaN mismatches; "
        if values:
            i, j = values["argmax"]
            worst = f"{layers[i]} x {layers[j]}" if layers else f"{i} x {j}"
            note += f"range [{values['other_min']:.3f}, {values['other_max']:.3f}], worst at {worst}"
        rows.append(
            [
                name,
                str(len(r["times_s"])),
                common.fmt(best),
                common.fmt(r["peak_extra_mb"], 0),
                common.fmt(best / ours) if ours else "-",
                common.fmt_sci(values.get("max_abs_diff")) if name != "ours" else "(reference)",
                note,
            ]
        )
    headers = ["tool", "runs", "time s (best)", "peak extra MB", "x ours", "max |diff| vs ours", "notes"]
    print()
    print(common.table(headers, rows))
    if ours and "times_s" in tools.get("gram-floor", {}):
        floor = min(tools["gram-floor"]["times_s"])
        print(f"\nour CKA stage / bare-Gram floor: {ours:.2f} s / {floor:.2f} s = {ours / floor:.2f}x (target <= 1.2x)")
    profile = tools.get("ours", {}).get("profile_s")
    if profile:
        total = sum(profile.values())
        print(
            "our stages (one profiled pass): "
            + ", ".join(f"{k} {v:.2f} s ({v / total:.0%})" for k, v in profile.items())
        )
    negative = next((r["values"]["ours_negative"] for r in tools.values() if "values" in r), None)
    if negative is not None:
        print(f"entries of our matrix below 0 (where a clamping peer would differ): {negative}")
    base = tools.get("ours", {}).get("baseline_mb")
    if base:
        print(f"resident set with the features loaded (before any tool): {base:.0f} MB")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000, help="test images (default 2000)")
    p.add_argument("--width", type=int, default=64, help="ResNet-18 first-stage width (default 64, the standard)")
    p.add_argument("--batch", type=int, default=256, help="CKA minibatch size (default 256)")
    p.add_argument(
        "--tools",
        type=lambda s: s.split(","),
        default=list(DEFAULT_TOOLS),
        help="comma-separated, of: " + ", ".join(TOOLS),
    )
    p.add_argument("--repeats", type=int, default=3, help="runs per tool; the best is reported (default 3)")
    p.add_argument("--repeat-limit", type=float, default=30.0, help="a tool whose run takes longer runs once (s)")
    p.add_argument("--timeout", type=float, default=3600.0, help="give up on one tool after this many seconds")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads in each tool's process (0: default)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the tools run on the features")
    p.add_argument("--cache", type=Path, default=None, help="feature folder (kept); default: a temporary one, removed")
    p.add_argument("--keep-features", action="store_true", help="keep the default feature folder for a rerun")
    p.add_argument("--json", type=Path, default=None, help="also write every number here")
    p.add_argument("--worker", choices=list(TOOLS), help=argparse.SUPPRESS)
    p.add_argument("--features", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.tools) - TOOLS.keys()
    if unknown:
        p.error(f"unknown tools {sorted(unknown)}; choose from {list(TOOLS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
