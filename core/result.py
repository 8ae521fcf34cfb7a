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


def to_json_dict(result: AnalysisResult) -> dict:
    """A JSON-ready dict; undefined values become null with their reasons alongside."""

    def clean(value):
        if isinstance(value, np.ndarray):
            return [clean(v) for v in value.tolist()]
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    out = {}
    for key, value in asdict(result).items():
        out[key] = clean(value) if not isinstance(value, dict) else {k: clean(v) for k, v in value.items()}
    return out


_ARRAYS = {f.name for f in fields(AnalysisResult) if f.type == "np.ndarray"}
_TUPLES = {f.name for f in fields(AnalysisResult) if str(f.type).startswith("tuple")}


def from_json_dict(data: dict) -> AnalysisResult:
    """The result `to_json_dict` wrote (null values back to NaN); a ResultFileError saying what is wrong otherwise."""
    if not isinstance(data, dict):
        raise ResultFileError(f"a result is a JSON object, not {type(data).__name__}")
    missing = sorted({f.name for f in fields(AnalysisResult) if f.default is MISSING} - set(data))
    if missing:
        raise ResultFileError(f"this is not a CKA Lens result: {', '.join(missing[:4])} missing")
    known = {f.name for f in fields(AnalysisResult)}
    values = {k: v for k, v in data.items() if k in known}
    try:
        for key in _ARRAYS:
            values[key] = np.array(values[key], dtype=np.float64)  # null -> nan
        for key in _TUPLES:
            values[key] = tuple(values[key])
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
    return "\n".join(lines) + "\n"
