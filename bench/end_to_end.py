"""Checkpoint bytes -> network, and model pair -> full result through core.pipeline.compare, at several subset
sizes, plus the fingerprint cache and the peers' own end-to-end APIs on the CKA part.

Four sections, every measurement in its own fresh process (peak memory is that process's VmHWM):

1. pipeline: `compare(A, B, subset, AnalysisOptions())` (defaults: invariance views, probes, 20
   permutations, the jackknife interval) for each `--sizes` value. Time by stage as the pipeline
   reports it (forward passes incl. the augmented views, CKA incl. permutation null and interval,
   probes) and "other" = wall time of compare() minus those; peak RSS of the process from the networks made on
   (their BatchNorm calibration, a bench-only set-up, peaks above everything after it).
2. reuse: fingerprint A, fingerprint B, pair A-B, fingerprint C, pair A-C, against recomputing A:
   comparing a third model with an already fingerprinted one costs one model's forward passes.
3. peers: the CKA matrix alone (cross-model, every layer pair) through each library's own model +
   data-loader API on the same two networks and the same normalised images in the same order, and
   ours through compare() with the extras off (no views, probes or permutations).
4. loading (`--loading-repeats`): a full-width ResNet-18's state dict (`torch.save`) as an upload arrives,
   bytes -> LoadedModel, timed after one warm-up load (the CIFAR-10 test split already read, as in a running
   app), three ways: `bare` (max-pool, stem padding and normalisation measured on the calibration images),
   `stated` (method and normalisation given, as config.json or the registry gives them: accuracy measured
   once) and `unmeasured` (CKA_LENS_CALIBRATION_IMAGES=0: parsing and the strict load alone).

5. pairs (`--pairs`): compare() with the default options on two networks named by their specs (`A vs B`, pairs
   separated by ';'), loaded as the app loads them: the bundled ResNet-18 pair, and untrained timm networks
   (`timm:NAME`, each at its own input size and preprocessing) for the cost of other architectures: a ViT-S/16
   against another ViT-S/16 (the second initialised from another seed) or a ResNet-50. Seconds, peak RSS above the
   set-up (the networks and images loaded), and core.memory's estimate beside it.

Models of sections 1-4 are randomly initialised CIFAR-stem ResNet-18s (`--depth 50`: ResNet-50s; seeds 0, 1, 2;
BatchNorm statistics from one pass over 512 other test images): the costs do not depend on the weights.

    .venv/bin/python bench/end_to_end.py --sizes 1000,10000 --json bench/results/end_to_end.json
    .venv/bin/python bench/end_to_end.py --sizes "" --reuse-n 0 --loading-repeats 3   # loading alone
    .venv/bin/python bench/end_to_end.py --sizes "" --reuse-n 0 --peer-sizes "" --pairs vit  # VIT_PAIRS
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself, for `common`

import common  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from core import settings  # noqa: E402
from core.data import normalize  # noqa: E402
from core.device import pick_device, synchronize  # noqa: E402
from core.distributed import Cluster  # noqa: E402
from core.fingerprint import fingerprint  # noqa: E402
from core.memory import estimate_bytes, layer_shapes  # noqa: E402
from core.options import AnalysisOptions  # noqa: E402
from core.pipeline import compare, compare_many  # noqa: E402
from models import ArchConfig, ModelSpec, build_resnet, load_model, load_uploaded  # noqa: E402
from models.checkpoint import load_bytes  # noqa: E402
from models.loaded import SourceHints  # noqa: E402

PEERS = ("ours-cka-only", "pytorch-cka", "torch-cka", "cka-pytorch")
CKA_ONLY = AnalysisOptions(invariance=False, probes=False, permutations=0)
# per-layer read-outs of model A whose finite entries the pipeline section reports: proof they were computed
READOUTS = ("class_a", "invariance_a", "probe_a")
LOADING_CASES = ("bare", "stated", "unmeasured")
# the cross-architecture figures of BENCHMARKS.md, beside the bundled ResNet-18 pair
VIT_PAIRS = (
    "bundled:simclr-resnet18-w16 vs bundled:supervised-resnet18-w16;"
    "timm:vit_small_patch16_224 vs timm:vit_small_patch16_224;"
    "timm:vit_small_patch16_224 vs timm:resnet50"
)
# what a config.json or the registry says of a supervised CIFAR-10 network
STATED = SourceHints(method="supervised", mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.2435, 0.2616), origin="bench")


def _gpu_peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _timed(fn, device: torch.device) -> tuple[object, float]:
    """(fn(), seconds), synchronising the GPU around it."""
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - t0


# --- section 1: the whole pipeline --------------------------------------------------------------


def work_pipeline(args: argparse.Namespace, device: torch.device) -> dict:
    """compare() on n images with the default options; stage times and peak RSS.

    With --warmup-n, compare() first runs once on that many images, timed apart, so the timed run is
    that of a process that has already served an analysis (the device started, the networks traced),
    as in a running app.
    """
    model_a, model_b = common.random_resnets(2, args.width, args.depth)
    # the random networks' BatchNorm calibration (512 images at once, the bench's own set-up) peaks ~0.6 GB above
    # what it leaves; the peak counts from here, so loading the subset and everything after it is in it
    peak_reset = common.reset_peak_rss()
    subset = common.cifar_images(args.n, split=args.split)
    options = AnalysisOptions(batch_size=args.batch, probes=not args.no_probes, invariance=not args.no_invariance)
    shapes = [layer_shapes(model, device) for model in (model_a, model_b)]
    warmup_s = None
    if args.warmup_n:
        warm = common.cifar_images(args.warmup_n)
        _, warmup_s = _timed(lambda: compare(model_a, model_b, warm, options, device), device)
    setup_mb = common.rss_mb()
    result, wall = _timed(lambda: compare(model_a, model_b, subset, options, device), device)
    stages = {k: float(v) for k, v in result.seconds.items()}
    stages["other"] = wall - sum(stages.values())
    return {
        "n": args.n,
        "depth": args.depth,
        "used_images": result.used_images,
        "layers": len(result.layers_a),
        "finite": {name: int(np.isfinite(getattr(result, name)).sum()) for name in READOUTS},
        "warmup_n": args.warmup_n,
        "warmup_s": warmup_s,
        "wall_s": wall,
        "stages_s": stages,
        "non_forward_share": 1 - stages["forward"] / wall,
        "setup_rss_mb": setup_mb,
        "peak_rss_mb": common.peak_rss_mb(),
        "peak_counts_from": "the networks made" if peak_reset else "process start",
        "estimate_mb": estimate_bytes(shapes, args.n, options) / 2**20,  # core.memory's forecast above the set-up
        "spill_mb": settings.spill_bytes() / 1e6,
        "split": args.split,
        "probes": options.probes,
        "invariance": options.invariance,
        "gpu_peak_mb": _gpu_peak_mb(device),
    }


# --- section 2: the fingerprint cache -----------------------------------------------------------


def work_reuse(args: argparse.Namespace, device: torch.device) -> dict:
    """Fingerprint A, B, C once each; pairs A-B and A-C from the fingerprints; A again for scale."""
    model_a, model_b, model_c = common.random_resnets(3, args.width, args.depth)
    subset = common.cifar_images(args.n)
    options = AnalysisOptions(batch_size=args.batch)
    times: dict[str, float] = {}

    def pair(other, fa, fo) -> object:
        """The pipeline on fingerprints already taken (no forward pass; the memory check runs one image)."""
        taken = {id(model_a): fa, id(other): fo}
        cluster = Cluster.single(device)
        return compare_many(model_a, [other], subset, options, cluster, fingerprints=lambda net: [taken[id(net)]])

    fa, times["fingerprint A"] = _timed(lambda: fingerprint(model_a, subset, options, device), device)
    fb, times["fingerprint B"] = _timed(lambda: fingerprint(model_b, subset, options, device), device)
    _, times["pair A-B"] = _timed(lambda: pair(model_b, fa, fb), device)
    fc, times["fingerprint C"] = _timed(lambda: fingerprint(model_c, subset, options, device), device)
    _, times["pair A-C"] = _timed(lambda: pair(model_c, fa, fc), device)
    fa2, times["fingerprint A again"] = _timed(lambda: fingerprint(model_a, subset, options, device), device)
    same = max(float((r1 - r2).abs().max()) for r1, r2 in zip(fa.rows, fa2.rows, strict=True))
    return {
        "n": args.n,
        "times_s": times,
        "c_with_cache_s": times["fingerprint C"] + times["pair A-C"],
        "c_from_scratch_s": times["fingerprint A again"] + times["fingerprint C"] + times["pair A-C"],
        "refingerprint_max_abs_diff": same,
        "peak_rss_mb": common.peak_rss_mb(),
    }


# --- section 3: the peers' end-to-end APIs ------------------------------------------------------


def _loader(images: torch.Tensor, labels: torch.Tensor, batch: int) -> DataLoader:
    """The same normalised images, in the same order, in batches like ours (no shuffling)."""
    return DataLoader(TensorDataset(images, labels), batch_size=batch, shuffle=False)


def _by_name(matrix: torch.Tensor, rows: list[str], cols: list[str], names: list[str]) -> np.ndarray:
    """A peer's matrix in its own layer order -> ours."""
    ri, ci = [rows.index(n) for n in names], [cols.index(n) for n in names]
    return matrix.detach().double().cpu().numpy()[np.ix_(ri, ci)]


