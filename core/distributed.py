"""Sharding an analysis over processes with torch.distributed (torchrun), on CPUs or GPUs.

Every process loads both models and takes every world-th minibatch. Per batch it keeps the
centred-Gram products (cross-model and own), and sums the label, invariance and permutation-null
terms; rank 0 gathers these small per-batch terms (never the Grams themselves), merges them in batch
order and finishes exactly as a single process would. With one process this is the plain pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from core import settings


@dataclass(frozen=True)
class Cluster:
    """This process's place in the job: rank, world size and compute device."""

    rank: int
    world: int
    device: torch.device

    @classmethod
    def single(cls, device: torch.device) -> Cluster:
        """A world of one process."""
        return cls(0, 1, device)

    @classmethod
    def from_env(cls, device: torch.device) -> Cluster:
        """Join the torchrun job when WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA); else a world of one."""
        world, _, local_rank = settings.world()
        if world == 1:
            return cls.single(device)
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), device)

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world): this process takes minibatches rank, rank + world, ..."""
        return self.rank, self.world

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
