"""The result of comparing two networks, and its JSON and CSV forms."""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import numpy as np

from core.data import SubsetSpec
from core.errors import ResultFileError
from core.interval import INTERVAL_METHOD
from core.names import BY_DEPTH, BY_NAME
from core.network import ModelIdentity
from core.options import AnalysisOptions
from core.readouts import PROBE_METHOD

NULL_METHOD = (
    "permutation null: B's examples shuffled within each minibatch; a check that the two networks are not "
    "independent, not a floor (see floor_untrained)"
)


@dataclass(frozen=True)
class AnalysisResult:
    """Everything the app shows and the command line writes, for one pair of models."""

    model_a: ModelIdentity
    model_b: ModelIdentity
    subset: SubsetSpec
    options: AnalysisOptions
    used_images: int
    layers_a: tuple[str, ...]
    layers_b: tuple[str, ...]
    cross: np.ndarray  # [La, Lb] CKA between every layer of A and every layer of B
    self_a: np.ndarray  # [La, La]
    self_b: np.ndarray  # [Lb, Lb]
    undefined_a: tuple[str | None, ...]  # per layer: why its CKA is undefined, or None
    undefined_b: tuple[str | None, ...]
    matched: tuple[str, ...]  # A's matched layers in depth order (by name: present in both models; see matching)
    matched_cka: np.ndarray  # [M]
    null_mean: np.ndarray  # [M] permutation null (rows of B shuffled): mean and 95th percentile
    null_p95: np.ndarray
    interval_low: np.ndarray  # [M] 95% jackknife-t interval over minibatches (NaN with fewer than 5 of them)
    interval_high: np.ndarray
    class_a: np.ndarray  # [La] class-structure CKA (one-hot label kernel)
    class_b: np.ndarray
    invariance_a: np.ndarray  # [La] CKA(layer(x), layer(t(x))) with SimCLR views t
    invariance_b: np.ndarray
    probe_a: np.ndarray  # [La] held-out linear-probe accuracy
    probe_b: np.ndarray
    probe_method: str = PROBE_METHOD
    interval_method: str = INTERVAL_METHOD
    seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    # Read beside A vs B (core.floors, core.seeds); None, 0 or empty in results made without them (older files).
    floor_untrained: np.ndarray | None = None  # [M] untrained A-arch vs untrained B-arch, mean over init pairs
    floor_untrained_low: np.ndarray | None = None  # [M] 5th percentile over init pairs
    floor_untrained_high: np.ndarray | None = None  # [M] 95th percentile over init pairs
    untrained_a: np.ndarray | None = None  # [La] trained A vs untrained A-arch networks, mean over init seeds
    untrained_b: np.ndarray | None = None  # [Lb]
    floor_pairs: int = 0  # pairs of init seeds behind the floor
    floor_note: str = ""  # why they are fewer than asked, if they are
    floor_method: str = ""  # how the floor was made (core.floors.FLOOR_METHOD); "" without one
    null_method: str = NULL_METHOD
    invariance_pooled_a: np.ndarray | None = None  # [La] CKA of layer(x) and layer(t(x)), each averaged over space
    invariance_pooled_b: np.ndarray | None = None
    seed_pairings: tuple[SeedPairing, ...] = ()  # every cross pairing of the seeds at hand, A x B first
    # per quantity, its values with each minibatch left out ([batches, ...]): the paired jackknife of any
    # quantity a verdict reads (core.findings); keys cross, self_a, self_b, class_a, class_b, invariance_a,
    # invariance_b, invariance_pooled_a, invariance_pooled_b
    leave_one_out: dict[str, np.ndarray] = field(default_factory=dict)
    # how matched layers were paired (core.names.match_layers): by name, or, across architectures that share no
    # block name, by relative depth, where B's layer for each of `matched` is in `matched_b` (() when by name)
    matching: str = BY_NAME
    matched_b: tuple[str, ...] = ()
    # each model's layers whose output is tokens [N, T, C] (a transformer's): CKA reads them flattened, every token;
    # the pooled read-outs average over tokens (probes: the first token beside the others' mean); () in older files
    tokens_a: tuple[str, ...] = ()
    tokens_b: tuple[str, ...] = ()
    # each model's layers whose channel axis could not be worked out (core.layout): their pooled read-outs are NaN
    unknown_layout_a: tuple[str, ...] = ()
    unknown_layout_b: tuple[str, ...] = ()

    def partner(self, layer: str) -> str:
        """B's layer that A's matched `layer` is compared with (the same name, unless paired by relative depth)."""
        return self.matched_b[self.matched.index(layer)] if self.matched_b else layer


