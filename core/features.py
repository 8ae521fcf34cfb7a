"""The one feature-extraction path: named layers of a network, read in a single forward pass.

A network may be shared by several analyses running at once (the app's sessions share loaded networks).
So the extractor never changes the network it is given: it traces a private copy (`private_copy`), once per
(network, device). torch.fx's tracer patches global state while it runs (nn.Module.__call__ among it): a trace
beside another trace, or beside any forward pass in another thread, fails with "module is not installed as a
submodule" or loses nodes. So tracing takes a lock that excludes every forward pass, and forward passes share it
with each other: the traced copies are read by any number of threads at once (an eval-mode forward pass changes
nothing).

`stream` hands each chosen layer's output to a function as the network makes it, and keeps none of them: a batch
then holds one layer's output at a time beside the network's own activations, instead of every chosen layer's.

Every 4-D map leaves the extractor as [N, C, H, W] and every 3-D output as tokens [N, T, C], whatever layout the
network makes them in: a map whose channels come last (Swin's [N, H, W, C]) is permuted as it is handed over, a
3-D output whose channels come first (a Conv1d's [N, C, L]) transposed, its channel axis decided from the
network's own operations (core.layout), so that everything downstream pools over the true positions. A 3-D or
4-D layer whose channel axis cannot be known is handed over as made and named in `unknown_layout`; whoever pools
it must say so instead of pooling guessed axes. (The flattened reading CKA compares is not affected by the
permutation: it reorders each image's feature columns the same way, which leaves linear and RBF Grams as they
are; tests/core/test_layout.py holds it.)
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import fx, nn
from torchvision.models.feature_extraction import create_feature_extractor

from core.blocks import tracer_kwargs
from core.errors import ContractError
from core.layout import channel_axes, hooked_channel_axis, to_channels_first, to_tokens

Consume = Callable[[int, torch.Tensor], None]  # (index of the layer in the order given, its output)
_STREAM = threading.local()  # the Consume of the stream running in this thread


def _emit(index: int, value: torch.Tensor) -> None:
    """Called by a streaming graph right after it makes layer `index`'s output. The consumer's own arithmetic runs
    as if outside the extraction: not under autocast, and its results are ordinary tensors."""
    with torch.inference_mode(False), torch.autocast(value.device.type, enabled=False):
        _STREAM.consume(index, value)


def _streaming(graph_module: fx.GraphModule, nodes: tuple[str, ...]) -> fx.GraphModule:
    """The traced network calling `_emit(j, output)` right after it makes node j's output, and returning nothing,
    so that each output is freed once the network itself is done with it."""
    graph = copy.deepcopy(graph_module.graph)
    output = next(node for node in graph.nodes if node.op == "output")
    produced = output.args[0]
    for index, name in enumerate(nodes):
        with graph.inserting_after(produced[name]):
            graph.call_function(_emit, (index, produced[name]))
    output.args = (None,)
    graph.lint()
    return fx.GraphModule(graph_module, graph)


class _SharedExclusive:
    """Many readers at once (forward passes) or one writer (a trace), writers first so a trace is not starved."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting_writers = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._waiting_writers)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._waiting_writers -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


_LOCK = _SharedExclusive()  # exclusive: tracing and the cache of prepared copies; shared: forward passes
_PREPARED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, _Prepared]] = weakref.WeakKeyDictionary()


class _Prepared:
    """A private copy of a network on one device, traced for a set of nodes (or hooked when fx cannot trace)."""

    def __init__(self, module: nn.Module, nodes: tuple[str, ...], device: torch.device):
        self.module = private_copy(module, device)
        self.nodes = nodes
        self.hook_lock = threading.Lock()  # hooks live on the copy: one hooked forward at a time
        self.streaming: nn.Module | None = None
        self.axes: tuple[int | None, ...] | None = None  # per node, its channel axis (decided on the first batch)
        self.axes_lock = threading.Lock()
        try:
            self.graph: nn.Module | None = create_feature_extractor(
                self.module, {n: n for n in nodes}, tracer_kwargs=tracer_kwargs() or None
            ).eval()
            self.streaming = _streaming(self.graph, nodes).eval()
        except Exception:  # noqa: BLE001 - any tracing failure means: use hooks instead
            self.graph = None
            self.module.eval()  # a trace that failed may leave the copy in training mode (torchvision traces both)
            missing = set(nodes) - dict(self.module.named_modules()).keys()
            if missing:
                raise ContractError(f"layers not found in the network: {sorted(missing)}") from None

    def channel_axes(self, x: torch.Tensor, ranks: Sequence[int]) -> tuple[int | None, ...]:
        """Per node, the axis of its output holding channels (None: unknown), decided once, from the traced graph
        and one image of `x` (core.layout), or, read through hooks, from the module's kind and the rank of its
        output (`ranks`, per node)."""
        with self.axes_lock:
            if self.axes is None:
                if self.graph is None:
                    modules = dict(self.module.named_modules())
                    kinds = [modules[n] for n in self.nodes]
                    self.axes = tuple(hooked_channel_axis(m, r) for m, r in zip(kinds, ranks, strict=True))
                else:
                    output = next(node for node in self.graph.graph.nodes if node.op == "output")
                    produced = [output.args[0][n] for n in self.nodes]
                    self.axes = tuple(channel_axes(self.graph, produced, x[:1].float()))
            return self.axes


