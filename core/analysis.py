"""The analysis pipeline shared by the app and the command line.

Two phases. `fingerprint` runs one model over the subset once (plus once over seeded SimCLR views
for the invariance analysis) and keeps, per minibatch, each layer's centred Gram, together with
everything that concerns that model alone: its own CKA matrix, class-structure CKA, invariance and
linear probes. `compare_fingerprints` then needs no forward pass at all: one matrix product per
batch gives every cross-model HSIC. So N models cost N forward passes, and a fingerprint is a cache
entry keyed by (weights hash, subset, options).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from core.augment import simclr_views
from core.cka import KERNELS, centred_rows, is_constant, normalise_hsic
from core.data import CLASSES, Subset, SubsetSpec, normalize
from core.features import FeatureExtractor
from core.probes import pool_features, ridge_probe

Progress = Callable[[str, int, int], None]
PROBE_METHOD = (
    "ridge classifier on one-hot targets (closed form, regularisation chosen by leave-one-out) on standardised "
    "features average-pooled to a 2x2 map, trained on the first 70% of the subset and scored on the rest"
)


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class AnalysisOptions:
    """How CKA and the read-outs are computed. Part of every cache key."""

    kernel: str = "linear"  # "linear" or "rbf"
    debiased: bool = True  # unbiased HSIC (default); biased CKA is inflated for wide features
    sigma: float = 0.8  # RBF bandwidth as a fraction of the median distance
    batch_size: int = 250  # images per CKA minibatch: larger lowers variance, costs b^2 memory
    invariance: bool = True  # also run each model on seeded SimCLR views (a second forward pass)
    probes: bool = True  # per-layer linear probes on pooled features
    probe_holdout: float = 0.3  # share of the subset held out to score the probes
    permutations: int = 20  # permutation-null samples for the matched layers
    resamples: int = 200  # bootstrap resamples (over minibatches) for the matched-layer interval
    seed: int = 0  # seeds the augmented views, the permutations and the bootstrap

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, not {self.kernel!r}")
        if self.batch_size < (4 if self.debiased else 2):
            raise ValueError("batch size must be at least 4 for the debiased estimator (2 for biased)")
        if not 0 < self.probe_holdout < 1:
            raise ValueError("probe_holdout must be between 0 and 1")
        if self.sigma <= 0 or self.permutations < 0 or self.resamples < 0:
            raise ValueError("sigma must be positive; permutations and resamples must be >= 0")


@dataclass(frozen=True)
class ModelIdentity:
    """What a result says about a model: enough to know exactly which weights were compared."""

    source: str
    sha256: str
    method: str
    arch: str

    @classmethod
    def of(cls, info) -> ModelIdentity:
        """The identity of a loaded model (a models.ModelInfo)."""
        return cls(info.source, info.sha256, info.method, info.arch.name)


@dataclass(frozen=True)
class Fingerprint:
    """One model's pass over (a shard of) one subset: per-batch centred Grams and summed HSIC terms.

    Everything is kept per batch or as plain sums, so shards from several processes merge exactly.
    """

    model: ModelIdentity
    layers: tuple[str, ...]
    subset_key: str
    options: AnalysisOptions
    batch_ids: tuple[int, ...]  # which minibatches of the subset these are
    rows: tuple[torch.Tensor, ...]  # per batch: [L, b*b] float32 centred Grams (HSIC scale folded in)
    self_hsic: tuple[torch.Tensor, ...]  # per batch: [L, L] float64
    pooled: tuple[tuple[torch.Tensor, ...], ...]  # per batch, per layer: pooled probe features, bfloat16
    labels: tuple[torch.Tensor, ...]  # per batch: class labels
    label_hsic: torch.Tensor  # [L + 1] HSIC of each layer (and of the labels) with the label kernel
    inv_cross: torch.Tensor  # [L] HSIC between a layer on x and on t(x)
    inv_self: torch.Tensor  # [L] HSIC of a layer on t(x) with itself
    constant: torch.Tensor  # [L] bool: the layer was constant on every batch
    seconds: dict[str, float]  # time per stage


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU; a clear error when CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available; use auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so a timer around it measures the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cka_of(cross: torch.Tensor, self_x: torch.Tensor, self_y: torch.Tensor) -> np.ndarray:
    """Elementwise CKA from summed HSIC terms; NaN where a self term is not positive."""
    denom = (self_x * self_y).clamp_min(0).sqrt()
    out = torch.where(denom > 0, cross / torch.where(denom > 0, denom, torch.ones_like(denom)), torch.nan)
    return out.cpu().numpy()


def view_generator(seed: int, batch_id: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of batch `batch_id`'s augmented views (and permutations): one per (seed, batch), so
    they do not depend on how batches are sharded, and the app can show exactly the views analysed."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + batch_id)


def batch_count(n: int, options: AnalysisOptions) -> int:
    return -(-n // options.batch_size)


def fingerprint(
    model,
    subset: Subset,
    options: AnalysisOptions,
    device: torch.device,
    progress: Progress = _no_progress,
    shard: tuple[int, int] = (0, 1),
) -> Fingerprint:
    """Run `model` (a models.LoadedModel) once over the subset and keep what CKA needs.

    `shard` = (rank, world): this process takes minibatches rank, rank + world, ...
    """
    info = model.info
    extractor = FeatureExtractor(model.module, model.layers, device)
    n_layers, n = len(extractor.names), len(subset.labels)
    rank, world = shard
    mine = [k for k in range(batch_count(n, options)) if k % world == rank]
    onehot = F.one_hot(subset.labels, len(CLASSES)).double()
    seconds = {"forward": 0.0, "cka": 0.0}
    kept, rows, self_hsic, pooled, labels = [], [], [], [], []
    label_hsic = torch.zeros(n_layers + 1, dtype=torch.float64, device=device)
    inv_cross = torch.zeros(n_layers, dtype=torch.float64, device=device)
    inv_self = torch.zeros(n_layers, dtype=torch.float64, device=device)
    constant = torch.ones(n_layers, dtype=torch.bool, device=device)
    kw = {"kernel": options.kernel, "debiased": options.debiased, "sigma": options.sigma}
    for done, k in enumerate(mine, start=1):
        batch = slice(k * options.batch_size, (k + 1) * options.batch_size)
        images = subset.images[batch].to(device)
        if len(images) < (4 if options.debiased else 2):
            continue  # a tail too small for the estimator is left out; `used_images` says so
        t0 = time.perf_counter()
        feats = extractor(normalize(images, info.mean, info.std))
        synchronize(device)
        t1 = time.perf_counter()
        r = centred_rows(feats, **kw)
        lab = centred_rows([onehot[batch].to(device)], **(kw | {"kernel": "linear"}))
        label_hsic += (torch.cat([r, lab]) * lab).sum(1)
        self_hsic.append((r @ r.T).cpu())
        constant &= is_constant(feats)
        # bfloat16 halves the largest stored part (16k values per image for a ResNet-18); the probe
        # standardises each feature, and 3 significant digits change no argmax that matters
        pooled.append(tuple(pool_features(f).to(torch.bfloat16).cpu() for f in feats) if options.probes else ())
        del feats  # one batch's activations at a time: the views' forward pass must not find them alive
        synchronize(device)
        t2 = time.perf_counter()
        if options.invariance:
            augmented = simclr_views(images, view_generator(options.seed, k, device))
            views = extractor(normalize(augmented, info.mean, info.std))
            synchronize(device)
            t3 = time.perf_counter()
            rv = centred_rows(views, **kw)
            del views
            inv_cross += (r * rv).sum(1)
            inv_self += (rv * rv).sum(1)
            synchronize(device)
            seconds["forward"] += t3 - t2
            seconds["cka"] += time.perf_counter() - t3
        rows.append(r.float().cpu())
        labels.append(subset.labels[batch])
        kept.append(k)
        seconds["forward"] += t1 - t0
        seconds["cka"] += t2 - t1
        progress(f"{info.source}: forward passes and Grams", done, len(mine))
    return Fingerprint(
        model=ModelIdentity.of(info),
        layers=tuple(extractor.names),
        subset_key=subset.spec.key(),
        options=options,
        batch_ids=tuple(kept),
        rows=tuple(rows),
        self_hsic=tuple(self_hsic),
        pooled=tuple(pooled),
        labels=tuple(labels),
        label_hsic=label_hsic.cpu(),
        inv_cross=inv_cross.cpu(),
        inv_self=inv_self.cpu(),
        constant=constant.cpu(),
        seconds=seconds,
    )


def merge_fingerprints(shards: list[Fingerprint]) -> Fingerprint:
    """One fingerprint from the shards of several processes: batches in order, sums added."""
    first = shards[0]
    order = sorted((k, s, i) for s, shard in enumerate(shards) for i, k in enumerate(shard.batch_ids))

    def pick(name: str) -> tuple:
        return tuple(getattr(shards[s], name)[i] for _, s, i in order)

    total = lambda name: sum(getattr(s, name) for s in shards)  # noqa: E731
    return replace(
        first,
        batch_ids=tuple(k for k, _, _ in order),
        rows=pick("rows") if all(len(s.rows) == len(s.batch_ids) for s in shards) else (),
        self_hsic=pick("self_hsic"),
        pooled=pick("pooled"),
        labels=pick("labels"),
        label_hsic=total("label_hsic"),
        inv_cross=total("inv_cross"),
        inv_self=total("inv_self"),
        constant=torch.stack([s.constant for s in shards]).all(0),
        seconds={k: max(s.seconds[k] for s in shards) for k in first.seconds},
    )


@dataclass(frozen=True)
class Readouts:
    """What concerns one model alone, per layer."""

    self_cka: np.ndarray  # [L, L]
    undefined: tuple[str | None, ...]
    class_cka: np.ndarray  # [L] CKA with the one-hot label kernel
    invariance: np.ndarray  # [L] CKA(layer(x), layer(t(x))); NaN when not computed
    probe_accuracy: np.ndarray  # [L] held-out linear-probe accuracy; NaN when not computed
    probe_seconds: float


def readouts(fp: Fingerprint, progress: Progress = _no_progress) -> Readouts:
    """Own CKA, class structure, invariance and probes of one model from its fingerprint."""
    self_total = sum(fp.self_hsic)
    self_cka, reasons = normalise_hsic(self_total, fp.constant)
    diag = self_total.diagonal()
    n_layers = len(fp.layers)
    class_cka = _cka_of(fp.label_hsic[:-1], diag, fp.label_hsic[-1].expand(n_layers))
    invariance = _cka_of(fp.inv_cross, diag, fp.inv_self) if fp.options.invariance else np.full(n_layers, np.nan)
    t0 = time.perf_counter()
    probes = _probe_layers(fp, progress) if fp.options.probes else np.full(n_layers, np.nan)
    return Readouts(self_cka.numpy(), tuple(reasons), class_cka, invariance, probes, time.perf_counter() - t0)


def _probe_layers(fp: Fingerprint, progress: Progress) -> np.ndarray:
    """Held-out accuracy of a linear probe per layer; the subset's seeded order fixes the split."""
    y = torch.cat(fp.labels)
    split = len(y) - max(1, int(round(len(y) * fp.options.probe_holdout)))
    accuracies = []
    for layer in range(len(fp.layers)):
        x = torch.cat([batch[layer] for batch in fp.pooled]).float()
        accuracies.append(ridge_probe(x[:split], y[:split], x[split:], y[split:], len(CLASSES)))
        progress(f"{fp.model.source}: linear probes", layer + 1, len(fp.layers))
    return np.asarray(accuracies)