@dataclass(frozen=True)
class SeedPairing:
    """One cross pairing of a seed of A's method with a seed of B's: its matched-layer CKA on the same images."""

    a: str  # the spec of A's seed
    b: str  # the spec of B's seed
    matched_cka: np.ndarray  # [M] over the result's matched layers
    leave_one_out: np.ndarray | None = None  # [batches, M] the CKA with each minibatch left out


def to_json_dict(result: AnalysisResult) -> dict:
    """A JSON-ready dict; undefined values become null with their reasons alongside."""

    def clean(value):
        if isinstance(value, np.ndarray):
            return [clean(v) for v in value.tolist()]
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, float) and not np.isfinite(value):
            return None
        if isinstance(value, str):
            return str(value)  # a str subclass (torch's version string) as the plain string JSON holds
        return value

    out = {}
    for key, value in asdict(result).items():
        out[key] = clean(value) if not isinstance(value, dict) else {k: clean(v) for k, v in value.items()}
    return out


MAX_LAYERS = 256  # layers per model a result may hold (a CIFAR ResNet-152 has 103): bounds opening time and memory
MAX_TEXT = 1_000  # characters of any one string in a result (a model's source, a probe's description)
MAX_ENTRIES = 32  # keys of `seconds` and `versions`
MAX_IMAGES = 60_000  # CIFAR-10 holds 60,000 images in all
_LAYER_NAME = re.compile(r"[A-Za-z0-9_.\- ]{1,100}")  # how this app names layers (stem, layer1.0, layer1.0 residual)
_KEY_NAME = re.compile(r"[A-Za-z0-9_.\- ]{1,40}")
_ARCH_NAME = re.compile(r"[A-Za-z0-9_.\-: ]{1,80}")  # 'resnet18-w16', 'timm:vit_small_patch16_224'
# Which array has which length: "a" / "b" the layers of that model, "m" the matched layers.
_SHAPES = (
    {"cross": ("a", "b"), "self_a": ("a", "a"), "self_b": ("b", "b")}
    | {name: (name[-1],) for name in ("class_a", "class_b", "invariance_a", "invariance_b", "probe_a", "probe_b")}
    | {name: ("m",) for name in ("matched_cka", "null_mean", "null_p95", "interval_low", "interval_high")}
)


