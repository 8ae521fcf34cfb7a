"""Sharding the analysis over processes with torch.distributed (torchrun), on CPUs or GPUs.

Every process loads both models and takes every world-th minibatch. Per batch it keeps the
centred-Gram products (cross-model and own), and sums the label, invariance and permutation-null
terms; rank 0 gathers these small per-batch terms (never the Grams themselves), merges them in batch
order and finishes exactly as a single process would. With one process this is the plain pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from core.analysis import (
    AnalysisOptions,
    AnalysisResult,
    finalize,
    fingerprint,
    merge_fingerprints,
    merge_pair_terms,
    pair_terms,
)
from core.data import Subset


@dataclass(frozen=True)
class Cluster:
    """This process's place in the job: rank, world size and compute device."""

    rank: int
    world: int
    device: torch.device

    @classmethod
    def from_env(cls, device: torch.device) -> Cluster:
        """Join the torchrun job when WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA); else a world of one."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls(0, 1, device)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), device)

    def describe(self) -> str:
        return f"{self.world} process{'es' if self.world > 1 else ''} on {self.device.type}"

    def gather(self, obj):
        """All ranks' objects on rank 0 (None elsewhere); the object itself in a world of one."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def compare_sharded(reference, others: list, subset: Subset, options: AnalysisOptions, cluster: Cluster, progress):
    """Compare `reference` with each model in `others`; the reference runs once, whatever their number.

    Returns the results on rank 0 and an empty list on the other ranks.
    """
    shard = (cluster.rank, cluster.world)
    fa = fingerprint(reference, subset, options, cluster.device, progress, shard)
    fa_all = cluster.gather(replace(fa, rows=()))
    results: list[AnalysisResult] = []
    for other in others:
        fb = fingerprint(other, subset, options, cluster.device, progress, shard)
        terms = pair_terms(fa, fb, cluster.device, progress)
        fb_all, terms_all = cluster.gather(replace(fb, rows=())), cluster.gather(terms)
        if cluster.rank == 0:
            merged_a, merged_b = merge_fingerprints(fa_all), merge_fingerprints(fb_all)
            results.append(finalize(merged_a, merged_b, merge_pair_terms(terms_all), subset.spec, progress))
    return results
