"""Untrained networks: exactly where training seed K starts, one identity per architecture and seed."""

from __future__ import annotations

import torch

from models import DEFAULT_PAIR, load_model
from models.untrained import untrained_key, untrained_model
from training.train import TrainConfig, _build

CPU = torch.device("cpu")


def test_an_untrained_network_is_exactly_where_training_seed_k_starts(bundled_pair):
    trained = load_model(DEFAULT_PAIR[1])
    arch = trained.info.arch
    config = TrainConfig(objective="supervised", depth=arch.depth, width=arch.width, seed=3, out="unused")
    torch.manual_seed(config.seed)  # as train() seeds before building
    started, _ = _build(config, CPU)
    mine = untrained_model(trained.info, 3).module
    for (name, expected), got in zip(started.state_dict().items(), mine.state_dict().values(), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=name)
    other = untrained_model(trained.info, 4).module
    assert not torch.equal(other.conv1.weight, mine.conv1.weight)


def test_untrained_identities_differ_by_seed_and_by_head(bundled_pair):
    a, b = (load_model(spec).info for spec in DEFAULT_PAIR)
    keys = {untrained_key(info, seed) for info in (a, b) for seed in (0, 1)}
    assert len(keys) == 4 and all(k.startswith("untrained:") and "#seed=" in k for k in keys)
    assert untrained_model(a, 0).identity.key != untrained_model(b, 0).identity.key
