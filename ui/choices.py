"""The sidebar's choices and their URL schema: what each parameter means, its default, how it is read back.

Every choice lives in the URL, so a link reproduces an analysis. The URL and the session hold canonical values
only: a model as `ModelSpec.parse(...).text` (the command line's parser), never a widget's label, and every other
value as the command line and core.options.DEFAULTS read it. A link from any earlier version still opens: a value
that does not parse, or a parameter this version does not have, is left out with a notice at the top of the page
(`notify`, shown by ui.sidebar.notices), never an error page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from core.data import SPLITS, DataError, SubsetSpec, parse_classes
from core.errors import LensError, OptionsError
from core.options import DEFAULTS, SIGMA_RANGE, AnalysisOptions
from models import AUTO, DEFAULT_PAIR, NO_SIBLING, ModelSpec, list_bundled
from ui.text import plain

DEFAULT_A, DEFAULT_B = DEFAULT_PAIR
CHOICES = "choices"  # session_state: the Choices of this run, set by the sidebar
NOTICES = "notices"  # session_state: plain-words notices for the top of the page (Markdown), until dismissed
STREAMLIT_PARAMS = ("embed", "embed_options")  # URL parameters Streamlit itself reads: never ours to drop
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
    """A model spec as typed, not yet parsed: 'owner/repo' means the Hub, the bare name of a bundled model (as the
    sidebar shows it) that model."""
    text = text.strip()
    if not text:
        raise OptionsError("is empty")
    if ":" in text:
        return text
    name = text.partition("#")[0].partition("@")[0].strip()
    return f"bundled:{text}" if "/" not in name and name in bundled_names() else f"hub:{text}"


def bundled_names() -> set[str]:
    """The names of the bundled models (models/weights' finished folders)."""
    return {entry.spec.location for entry in list_bundled()}


def model_label(text: str) -> str:
    """How a select shows a model: a bundled one by its name, a Hub repo as OWNER/REPO[@REVISION] (short enough
    for the sidebar), anything else as its spec. `typed_spec` reads each label back as the same spec, so a label
    the browser sends back is never mistaken for another model."""
    if text.startswith("bundled:"):
        return text.removeprefix("bundled:")
    if text.startswith("hub:") and text.count(":") == 1:
        return text.removeprefix("hub:")
    return text


def as_spec(text: str) -> ModelSpec:
    """The model a person typed ('owner/repo' means the Hub); a CheckpointError says what would work instead."""
    return ModelSpec.parse(typed_spec(text))


def canonical_model(text: str) -> str:
    """A model from a link or the sidebar in its canonical form, parsed as the command line parses --a and --b;
    a CheckpointError (a LensError) says what would work instead."""
    return as_spec(text).text


def canonical_sibling(text: str) -> str:
    """An other-seed choice: 'auto' (the registry's), 'none' (no ceiling) or a model in its canonical form, as the
    command line reads --a-sibling."""
    text = text.strip()
    return text if text in (AUTO, NO_SIBLING) else canonical_model(text)


FIELDS = (
    Field("a", DEFAULT_A.text, canonical_model),
    Field("b", DEFAULT_B.text, canonical_model),
    Field("a_seed", AUTO, canonical_sibling),
    Field("b_seed", AUTO, canonical_sibling),
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


SIBLING_WORDS = {AUTO: "its registered other seed", NO_SIBLING: "no ceiling"}


def notify(text: str) -> None:
    """Keep a notice (Markdown, anything from outside already made plain) for the top of the page."""
    notices = st.session_state.setdefault(NOTICES, [])
    if text not in notices:
        notices.append(text)


def init_from_url() -> None:
    """On a session's first run, set each widget's state from the URL (or its default): every value is parsed as
    the command line parses it, and one that does not parse, or a parameter this version has no use for, is left
    out, with one notice in plain words naming each and what is used instead."""
    s = st.session_state
    fresh = all(f.key not in s for f in FIELDS)
    dropped = []
    for f in FIELDS:
        if f.key in s:
            continue
        value = f.default
        raw = st.query_params.get(f.name)
        if raw is not None:
            try:
                value = f.parse(raw)
            except LensError as err:  # OptionsError, DataError from the classes' parser, CheckpointError
                default = SIBLING_WORDS.get(f.default, f.default) if isinstance(f.default, str) else f.show(f.default)
                dropped.append(
                    f"{plain(f.name)} = {plain(raw, 80)}: {plain(err, 300)} (using {plain(default, 80)} instead)"
                )
        s[f.key] = value
    if fresh:  # the link's other parameters: from an earlier version, or mistyped
        for name in st.query_params:
            if name not in BY_NAME and name not in STREAMLIT_PARAMS:
                dropped.append(f"{plain(name, 40)}: this version of CKA Lens has no such setting")
    if dropped:
        notify(
            "Some of this link's settings could not be used, so they were left out:\n"
            + "\n".join(f"- {line}" for line in dropped)
        )


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
