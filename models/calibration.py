"""What the weights cannot say, measured: a max-pool after a 3x3 stem, the stem's padding, the input normalisation.

None of the three is in a state dict. Where the source does not say (config.json, a checkpoint's settings, the
registry, a person's choice), each open choice's candidates are scored on a fixed sample of CIFAR-10 test
images: classifier accuracy for a network with a 10-way head, leave-one-out kNN accuracy of the pooled
features otherwise. A candidate replaces the default only when it beats it by more than two standard errors
of the difference; the scores are kept as evidence for the model card.

A calibration (the evidence and the choices it decided) is kept in the result store under a key of the weights'
content digest (models.digest) and everything else that decides it: the starting structure and normalisation, the
open choices, the sample, the candidates and the rules (`calibration_key`). A second load of the same weights reads
it back instead of measuring again (~2 s a network on a busy CPU); the default networks' calibrations are shipped
with the app (ui.shipped). A damaged or implausible entry is deleted and measured again, never used.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from core import settings
from core.data import CIFAR10_MEAN, CIFAR10_STD, load_split, normalize
from core.errors import DataError, StoreEntryDamaged
from core.network import RGB
from core.store import StoreKey, content_key, default_store
from models.resnet import ArchConfig

NORMALISATIONS: dict[str, tuple[RGB, RGB]] = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar10-0.2023": (CIFAR10_MEAN, (0.2023, 0.1994, 0.2010)),  # the other CIFAR-10 std in common use
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
CHOICES = ("stem_pool", "stem_padding", "normalisation")
KNN_K = 10
SAMPLE_SEED = 0
# Bump when the race, its thresholds or a measure changes: calibrations kept under the old rules are then not read.
RULES = "race-2se-v1"


@dataclass(frozen=True)
class Calibration:
    """The measurement behind a loaded network's unstated choices, shown on its model card."""

    measure: str  # "classifier accuracy" or "kNN accuracy (k=10, leave-one-out, pooled features)"
    images: int  # CIFAR-10 test images measured on
    accuracy: float  # the chosen network's score
    chance: float
    # each candidate tried: (label, score, images it was scored on); the starting choice and a finalist on all of
    # them, the other candidates on the first half (see calibrate)
    scores: tuple[tuple[str, float, int], ...] = ()
    measured: tuple[str, ...] = ()  # which of CHOICES were open and decided by the scores
    warning: str = ""  # near chance: the network probably did not load as it was trained

    @property
    def summary(self) -> str:
        return f"{self.accuracy:.1%} {self.measure} on {self.images} CIFAR-10 test images (chance {self.chance:.0%})"


def normalisation_name(mean: RGB, std: RGB) -> str:
    """The NORMALISATIONS name of (mean, std), or 'custom'."""
    for name, (m, s) in NORMALISATIONS.items():
        if np.allclose(m, mean, atol=5e-4) and np.allclose(s, std, atol=5e-4):
            return name
    return "custom"


