"""Training methods by one name each, whatever spelling a trainer's settings use."""

from __future__ import annotations

import pytest

from models.methods import METHOD_NAMES, canonical_method, known_method


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("SimCLR", "simclr"),
        ("mocov2plus", "moco"),
        ("MoCo-v3", "moco"),
        ("BarlowTwins", "barlow_twins"),
        ("barlow_twins", "barlow_twins"),
        ("SupCE", "supervised"),
        ("cross-entropy", "supervised"),
        ("DeepClusterV2", "deepclusterv2"),
    ],
)
def test_trainers_spellings_map_to_one_name(spelling, name):
    assert canonical_method(spelling) == name
    assert known_method(spelling) == name


def test_every_one_name_is_its_own_canonical_form():
    for name in set(METHOD_NAMES.values()):
        assert canonical_method(name) == name


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("MyMethod v2!", "mymethodv2"),  # unknown: lower case, only letters, digits, _ and - kept
        ("data2vec_cifar", "data2vec_cifar"),
        ("x" * 40, "x" * 32),  # at most 32 characters
        ("???", "unknown"),  # nothing left
        ("", "unknown"),
    ],
)
def test_unknown_methods_are_kept_as_written_but_cleaned(written, kept):
    assert canonical_method(written) == kept
    assert known_method(written) is None
