"""Feature extraction on networks shared by several analyses at once: no interference, no mutation."""

from __future__ import annotations

import threading
import weakref

import numpy as np
import pytest
import torch

from core.data import SubsetSpec, load_subset
from core.errors import ContractError
from core.features import FeatureExtractor, private_copy
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


def test_the_private_copy_shares_a_loaded_networks_weights_and_converts_others_alone(tiny_specs):
    loaded = load_model(tiny_specs["a"]).module
    copy = private_copy(loaded, CPU)
    for (name, original), (_, mine) in zip(loaded.state_dict().items(), copy.state_dict().items(), strict=True):
        assert mine.data_ptr() == original.data_ptr(), name  # no second copy of the weights
    assert not any(p is q for p, q in zip(loaded.parameters(), copy.parameters(), strict=True))

    plain = load_model(tiny_specs["a"]).module.to(memory_format=torch.contiguous_format)  # as a user's may be
    weight = plain.conv1.weight
    converted = private_copy(plain, CPU)
    assert converted.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.conv1.weight is weight and weight.is_contiguous()  # the original untouched


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
    with pytest.raises(ContractError, match="no.such"):
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


class _Untraceable(torch.nn.Module):
    """A network torch.fx cannot trace (control flow that depends on the data): read through hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        if x.sum() > -1e9:
            x = x + 0
        return self.b(x)


def _streamed(extractor: FeatureExtractor, x: torch.Tensor) -> tuple[dict, list[int], list[bool]]:
    """What `stream` hands over (copies), how many of the earlier handed-over outputs were still alive at each
    hand-over, and whether inference mode was on for the consumer."""
    got, alive, inference, made = {}, [], [], []

    def consume(index: int, features: torch.Tensor) -> None:
        alive.append(sum(ref() is not None for ref in made))
        made.append(weakref.ref(features))
        inference.append(torch.is_inference_mode_enabled())
        got[index] = features.clone()

    extractor.stream(x, consume)
    return got, alive, inference


def test_streaming_hands_over_each_layer_as_it_is_made_and_keeps_none(tiny_specs):
    network = load_model(tiny_specs["a"])
    extractor = FeatureExtractor(network.module, network.layers, CPU)
    x = torch.randn(8, 3, 32, 32)
    whole = extractor(x)
    got, alive, inference = _streamed(extractor, x)
    assert sorted(got) == list(range(len(whole)))
    for index, features in enumerate(whole):
        assert torch.equal(got[index], features), network.layers[index]
    # an output lives on only while the network still needs it (a block's input, for its shortcut)
    assert max(alive) <= 2 < len(whole)
    assert not any(inference)  # the consumer's results are ordinary tensors


def test_streaming_a_network_fx_cannot_trace_hands_over_the_same_features():
    extractor = FeatureExtractor(_Untraceable().eval(), [("a", "a"), ("b", "b")], CPU)
    x = torch.randn(2, 3, 16, 16)
    got, _, inference = _streamed(extractor, x)
    whole = extractor(x)
    assert sorted(got) == [0, 1] and all(torch.equal(got[j], whole[j]) for j in (0, 1))
    assert not any(inference)


class _UntraceableNormed(torch.nn.Module):
    """A network torch.fx cannot trace, with a batch norm and a dropout: what it reads depends on its mode."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm, self.drop = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.a(x))
        if x.sum() > -1e9:
            x = x + 0
        return self.drop(x)


def test_a_network_fx_cannot_trace_is_read_in_eval_mode_and_left_as_it_was():
    """The failed trace once left the hooked copy in training mode: batch statistics and dropout in the readings,
    and the running statistics it shares with the network updated by every forward pass."""
    torch.manual_seed(0)
    module = _UntraceableNormed().eval()
    with torch.no_grad():
        module.norm.running_mean.uniform_(-1, 1)
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        expected = module.norm(module.a(x))
    extractor = FeatureExtractor(module, [("norm", "norm"), ("drop", "drop")], CPU)
    norm, drop = extractor(x)
    torch.testing.assert_close(norm, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(drop, expected, rtol=1e-5, atol=1e-5)  # no dropout
    assert all(torch.equal(v, weights[k]) for k, v in module.state_dict().items())


def test_the_consumer_of_a_stream_under_autocast_runs_without_it(tiny_specs):
    """bf16 forward passes (the bench's CPU autocast, CUDA's always) must leave the Grams in full precision."""
    network = load_model(tiny_specs["a"])
    extractor = FeatureExtractor(network.module, network.layers, CPU)
    seen = []

    def consume(index: int, features: torch.Tensor) -> None:
        seen.append((features.dtype, torch.is_autocast_enabled("cpu")))

    with torch.autocast("cpu", dtype=torch.bfloat16):
        extractor.stream(torch.randn(2, 3, 32, 32), consume)
    assert len(seen) == len(network.layers) and not any(on for _, on in seen)
    assert torch.bfloat16 in {dtype for dtype, _ in seen}  # the network itself did run under autocast
