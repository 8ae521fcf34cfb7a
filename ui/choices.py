"""The sidebar's choices and their URL schema: what each parameter means, its default, how it is read back.

Every choice lives in the URL, so a link reproduces an analysis. A bad value in a link is ignored with
a note, never an error page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from core.data import SPLITS, DataError, SubsetSpec, parse_classes
from core.options import AnalysisOptions
from models import DEFAULT_PAIR
from ui.text import plain

DEFAULT_A, DEFAULT_B = DEFAULT_PAIR
CHOICES = "choices"  # session_state: the Choices of this run, set by the sidebar
ESTIMATORS = {"debiased": "debiased (unbiased HSIC)", "biased": "biased (inflated for wide features)"}
KERNEL_LABELS = {"linear": "linear", "rbf": "RBF (Gaussian)"}


@dataclass(frozen=True)
class Field:
    """One sidebar choice: its URL parameter, default, and how it reads from and writes to the URL."""

    name: str  # URL parameter; the widget key is "sb_" + name
    default: object
    parse: Callable[[str], object]  # raises ValueError with a reason on a bad value
    show: Callable[[object], str] = str

    @property
    def key(self) -> str:
        return "sb_" + self.name


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise ValueError(f"must be at least {low}")
        return value

    return parse


def _one_of(allowed) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _sigma(text: str) -> float:
    value = float(text)
    if not 0.05 <= value <= 10:
        raise ValueError("must be between 0.05 and 10")
    return value


def as_spec(text: str) -> str:
    """A model spec as typed: 'owner/repo' means the Hub."""
    text = text.strip()
    if not text:
        raise ValueError("is empty")
    return text if ":" in text else f"hub:{text}"


AUTO, NO_SIBLING = "auto", "none"  # other-seed choices: the registry's sibling, or no ceiling


def as_sibling(text: str) -> str:
    """An other-seed choice as typed: 'auto', 'none' or a model spec."""
    text = text.strip()
    return text if text in (AUTO, NO_SIBLING) else as_spec(text)


FIELDS = (
    Field("a", DEFAULT_A, as_spec),
    Field("b", DEFAULT_B, as_spec),
    Field("a_seed", AUTO, as_sibling),
    Field("b_seed", AUTO, as_sibling),
    Field("split", "test", _one_of(SPLITS)),
    Field("classes", list(range(10)), lambda text: list(parse_classes(text)), lambda v: ",".join(map(str, v))),
    Field("per_class", 100, _int_at_least(1)),
    Field("subset_seed", 0, _int_at_least(0)),
    Field("estimator", "debiased", _one_of(ESTIMATORS)),
    Field("kernel", "linear", _one_of(KERNEL_LABELS)),
    Field("sigma", 0.8, _sigma),
    Field("batch", 100, _int_at_least(4)),
)
BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Choices:
    """What the sidebar says to compare. `subset` is None when the subset choice is invalid (`problem` says why)."""

    model_a: str
    model_b: str
    sibling_a: str  # A's other seed: AUTO (the registry's), NO_SIBLING or a spec
    sibling_b: str
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
            except ValueError as err:  # DataError and every LensError are ValueErrors
                ignored.append(f"{plain('?' + f.name + '=' + raw, 80)} ({plain(err, 300)})")
        st.session_state[f.key] = value
    if ignored:
        st.session_state["url_ignored"] = ignored


def read_choices() -> Choices:
    """The choices in the widgets' state, checked: a problem with the subset or options is said, not raised."""
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
    except ValueError as err:
        problem = problem or f"The CKA options cannot be used: {err}."
    return Choices(v["a"], v["b"], v["a_seed"], v["b_seed"], subset, options, problem, values)


def subset_and_options(v: dict) -> tuple[SubsetSpec, AnalysisOptions]:
    """The subset and options that field values ask for (raises what they raise)."""
    return _subset(v), _options(v)


def _subset(v: dict) -> SubsetSpec:
    return SubsetSpec(v["split"], tuple(v["classes"]), int(v["per_class"]), int(v["subset_seed"]))


def _options(v: dict) -> AnalysisOptions:
    return AnalysisOptions(
        kernel=v["kernel"],
        debiased=v["estimator"] == "debiased",
        sigma=float(v["sigma"]) if v["kernel"] == "rbf" else AnalysisOptions.sigma,
        batch_size=int(v["batch"]),
    )


def current() -> Choices:
    """The choices the sidebar made in this run (pages call this)."""
    return st.session_state[CHOICES]


def use(side: str, spec: str) -> None:
    """Make `spec` model A or B (a button callback: it runs before the sidebar is drawn)."""
    st.session_state[BY_NAME[side].key] = spec