@lru_cache(maxsize=2)
def _sample(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels, _ = load_split("test")
    keep = np.random.default_rng(SAMPLE_SEED).permutation(len(labels))[:count]
    chosen = torch.from_numpy(np.ascontiguousarray(images[keep].transpose(0, 3, 1, 2)))
    return chosen, torch.from_numpy(labels[keep])


def sample() -> tuple[torch.Tensor, torch.Tensor] | None:
    """The fixed calibration images (uint8, N x 3 x 32 x 32) and labels; None when there are none to use."""
    count = settings.calibration_images()
    if count == 0:
        return None
    try:
        return _sample(count)
    except DataError:
        return None


@dataclass(frozen=True)
class _Outputs:
    """What one candidate gave on the first `len(logits)` calibration images."""

    logits: torch.Tensor
    features: torch.Tensor

    def first(self, count: int) -> _Outputs:
        return _Outputs(self.logits[:count], self.features[:count])

    def __add__(self, more: _Outputs) -> _Outputs:
        return _Outputs(torch.cat([self.logits, more.logits]), torch.cat([self.features, more.features]))

    def score(self, labels: torch.Tensor, classify: bool) -> float:
        """Accuracy of a 10-way classifier, or leave-one-out kNN accuracy of the pooled features."""
        labels = labels[: len(self.logits)]
        if classify:
            return float((self.logits.argmax(1) == labels).float().mean())
        features = nn.functional.normalize(self.features.float(), dim=1)
        similarity = features @ features.T
        similarity.fill_diagonal_(-math.inf)
        neighbours = labels[similarity.topk(min(KNN_K, len(labels) - 1), dim=1).indices]
        votes = torch.nn.functional.one_hot(neighbours, int(labels.max()) + 1).sum(1)
        return float((votes.argmax(1) == labels).float().mean())


def folded(module: nn.Module) -> nn.Module:
    """A copy of a post-activation ResNet in eval mode with each batch norm folded into the convolution before
    it (the same outputs to float rounding, ~8% faster on our CPU); other networks are copied as they are, so
    calibration never changes the network it measures."""
    net = copy.deepcopy(module).eval()
    if not isinstance(net, ResNet):
        return net
    pairs = [(net, "conv1", "bn1")]
    for block in net.modules():
        if isinstance(block, (BasicBlock, Bottleneck)):
            pairs += [(block, f"conv{i}", f"bn{i}") for i in (1, 2, 3) if hasattr(block, f"bn{i}")]
            if isinstance(block.downsample, nn.Sequential):
                pairs.append((block.downsample, "0", "1"))
    for owner, conv, norm in pairs:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, norm)))
        setattr(owner, norm, nn.Identity())
    return net


