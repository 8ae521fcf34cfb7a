"""The memory plan: refuse up front, with a setting that fits, an analysis that would not fit."""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import weakref
from dataclasses import dataclass, replace

import numpy as np
import psutil
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from core import settings
from core.errors import MemoryRefusal
from core.features import FeatureExtractor
from core.network import Network
from core.options import AnalysisOptions


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes an analysis will hold at its peak, and what is free to hold it."""

    needed: int
    available: int

    @property
    def fits(self) -> bool:
        return self.needed <= self.available


class LayerShapes(list):
    """Per-example output shapes of the analysed layers (a list of tuples), and what one image's forward pass
    allocates: `input_values`, the values of one image as the network takes it (3 x 224 x 224 for a 224 px network:
    CIFAR's 32 px images are resized up); `forward_peak`, the most bytes its activations held at once; and
    `allocations`, the size in bytes of each tensor it allocated (ForwardBytes)."""

    input_values: int = 3 * 32 * 32
    forward_peak: int | None = None  # None: not measured (an estimate then falls back to 4 largest layer outputs)
    allocations: tuple[int, ...] = ()


class ForwardBytes(TorchDispatchMode):
    """Counts the bytes of the tensors that the operations run under it allocate and that are still alive: the
    peak (`peak`) and the size of every allocation (`allocations`).

    A storage is counted once, when an operation first returns it, and uncounted when the last tensor returned on
    it is freed: a view or an in-place result shares its input's storage and adds nothing, and a view of a tensor
    made outside (a weight, the input) is not an allocation of the pass."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage address -> [bytes, tensors returned on it still alive]
        self.now = 0
        self.peak = 0
        self.allocations: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {t.untyped_storage().data_ptr() for t in _tensors((args, kwargs))}
        for t in _tensors(out):
            key = t.untyped_storage().data_ptr()
            if key not in self.live:
                if key in given or not key:
                    continue  # a view or in-place result of a tensor made outside, or an empty one
                size = t.untyped_storage().nbytes()
                self.live[key] = [size, 0]
                self.allocations.append(size)
                self.now += size
                self.peak = max(self.peak, self.now)
            self.live[key][1] += 1
            weakref.finalize(t, self._freed, key)
        return out

    def _freed(self, key: int) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if not entry[1]:
            self.now -= entry[0]
            del self.live[key]


def _tensors(value) -> list[torch.Tensor]:
    """The tensors in an operation's arguments or results (nested in tuples, lists and dicts)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


# layer_shapes' measurements per network module, by (layers, device, input size): gone with the module
_SHAPES: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, LayerShapes]] = weakref.WeakKeyDictionary()
_SHAPES_LOCK = threading.Lock()


def layer_shapes(network: Network, device: torch.device) -> LayerShapes:
    """Per-example output shape of every analysed layer, from a forward pass of a single image at the network's
    own input size (a 224 px ViT's [197, 192] tokens, not a 32 px image's), read as an analysis reads it (one layer
    handed over at a time: FeatureExtractor.stream); a second such pass, under ForwardBytes, measures what it
    allocates (the first also decides each layer's channel axis, once per network, which the count must leave out;
    left unmeasured where the count cannot follow an operation).

    Measured once per network (its module object), layers, input size and device, then shared while the network
    lives: a pair with its ceilings, or a training series, meets each network in several comparisons."""
    form = getattr(network, "input", None)  # core.network.input_of: a network without one reads CIFAR's 32 px
    size = form.size if form is not None and form.size else (32, 32)
    key = (tuple(network.layers), str(device), tuple(size))
    with _SHAPES_LOCK:
        known = _SHAPES.get(network.module, {}).get(key)
    if known is None:
        known = _measured_shapes(network, device, size)
        with _SHAPES_LOCK:
            _SHAPES.setdefault(network.module, {})[key] = known
    return known


def _measured_shapes(network: Network, device: torch.device, size: tuple[int, int]) -> LayerShapes:
    extractor = FeatureExtractor(network.module, network.layers, device)
    image = torch.zeros(1, 3, *size, device=device).contiguous(memory_format=torch.channels_last)  # as stream takes it
    found: dict[int, tuple[int, ...]] = {}
    extractor.stream(image, lambda j, f: found.__setitem__(j, tuple(f.shape[1:])))
    shapes = LayerShapes(found[j] for j in range(len(found)))
    shapes.input_values = 3 * size[0] * size[1]
    counted = ForwardBytes()
    try:
        with counted:
            extractor.stream(image, lambda j, f: None)
    except Exception:  # noqa: BLE001 - an operation the count cannot follow: estimate from the layers, as before
        return shapes
    shapes.forward_peak, shapes.allocations = counted.peak, tuple(counted.allocations)
    return shapes


MMAP_THRESHOLD = 32 * 2**20  # glibc's largest mmap threshold on 64-bit: larger blocks go back to the system when freed


def estimate_bytes(models_shapes: list[list[tuple[int, ...]]], n: int, options: AnalysisOptions) -> int:
    """Peak memory of an analysis of n images over models with these layer shapes (all fingerprints held).

    Per model: the stored centred Grams (n/b batches x L x b^2 float32) and pooled probe features (bfloat16), of
    which at most CKA_LENS_SPILL_MB stays in memory (the rest is in files: core.spill). On top, whichever is larger:
    a forward pass, or the widest layer's probe. A forward pass counts b times the activation bytes one image's pass
    held at its peak (measured by layer_shapes: what a network allocates inside, a ViT's qkv and MLP hidden layers,
    three of a ResNet-50's 56 x 56 x 256 maps at once, not only the layers read); the batch as the network takes it
    three times (normalised, its channels-last copy, and one more for the scratch the count does not see, the math
    libraries' own: without it ViT-S/16 vs itself and ViT-Tiny/16 vs ResNet-18 below come out at 0.96x); the batch's
    float64 Gram rows; and the freed activations the C heap keeps between HeapBudget's checks, up to
    HEAP_SLACK_LAYERS largest layer outputs, but only of allocations small enough to be in the heap: glibc serves a
    block of MMAP_THRESHOLD or more with mmap and returns it to the system when it is freed, so the slack is
    HEAP_SLACK_LAYERS times the largest allocation under it, at most the largest layer output. Measured rises above
    the loaded networks and images (estimate in brackets): two full-width CIFAR ResNet-18s at batch 100, 271, 363
    and 375 MiB at 1,000, 10,000 and 50,000 train images [358, 404, 404] (BENCHMARKS.md, "Memory against n"); at 224
    px, untrained timm networks, 100 test images, batch 100, one thread: ViT-Tiny/16 vs itself 326 MiB [437: a
    single batch, whose heap never reaches the slack that later batches may], ViT-Tiny/16 vs ResNet-18 927 MiB
    [951], ResNet-50 vs itself 1,119 MiB [1,300] (bench/results/end_to_end_pair_rn50_n100.json); batch 250, 1,000
    test images, two threads (BENCHMARKS.md, "Other architectures"): the bundled ResNet-18 w16 pair at 32 px 172 MiB
    [251], ViT-S/16 vs itself 1,169 MiB [1,261], ViT-S/16 vs ResNet-50 2,924 MiB [3,076]. Layer shapes that were not
    measured (a plain list) count four largest layer outputs for the activations and the layer output itself as the
    one allocation.

    A probe reads its layer a batch at a time when the layer is narrower than the training rows (d <= n_train:
    the d x d Gram, its eigenbasis and the eigensolver's workspace, ~32 d^2 bytes, plus a few float64 copies of
    one batch); a wider layer's probe holds its n_train x d rows in float64 (~40 bytes per value) and the
    n_train x n_train products (24 n_train^2).
    """
    b = min(options.batch_size, n)
    batches, stored, in_flight, probe = -(-n // b), 0, 0, 0
    n_train = n - options.held_out(n)
    for shapes in models_shapes:
        sizes = [int(np.prod(s)) for s in shapes]
        widths = [_probe_width(size, s) for size, s in zip(sizes, shapes, strict=True)]
        kept = batches * len(shapes) * b * b * 4 + (n * sum(widths) * 2 if options.probes else 0)
        stored += min(kept, settings.spill_bytes())
        layer = b * max(sizes) * 4
        images = 3 * b * getattr(shapes, "input_values", 3 * 32 * 32) * 4  # normalised, channels-last, and scratch
        peak = getattr(shapes, "forward_peak", None)
        activations = 4 * layer if peak is None else b * peak
        small = [b * a for a in getattr(shapes, "allocations", ()) or (max(sizes) * 4,) if b * a < MMAP_THRESHOLD]
        slack = HEAP_SLACK_LAYERS * min(layer, max(small, default=0))
        in_flight = max(in_flight, activations + slack + images + (2 * len(shapes) + 3) * b * b * 8)
        if options.probes:
            d = max(widths)
            probe = max(probe, 32 * d * d + 48 * b * d if d <= n_train else 40 * n_train * d + 24 * n_train**2)
    return int(stored + max(in_flight, probe))


def _probe_width(size: int, shape: tuple[int, ...]) -> int:
    """Values per image a probe keeps of a layer (core.probes.pool_features): 4C of a map, 2C of tokens [T, C]."""
    if len(shape) == 3:
        return min(size, 4 * shape[0])
    if len(shape) == 2:
        return min(size, 2 * shape[1])
    return size


def available_bytes(device: torch.device) -> int:
    """Free memory where the analysis runs: the GPU's free memory, or the host's available memory (psutil:
    MemAvailable on Linux, its counterpart elsewhere)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(psutil.virtual_memory().available)


def check_memory(
    models_shapes: list[list[tuple[int, ...]]], n: int, options: AnalysisOptions, device: torch.device
) -> MemoryPlan:
    """Refuse up front (MemoryRefusal), with a setting that fits, an analysis that would not fit in memory."""
    plan = MemoryPlan(estimate_bytes(models_shapes, n, options), int(available_bytes(device) * 0.8))
    if plan.fits:
        return plan
    gb = 1024**3
    advice = []
    batch = options.batch_size
    while batch > 16 and estimate_bytes(models_shapes, n, replace(options, batch_size=batch)) > plan.available:
        batch //= 2
    if estimate_bytes(models_shapes, n, replace(options, batch_size=batch)) <= plan.available:
        advice.append(f"a batch size of {batch}")
    images = n
    while images > 10 and estimate_bytes(models_shapes, images, options) > plan.available:
        images //= 2
    if estimate_bytes(models_shapes, images, options) <= plan.available:
        advice.append(f"at most {images} images")
    hint = " or ".join(advice) if advice else "a smaller model or a machine with more memory"
    raise MemoryRefusal(
        f"this analysis needs about {plan.needed / gb:.1f} GB but about {plan.available / gb:.1f} GB is free "
        f"on {device.type}; try {hint}"
    )


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library is not glibc."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


HEAP_SLACK_LAYERS = 8.0  # freed activations a forward pass keeps in the heap, in largest layer outputs (HeapBudget)


@functools.cache
def _process(pid: int) -> psutil.Process:
    """This process as psutil sees it, made once per process id (a forked child gets its own)."""
    return psutil.Process(pid)


def resident_bytes() -> int:
    """This process's resident set now (psutil; on Linux it reads /proc/self/statm, as fast as reading it here:
    ~70 us a call measured either way, once per layer of a forward pass)."""
    return int(_process(os.getpid()).memory_info().rss)


class HeapBudget:
    """Lets a forward pass's freed activations stay in the C heap, to be reused without page faults, until the
    resident set passes its resting level by `slack_layers` times the largest layer output seen; then gives
    them back (`release_freed`).

    Why a budget (measured in BENCHMARKS.md, "Memory against n"): giving the heap back after every layer faults
    each layer's activations in afresh (slower); never giving it back lets glibc's fragmented heap grow batch
    after batch; giving it back per minibatch still lets the peak grow with the number of minibatches. The resident
    set is the whole process's, so other work in it (another visitor's analysis) only makes the release come sooner.
    """

    def __init__(self, slack_layers: float | None = None) -> None:
        self.slack_layers = HEAP_SLACK_LAYERS if slack_layers is None else slack_layers
        self.largest = 0
        self.resting = 0

    def rest(self) -> None:
        """Give the freed heap back and take the resident set as the resting level."""
        release_freed()
        self.resting = resident_bytes()

    def check(self, held: int, layer_bytes: int) -> bool:
        """After a layer of `layer_bytes` is read, with `held` bytes kept since `rest`: release the freed heap if
        the resident set is past the budget. True when it was released."""
        self.largest = max(self.largest, layer_bytes)
        if resident_bytes() <= self.resting + held + self.slack_layers * self.largest:
            return False
        release_freed()
        return True


def release_freed() -> None:
    """Give the pages that the C heap holds free back to the system (glibc's malloc_trim; elsewhere nothing).

    A minibatch's activations (hundreds of MB for a full-width ResNet-18 at batch 100) are freed after its Grams,
    but glibc keeps most of that memory in its heap, fragmented, and the resident set of a long analysis crept up
    batch after batch. Called by a forward pass's HeapBudget and at its end, after each minibatch of the pair
    terms, and after each layer's probe.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
