"""The result of comparing two networks, and its JSON and CSV forms."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields

import numpy as np

from core.data import SubsetSpec
from core.errors import LensError, ResultFileError
from core.interval import INTERVAL_METHOD
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
    matched: tuple[str, ...]  # layer names present in both models, in depth order
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
        return value

    out = {}
    for key, value in asdict(result).items():
        out[key] = clean(value) if not isinstance(value, dict) else {k: clean(v) for k, v in value.items()}
    return out


_ARRAYS = {f.name for f in fields(AnalysisResult) if f.type == "np.ndarray"}
_TUPLES = {f.name for f in fields(AnalysisResult) if str(f.type).startswith("tuple")} - {"seed_pairings"}
_OPTIONAL_ARRAYS = {f.name for f in fields(AnalysisResult) if f.type == "np.ndarray | None"}


def _optional_parts(values: dict) -> None:
    """The fields older files lack, read in place when present: optional arrays (null -> NaN), the leave-one-out
    replicates, the seed pairings."""
    for key in _OPTIONAL_ARRAYS & set(values):
        values[key] = None if values[key] is None else np.array(values[key], dtype=np.float64)
    if "leave_one_out" in values:
        values["leave_one_out"] = {k: np.array(v, dtype=np.float64) for k, v in dict(values["leave_one_out"]).items()}
    if "seed_pairings" in values:
        values["seed_pairings"] = tuple(
            SeedPairing(
                a=str(p["a"]),
                b=str(p["b"]),
                matched_cka=np.array(p["matched_cka"], dtype=np.float64),
                leave_one_out=None if p.get("leave_one_out") is None else np.array(p["leave_one_out"], np.float64),
            )
            for p in values["seed_pairings"]
        )


def from_json_dict(data: dict) -> AnalysisResult:
    """The result `to_json_dict` wrote (null values back to NaN); a ResultFileError saying what is wrong otherwise."""
    if not isinstance(data, dict):
        raise ResultFileError(f"a result is a JSON object, not {type(data).__name__}")
    required = {f.name for f in fields(AnalysisResult) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise ResultFileError(f"this is not a CKA Lens result: {', '.join(missing[:4])} missing")
    known = {f.name for f in fields(AnalysisResult)}
    values = {k: v for k, v in data.items() if k in known}
    try:
        for key in _ARRAYS:
            values[key] = np.array(values[key], dtype=np.float64)  # null -> nan
        for key in _TUPLES:
            values[key] = tuple(values[key])
        _optional_parts(values)
        values["model_a"], values["model_b"] = (ModelIdentity(**values[k]) for k in ("model_a", "model_b"))
        subset = dict(values["subset"])
        values["subset"] = SubsetSpec(**(subset | {"classes": tuple(subset["classes"])}))
        values["options"] = AnalysisOptions(**values["options"])
        result = AnalysisResult(**values)
    except (TypeError, ValueError, KeyError, LensError) as err:  # LensError: its options or subset refused
        raise ResultFileError(f"this result cannot be read ({type(err).__name__}: {str(err)[:120]})") from None
    la, lb, m = len(result.layers_a), len(result.layers_b), len(result.matched)
    shapes = {"cross": (la, lb), "self_a": (la, la), "self_b": (lb, lb), "matched_cka": (m,), "probe_a": (la,)}
    wrong = [k for k, shape in shapes.items() if getattr(result, k).shape != shape]
    if wrong:
        raise ResultFileError(f"this result's {', '.join(wrong)} do not match its layers")
    return result


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