def from_json_dict(data: dict) -> AnalysisResult:
    """The result `to_json_dict` wrote (null values back to NaN), checked whole against what a result holds:
    types, every array's length against its layers, finite numbers or null, bounded sizes. A ResultFileError names
    the first problem; nothing of a refused file is kept."""
    if not isinstance(data, dict):
        raise ResultFileError(f"a result is a JSON object, not {type(data).__name__}")
    required = {f.name for f in fields(AnalysisResult) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise ResultFileError(f"this is not a CKA Lens result: {', '.join(missing[:4])} missing")
    values = {f.name: data[f.name] for f in fields(AnalysisResult) if f.name in data}
    sizes = {side: len(_names(values, f"layers_{side}", MAX_LAYERS)) for side in "ab"}
    sizes["m"] = len(_names(values, "matched", MAX_LAYERS))
    matched_b = values.get("matched_b") or []
    if matched_b and len(_names(values, "matched_b", MAX_LAYERS)) != sizes["m"]:
        raise ResultFileError("its matched_b does not pair each matched layer with one of B's")
    if values.get("matching", BY_NAME) not in (BY_NAME, BY_DEPTH):
        raise ResultFileError(f"its matching is neither '{BY_NAME}' nor '{BY_DEPTH}'")
    in_b = set(matched_b or values["matched"]) <= set(values["layers_b"])
    if not (set(values["matched"]) <= set(values["layers_a"]) and in_b):
        raise ResultFileError("its matched layers are not layers of both models")
    for key, dims in _SHAPES.items():
        values[key] = _array(values[key], key, tuple(sizes[d] for d in dims))
    for side in "ab":
        values[f"undefined_{side}"] = _reasons(values[f"undefined_{side}"], f"undefined_{side}", sizes[side])
    for key in ("layers_a", "layers_b", "matched", "matched_b"):
        if key in values:
            values[key] = tuple(values[key])
    for side in "ab":
        for key in (f"tokens_{side}", f"unknown_layout_{side}"):
            if key in values:
                values[key] = _some_of(values[key], key, values[f"layers_{side}"])
    for key in ("probe_method", "interval_method"):
        if key in values:
            _text(values[key], key)
    values["seconds"] = _entries(values.get("seconds", {}), "seconds", (int, float))
    values["versions"] = _entries(values.get("versions", {}), "versions", (str,))
    used = values["used_images"]
    if type(used) is not int or not 1 <= used <= MAX_IMAGES:
        raise ResultFileError(f"its used_images is not a number of images (1 to {MAX_IMAGES:,}): {_quote(used)}")
    values["model_a"], values["model_b"] = (_record(ModelIdentity, values[k], k) for k in ("model_a", "model_b"))
    for key in ("model_a", "model_b"):
        for name, pattern in (("method", _KEY_NAME), ("arch", _ARCH_NAME)):
            if not pattern.fullmatch(getattr(values[key], name)):
                raise ResultFileError(
                    f"its {key}.{name} is not a short plain name: {_quote(getattr(values[key], name))}"
                )
    values["subset"] = _record(SubsetSpec, values["subset"], "subset")
    values["options"] = _record(AnalysisOptions, values["options"], "options")
    _references(values, sizes)
    return AnalysisResult(**values)


# The fields read beside A vs B (floors, seeds, leave-one-out values), absent from older files.
_OPTIONAL_SHAPES = {
    name: dims
    for names, dims in (
        (("floor_untrained", "floor_untrained_low", "floor_untrained_high"), ("m",)),
        (("untrained_a", "invariance_pooled_a"), ("a",)),
        (("untrained_b", "invariance_pooled_b"), ("b",)),
    )
    for name in names
}
_LEAVE_ONE_OUT = {"cross": ("a", "b"), "self_a": ("a", "a"), "self_b": ("b", "b")} | {
    f"{what}_{side}": (side,) for what in ("class", "invariance", "invariance_pooled") for side in "ab"
}
MAX_SEED_PAIRINGS = 16
MAX_FLOOR_PAIRS = 1_000


def _references(values: dict, sizes: dict[str, int]) -> None:
    """Check in place what a result reads beside A vs B, when the file has it: the untrained floors, trained
    against untrained, pooled invariance, the seed pairings and each quantity's values with a minibatch left out
    (at most one set per minibatch of the images used)."""
    for key, dims in _OPTIONAL_SHAPES.items():
        if values.get(key) is not None:
            values[key] = _array(values[key], key, tuple(sizes[d] for d in dims))
    pairs = values.get("floor_pairs", 0)
    if type(pairs) is not int or not 0 <= pairs <= MAX_FLOOR_PAIRS:
        raise ResultFileError(f"its floor_pairs is not a count of init pairs: {_quote(pairs)}")
    for key in ("floor_note", "floor_method", "null_method"):
        if key in values:
            _text(values[key], key)
    batches = values["used_images"]
    loo = values.get("leave_one_out", {})
    if not isinstance(loo, dict) or not set(loo) <= set(_LEAVE_ONE_OUT):
        raise ResultFileError("its leave_one_out is not an object of the quantities a result holds")
    values["leave_one_out"] = {
        key: _replicates(v, f"leave_one_out.{key}", tuple(sizes[d] for d in _LEAVE_ONE_OUT[key]), batches)
        for key, v in loo.items()
    }
    pairings = values.get("seed_pairings", [])
    if not isinstance(pairings, list) or len(pairings) > MAX_SEED_PAIRINGS:
        raise ResultFileError(f"its seed_pairings is not a list of at most {MAX_SEED_PAIRINGS} pairings")
    values["seed_pairings"] = tuple(_pairing(p, k, sizes["m"], batches) for k, p in enumerate(pairings))


def _replicates(value: object, key: str, shape: tuple[int, ...], most: int) -> np.ndarray:
    """A list of 2 to `most` arrays of `shape`, one per minibatch left out, as one float64 array."""
    if not isinstance(value, list) or not 2 <= len(value) <= most:
        raise ResultFileError(f"its {key} is not a list of 2 to {most:,} values, one per minibatch")
    return np.stack([_array(v, key, shape) for v in value])


def _pairing(value: object, k: int, matched: int, batches: int) -> SeedPairing:
    if not isinstance(value, dict) or not {"a", "b", "matched_cka"} <= set(value) <= set(SeedPairing.__annotations__):
        raise ResultFileError(f"its seed_pairings[{k}] is not a pairing (a, b, matched_cka)")
    loo = value.get("leave_one_out")
    return SeedPairing(
        a=_text(value["a"], f"seed_pairings[{k}].a"),
        b=_text(value["b"], f"seed_pairings[{k}].b"),
        matched_cka=_array(value["matched_cka"], f"seed_pairings[{k}].matched_cka", (matched,)),
        leave_one_out=None
        if loo is None
        else _replicates(loo, f"seed_pairings[{k}].leave_one_out", (matched,), batches),
    )


def _quote(value: object) -> str:
    """A value from a file, cut short for a message."""
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: object, where: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ResultFileError(f"its {where} is not a string of at most {limit:,} characters")
    return value


def _names(values: dict, key: str, limit: int) -> list[str]:
    """A list of distinct layer names, at most `limit` of them."""
    names = values[key]
    if not isinstance(names, list) or not 0 < len(names) <= limit:
        raise ResultFileError(f"its {key} is not a list of 1 to {limit} layer names")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not _LAYER_NAME.fullmatch(name):
            raise ResultFileError(f"its {key}[{i}] is not a layer name: {_quote(name)}")
    if len(set(names)) != len(names):
        raise ResultFileError(f"its {key} names a layer twice")
    return names


def _some_of(value: object, key: str, layers: tuple[str, ...]) -> tuple[str, ...]:
    """A list of distinct layers of `layers` (perhaps none), as a tuple."""
    if not isinstance(value, list) or len(set(value)) != len(value) or not all(v in layers for v in value):
        raise ResultFileError(f"its {key} is not a list of that model's layers")
    return tuple(value)


def _array(value: object, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """Nested lists of finite numbers or null of exactly `shape`, as float64 (null: NaN)."""
    rows = [value] if len(shape) == 1 else value
    if len(shape) == 2 and (not isinstance(value, list) or len(value) != shape[0]):
        raise ResultFileError(f"its {key} has not {shape[0]} rows, one per layer")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != shape[-1]:
            raise ResultFileError(f"its {key}{'' if len(shape) == 1 else f'[{i}]'} has not {shape[-1]} values")
        for v in row:
            if not (v is None or (type(v) in (int, float) and math.isfinite(v) and abs(v) < 1e6)):
                raise ResultFileError(f"its {key} holds {_quote(v)}, not a finite number or null")
    return np.array(value, dtype=np.float64)


def _reasons(value: object, key: str, length: int) -> tuple[str | None, ...]:
    if not isinstance(value, list) or len(value) != length:
        raise ResultFileError(f"its {key} has not {length} entries, one per layer")
    return tuple(None if v is None else _text(v, key, 300) for v in value)


def _entries(value: object, key: str, kinds: tuple[type, ...]) -> dict:
    """A small mapping of short names to values of `kinds` (numbers: finite and not negative)."""
    if not isinstance(value, dict) or len(value) > MAX_ENTRIES:
        raise ResultFileError(f"its {key} is not an object of at most {MAX_ENTRIES} entries")
    for name, v in value.items():
        if not _KEY_NAME.fullmatch(name):
            raise ResultFileError(f"its {key} has an entry named {_quote(name)}, not a short plain name")
        number = type(v) in (int, float)
        if type(v) not in kinds or (number and not (math.isfinite(v) and v >= 0)) or (not number and len(v) > 100):
            raise ResultFileError(f"its {key}[{_quote(name)}] is {_quote(v)}, not what a result holds there")
    return dict(value)


_KINDS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "tuple[int, ...]": (list,)}


def _record(cls: type, value: object, key: str) -> Any:
    """A dataclass from its JSON object: each field of its own type and bounded, then its own checks."""
    if not isinstance(value, dict):
        raise ResultFileError(f"its {key} is not an object")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ResultFileError(f"its {key} has a field {_quote(unknown[0])} that a result does not hold")
    for name, v in value.items():
        kinds = _KINDS[str(known[name].type)]
        ok = type(v) in kinds or (kinds == (int, float) and type(v) is int)
        if isinstance(v, float):
            ok = ok and math.isfinite(v)
        if isinstance(v, str):
            ok = ok and len(v) <= MAX_TEXT
        if isinstance(v, list):
            ok = ok and len(v) <= 10 and all(type(c) is int for c in v)
        if not ok:
            raise ResultFileError(f"its {key}.{name} is {_quote(v)}, not a {known[name].type}")
    try:
        return cls(**({k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}))
    except (TypeError, ValueError) as err:
        raise ResultFileError(f"its {key} cannot be used: {str(err)[:160]}") from None


def to_csv(result: AnalysisResult) -> str:
    """Long-format CSV: one row per value (section, layer_a, layer_b, value); empty value = undefined."""
    lines = ["section,layer_a,layer_b,value"]

    def add(section: str, a: str, b: str, value: float) -> None:
        lines.append(f"{section},{a},{b},{'' if not np.isfinite(value) else repr(float(value))}")

    for section, matrix, rows, cols in (
        ("cross", result.cross, result.layers_a, result.layers_b),
        ("self_a", result.self_a, result.layers_a, result.layers_a),
        ("self_b", result.self_b, result.layers_b, result.layers_b),
    ):
        for i, a in enumerate(rows):
            for j, b in enumerate(cols):
                add(section, a, b, matrix[i, j])
    for section in ("class", "invariance", "probe"):
        for side, layers in (("a", result.layers_a), ("b", result.layers_b)):
            for name, value in zip(layers, getattr(result, f"{section}_{side}"), strict=True):
                add(f"{section}_{side}", name if side == "a" else "", name if side == "b" else "", value)
    for k, name in enumerate(result.matched):
        for section in ("matched_cka", "null_mean", "null_p95", "interval_low", "interval_high"):
            add(section, name, name, getattr(result, section)[k])
    for section in ("invariance_pooled", "untrained"):
        for side, layers in (("a", result.layers_a), ("b", result.layers_b)):
            values = getattr(result, f"{section}_{side}")
            for name, value in zip(layers, () if values is None else values, strict=False):
                add(f"{section}_{side}", name if side == "a" else "", name if side == "b" else "", value)
    for section in ("floor_untrained", "floor_untrained_low", "floor_untrained_high"):
        values = getattr(result, section)
        for name, value in zip(result.matched, () if values is None else values, strict=False):
            add(section, name, name, value)
    for pairing in result.seed_pairings:
        for name, value in zip(result.matched, pairing.matched_cka, strict=False):
            add(f"seed_pairing {pairing.a} x {pairing.b}".replace(",", ";"), name, name, value)
    return "\n".join(lines) + "\n"