def run_peer(peer: str, model_a, model_b, subset, batch: int, device: torch.device) -> np.ndarray:
    """The [La, Lb] cross-model CKA matrix through one tool's own end-to-end API (documented inline)."""
    names = [common.module_name(node) for _, node in model_a.layers]
    if peer == "ours-cka-only":
        options = AnalysisOptions(batch_size=batch, invariance=False, probes=False, permutations=0)
        return compare(model_a, model_b, subset, options, device).cross
    images = normalize(subset.images, model_a.info.mean, model_a.info.std)  # both share mean/std here
    loader = _loader(images, subset.labels, batch)
    a, b = model_a.module.to(device).eval(), model_b.module.to(device).eval()
    if peer == "pytorch-cka":
        import cka  # cka.compute_cka(model1, model2, loader, layers=..., device=..., progress=False)

        return cka.compute_cka(a, b, loader, layers=names, device=device, progress=False)[0].double().cpu().numpy()
    if peer == "torch-cka":
        from torch_cka import CKA  # CKA(...).compare(loader, loader); export() gives matrix and layer order

        engine = CKA(a, b, "A", "B", model1_layers=names, model2_layers=names, device=str(device))
        engine.compare(loader, loader)
        out = engine.export()
        return _by_name(out["CKA"], out["model1_layers"], out["model2_layers"], names)
    if peer == "cka-pytorch":
        from cka_pytorch import CKACalculator  # calculate_cka_matrix(loader, num_epochs=1)

        calc = CKACalculator(a, b, model1_layers=names, model2_layers=names, device=device, verbose=False)
        out = calc.calculate_cka_matrix(loader, num_epochs=1)
        return _by_name(out, calc.hook_manager1.module_names, calc.hook_manager2.module_names, names)
    raise ValueError(f"unknown peer {peer!r}")


