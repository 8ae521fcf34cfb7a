"""ui.service: caches and computation without drawing; what happens while it computes reaches the page's Watch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core import settings
from core.data import SubsetSpec
from core.floors import INIT_PAIRS
from core.options import AnalysisOptions
from models import load_model
from ui import service

SPEC = SubsetSpec(per_class=6, seed=31)  # 60 images, a subset no other test of this module computes
OPTIONS = AnalysisOptions(batch_size=20, permutations=3, probes=False)  # 3 minibatches: previews between them


@pytest.fixture(scope="module")
def networks(tiny_specs):
    return {k: load_model(v) for k, v in tiny_specs.items()}


class Recorder:
    """A Watch that writes down what it is told."""

    def __init__(self) -> None:
        self.stages: list[str] = []
        self.previews: list[tuple[str, str, int]] = []
        self.steps: list[str] = []

    def watch(self) -> service.Watch:
        return service.Watch(
            progress=lambda stage, done, total: self.stages.append(stage),
            preview=lambda result, done, total: self.previews.append(
                (result.model_a.source, result.model_b.source, done)
            ),
            step=lambda plan, k: self.steps.append(plan.line(k)),
        )


def test_a_miss_reports_to_the_watch_and_a_hit_reports_nothing(networks):
    a, a2, b = networks["a"], networks["a2"], networks["b"]
    assert not service.at_hand(a, b, a2, None, SPEC, OPTIONS)
    cold = Recorder()
    found = service.pair_with_ceilings(a, b, a2, None, SPEC, OPTIONS, cold.watch())
    assert cold.stages and found.ceiling_a is not None and found.ceiling_b is None
    pair = (a.identity.source, b.identity.source)
    assert cold.previews == [(*pair, 1), (*pair, 2), (*pair, 3)]  # of A vs B only, after each minibatch
    steps = ["A vs B", "A vs its other seed", "the untrained floor and the seed spread"]  # each once, in order
    assert cold.steps == [f"step {k} of 3: {name}" for k, name in enumerate(steps, 1)]
    assert service.at_hand(a, b, a2, None, SPEC, OPTIONS)
    warm = Recorder()
    again = service.pair_with_ceilings(a, b, a2, None, SPEC, OPTIONS, warm.watch())
    assert warm.stages == [] and warm.previews == [] and warm.steps == []
    assert again.pair.cross is found.pair.cross  # the object from the memory cache: nothing pickled or copied
    with pytest.raises(ValueError, match="read-only"):  # so no session can change what the others are shown
        again.pair.cross[0, 0] = 0.0
    service.forget()
    from_store = service.pair_with_ceilings(a, b, a2, None, SPEC, OPTIONS, warm.watch())
    assert warm.stages == [] and from_store.pair.cross is not found.pair.cross  # read back from the result store
    np.testing.assert_array_equal(from_store.ceiling_a.cross, found.ceiling_a.cross)


def test_changing_b_reuses_as_fingerprint_and_the_result_names_the_networks_asked_for(networks, monkeypatch):
    a, a2, b = networks["a"], networks["a2"], networks["b"]
    runs, real = [], service.fingerprint_steps
    monkeypatch.setattr(service, "fingerprint_steps", lambda net, *a, **k: runs.append(net) or real(net, *a, **k))
    spec = SubsetSpec(per_class=6, seed=32)
    service.result(a, b, spec, OPTIONS)
    result = service.result(a, a2, spec, OPTIONS)
    assert [net.identity.source for net in runs] == [a.identity.source, b.identity.source, a2.identity.source]
    assert result.model_a == a.identity and result.model_b == a2.identity


def test_two_sessions_asking_for_one_pair_at_once_compute_it_once(networks, monkeypatch):
    a, b = networks["a"], networks["b"]
    spec = SubsetSpec(per_class=6, seed=33)
    started, second_waits, runs, real = threading.Event(), threading.Event(), [], service.fingerprint_steps

    def steps(network, *args, **kwargs):
        runs.append(network.identity.source)
        started.set()
        second_waits.wait()  # the first session computes only once the second is waiting for it
        yield from real(network, *args, **kwargs)

    monkeypatch.setattr(service, "fingerprint_steps", steps)
    told: list[bool] = []

    def waiting(waits: bool) -> None:
        told.append(waits)
        second_waits.set()

    first = threading.Thread(target=service.result, args=(a, b, spec, OPTIONS))
    first.start()
    started.wait()  # the first session is computing
    found = service.result(a, b, spec, OPTIONS, service.Watch(waiting=waiting))
    first.join()
    assert told == [True, False]  # the second session was told it waits, then that it goes on
    assert runs == [a.identity.source, b.identity.source]  # each network once, for both sessions
    assert found.model_a == a.identity


def test_a_pair_gets_its_floors_and_seed_pairings_once_and_the_caches_keep_them(networks):
    """The training page's plain result (no floors) is enriched when a page asks for the pair with its seeds; asked
    again, from memory or from the store, nothing is computed and the same floors come back."""
    a, a2, b = networks["a"], networks["a2"], networks["b"]
    spec = SubsetSpec(per_class=6, seed=34)
    plain = service.result(a, b, spec, OPTIONS)
    assert not plain.floor_method and plain.floor_untrained is None and plain.seed_pairings == ()
    cold = Recorder()
    found = service.pair_with_ceilings(a, b, a2, None, spec, OPTIONS, cold.watch())
    assert "floors: untrained pairs" in cold.stages
    pair = found.pair
    assert pair.floor_pairs == settings.floor_pairs(INIT_PAIRS) and pair.floor_untrained.shape == (len(pair.matched),)
    assert (pair.floor_untrained_low <= pair.floor_untrained_high).all()
    assert [(p.a, p.b) for p in pair.seed_pairings] == [
        (a.identity.source, b.identity.source),
        (a2.identity.source, b.identity.source),
    ]
    np.testing.assert_allclose(pair.seed_pairings[0].matched_cka, pair.matched_cka, rtol=0, atol=1e-9)  # A x B
    np.testing.assert_array_equal(pair.cross, plain.cross)  # the pair itself was not computed again
    warm = Recorder()
    again = service.pair_with_ceilings(a, b, a2, None, spec, OPTIONS, warm.watch())
    assert warm.stages == [] and again.pair.floor_untrained is pair.floor_untrained
    service.forget()
    stored = service.pair_with_ceilings(a, b, a2, None, spec, OPTIONS, warm.watch())
    assert warm.stages == []
    np.testing.assert_array_equal(stored.pair.floor_untrained_high, pair.floor_untrained_high)
    alone = service.pair_with_ceilings(a, b, None, None, spec, OPTIONS, warm.watch())  # no other seed asked for
    assert alone.pair.seed_pairings == () and warm.stages == []  # its floors kept, no pass run
    np.testing.assert_array_equal(alone.pair.floor_untrained, pair.floor_untrained)
