"""The sidebar's choices and their URL schema: what each parameter means, its default, how it is read back.

Every choice lives in the URL, so a link reproduces an analysis. A bad value in a link is ignored with
a note, never an error page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from core.data import SPLITS, DataError, SubsetSpec, parse_classes
from core.errors import LensError, OptionsError
from core.options import DEFAULTS, SIGMA_RANGE, AnalysisOptions
from models import AUTO, DEFAULT_PAIR, NO_SIBLING, ModelSpec
from ui.text import plain

DEFAULT_A, DEFAULT_B = DEFAULT_PAIR
CHOICES = "choices"  # session_state: the Choices of this run, set by the sidebar
ESTIMATORS = {"debiased": "debiased (unbiased HSIC)", "biased": "biased (inflated for wide features)"}
KERNEL_LABELS = {"linear": "linear", "rbf": "RBF (Gaussian)"}
MIN_BATCH = 4  # the debiased estimator's smallest minibatch (AnalysisOptions.min_batch)


@dataclass(frozen=True)
class Field:
    """One sidebar choice: its URL parameter, default, and how it reads from and writes to the URL."""

    name: str  # URL parameter; the widget key is "sb_" + name
    default: object
    parse: Callable[[str], object]  # raises a LensError with a reason on a bad value
    show: Callable[[object], str] = str

    @property
    def key(self) -> str:
        return "sb_" + self.name


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    """`text` as an int or a float; an OptionsError in plain words (not Python's) when it is not one."""
    try:
        return kind(text)
    except ValueError:
        raise OptionsError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low:
            raise OptionsError(f"must be at least {low}")
        return value

    return parse


def _one_of(allowed) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise OptionsError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _sigma(text: str) -> float:
    value = _number(text, float)
    low, high = SIGMA_RANGE
    if not low <= value <= high:
        raise OptionsError(f"must be between {low:g} and {high:g}")
    return value


def typed_spec(text: str) -> str:
    """A model spec as typed, not yet parsed: 'owner/repo' means the Hub."""
    text = text.strip()
    if not text:
        raise OptionsError("is empty")
    return text if ":" in text else f"hub:{text}"


def as_spec(text: str) -> ModelSpec:
    """The model a person typed ('owner/repo' means the Hub); a CheckpointError says what would work instead."""
    return ModelSpec.parse(typed_spec(text))


def typed_sibling(text: str) -> str:
    """An other-seed choice as typed: 'auto', 'none' or a model spec (not yet parsed)."""
    text = text.strip()
    return text if text in (AUTO, NO_SIBLING) else typed_spec(text)


FIELDS = (
    Field("a", DEFAULT_A.text, typed_spec),
    Field("b", DEFAULT_B.text, typed_spec),
    Field("a_seed", AUTO, typed_sibling),
    Field("b_seed", AUTO, typed_sibling),
    Field("split", DEFAULTS.split, _one_of(SPLITS)),
    Field("classes", list(DEFAULTS.classes), lambda text: list(parse_classes(text)), lambda v: ",".join(map(str, v))),
    Field("per_class", DEFAULTS.per_class, _int_at_least(1)),
    Field("subset_seed", DEFAULTS.subset_seed, _int_at_least(0)),
    Field("estimator", DEFAULTS.estimator, _one_of(ESTIMATORS)),
    Field("kernel", DEFAULTS.kernel, _one_of(KERNEL_LABELS)),
    Field("sigma", DEFAULTS.sigma, _sigma),
    Field("batch", DEFAULTS.batch_size, _int_at_least(MIN_BATCH)),
)
BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Choices:
    """What the sidebar says to compare. `subset` is None when the subset choice is invalid (`problem` says why)."""

    model_a: ModelSpec
    model_b: ModelSpec
    sibling_a: ModelSpec | str  # A's other seed: a spec, AUTO (the registry's) or NO_SIBLING
    sibling_b: ModelSpec | str
    subset: SubsetSpec | None
    options: AnalysisOptions | None
    problem: str | None
    values: tuple[tuple[str, object], ...]  # every field's value, for the URL

    def query(self) -> dict[str, str]:
        return {name: BY_NAME[name].show(value) for name, value in self.values}


def init_from_url() -> None:
    """On a session's first run, set each widget's state from the URL (or its default); note bad values."""
    ignored = []
    for f in FIELDS:
        if f.key in st.session_state:
            continue
        value = f.default
        raw = st.query_params.get(f.name)
        if raw is not None:
            try:
                value = f.parse(raw)
            except LensError as err:  # OptionsError, or DataError from the classes' parser
                ignored.append(f"{plain('?' + f.name + '=' + raw, 80)} ({plain(err, 300)})")
        st.session_state[f.key] = value
    if ignored:
        st.session_state["url_ignored"] = ignored


def read_choices(models: dict[str, ModelSpec | str]) -> Choices:
    """The choices in the widgets' state, with the models parsed from them (`models`: a, b, a_seed, b_seed),
    checked: a problem with the subset or options is said, not raised."""
    s = st.session_state
    values = tuple((f.name, s[f.key]) for f in FIELDS)
    v = dict(values)
    subset, options, problem = None, None, None
    try:
        subset = _subset(v)
    except DataError as err:
        problem = f"The CIFAR-10 subset cannot be used: {err}."
    try:
        options = _options(v)
    except OptionsError as err:
        problem = problem or f"The CKA options cannot be used: {err}."
    try:
        if subset is not None and options is not None:
            subset.check_for(options)  # what the command line refuses too, in the same words
    except LensError as err:
        problem, subset = f"The CIFAR-10 subset cannot be used: {err}.", None
    return Choices(models["a"], models["b"], models["a_seed"], models["b_seed"], subset, options, problem, values)


def subset_and_options(v: dict) -> tuple[SubsetSpec, AnalysisOptions]:
    """The subset and options that field values ask for (raises what they raise)."""
    return _subset(v), _options(v)


def _subset(v: dict) -> SubsetSpec:
    return SubsetSpec(v["split"], tuple(v["classes"]), int(v["per_class"]), int(v["subset_seed"]))


def _options(v: dict) -> AnalysisOptions:
    return AnalysisOptions(
        kernel=v["kernel"],
        debiased=v["estimator"] == "debiased",
        sigma=float(v["sigma"]) if v["kernel"] == "rbf" else DEFAULTS.sigma,
        batch_size=int(v["batch"]),
    )


def current() -> Choices:
    """The choices the sidebar made in this run (pages call this)."""
    return st.session_state[CHOICES]


def use(side: str, spec: ModelSpec) -> None:
    """Make `spec` model A or B (a button callback: it runs before the sidebar is drawn)."""
    st.session_state[BY_NAME[side].key] = spec.text