def work_peer(args: argparse.Namespace, device: torch.device) -> dict:
    """One tool's CKA matrix on n images: time, peak RSS over the set-up, the matrix to args.out."""
    model_a, model_b = common.random_resnets(2, args.width, args.depth)
    subset = common.cifar_images(args.n)
    setup_mb = common.rss_mb()
    reset_ok = common.reset_peak_rss()
    matrix, wall = _timed(lambda: run_peer(args.worker_peer, model_a, model_b, subset, args.batch, device), device)
    np.save(args.out, np.asarray(matrix, dtype=np.float64))
    peak = common.peak_rss_mb()
    return {
        "peer": args.worker_peer,
        "n": args.n,
        "wall_s": wall,
        "setup_rss_mb": setup_mb,
        "peak_rss_mb": peak,
        "peak_extra_mb": peak - setup_mb if reset_ok else None,
        "gpu_peak_mb": _gpu_peak_mb(device),
        "layers": [name for name, _ in model_a.layers],
    }


# --- section 4: loading a checkpoint -----------------------------------------------------------


def work_loading(args: argparse.Namespace, device: torch.device) -> dict:
    """One way of loading a full-width ResNet-18's bytes: median and max of --loading-repeats after a warm-up."""
    os.environ[settings.CALIBRATION_IMAGES] = "0" if args.loading_case == "unmeasured" else "256"
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(build_resnet(ArchConfig(depth=18, width=args.width, num_classes=10)).eval().state_dict(), buffer)
    data = buffer.getvalue()
    if args.loading_case == "stated":
        load = lambda: load_bytes(data, "resnet18.pt", "bench", STATED)  # noqa: E731
    else:
        load = lambda: load_uploaded(data, "resnet18.pt")  # noqa: E731
    load()  # warm-up: the test split read once, as in a running server
    times = []
    for _ in range(args.loading_repeats):
        loaded, seconds = _timed(load, torch.device("cpu"))
        times.append(seconds)
    evidence = loaded.info.calibration
    return {
        "case": args.loading_case,
        "file_mb": len(data) / 1e6,
        "median_s": statistics.median(times),
        "max_s": max(times),
        "measured": list(evidence.measured) if evidence else [],
        "scored": [list(s) for s in evidence.scores] if evidence else [],  # (candidate, score, images)
    }


