"""One network's pass over a subset: everything CKA needs of it, kept per minibatch.

`fingerprint` runs a network once over the subset (plus once over seeded SimCLR views for the
invariance read-out) and keeps, per minibatch, each layer's centred Gram, together with everything
that concerns that network alone. Comparing two fingerprints then needs no forward pass at all, so
N networks cost N forward passes, and a fingerprint is a cache entry keyed by (weights, subset, options).
The per-batch Grams and probe features stay in memory up to a bound (CKA_LENS_SPILL_MB) and go to files beyond
it (core.spill), so what a fingerprint holds in memory does not grow with the number of images.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from core import settings
from core.augment import simclr_views
from core.cka import centred_rows, is_constant
from core.data import CLASSES, Subset
from core.device import synchronize
from core.features import FeatureExtractor
from core.memory import HeapBudget, release_freed
from core.network import ModelIdentity, Network, input_of, preprocess
from core.options import AnalysisOptions
from core.probes import pool_features
from core.progress import Progress, no_progress
from core.spill import Batches, Part, Spiller

# The rows of a batch's read-out terms: HSIC of each layer (and the labels) with the label kernel; of layer(x) with
# layer(t(x)) and of layer(t(x)) with itself; the same three for each map averaged over space first (pooled
# invariance: a random crop moves content, so flattened maps of x and t(x) differ by misalignment as well).
READOUT_TERMS = ("label", "inv_cross", "inv_self", "pooled_cross", "pooled_self_x", "pooled_self_t")


@dataclass(frozen=True)
class Fingerprint:
    """One model's pass over (a shard of) one subset: per-batch centred Grams and summed HSIC terms.

    Everything is kept per batch or as plain sums, so shards from several processes merge exactly. The two
    large per-batch parts are `Batches` (in memory or in spill files, read back a batch at a time); the probe
    features are kept per layer, so a probe reads one layer without touching the others.
    """

    model: ModelIdentity
    layers: tuple[str, ...]
    subset_key: str
    options: AnalysisOptions
    batch_ids: tuple[int, ...]  # which minibatches of the subset these are
    rows: Batches  # per batch: [L, b*b] float32 centred Grams (HSIC scale folded in)
    self_hsic: tuple[torch.Tensor, ...]  # per batch: [L, L] float64
    pooled: tuple[Batches, ...]  # per layer, per batch: [b, d] pooled probe features, bfloat16 (() without probes)
    labels: tuple[torch.Tensor, ...]  # per batch: class labels
    label_hsic: torch.Tensor  # [L + 1] HSIC of each layer (and of the labels) with the label kernel
    inv_cross: torch.Tensor  # [L] HSIC between a layer on x and on t(x)
    inv_self: torch.Tensor  # [L] HSIC of a layer on t(x) with itself
    constant: torch.Tensor  # [L] bool: the layer was constant on every batch
    seconds: dict[str, float]  # time per stage
    # per batch: [len(READOUT_TERMS), L + 1] float64, the read-outs' HSIC terms of that batch alone (see
    # READOUT_TERMS; the label row has L + 1 entries, the others L and a 0), so that every read-out has its
    # delete-one-minibatch jackknife; () in a fingerprint made without them
    batch_readouts: tuple[torch.Tensor, ...] = ()
    # layers whose output is 3-D or 4-D with no knowable channel axis (core.layout): their pooled invariance and
    # probe features are NaN, never averages over guessed axes
    unknown_layout: tuple[str, ...] = ()
    # layers whose output is tokens [N, T, C] (a transformer's): read flattened for CKA, every token, and averaged
    # over tokens for the pooled read-outs; the pages say so
    tokens: tuple[str, ...] = ()

    def first(self, count: int) -> Fingerprint:
        """The per-batch parts of the first `count` batches, for a preview (the summed parts stay whole)."""
        return replace(
            self,
            batch_ids=self.batch_ids[:count],
            rows=self.rows[:count],
            self_hsic=self.self_hsic[:count],
            pooled=tuple(layer[:count] for layer in self.pooled),
            labels=self.labels[:count],
            batch_readouts=self.batch_readouts[:count],
        )


def view_generator(seed: int, batch_id: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of batch `batch_id`'s augmented views (and permutations): one per (seed, batch), so
    they do not depend on how batches are sharded, and the app can show exactly the views analysed."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + batch_id)


def fingerprint(
    network: Network,
    subset: Subset,
    options: AnalysisOptions,
    device: torch.device,
    progress: Progress = no_progress,
    shard: tuple[int, int] = (0, 1),
) -> Fingerprint:
    """Run `network` once over the subset and keep what CKA needs.

    `shard` = (rank, world): this process takes minibatches rank, rank + world, ...
    """
    return last(fingerprint_steps(network, subset, options, device, progress, shard))


def last(steps: Iterable[Fingerprint]) -> Fingerprint:
    """The last fingerprint of `steps` (the whole one), without holding the earlier ones meanwhile: they are one per
    minibatch, so keeping them all would grow with the square of the number of batches."""
    return deque(steps, maxlen=1)[0]


def fingerprint_steps(
    network: Network,
    subset: Subset,
    options: AnalysisOptions,
    device: torch.device,
    progress: Progress = no_progress,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[Fingerprint]:
    """`fingerprint`, one minibatch at a time: yields the fingerprint of the batches so far after each one
    (a subset too small for any batch yields one empty fingerprint); the last is the whole one. With invariance,
    the first batch is also yielded before its views, so that a first preview waits only for one forward pass."""
    identity = network.identity
    form = input_of(network)  # CIFAR images (and their augmented views, made at 32 px) resized to its input, normalised
    extractor = FeatureExtractor(network.module, network.layers, device)
    n_layers, n = len(extractor.names), len(subset.labels)
    rank, world = shard
    mine = [k for k in range(options.batch_count(n)) if k % world == rank]
    onehot = F.one_hot(subset.labels, len(CLASSES)).double()
    seconds = {"forward": 0.0, "cka": 0.0}
    kept, rows, self_hsic, labels, batch_readouts = [], [], [], [], []
    pooled: list[list] = [[] for _ in extractor.names] if options.probes else []
    spiller = Spiller(settings.spill_bytes())
    heap = HeapBudget()
    heap.rest()
    label_hsic = torch.zeros(n_layers + 1, dtype=torch.float64, device=device)
    inv_cross = torch.zeros(n_layers, dtype=torch.float64, device=device)
    inv_self = torch.zeros(n_layers, dtype=torch.float64, device=device)
    constant = torch.ones(n_layers, dtype=torch.bool, device=device)
    kw = {"kernel": options.kernel, "debiased": options.debiased, "sigma": options.sigma}
    tokens: set[int] = set()  # which layers' outputs are tokens [N, T, C]

    def so_far(whole: bool) -> Fingerprint:
        """The fingerprint of the batches kept so far; a preview's has its own copy of the sums."""
        sums = [label_hsic, inv_cross, inv_self, constant]
        label, cross, own, flat = sums if whole else [t.clone() for t in sums]
        return Fingerprint(
            model=identity,
            layers=tuple(extractor.names),
            subset_key=subset.spec.key(),
            options=options,
            batch_ids=tuple(kept),
            rows=Batches(tuple(rows)),
            self_hsic=tuple(self_hsic),
            pooled=tuple(Batches(tuple(layer)) for layer in pooled),
            labels=tuple(labels),
            label_hsic=label.cpu(),
            inv_cross=cross.cpu(),
            inv_self=own.cpu(),
            constant=flat.cpu(),
            seconds=dict(seconds),
            batch_readouts=tuple(batch_readouts),
            unknown_layout=tuple(name for name in extractor.names if name in extractor.unknown_layout),
            tokens=tuple(name for j, name in enumerate(extractor.names) if j in tokens),
        )

    def pass_over(images: torch.Tensor, views: bool) -> tuple[torch.Tensor, torch.Tensor | None, list, float, list]:
        """One forward pass, each layer read as the network makes it (FeatureExtractor.stream): the layers' centred
        Gram rows [L, b*b]; for the images themselves (not `views`), whether each layer was constant and (with
        probes) its pooled probe features in bfloat16; the seconds of the pass that were the network's own (the
        rest is CKA time); with invariance, each layer's centred Gram rows of its map averaged over space."""
        layer_rows, flags, probe = [None] * n_layers, [None] * n_layers, [None] * n_layers
        spatial = [None] * n_layers
        probes = options.probes and not views
        reading = [0.0]

        def consume(j: int, features: torch.Tensor) -> None:
            synchronize(device)
            t = time.perf_counter()
            layer_rows[j] = centred_rows([features], **kw)[0]
            if features.dim() == 3:
                tokens.add(j)
            unknown = extractor.names[j] in extractor.unknown_layout  # no knowable spatial axes to pool over
            if options.invariance:
                averaged = spatial_mean(features)
                spatial[j] = centred_rows([averaged], **kw)[0]
                if unknown:
                    spatial[j] = torch.full_like(spatial[j], float("nan"))
            if not views:
                flags[j] = is_constant([features])[0]
            if probes:
                # bfloat16 halves the largest stored part (16k values per image for a ResNet-18); the probe
                # standardises each feature, and 3 significant digits change no argmax that matters
                probe[j] = pool_features(features).to(torch.bfloat16).cpu()
                if unknown:
                    probe[j] = torch.full_like(probe[j], float("nan"))
            synchronize(device)
            heap.check(spiller.held, features.numel() * features.element_size())
            reading[0] += time.perf_counter() - t

        t = time.perf_counter()
        extractor.stream(preprocess(images, form), consume)
        synchronize(device)
        own = time.perf_counter() - t - reading[0]
        averaged = torch.stack(spatial) if options.invariance else None
        return torch.stack(layer_rows), None if views else torch.stack(flags), probe if probes else [], own, averaged

    for done, k in enumerate(mine, start=1):
        batch = slice(k * options.batch_size, (k + 1) * options.batch_size)
        images = subset.images[batch].to(device)
        if len(images) < options.min_batch:
            continue  # a tail too small for the estimator is left out; `used_images` says so
        start = time.perf_counter()
        r, flat, probe_feats, forward, spatial_x = pass_over(images, views=False)
        lab = centred_rows([onehot[batch].to(device)], **(kw | {"kernel": "linear"}))
        terms = torch.zeros(len(READOUT_TERMS), n_layers + 1, dtype=torch.float64, device=device)
        terms[0] = (torch.cat([r, lab]) * lab).sum(1)
        label_hsic += terms[0]
        self_hsic.append((r @ r.T).cpu())
        constant &= flat
        keep_batch(spiller, rows, pooled, r.float().cpu(), probe_feats)
        labels.append(subset.labels[batch])
        kept.append(k)
        if options.invariance:
            if done == 1 < len(mine):  # a first preview need not wait for the views (it shows no invariance)
                paused = time.perf_counter()
                yield so_far(whole=False)
                start += time.perf_counter() - paused  # the consumer's time is not this pass's
            t = time.perf_counter()
            augmented = simclr_views(images, view_generator(options.seed, k, device))
            synchronize(device)
            forward += time.perf_counter() - t
            rv, _, _, views_forward, spatial_t = pass_over(augmented, views=True)
            forward += views_forward
            terms[1, :n_layers], terms[2, :n_layers] = (r * rv).sum(1), (rv * rv).sum(1)
            terms[3, :n_layers] = (spatial_x * spatial_t).sum(1)
            terms[4, :n_layers], terms[5, :n_layers] = (spatial_x * spatial_x).sum(1), (spatial_t * spatial_t).sum(1)
            inv_cross += terms[1, :n_layers]
            inv_self += terms[2, :n_layers]
        batch_readouts.append(terms.cpu())
        synchronize(device)
        seconds["forward"] += forward
        seconds["cka"] += time.perf_counter() - start - forward
        subset.release(batch)
        progress(f"{identity.source}: forward passes and Grams", done, len(mine))
        if done < len(mine):
            yield so_far(whole=False)
    release_freed()  # the heap's slack, for whatever runs next
    yield so_far(whole=True)


