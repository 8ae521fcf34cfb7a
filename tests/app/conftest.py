"""Fixtures for the app's tests: the bundled pair, real or tiny stand-ins under the same names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import models.registry
from tests.app.support import REAL_PAIR
from ui.state import DEFAULT_A, DEFAULT_B


@pytest.fixture(scope="session")
def stand_in_dir(tiny_specs, tmp_path_factory) -> Path | None:
    """A weights folder holding tiny checkpoints under the bundled pair's names; None when the real pair exists."""
    if REAL_PAIR:
        return None
    root = tmp_path_factory.mktemp("weights")
    for name, spec in ((DEFAULT_A, tiny_specs["a"]), (DEFAULT_B, tiny_specs["b"])):
        (root / name.removeprefix("bundled:")).symlink_to(Path(spec.removeprefix("file:")), target_is_directory=True)
    return root


@pytest.fixture
def bundled_pair(stand_in_dir, monkeypatch) -> bool:
    """Make `bundled:` specs resolve to the real pair if trained, else to tiny stand-ins; True when real."""
    if stand_in_dir is not None:
        monkeypatch.setattr(models.registry, "WEIGHTS_DIR", stand_in_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # an unknown hub repo fails at once instead of after a timeout
    return REAL_PAIR


@pytest.fixture(autouse=True)
def one_thread():
    """The analyses here are tiny: one torch thread is fastest, and far faster when other jobs load the CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
