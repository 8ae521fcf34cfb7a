"""The results shipped with the app (ui.shipped): exactly the entries a first visit's Overview asks the store for,
found by the normal lookup on an empty store, and what the engine computes for them today.

Either test fails after a change of the engine, the weights' digest or the defaults that `make shipped` has not
followed. The second recomputes A vs B and A's and B's calibrations (two networks over the default 1,000 images).
The ceilings are the same comparison and calibration of networks their keys name by digest, so a change of the
engine that moved them moves A vs B too; they, and the untrained floors behind A vs B (16 more passes), are left to
`make shipped` and compared here by their keys.
"""

from __future__ import annotations

import math

import pytest

from core import settings
from core.floors import INIT_PAIRS
from core.result import to_json_dict
from core.store import ENTRIES, RESULT, Store, StoreKey, content_key, default_store
from models import LoadedModel, calibration, load_model
from models.calibration import calibration_key
from tests.bundled import REAL_PAIR
from ui import service, shipped

REFERENCES = {  # what models.references adds to A vs B: computed by `make shipped` only
    "floor_untrained",
    "floor_untrained_low",
    "floor_untrained_high",
    "untrained_a",
    "untrained_b",
    "floor_pairs",
    "floor_note",
    "floor_method",
    "seed_pairings",
}
NOT_RESULTS = {"seconds", "versions"}  # how long it took and with which libraries: not what it found
CKA_TOLERANCE = 1e-5  # float32 sums over another CPU's kernels; a changed engine moves values far more
PROBE_TOLERANCE = 0.005  # a probe's accuracy on 1,000 images: 5 images' worth of another CPU's rounding


@pytest.fixture(scope="module")
def default():
    assert REAL_PAIR, "the bundled pair ships with the app, and the shipped results are its"
    return shipped.default_comparison()


@pytest.fixture
def forgetting():
    """The service's memory caches emptied before and after: nothing another test computed stands in here, and
    nothing computed here (without floors) stands in later."""
    service.forget()
    yield
    service.forget()


def _networks(default: shipped.DefaultComparison) -> list[LoadedModel]:
    return [default.a, default.b, default.sibling_a, default.sibling_b]


def _calibrations(default: shipped.DefaultComparison) -> list[StoreKey]:
    """The calibration keys of the default networks as the loader starts them: the bundled cards state every
    choice (nothing open), so the start is what was loaded."""
    return [calibration_key(m.info.sha256, m.info.arch, m.info.mean, m.info.std, ()) for m in _networks(default)]


def test_the_shipped_entries_are_those_a_first_visit_asks_the_store_for(default, tmp_path, monkeypatch, forgetting):
    monkeypatch.setenv(settings.STORE, str(tmp_path / "empty"))  # a fresh clone's store: nothing of its own
    monkeypatch.delenv(settings.SHIPPED, raising=False)
    monkeypatch.setenv(settings.CALIBRATION_IMAGES, "256")  # the app's default (the tests' is 0)
    keys = default.keys()
    assert sorted(p.name for p in (settings.shipped_dir() / ENTRIES).glob(f"*{RESULT}")) == sorted(
        f"{key}{RESULT}" for key in keys + _calibrations(default)
    )
    assert default.at_hand()
    pair, ceiling_a, ceiling_b = (default_store().result(key) for key in keys)
    assert (pair.model_a, pair.model_b) == (default.a.identity, default.b.identity)
    assert (ceiling_a.model_a, ceiling_a.model_b) == (default.a.identity, default.sibling_a.identity)
    assert (ceiling_b.model_a, ceiling_b.model_b) == (default.b.identity, default.sibling_b.identity)
    assert {r.used_images for r in (pair, ceiling_a, ceiling_b)} == {default.subset.size}
    assert pair.floor_pairs == INIT_PAIRS and len(pair.seed_pairings) == 4  # the app's own floors and pairings
    assert not list((tmp_path / "empty").rglob(f"*{RESULT}"))  # read where they are, never copied