def spatial_mean(features: torch.Tensor) -> torch.Tensor:
    """A layer's output averaged over positions: a map [N, C, H, W] (core.features hands every map over
    channels first) over H and W, tokens [N, T, C] (core.features hands every 3-D output over so: a transformer's
    tokens, class token included, or a Conv1d's [N, C, L] transposed) over T; a vector as it is."""
    if features.dim() == 4:
        return features.float().mean((2, 3))
    if features.dim() == 3:
        return features.float().mean(1)
    return features


def keep_batch(
    spiller: Spiller, rows: list[Part], pooled: list[list[Part]], batch_rows: torch.Tensor, batch_pooled: list
) -> None:
    """Add one batch's centred Grams to `rows` and its per-layer probe features to `pooled`, all of them in
    memory or all in spill files (the spiller decides by the bytes held so far)."""
    named = [("rows", batch_rows)] + [(f"pooled.{j}", p) for j, p in enumerate(batch_pooled)]
    row_part, *pooled_parts = spiller.keep(named)
    rows.append(row_part)
    for layer, part in zip(pooled, pooled_parts, strict=True):
        layer.append(part)


def merge_fingerprints(shards: list[Fingerprint]) -> Fingerprint:
    """One fingerprint from the shards of several processes: batches in order, sums added."""
    first = shards[0]
    order = sorted((k, s, i) for s, shard in enumerate(shards) for i, k in enumerate(shard.batch_ids))

    def pick(name: str) -> tuple:
        return tuple(getattr(shards[s], name)[i] for _, s, i in order)

    def parts(of) -> Batches:
        """The parts of one Batches field of every shard, in batch order (nothing read back)."""
        return Batches(tuple(of(shards[s]).parts[i] for _, s, i in order))

    def total(name: str) -> torch.Tensor:
        return sum(getattr(s, name) for s in shards)

    return replace(
        first,
        batch_ids=tuple(k for k, _, _ in order),
        rows=parts(lambda s: s.rows) if all(len(s.rows) == len(s.batch_ids) for s in shards) else Batches(),
        self_hsic=pick("self_hsic"),
        pooled=tuple(parts(lambda s, j=j: s.pooled[j]) for j in range(len(first.pooled))),
        labels=pick("labels"),
        batch_readouts=pick("batch_readouts") if all(s.batch_readouts for s in shards) else (),
        label_hsic=total("label_hsic"),
        inv_cross=total("inv_cross"),
        inv_self=total("inv_self"),
        constant=torch.stack([s.constant for s in shards]).all(0),
        seconds={k: max(s.seconds[k] for s in shards) for k in first.seconds},
        unknown_layout=tuple(n for n in first.layers if any(n in s.unknown_layout for s in shards)),
        tokens=tuple(n for n in first.layers if any(n in s.tokens for s in shards)),
    )