@dataclass(frozen=True)
class AnalysisResult:
    """Everything the app shows and the command line writes, for one pair of models."""

    model_a: ModelIdentity
    model_b: ModelIdentity
    subset: SubsetSpec
    options: AnalysisOptions
    used_images: int
    layers_a: tuple[str, ...]
    layers_b: tuple[str, ...]
    cross: np.ndarray  # [La, Lb] CKA between every layer of A and every layer of B
    self_a: np.ndarray  # [La, La]
    self_b: np.ndarray  # [Lb, Lb]
    undefined_a: tuple[str | None, ...]  # per layer: why its CKA is undefined, or None
    undefined_b: tuple[str | None, ...]
    matched: tuple[str, ...]  # layer names present in both models, in depth order
    matched_cka: np.ndarray  # [M]
    null_mean: np.ndarray  # [M] permutation null (rows of B shuffled): mean and 95th percentile
    null_p95: np.ndarray
    interval_low: np.ndarray  # [M] 2.5 / 97.5 percentiles of a bootstrap over minibatches
    interval_high: np.ndarray
    class_a: np.ndarray  # [La] class-structure CKA (one-hot label kernel)
    class_b: np.ndarray
    invariance_a: np.ndarray  # [La] CKA(layer(x), layer(t(x))) with SimCLR views t
    invariance_b: np.ndarray
    probe_a: np.ndarray  # [La] held-out linear-probe accuracy
    probe_b: np.ndarray
    probe_method: str = PROBE_METHOD
    seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