def test_the_default_networks_load_with_their_shipped_calibrations(default, tmp_path, monkeypatch):
    monkeypatch.setenv(settings.STORE, str(tmp_path / "empty"))
    monkeypatch.delenv(settings.SHIPPED, raising=False)
    monkeypatch.setenv(settings.CALIBRATION_IMAGES, "256")
    monkeypatch.setattr(calibration, "measure", lambda *args: pytest.fail("measured, not read from data/shipped"))
    for network in _networks(default):
        loaded = load_model(network.info.source)
        assert loaded.info.calibration.images == 256 and loaded.info.calibration.accuracy > 0.3
        assert (loaded.info.arch, loaded.info.mean, loaded.info.std) == (
            network.info.arch,
            network.info.mean,
            network.info.std,
        )
    assert not list((tmp_path / "empty").rglob(f"*{RESULT}"))


def test_writing_only_calibrations_keeps_the_results_that_still_fit_and_nothing_else(tmp_path):
    root, result_keys = tmp_path / "shipped", [content_key("result", n) for n in "ab"]
    kept = Store(root, 10**8)
    for key in [*result_keys, content_key("result", "stale"), content_key("calibration", "old")]:
        kept.put_record(key, {"key": key.text})
    calibrations = tmp_path / "measured"
    Store(calibrations, 10**8).put_record(content_key("calibration", "new"), {"accuracy": 0.5})
    entries = {p.name: p.read_bytes() for p in (calibrations / ENTRIES).iterdir()}
    written = shipped.write(None, result_keys, entries, root)
    assert sorted(p.name for p in written) == sorted([f"{k}{RESULT}" for k in result_keys] + list(entries))
    assert Store(root, 0, read_only=True).record(content_key("calibration", "new")) == {"accuracy": 0.5}


def _differences(computed: object, kept: object, path: str) -> list[str]:
    """Where two results' JSON differ beyond the tolerances (NaN equals NaN)."""
    if isinstance(computed, dict) and isinstance(kept, dict):
        if computed.keys() != kept.keys():
            return [f"{path}: fields {sorted(computed.keys() ^ kept.keys())}"]
        return [d for k in computed for d in _differences(computed[k], kept[k], f"{path}.{k}")]
    if isinstance(computed, list) and isinstance(kept, list):
        if len(computed) != len(kept):
            return [f"{path}: {len(computed)} values, {len(kept)} shipped"]
        return [d for i, (c, k) in enumerate(zip(computed, kept, strict=True)) for d in _differences(c, k, path)]
    numbers = (int, float)
    if isinstance(computed, numbers) and isinstance(kept, numbers) and not isinstance(computed, bool):
        tolerance = PROBE_TOLERANCE if ".probe_" in path else CKA_TOLERANCE
        if (math.isnan(computed) and math.isnan(kept)) or abs(computed - kept) <= tolerance:
            return []
        return [f"{path}: {computed} computed, {kept} shipped"]
    return [] if computed == kept else [f"{path}: {computed!r} computed, {kept!r} shipped"]


@pytest.mark.slow
def test_the_shipped_entries_are_what_the_engine_computes_for_them(default, monkeypatch, forgetting):
    monkeypatch.setenv(settings.STORE, "off")  # nothing read: every result computed here
    monkeypatch.setenv(settings.CALIBRATION_IMAGES, "256")
    monkeypatch.delenv(settings.SHIPPED, raising=False)
    kept = Store(settings.shipped_dir(), 0, read_only=True)
    for network, key in zip(_networks(default)[:2], _calibrations(default)[:2], strict=True):  # A and B
        measured = load_model(network.info.source).info.calibration  # with no store: measured here
        shipped_one = calibration.from_record(
            kept.record(key), network.info.arch, network.info.mean, network.info.std, ()
        )
        assert abs(measured.accuracy - shipped_one[3].accuracy) <= 2 / measured.images  # 2 images' worth of rounding
        assert (measured.measure, measured.images) == (shipped_one[3].measure, shipped_one[3].images)
    found = service.pair_with_ceilings(
        default.a, default.b, None, None, default.subset, default.options, references=False
    )
    for key, computed in zip(default.keys()[:1], found.results, strict=True):  # A vs B
        shipped_result = kept.result(key)
        assert shipped_result is not None
        plain, stored = (
            {k: v for k, v in to_json_dict(r).items() if k not in REFERENCES | NOT_RESULTS}
            for r in (computed, shipped_result)
        )
        assert not _differences(plain, stored, "result"), _differences(plain, stored, "result")[:10]