def run(module: nn.Module, images: torch.Tensor, mean: RGB, std: RGB) -> _Outputs:
    """The module's outputs and the pooled features fc receives, computed on a folded copy (see `folded`) in the
    channels-last memory format, 1.6x faster than NCHW for these convolutions on our CPU."""
    captured: list[torch.Tensor] = []
    module = folded(module).to(memory_format=torch.channels_last)  # outside inference mode: plain tensors
    hook = module.fc.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    batch = normalize(images, mean, std).contiguous(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            out = module(batch)
    finally:
        hook.remove()
    return _Outputs(out, captured[0].flatten(1))


def run_many(module: nn.Module, images: torch.Tensor, normalisations: list[tuple[RGB, RGB]]) -> list[_Outputs]:
    """`run` for several normalisations of the same images, as one batch (fewer, larger convolutions)."""
    batch = torch.cat([normalize(images, m, s) for m, s in normalisations])
    out = run(module, batch, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    k = len(images)
    return [
        _Outputs(out.logits[i * k : (i + 1) * k], out.features[i * k : (i + 1) * k]) for i in range(len(normalisations))
    ]


def calibration_key(weights: str, arch: ArchConfig, mean: RGB, std: RGB, open_choices: tuple[str, ...]) -> StoreKey:
    """The store key of a calibration: the weights' content digest and all that decides what `calibrate` measures
    and chooses (the starting structure and normalisation, the open choices, the sample's size and seed, the
    candidates, the rules; ENGINE_VERSION comes with every key)."""
    sample_of = {"split": "CIFAR-10 test", "images": settings.calibration_images(), "seed": SAMPLE_SEED}
    candidates = {"normalisations": NORMALISATIONS, "stem_pool": [False, True], "stem_padding": [1, 2], "knn_k": KNN_K}
    choices = [c for c in CHOICES if c in open_choices]
    return content_key("calibration", RULES, weights, arch, [mean, std], choices, sample_of, candidates)


def calibration_record(arch: ArchConfig, mean: RGB, std: RGB, evidence: Calibration) -> dict:
    """What the store keeps of a calibration: the choices it decided and its evidence."""
    decided = {"stem_pool": arch.stem_pool, "stem_padding": arch.stem_padding, "mean": mean, "std": std}
    return {"decided": decided, "calibration": asdict(evidence)}


def _triple(value: object) -> RGB:
    if not (isinstance(value, list) and len(value) == 3 and all(type(v) in (int, float) for v in value)):
        raise StoreEntryDamaged("not three numbers")
    return (float(value[0]), float(value[1]), float(value[2]))


def _typed(value: object, kind: type) -> object:
    if kind is float and type(value) is int:
        return float(value)
    if type(value) is not kind:
        raise StoreEntryDamaged(f"{value!r} is not a {kind.__name__}")
    return value


def from_record(
    record: dict, arch: ArchConfig, mean: RGB, std: RGB, open_choices: tuple[str, ...]
) -> tuple[ArchConfig, RGB, RGB, Calibration]:
    """The choices and evidence a stored calibration holds, for a network starting from (arch, mean, std) with
    `open_choices`; a StoreEntryDamaged for anything a calibration of it could not have decided or said."""
    try:
        decided, found = record["decided"], record["calibration"]
        pool, padding = _typed(decided["stem_pool"], bool), _typed(decided["stem_padding"], int)
        chosen_mean, chosen_std = _triple(decided["mean"]), _triple(decided["std"])
        evidence = Calibration(
            measure=_typed(found["measure"], str),
            images=_typed(found["images"], int),
            accuracy=_typed(found["accuracy"], float),
            chance=_typed(found["chance"], float),
            scores=tuple(
                (_typed(label, str), _typed(value, float), _typed(images, int))
                for label, value, images in found["scores"]
            ),
            measured=tuple(_typed(c, str) for c in found["measured"]),
            warning=_typed(found["warning"], str),
        )
    except (KeyError, TypeError, ValueError) as err:  # a missing field, a wrong type, a score not of three
        raise StoreEntryDamaged(f"not a calibration record: {err}") from err
    can_pool, can_pad = (arch.stem == "cifar" and c in open_choices for c in ("stem_pool", "stem_padding"))
    if (pool != arch.stem_pool and not can_pool) or (
        padding != arch.stem_padding and not (can_pad and padding in (1, 2))
    ):
        raise StoreEntryDamaged("a structure the calibration could not have chosen")
    start = (tuple(mean), tuple(std))
    if (chosen_mean, chosen_std) != start and (
        "normalisation" not in open_choices or (chosen_mean, chosen_std) not in NORMALISATIONS.values()
    ):
        raise StoreEntryDamaged("a normalisation the calibration could not have chosen")
    if evidence.images != settings.calibration_images() or not set(evidence.measured) <= set(open_choices):
        raise StoreEntryDamaged("a calibration of another sample or other choices")
    return replace(arch, stem_pool=pool, stem_padding=padding), chosen_mean, chosen_std, evidence


def calibrate(
    module: nn.Module,
    build: Callable[[ArchConfig], nn.Module],
    arch: ArchConfig,
    mean: RGB,
    std: RGB,
    open_choices: tuple[str, ...],
    weights: str = "",
) -> tuple[ArchConfig, RGB, RGB, nn.Module, Calibration | None]:
    """`measure`, kept in the result store under `calibration_key` when `weights` (the weights' content digest,
    models.digest) is given: a calibration found there is used as measured, and one found damaged or implausible
    is deleted and measured again."""
    store = default_store() if weights and settings.calibration_images() else None
    key = calibration_key(weights, arch, mean, std, open_choices) if store else None
    if store is not None and key is not None:
        record = store.record(key)
        if record is not None:
            try:
                chosen, chosen_mean, chosen_std, evidence = from_record(record, arch, mean, std, open_choices)
            except StoreEntryDamaged:
                store.discard_record(key)
            else:
                return chosen, chosen_mean, chosen_std, module if chosen == arch else build(chosen), evidence
    found = measure(module, build, arch, mean, std, open_choices)
    if store is not None and key is not None and found[4] is not None:
        store.put_record(key, calibration_record(found[0], found[1], found[2], found[4]))
    return found


def measure(
    module: nn.Module,
    build: Callable[[ArchConfig], nn.Module],
    arch: ArchConfig,
    mean: RGB,
    std: RGB,
    open_choices: tuple[str, ...],
) -> tuple[ArchConfig, RGB, RGB, nn.Module, Calibration | None]:
    """Decide the open choices by measurement and measure the result; `module` is the network for `arch`, and
    `build(candidate)` gives the same weights in another candidate's structure.

    Structure first (max-pool x padding, under the starting normalisation), then the normalisation under the
    chosen structure. Each group is a race: the starting choice runs on every image, the other candidates on
    the first half; the best of them, if it leads there and is clearly above chance there, runs on the second
    half too, and replaces the starting choice only if it wins on all the images by more than two standard
    errors (and is itself clearly above chance). Returns the chosen arch, mean, std, module and the evidence
    (None without images).
    """
    data = sample()
    if data is None:
        return arch, mean, std, module, None
    images, labels = data
    classify = arch.num_classes == 10
    chance = 1 / 10
    n, half = len(labels), len(labels) // 2
    tried: list[tuple[str, float, int]] = []

    def informative(count: int) -> float:
        """Below this score on `count` images a network is indistinguishable from chance."""
        return chance + 3 * math.sqrt(chance * (1 - chance) / count)

    def better(best: float, default: float) -> bool:
        """Clearly above the default and clearly above chance: noise in an untrained network decides nothing."""
        spread = math.sqrt(max(best * (1 - best) + default * (1 - default), 1e-12) / n)
        return best - default > 2 * spread and best > informative(n)

    def race(start: tuple, start_label: str, start_out: _Outputs, others: list[tuple]) -> tuple:
        """others: (label, state, module, mean, std); returns the winner's (state, module, outputs on all)."""
        start_half, start_all = start_out.first(half).score(labels, classify), start_out.score(labels, classify)
        tried.append((start_label, start_all, n))
        leader = None
        shared = len({id(net) for _, _, net, _, _ in others}) == 1  # one module, several inputs: one batch
        batched = run_many(others[0][2], images[:half], [(m, s) for *_, m, s in others]) if shared else None
        for index, (label, state, net, m, s) in enumerate(others):
            out = batched[index] if batched else run(net, images[:half], m, s)
            value = out.score(labels, classify)
            tried.append((label, value, half))
            # a leader must also be clearly above chance on its half: noise in a network that reads nothing
            # (random or wrongly loaded weights) is not worth a second pass
            if value > max(start_half, informative(half)) and (leader is None or value > leader[0]):
                leader = (value, label, state, net, m, s, out)
        if leader is None:
            return start + (start_out,)
        _, label, state, net, m, s, out = leader
        full = out + run(net, images[half:], m, s)
        value = full.score(labels, classify)
        tried.append((label, value, n))
        if better(value, start_all):
            return state, net, full
        return start + (start_out,)

    current = run(module, images, mean, std)
    structure = [c for c in ("stem_pool", "stem_padding") if c in open_choices and arch.stem == "cifar"]
    if structure:
        pools = (False, True) if "stem_pool" in structure else (arch.stem_pool,)
        paddings = (1, 2) if "stem_padding" in structure else (arch.stem_padding,)
        label = lambda a: f"stem: {'max-pool, ' if a.stem_pool else ''}padding {a.stem_padding}"  # noqa: E731
        others = [
            (label(c), c, build(c), mean, std)
            for c in (replace(arch, stem_pool=p, stem_padding=d) for p in pools for d in paddings)
            if c != arch
        ]
        arch, module, current = race((arch, module), label(arch), current, others)
    if "normalisation" in open_choices:
        start = normalisation_name(mean, std)
        others = [(f"normalisation: {k}", (m, s), module, m, s) for k, (m, s) in NORMALISATIONS.items() if k != start]
        (mean, std), _, current = race(((mean, std), module), f"normalisation: {start}", current, others)
    accuracy = current.score(labels, classify)
    warning = ""
    if accuracy < informative(n):
        warning = (
            f"{accuracy:.1%} on {n} CIFAR-10 test images is near chance ({chance:.0%}): this network probably did "
            "not load as it was trained (or was not trained on CIFAR-10 images)"
        )
    measure = "classifier accuracy" if classify else f"kNN accuracy (k={KNN_K}, leave-one-out, pooled features)"
    measured = tuple(c for c in CHOICES if c in open_choices and (c == "normalisation" or c in structure))
    return arch, mean, std, module, Calibration(measure, n, accuracy, chance, tuple(tried), measured, warning)