def _versions() -> dict[str, str]:
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__}


def _matched(layers_a: tuple[str, ...], layers_b: tuple[str, ...]) -> list[tuple[int, int]]:
    """Pairs of indices of layers with the same name, in A's order (same architecture: all of them)."""
    index_b = {name: j for j, name in enumerate(layers_b)}
    return [(i, index_b[name]) for i, name in enumerate(layers_a) if name in index_b]


def _permuted(rows: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Centred Grams of the same features with the examples shuffled (centring commutes with it)."""
    b = perm.numel()
    return rows.view(-1, b, b)[:, perm][:, :, perm].reshape(rows.shape[0], -1)


@dataclass(frozen=True)
class PairTerms:
    """Cross-model HSIC per batch and the permutation-null sums, for (a shard of) the batches."""

    batch_ids: tuple[int, ...]
    cross: tuple[torch.Tensor, ...]  # per batch: [La, Lb] float64
    null: torch.Tensor  # [permutations, matched] float64, summed over these batches
    seconds: float


def pair_terms(fa: Fingerprint, fb: Fingerprint, device: torch.device, progress: Progress = _no_progress) -> PairTerms:
    """One matrix product per batch for every cross-model HSIC, and the permutation null."""
    if fa.subset_key != fb.subset_key or fa.options != fb.options or fa.batch_ids != fb.batch_ids:
        raise ValueError("fingerprints were taken on different subsets or options; recompute one of them")
    t0 = time.perf_counter()
    pairs = _matched(fa.layers, fb.layers)
    ia = torch.tensor([i for i, _ in pairs], dtype=torch.long, device=device)
    ib = torch.tensor([j for _, j in pairs], dtype=torch.long, device=device)
    permutations = fa.options.permutations
    null = torch.zeros(permutations, len(pairs), dtype=torch.float64, device=device)
    cross = []
    for done, (k, ra, rb) in enumerate(zip(fa.batch_ids, fa.rows, fb.rows, strict=True), start=1):
        ra64, rb64 = ra.to(device, torch.float64), rb.to(device, torch.float64)
        cross.append((ra64 @ rb64.T).cpu())
        b = int(round(ra.shape[1] ** 0.5))
        g = view_generator(fa.options.seed, k)
        matched_a, matched_b = ra64[ia], rb64[ib]
        for p in range(permutations):
            perm = torch.randperm(b, generator=g).to(device)
            null[p] += (matched_a * _permuted(matched_b, perm)).sum(1)
        progress("cross-model CKA and permutation null", done, len(fa.rows))
    synchronize(device)
    return PairTerms(fa.batch_ids, tuple(cross), null.cpu(), time.perf_counter() - t0)


def merge_pair_terms(shards: list[PairTerms]) -> PairTerms:
    order = sorted((k, s, i) for s, shard in enumerate(shards) for i, k in enumerate(shard.batch_ids))
    return PairTerms(
        batch_ids=tuple(k for k, _, _ in order),
        cross=tuple(shards[s].cross[i] for _, s, i in order),
        null=sum(s.null for s in shards),
        seconds=max(s.seconds for s in shards),
    )


def finalize(
    fa: Fingerprint, fb: Fingerprint, terms: PairTerms, subset: SubsetSpec, progress: Progress = _no_progress
) -> AnalysisResult:
    """Normalise the summed terms into CKA, add each model's read-outs and the bootstrap interval."""
    options = fa.options
    t0 = time.perf_counter()
    la, lb = len(fa.layers), len(fb.layers)
    pairs = _matched(fa.layers, fb.layers)
    ia = torch.tensor([i for i, _ in pairs], dtype=torch.long)
    ib = torch.tensor([j for _, j in pairs], dtype=torch.long)
    constant = torch.cat([fa.constant, fb.constant])

    def stacked_cka(weights: list[float]) -> tuple[torch.Tensor, list[str | None]]:
        """CKA of the stacked [A; B] layers, batch k weighted by weights[k] (all 1: the real data)."""
        hsic = torch.zeros(la + lb, la + lb, dtype=torch.float64)
        for w, cross, sa, sb in zip(weights, terms.cross, fa.self_hsic, fb.self_hsic, strict=True):
            if w:
                hsic[:la, :la] += w * sa
                hsic[la:, la:] += w * sb
                hsic[:la, la:] += w * cross
                hsic[la:, :la] += w * cross.T
        return normalise_hsic(hsic, constant)

    full, reasons = stacked_cka([1.0] * len(terms.cross))
    cross = full[:la, la:]
    self_a, self_b = sum(fa.self_hsic).diagonal(), sum(fb.self_hsic).diagonal()
    null_cka = _cka_of(terms.null, self_a[ia].expand_as(terms.null), self_b[ib].expand_as(terms.null))
    g = torch.Generator().manual_seed(options.seed)
    nb, boot = len(terms.cross), []
    for r in range(options.resamples):
        counts = torch.bincount(torch.randint(nb, (nb,), generator=g), minlength=nb).double().tolist()
        boot.append(stacked_cka(counts)[0][:la, la:][ia, ib])
        if r % 50 == 49 or r == options.resamples - 1:
            progress("bootstrap interval over minibatches", r + 1, options.resamples)
    boot_np = torch.stack(boot).numpy() if boot else np.full((1, len(pairs)), np.nan)
    ra, rb = readouts(fa, progress), readouts(fb, progress)
    seconds = {
        "forward": fa.seconds["forward"] + fb.seconds["forward"],
        "cka": fa.seconds["cka"] + fb.seconds["cka"] + terms.seconds + time.perf_counter() - t0
        - ra.probe_seconds - rb.probe_seconds,
        "probes": ra.probe_seconds + rb.probe_seconds,
    }
    with warnings.catch_warnings():  # an undefined (dead) layer has all-NaN null and bootstrap samples
        warnings.simplefilter("ignore", RuntimeWarning)
        null_mean = np.nanmean(null_cka, 0) if len(null_cka) else np.full(len(pairs), np.nan)
        null_p95 = np.nanpercentile(null_cka, 95, 0) if len(null_cka) else np.full(len(pairs), np.nan)
        low, high = np.nanpercentile(boot_np, 2.5, 0), np.nanpercentile(boot_np, 97.5, 0)
    return AnalysisResult(
        model_a=fa.model,
        model_b=fb.model,
        subset=subset,
        options=options,
        used_images=sum(len(y) for y in fa.labels),
        layers_a=fa.layers,
        layers_b=fb.layers,
        cross=cross.numpy(),
        self_a=full[:la, :la].numpy(),
        self_b=full[la:, la:].numpy(),
        undefined_a=tuple(reasons[:la]),
        undefined_b=tuple(reasons[la:]),
        matched=tuple(fa.layers[i] for i, _ in pairs),
        matched_cka=cross[ia, ib].numpy(),
        null_mean=null_mean,
        null_p95=null_p95,
        interval_low=low,
        interval_high=high,
        class_a=ra.class_cka,
        class_b=rb.class_cka,
        invariance_a=ra.invariance,
        invariance_b=rb.invariance,
        probe_a=ra.probe_accuracy,
        probe_b=rb.probe_accuracy,
        seconds=seconds,
        versions=_versions(),
    )


def compare(model_a, model_b, subset: Subset, options: AnalysisOptions, device: torch.device, progress=_no_progress):
    """The whole analysis of two loaded models on one subset, in one process."""
    fa = fingerprint(model_a, subset, options, device, progress)
    fb = fingerprint(model_b, subset, options, device, progress)
    return finalize(fa, fb, pair_terms(fa, fb, device, progress), subset.spec, progress)


def to_json_dict(result: AnalysisResult) -> dict:
    """A JSON-ready dict; undefined values become null with their reasons alongside."""

    def clean(value):
        if isinstance(value, np.ndarray):
            return [clean(v) for v in value.tolist()]
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    out = {}
    for key, value in asdict(result).items():
        out[key] = clean(value) if not isinstance(value, dict) else {k: clean(v) for k, v in value.items()}
    return out


def to_csv(result: AnalysisResult) -> str:
    """Long-format CSV: one row per value (section, layer_a, layer_b, value); empty value = undefined."""
    lines = ["section,layer_a,layer_b,value"]

    def add(section: str, a: str, b: str, value: float) -> None:
        lines.append(f"{section},{a},{b},{'' if not np.isfinite(value) else repr(float(value))}")

    for section, matrix, rows, cols in (
        ("cross", result.cross, result.layers_a, result.layers_b),
        ("self_a", result.self_a, result.layers_a, result.layers_a),
        ("self_b", result.self_b, result.layers_b, result.layers_b),
    ):
        for i, a in enumerate(rows):
            for j, b in enumerate(cols):
                add(section, a, b, matrix[i, j])
    for section in ("class", "invariance", "probe"):
        for side, layers in (("a", result.layers_a), ("b", result.layers_b)):
            for name, value in zip(layers, getattr(result, f"{section}_{side}"), strict=True):
                add(f"{section}_{side}", name if side == "a" else "", name if side == "b" else "", value)
    for k, name in enumerate(result.matched):
        for section in ("matched_cka", "null_mean", "null_p95", "interval_low", "interval_high"):
            add(section, name, name, getattr(result, section)[k])
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes an analysis will hold at its peak, and what is free to hold it."""

    needed: int
    available: int

    @property
    def fits(self) -> bool:
        return self.needed <= self.available


def layer_shapes(model, device: torch.device) -> list[tuple[int, ...]]:
    """Per-example output shape of every analysed layer, from one forward pass of a single image."""
    extractor = FeatureExtractor(model.module, model.layers, device)
    return [tuple(f.shape[1:]) for f in extractor(torch.zeros(1, 3, 32, 32, device=device))]


def estimate_bytes(models_shapes: list[list[tuple[int, ...]]], n: int, options: AnalysisOptions) -> int:
    """Peak memory of an analysis of n images over models with these layer shapes (all fingerprints held).

    Per model: the stored centred Grams (n/b batches x L x b^2 float32) and pooled probe features
    (bfloat16). On top, whichever is larger: one batch of activations and its float64 Grams (forward
    passes), or the widest layer's probe (its features in float32, standardised copies and the
    eigenbasis projection and its square in float64, the d x d products: ~40 bytes per value plus 24 d^2).
    """
    b = min(options.batch_size, n)
    batches, stored, in_flight, probe = -(-n // b), 0, 0, 0
    for shapes in models_shapes:
        sizes = [int(np.prod(s)) for s in shapes]
        widths = [min(size, 4 * s[0]) if len(s) == 3 else size for size, s in zip(sizes, shapes, strict=True)]
        stored += batches * len(shapes) * b * b * 4 + (n * sum(widths) * 2 if options.probes else 0)
        in_flight = max(in_flight, b * sum(sizes) * 4 + 3 * len(shapes) * b * b * 8)
        if options.probes:
            probe = max(probe, n * max(widths) * 40 + 24 * min(max(widths), n) ** 2)
    return stored + max(in_flight, probe)


def available_bytes(device: torch.device) -> int:
    """Free memory where the analysis runs: the GPU's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 8 * 1024**3  # no /proc (not Linux): assume a modest machine


def check_memory(
    models_shapes: list[list[tuple[int, ...]]], n: int, options: AnalysisOptions, device: torch.device
) -> MemoryPlan:
    """Refuse up front, with a setting that fits, an analysis that would not fit in memory."""
    plan = MemoryPlan(estimate_bytes(models_shapes, n, options), int(available_bytes(device) * 0.8))
    if plan.fits:
        return plan
    gb = 1024**3
    advice = []
    batch = options.batch_size
    while batch > 16 and estimate_bytes(models_shapes, n, replace(options, batch_size=batch)) > plan.available:
        batch //= 2
    if estimate_bytes(models_shapes, n, replace(options, batch_size=batch)) <= plan.available:
        advice.append(f"a batch size of {batch}")
    images = n
    while images > 10 and estimate_bytes(models_shapes, images, options) > plan.available:
        images //= 2
    if estimate_bytes(models_shapes, images, options) <= plan.available:
        advice.append(f"at most {images} images")
    hint = " or ".join(advice) if advice else "a smaller model or a machine with more memory"
    raise MemoryError(
        f"this analysis needs about {plan.needed / gb:.1f} GB but about {plan.available / gb:.1f} GB is free "
        f"on {device.type}; try {hint}"
    )
