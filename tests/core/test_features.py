"""Feature extraction on networks shared by several analyses at once: no interference, no mutation."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from core.data import SubsetSpec, load_subset
from core.features import FeatureExtractor
from core.options import AnalysisOptions
from core.pipeline import compare
from models import load_model

CPU = torch.device("cpu")
OPTIONS = AnalysisOptions(batch_size=20, permutations=2, probes=False)


def _in_threads(work, count: int) -> tuple[list, list[str]]:
    """Run `work` in `count` threads started together; their results and errors."""
    results, errors, start = [], [], threading.Barrier(count)

    def run() -> None:
        start.wait()
        try:
            results.append(work())
        except Exception as error:  # noqa: BLE001 - the test reports every failure
            errors.append(repr(error))

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread never finished"
    return results, errors


def test_analyses_of_the_same_networks_at_once_all_finish_with_the_sequential_result(tiny_specs):
    """Before the extractor traced a private copy under a lock, 4 threads at once failed 20 times in 20
    (torch.fx's tracer patches global state: 'module is not installed as a submodule', lost nodes)."""
    a, b = load_model(tiny_specs["a"]), load_model(tiny_specs["b"])
    subset = load_subset(SubsetSpec(per_class=4))
    expected = compare(a, b, subset, OPTIONS, CPU)
    fresh_a, fresh_b = load_model(tiny_specs["a"]), load_model(tiny_specs["b"])  # nothing traced yet
    results, errors = _in_threads(lambda: compare(fresh_a, fresh_b, subset, OPTIONS, CPU), 4)
    assert errors == [] and len(results) == 4
    for result in results:
        np.testing.assert_array_equal(result.cross, expected.cross)
        np.testing.assert_array_equal(result.invariance_b, expected.invariance_b)


def test_extraction_leaves_the_shared_network_as_it_was(tiny_specs):
    network = load_model(tiny_specs["a"])
    before = {k: (v.data_ptr(), v.stride(), v.clone()) for k, v in network.module.state_dict().items()}
    modes = {name: m.training for name, m in network.module.named_modules()}
    extractor = FeatureExtractor(network.module, network.layers, CPU)
    extractor(torch.randn(4, 3, 32, 32))
    after = network.module.state_dict()
    for key, (pointer, stride, value) in before.items():
        assert after[key].data_ptr() == pointer and after[key].stride() == stride, key
        assert torch.equal(after[key], value), key
    assert modes == {name: m.training for name, m in network.module.named_modules()}
    assert not any(m._forward_hooks for m in network.module.modules())


def test_a_failing_analysis_does_not_stop_others_running_at_the_same_time(tiny_specs):
    a, b = load_model(tiny_specs["a"]), load_model(tiny_specs["b"])
    subset = load_subset(SubsetSpec(per_class=4))
    calls = iter(range(4))

    def work():
        if next(calls) == 0:  # one of the four asks for a layer the network does not have
            return FeatureExtractor(a.module, [("nowhere", "no.such.node")], CPU)
        return compare(a, b, subset, OPTIONS, CPU)

    results, errors = _in_threads(work, 4)
    assert len(results) == 3 and len(errors) == 1 and "no.such.node" in errors[0], errors


def test_a_layer_that_does_not_exist_is_named():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match="no.such"):
        FeatureExtractor(net, [("x", "no.such")], CPU)


def test_tracing_a_new_network_while_others_run_forward_passes(tiny_specs):
    """torch.fx's tracer patches nn.Module.__call__ globally: without the shared/exclusive lock a forward pass in
    another thread during a trace failed with "module is not installed as a submodule" (3 runs in 3 here)."""
    a, b = load_model(tiny_specs["a"]), load_model(tiny_specs["b"])
    running = FeatureExtractor(a.module, a.layers, CPU)
    x = torch.randn(8, 3, 32, 32)
    done = threading.Event()

    def forward_passes() -> int:
        count = 0
        while not done.is_set():
            running(x)
            count += 1
        return count

    def traces() -> int:
        for _ in range(4):
            fresh = load_model(tiny_specs["b"])  # a new module each time: a new trace
            FeatureExtractor(fresh.module, b.layers, CPU)(x)
        done.set()
        return 4

    results, errors = _in_threads_each([forward_passes, traces])
    assert errors == [] and results[1] == 4 and results[0] > 0


def _in_threads_each(works) -> tuple[list, list[str]]:
    """Run each of `works` in its own thread, started together; their results (in order) and errors."""
    results, errors = [None] * len(works), []

    def run(i: int) -> None:
        try:
            results[i] = works[i]()
        except Exception as error:  # noqa: BLE001 - the test reports every failure
            errors.append(repr(error))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(works))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results, errors