def private_copy(module: nn.Module, device: torch.device) -> nn.Module:
    """A copy of `module` in eval mode on `device`, its weights in the channels-last layout, that changes nothing
    of the original.

    The copy's parameters and buffers are new tensor objects that share the original's storage where it is
    already on `device` in that layout (a loaded network's are: models.LoadedModel), so no second copy of the
    weights is held (45 MB for a full-width ResNet-18), and an eval-mode forward pass writes none of them; the
    others are converted in the copy alone.
    """
    memo: dict[int, torch.Tensor] = {id(b): b.detach() for b in module.buffers()}
    memo |= {id(p): nn.Parameter(p.detach(), requires_grad=p.requires_grad) for p in module.parameters()}
    return copy.deepcopy(module, memo).eval().to(device, memory_format=torch.channels_last)


def _prepared(module: nn.Module, nodes: tuple[str, ...], device: torch.device) -> _Prepared:
    """The traced private copy of `module` for these nodes on `device`, made once and then shared."""
    key = (nodes, str(device))
    with _LOCK.exclusive():
        per_module = _PREPARED.setdefault(module, {})
        if key not in per_module:
            per_module[key] = _Prepared(module, nodes, device)
        return per_module[key]


class FeatureExtractor:
    """Returns the outputs of chosen layers, in the order given, for a batch of normalised images.

    Layers are torch.fx graph nodes (`create_feature_extractor`), so a module called twice in one
    forward pass (torchvision's blocks reuse one ReLU) gives each call its own node, and nothing is
    registered on the network. Networks that fx cannot trace fall back to forward hooks on module
    names, on the private copy and only for the duration of one call.
    """

    def __init__(self, module: nn.Module, layers: Sequence[tuple[str, str]], device: torch.device):
        if not layers:
            raise ContractError("choose at least one layer")
        self.names = [name for name, _ in layers]
        self.nodes = [node for _, node in layers]
        self.device = device
        self._prepared = _prepared(module, tuple(self.nodes), device)
        self.unknown_layout: set[str] = set()  # names of 3-D and 4-D layers whose channel axis cannot be known

    def _handed_over(self, axes: tuple[int | None, ...], index: int, features: torch.Tensor) -> torch.Tensor:
        """A layer's output with a 4-D map as [N, C, H, W] and a 3-D one as tokens [N, T, C] (unchanged where it
        is already, or where its channel axis is unknown: then its name goes into `unknown_layout`)."""
        if features.dim() not in (3, 4):
            return features
        axis = axes[index]
        if axis is None or not 0 < axis < features.dim():  # the batch axis never holds channels
            self.unknown_layout.add(self.names[index])
            return features
        return to_channels_first(features, axis) if features.dim() == 4 else to_tokens(features, axis)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Features per layer for `images` (normalised, N x 3 x H x W), each [N, ...]."""
        x = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with self._autocast(), _LOCK.shared():
            if self._prepared.graph is not None:
                out = self._prepared.graph(x)
                features = [out[n] for n in self.nodes]
            else:
                features = self._hooked(x)
        with _LOCK.shared():
            axes = self._prepared.channel_axes(x, [f.dim() for f in features])
        return [self._handed_over(axes, j, f) for j, f in enumerate(features)]

    @torch.inference_mode()
    def stream(self, images: torch.Tensor, consume: Consume) -> None:
        """`consume(index, features)` for each layer, as the network makes its output for `images` (normalised,
        N x 3 x H x W); the outputs are not kept. Layers come in the order the network makes them. A network read
        through hooks is run whole first, then its outputs are handed over in the order given."""
        x = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        if self._prepared.streaming is None:
            _STREAM.consume = consume
            try:
                for index, features in enumerate(self(x)):
                    _emit(index, features)
            finally:
                _STREAM.consume = None
            return
        with _LOCK.shared():
            axes = self._prepared.channel_axes(x, ())  # a traced graph: ranks come from its own shape pass
        _STREAM.consume = lambda j, features: consume(j, self._handed_over(axes, j, features))
        try:
            with self._autocast(), _LOCK.shared():
                self._prepared.streaming(x)
        finally:
            _STREAM.consume = None

    def _autocast(self) -> torch.autocast:
        """bf16 autocast for the forward pass on CUDA; none elsewhere."""
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def _hooked(self, x: torch.Tensor) -> list[torch.Tensor]:
        captured: dict[str, torch.Tensor] = {}
        module = self._prepared.module
        modules = dict(module.named_modules())
        with self._prepared.hook_lock:
            handles = [
                modules[n].register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out))
                for n in self.nodes
            ]
            try:
                module(x)
            finally:
                for h in handles:
                    h.remove()
        return [captured[n] for n in self.nodes]
