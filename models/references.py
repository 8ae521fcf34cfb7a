"""What a pair is read against beside its ceilings, once its comparisons are done: the untrained floors
(core.floors, with untrained networks from models.untrained) and the seed pairings (core.seeds), both from the
fingerprints the comparisons kept, so the trained networks run no second time. The one enrichment the command
line (`cli compare`) and the app (ui.service) both call."""

from __future__ import annotations

from dataclasses import replace

from core.data import Subset
from core.distributed import Cluster
from core.fingerprint import Fingerprint
from core.floors import INIT_PAIRS, Floors, compute_floors, floor_fields, init_pairs
from core.progress import Progress, no_progress
from core.result import AnalysisResult
from core.seeds import seed_pairings
from core.store import Store
from models.loaded import LoadedModel
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
    else:  # one seed a side: no pairings beyond A x B itself (a result made with other seeds drops theirs)
        fields["seed_pairings"] = ()
    return None if result is None else replace(result, **fields)


def _pairing_names(a: list[LoadedModel], b: list[LoadedModel]) -> list[tuple[str, str]]:
    """The (A's seed, B's seed) names `with_floors_and_seeds` pairs, in its order (none with one seed a side)."""
    if len(a) == 1 and len(b) == 1:
        return []
    return [(ma.identity.source, mb.identity.source) for mb in b for ma in a]


def missing_references(
    result: AnalysisResult, a: list[LoadedModel], b: list[LoadedModel], floor_pairs: int = INIT_PAIRS
) -> tuple[int, bool]:
    """What a finished `result` (from a cache, the result store or a file) lacks of `with_floors_and_seeds` for
    these seeds: the pairs of init seeds still to run (0 when it has its floors) and whether its seed pairings
    must be made (they pair other seeds than `a` x `b`). (0, False): nothing to compute."""
    floors = 0 if result.floor_method else floor_pairs
    pairings = [(p.a, p.b) for p in result.seed_pairings] != _pairing_names(a, b)
    return floors, pairings