# --- section 5: pairs named by their specs --------------------------------------------------------------------------


def _pair_specs(text: str) -> list[tuple[str, str]]:
    """'A vs B;C vs D' -> [(A, B), (C, D)]; 'vit': VIT_PAIRS."""
    text = VIT_PAIRS if text.strip() == "vit" else text
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        a, sep, b = part.partition(" vs ")
        if not sep:
            raise argparse.ArgumentTypeError(f"'{part}' is not a pair; write 'SPEC_A vs SPEC_B'")
        pairs.append((a.strip(), b.strip()))
    return pairs


def _reseeded(model, seed: int):
    """The same architecture with every parameter drawn again from `seed` (an untrained network as a second seed
    of itself: same cost, other weights), BatchNorm statistics kept."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.module.modules():
            if module is not model.module and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        for name, param in model.module.named_parameters():
            if name.endswith(("cls_token", "pos_embed", "reg_token")):
                param.normal_(0, 0.02)
    return model


def work_pair(args: argparse.Namespace, device: torch.device) -> dict:
    """compare() with the default options on the two networks the specs name; seconds and peak RSS above them."""
    spec_a, spec_b = args.pair
    model_a = load_model(ModelSpec.parse(spec_a))
    model_b = load_model(ModelSpec.parse(spec_b))
    if spec_a == spec_b:
        model_b = _reseeded(model_b, 1)
    peak_reset = common.reset_peak_rss()
    subset = common.cifar_images(args.n, split=args.split)
    options = AnalysisOptions(batch_size=args.batch)
    shapes = [layer_shapes(model, device) for model in (model_a, model_b)]
    setup_mb = common.rss_mb()
    result, wall = _timed(lambda: compare(model_a, model_b, subset, options, device), device)
    stages = {k: float(v) for k, v in result.seconds.items()}
    stages["other"] = wall - sum(stages.values())
    return {
        "pair": f"{spec_a} vs {spec_b}",
        "n": args.n,
        "used_images": result.used_images,
        "layers": [len(result.layers_a), len(result.layers_b)],
        "arch": [model_a.info.arch.name, model_b.info.arch.name],
        "wall_s": wall,
        "stages_s": stages,
        "setup_rss_mb": setup_mb,
        "peak_rss_mb": common.peak_rss_mb(),
        "peak_counts_from": "the networks loaded" if peak_reset else "process start",
        "estimate_mb": estimate_bytes(shapes, args.n, options) / 2**20,
        "gpu_peak_mb": _gpu_peak_mb(device),
    }


def worker(args: argparse.Namespace) -> None:
    """Run one section in this (fresh) process and emit its numbers."""
    common.set_threads(args.threads)
    device = pick_device(args.device)
    work = {"pipeline": work_pipeline, "reuse": work_reuse, "peer": work_peer, "loading": work_loading}
    work = (work | {"pair": work_pair})[args.worker]
    out = work(args, device)
    out.update({"threads": torch.get_num_threads(), "device": str(device)})
    common.emit(out)


# --- orchestration ------------------------------------------------------------------------------


def _spawn(args: argparse.Namespace, section: str, n: int, extra: list[str] | None = None) -> dict:
    cmd = ["--worker", section, "--n", str(n), "--width", str(args.width), "--depth", str(args.depth)]
    cmd += ["--batch", str(args.batch), "--warmup-n", str(args.warmup_n), "--split", args.split]
    cmd += ["--threads", str(args.threads), "--device", args.device, *(extra or [])]
    cmd += ["--no-probes"] * args.no_probes + ["--no-invariance"] * args.no_invariance
    res = common.run_worker(Path(__file__), cmd, args.timeout)
    return res.data if res.ok else {"error": res.error, "wall_s": res.wall_s}


def _agreement(ours: np.ndarray, other: np.ndarray, layers: list[str]) -> dict:
    """max |diff| vs ours over all pairs, over pairs with no residual-branch layer, and over the rest."""
    diff = np.abs(ours - other)
    residual = np.array(["residual" in name for name in layers])
    plain = ~residual[:, None] & ~residual[None, :]
    return {
        "max_abs_diff": float(np.nanmax(diff)),
        "max_abs_diff_without_residual": float(np.nanmax(diff[plain])),
        "max_abs_diff_residual": float(np.nanmax(diff[~plain])) if (~plain).any() else None,
        "nan_mismatch": int((np.isfinite(ours) != np.isfinite(other)).sum()),
    }


def orchestrate(args: argparse.Namespace) -> dict:
    """Run every section, each size and tool in a fresh process; print tables; return everything."""
    report: dict = {"machine": common.machine_summary(), "args": {k: str(v) for k, v in vars(args).items()}}
    print(f"machine: {report['machine']}", flush=True)
    report["pipeline"] = []
    for n in args.sizes:
        print(f"pipeline n={n} ...", flush=True)
        report["pipeline"].append(_spawn(args, "pipeline", n))
    if args.reuse_n:
        print(f"reuse n={args.reuse_n} ...", flush=True)
        report["reuse"] = _spawn(args, "reuse", args.reuse_n)
    report["loading"] = []
    for case in LOADING_CASES if args.loading_repeats else ():
        print(f"loading {case} ...", flush=True)
        extra = ["--loading-case", case, "--loading-repeats", str(args.loading_repeats)]
        report["loading"].append(_spawn(args, "loading", 0, extra) | {"case": case})
    report["pairs"] = []
    for spec_a, spec_b in args.pairs:
        print(f"pair {spec_a} vs {spec_b} n={args.pairs_n} ...", flush=True)
        extra = ["--pair", spec_a, spec_b]
        report["pairs"].append(_spawn(args, "pair", args.pairs_n, extra) | {"pair": f"{spec_a} vs {spec_b}"})
    report["peers"] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.peer_sizes:
            matrices = {}
            for peer in args.peers:
                print(f"peer {peer} n={n} ...", flush=True)
                out = Path(tmp) / f"{peer}-{n}.npy"
                data = _spawn(args, "peer", n, ["--worker-peer", peer, "--out", str(out)])
                if "error" not in data:
                    matrices[peer] = np.load(out)
                report["peers"].append(data | {"peer": peer, "n": n})
            if "ours-cka-only" in matrices:
                layers = next(
                    r["layers"] for r in report["peers"] if r.get("peer") == "ours-cka-only" and "layers" in r
                )
                for r in report["peers"]:
                    if r["n"] == n and r["peer"] in matrices and r["peer"] != "ours-cka-only":
                        r["values"] = _agreement(matrices["ours-cka-only"], matrices[r["peer"]], layers)
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return report


def print_report(report: dict) -> None:
    """Markdown tables for BENCHMARKS.md."""
    print_pairs(report.get("pairs", []))
    rows = []
    for r in report["pipeline"]:
        if "error" in r:
            rows.append([str(r.get("n", "?")), "failed: " + r["error"][:80], *["-"] * 9])
            continue
        s = r["stages_s"]
        rows.append(
            [
                str(r["n"]),
                common.fmt(r["wall_s"], 1),
                common.fmt(s["forward"], 1),
                common.fmt(s["cka"], 1),
                common.fmt(s["probes"], 1),
                common.fmt(s["other"], 1),
                f"{r['non_forward_share']:.0%}",
                common.fmt(r["peak_rss_mb"], 0),
                common.fmt(r["peak_rss_mb"] - r["setup_rss_mb"], 0),
                common.fmt(r["estimate_mb"], 0),
                common.fmt(r["gpu_peak_mb"], 0),
            ]
        )
    head = ["n", "total s", "forward s", "CKA s", "probes s", "other s", "non-forward", "peak RSS MB"]
    head += ["above set-up MB", "estimate MB", "GPU peak MB"]
    print("\npipeline (compare, default options):\n" + common.table(head, rows))
    reuse = report.get("reuse")
    if reuse and "error" not in reuse:
        rows = [[k, common.fmt(v, 1)] for k, v in reuse["times_s"].items()]
        print(f"\nfingerprint reuse (n={reuse['n']}):\n" + common.table(["step", "s"], rows))
        print(
            f"third model C against cached A: {reuse['c_with_cache_s']:.1f} s; "
            f"from scratch (A again + C + pair): {reuse['c_from_scratch_s']:.1f} s; "
            f"re-fingerprinted A differs by {reuse['refingerprint_max_abs_diff']:.1e}"
        )
    elif reuse:
        print(f"\nfingerprint reuse failed: {reuse['error']}")
    rows = []
    ours = {r["n"]: r["wall_s"] for r in report["peers"] if r.get("peer") == "ours-cka-only" and "wall_s" in r}
    for r in report["peers"]:
        if "error" in r:
            rows.append([r["peer"], str(r["n"]), "failed: " + r["error"][:80], "-", "-", "-", "-", "-"])
            continue
        v = r.get("values", {})
        rows.append(
            [
                r["peer"],
                str(r["n"]),
                common.fmt(r["wall_s"], 1),
                common.fmt(r["wall_s"] / ours[r["n"]]) if r["n"] in ours else "-",
                common.fmt(r["peak_extra_mb"], 0),
                common.fmt_sci(v.get("max_abs_diff")) if v else "(reference)",
                common.fmt_sci(v.get("max_abs_diff_without_residual")) if v else "-",
                common.fmt_sci(v.get("max_abs_diff_residual")) if v else "-",
            ]
        )
    head = ["tool", "n", "time s", "x ours", "peak extra MB", "max |diff|", "... no residual layers", "... residual"]
    print("\npeers, CKA matrix end to end (forward passes included):\n" + common.table(head, rows))
    rows = [
        [r["case"], "failed: " + r["error"][:80], "-", "-"]
        if "error" in r
        else [r["case"], common.fmt(r["median_s"]), common.fmt(r["max_s"]), ", ".join(r["measured"]) or "-"]
        for r in report["loading"]
    ]
    if rows:
        head = ["case", "median s", "max s", "measured"]
        print("\nloading a checkpoint (bytes -> network):\n" + common.table(head, rows))


def print_pairs(pairs: list[dict]) -> None:
    """The pairs named by spec: seconds, peak RSS above the set-up (networks and images), the estimate beside it."""
    rows = []
    for r in pairs:
        if "error" in r:
            rows.append([r["pair"], "failed: " + r["error"][:80], *["-"] * 6])
            continue
        above = r["peak_rss_mb"] - r["setup_rss_mb"]
        rows.append(
            [
                r["pair"],
                f"{r['layers'][0]} x {r['layers'][1]}",
                common.fmt(r["wall_s"], 0),
                common.fmt(r["stages_s"].get("forward"), 0),
                common.fmt(r["peak_rss_mb"], 0),
                common.fmt(above, 0),
                common.fmt(r["estimate_mb"], 0),
                common.fmt(r["estimate_mb"] / above if above > 0 else None),
            ]
        )
    if rows:
        head = ["pair", "layers", "total s", "forward s", "peak RSS MB", "above set-up MB", "estimate MB"]
        print("\npairs (compare, default options):\n" + common.table(head + ["estimate / measured"], rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    sizes = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--sizes", type=sizes, default=[1000, 10000], help="subset sizes for the pipeline (default 1000,10000)"
    )
    p.add_argument("--reuse-n", type=int, default=1000, help="subset size for the fingerprint-reuse section (0: skip)")
    p.add_argument("--peer-sizes", type=sizes, default=None, help="subset sizes for the peers (default: --sizes)")
    p.add_argument(
        "--peers", type=lambda s: s.split(","), default=list(PEERS), help="comma-separated, of: " + ", ".join(PEERS)
    )
    p.add_argument("--depth", type=int, default=18, help="ResNet depth, 18 or 50 (default 18)")
    p.add_argument("--width", type=int, default=64, help="ResNet first-stage width (default 64)")
    p.add_argument(
        "--warmup-n", type=int, default=0, help="pipeline: first run compare() once on this many images (default 0)"
    )
    p.add_argument("--batch", type=int, default=250, help="minibatch size, ours and the peers' loaders (default 250)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--split", choices=["test", "train"], default="test", help="CIFAR-10 split the images come from")
    p.add_argument("--no-probes", action="store_true", help="pipeline without the linear probes")
    p.add_argument("--no-invariance", action="store_true", help="pipeline without the augmented views")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads per process (0: default)")
    p.add_argument("--timeout", type=float, default=7200.0, help="give up on one process after this many seconds")
    p.add_argument(
        "--loading-repeats", type=int, default=0, help="loading section: timed loads per case (default 0: skip)"
    )
    p.add_argument(
        "--pairs",
        type=_pair_specs,
        default=[],
        help="'SPEC_A vs SPEC_B;...' or 'vit' (VIT_PAIRS): compare() on each (default none)",
    )
    p.add_argument("--pairs-n", type=int, default=1000, help="test images of each pair (default 1000)")
    p.add_argument("--json", type=Path, default=None, help="also write every number here")
    p.add_argument("--worker", choices=["pipeline", "reuse", "peer", "loading", "pair"], help=argparse.SUPPRESS)
    p.add_argument("--pair", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--loading-case", choices=list(LOADING_CASES), help=argparse.SUPPRESS)
    p.add_argument("--worker-peer", choices=list(PEERS), help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.peer_sizes is None:
        args.peer_sizes = args.sizes
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        p.error(f"unknown peers {sorted(unknown)}; choose from {list(PEERS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
