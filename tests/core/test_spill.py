"""Per-batch tensors in memory or in spill files: read back exactly, sliced without reads, removed when unused."""

from __future__ import annotations

import gc

import pytest
import torch

from core.spill import Batches, OnDisk, Spiller


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64, torch.int64])
def test_spilled_batches_read_back_to_the_bit(dtype):
    g = torch.Generator().manual_seed(0)
    tensors = [(torch.randn(5 + i, 7, generator=g) * 100).to(dtype) for i in range(4)]
    spiller = Spiller(0)
    batches = Batches(tuple(spiller.keep([("x", t)])[0] for t in tensors))
    assert batches.spilled == 4 and all(isinstance(p, OnDisk) for p in batches.parts)
    assert [p.offset for p in batches.parts][:2] == [0, tensors[0].numel() * tensors[0].element_size()]
    assert all(torch.equal(mine, t) and mine.dtype == dtype for mine, t in zip(batches, tensors, strict=True))
    assert batches.nbytes == sum(t.numel() * t.element_size() for t in tensors)


def test_the_spiller_keeps_batches_in_memory_up_to_its_bound_and_a_batch_whole():
    """Two tensors of 400 bytes per batch, a bound of 1,000 bytes: the first batch in memory, the rest on disk."""
    spiller = Spiller(1000)
    kept = [spiller.keep([("a", torch.zeros(100)), ("b", torch.ones(100))]) for _ in range(3)]
    assert [[isinstance(p, OnDisk) for p in batch] for batch in kept] == [[False, False], [True, True], [True, True]]
    assert kept[2][1].load().eq(1).all() and kept[2][0].name == "a"


def test_a_slice_reads_nothing_and_the_folder_goes_with_the_last_reference():
    spiller = Spiller(0)
    batches = Batches(tuple(spiller.keep([("x", torch.full((3,), float(i)))])[0] for i in range(5)))
    folder = spiller.folder.path
    head = batches[:2]
    assert isinstance(head, Batches) and head.parts == batches.parts[:2] and head[1].eq(1).all()
    del batches, spiller
    gc.collect()
    assert folder.exists()  # the slice still refers to it
    del head
    gc.collect()
    assert not folder.exists()
