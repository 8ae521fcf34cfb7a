"""models.references: what a finished pair lacks of its floors and seed pairings, for the seeds at hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.result import SeedPairing
from models import load_model
from models.references import missing_references
from tests.app.support import synthetic_result, with_synthetic_references


@pytest.fixture(scope="module")
def seeds(tiny_specs):
    return {k: load_model(v) for k, v in tiny_specs.items()}


def _pairings(result, names: list[tuple[str, str]]):
    return replace(result, seed_pairings=tuple(SeedPairing(x, y, result.matched_cka) for x, y in names))


def test_a_result_with_its_floors_and_these_seeds_pairings_lacks_nothing(seeds):
    a, a2, b = seeds["a"], seeds["a2"], seeds["b"]
    names = [(a.identity.source, b.identity.source), (a2.identity.source, b.identity.source)]
    result = _pairings(with_synthetic_references(synthetic_result([0.9] * 8, [0.5] * 8)), names)
    assert missing_references(result, [a, a2], [b]) == (0, False)


def test_an_older_result_lacks_its_floors_and_pairings_of_other_seeds_are_made_again(seeds):
    a, a2, b = seeds["a"], seeds["a2"], seeds["b"]
    older = synthetic_result([0.9] * 8, [0.5] * 8)
    assert missing_references(older, [a], [b]) == (8, False)  # one seed a side: no pairings to make
    assert missing_references(older, [a], [b], floor_pairs=3) == (3, False)
    assert missing_references(older, [a, a2], [b]) == (8, True)
    other = _pairings(with_synthetic_references(older), [(a.identity.source, b.identity.source)] * 2)
    assert missing_references(other, [a, a2], [b]) == (0, True)
    assert missing_references(other, [a], [b]) == (0, True)  # one seed a side now: its old pairings are dropped
