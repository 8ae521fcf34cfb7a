"""What `compare` reads beside each pair once the comparisons are done: the untrained floors (core.floors, with
untrained networks from models.untrained) and the seed pairings (core.seeds), both from the fingerprints the
comparisons kept, so the trained networks run no second time."""

from __future__ import annotations

from dataclasses import replace

from core.data import Subset
from core.distributed import Cluster
from core.fingerprint import Fingerprint
from core.floors import Floors, compute_floors, floor_fields, init_pairs
from core.progress import Progress, no_progress
from core.result import AnalysisResult
from core.seeds import seed_pairings
from core.store import Store
from models import LoadedModel
from models.untrained import untrained_model


def floors_of(
    a: LoadedModel,
    b: LoadedModel,
    kept: dict[str, Fingerprint],
    subset: Subset,
    cluster: Cluster,
    asked: int,
    store: Store | None,
    progress: Progress = no_progress,
) -> Floors | None:
    """A vs B's floors, `asked` pairs of init seeds (fewer for a large network on a CPU, with a note)."""
    parameters = max(sum(p.numel() for p in m.module.parameters()) for m in (a, b))
    pairs, note = init_pairs(parameters, cluster.device, asked)
    return compute_floors(
        kept[a.identity.key],
        kept[b.identity.key],
        lambda seed: untrained_model(a.info, seed),
        lambda seed: untrained_model(b.info, seed),
        subset,
        cluster,
        pairs,
        note,
        store,
        progress,
    )


def with_floors_and_seeds(
    result: AnalysisResult | None,
    a: list[LoadedModel],
    b: list[LoadedModel],
    kept: dict[str, Fingerprint],
    subset: Subset,
    cluster: Cluster,
    floor_pairs: int,
    store: Store | None,
    progress: Progress = no_progress,
) -> AnalysisResult | None:
    """`result` (A x B, None off rank 0) with its floors and, when either side has another seed, every cross
    pairing of the seeds: `a` and `b` are each side's networks, the compared one first."""
    fields: dict = {}
    if floor_pairs > 0:
        floors = floors_of(a[0], b[0], kept, subset, cluster, floor_pairs, store, progress)
        if floors is not None and result is not None:
            fields |= floor_fields(floors, result.matched, result.layers_a, result.layers_b)
            fields["seconds"] = result.seconds | {"floors": floors.seconds}
    if len(a) > 1 or len(b) > 1:
        matched = result.matched if result is not None else ()
        seeds = [[(m.identity.source, kept[m.identity.key]) for m in side] for side in (a, b)]
        fields["seed_pairings"] = seed_pairings(*seeds, matched, cluster)
    return None if result is None else replace(result, **fields)
