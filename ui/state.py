"""The app's state: sidebar choices (kept in the URL), cached networks, subsets, fingerprints and results.

Caches, from cheap to expensive:
- networks: `st.cache_resource`, keyed by spec and the weight file's modification time (bundled and
  file specs), shared by sessions; uploads never enter it: they live in the uploading session's state;
- each model's fingerprint (its one forward pass): `st.cache_data`, keyed by (weights sha256, subset,
  options), so changing model B reuses A's;
- the finished comparison: `st.cache_data`, keyed by (both hashes, subset, options).
Shared caches are keyed by content hash, so two sessions never see each other's uploads by name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import streamlit as st
import torch

import models.registry
from core.analysis import (
    AnalysisOptions,
    AnalysisResult,
    Fingerprint,
    ModelIdentity,
    Progress,
    check_memory,
    finalize,
    fingerprint,
    layer_shapes,
    pair_terms,
    view_generator,
)
from core.analysis import pick_device as _pick_device
from core.augment import simclr_views
from core.data import CLASSES, SPLITS, DataError, Subset, SubsetSpec, load_subset, parse_classes
from models import CheckpointError, LoadedModel, load_model, load_uploaded, registry_entries
from models.store import CONFIG_FILE, WEIGHTS_FILE

DEFAULT_A = "bundled:simclr-resnet18-w16"
DEFAULT_B = "bundled:supervised-resnet18-w16"
UPLOADS = "uploads"  # session_state: {"upload:NAME": LoadedModel}, this session's uploads only
FAILED = "failed_loads"  # session_state: {spec: (time, message)}, so a dead Hub is not retried on every rerun
RETRY_AFTER_S = 60.0
CHOICES = "choices"  # session_state: the Choices of this run, set by the sidebar
ESTIMATORS = {"debiased": "debiased (unbiased HSIC)", "biased": "biased (inflated for wide features)"}
KERNELS = {"linear": "linear", "rbf": "RBF (Gaussian)"}
THREADS_ENV = "CKA_LENS_THREADS"  # CPU threads for torch; 1 is far faster when other jobs already load every core
NO_FILES_ENV = "CKA_LENS_DISABLE_FILE_SPECS"  # "1" on public servers: a link must not make the server read its disk

if os.environ.get(THREADS_ENV, "").strip():
    torch.set_num_threads(int(os.environ[THREADS_ENV]))


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


FIELDS = (
    Field("a", DEFAULT_A, as_spec),
    Field("b", DEFAULT_B, as_spec),
    Field("split", "test", _one_of(SPLITS)),
    Field("classes", list(range(10)), lambda text: list(parse_classes(text)), lambda v: ",".join(map(str, v))),
    Field("per_class", 100, _int_at_least(1)),
    Field("subset_seed", 0, _int_at_least(0)),
    Field("estimator", "debiased", _one_of(ESTIMATORS)),
    Field("kernel", "linear", _one_of(KERNELS)),
    Field("sigma", 0.8, _sigma),
    Field("batch", 250, _int_at_least(4)),
)
BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Choices:
    """What the sidebar says to compare. `subset` is None when the subset choice is invalid (`problem` says why)."""

    model_a: str
    model_b: str
    subset: SubsetSpec | None
    options: AnalysisOptions | None
    problem: str | None
    values: tuple[tuple[str, object], ...]  # every field's value, for the URL

    def query(self) -> dict[str, str]:
        return {name: BY_NAME[name].show(value) for name, value in self.values}


def _init_from_url() -> None:
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
            except ValueError as err:
                ignored.append(f"?{f.name}={raw} ({err})")
        st.session_state[f.key] = value
    if ignored:
        st.session_state["url_ignored"] = ignored


def model_options(current: str) -> list[str]:
    """Bundled checkpoints, the Hub registry, this session's uploads, and the current choice if typed in."""
    specs = [entry.spec for entry in registry_entries()] + list(st.session_state.get(UPLOADS, {}))
    for spec in (DEFAULT_A, DEFAULT_B, current):
        if spec not in specs:
            specs.append(spec)
    return specs


def sidebar() -> Choices:
    """Draw the shared sidebar, keep the URL in step with it, and return (and store) the choices."""
    _init_from_url()
    s = st.session_state
    with st.sidebar:
        st.subheader("Models")
        for side in ("a", "b"):
            key = BY_NAME[side].key
            if ":" not in (s[key] or ""):  # typed as owner/repo (or cleared)
                s[key] = as_spec(s[key]) if s[key] else BY_NAME[side].default
            st.selectbox(
                f"Model {side.upper()}", model_options(s[key]), key=key, accept_new_options=True,
                help="bundled:NAME, hub:OWNER/REPO[@REV][:FILE] (or type OWNER/REPO), file:PATH, or an upload "
                "from the Models page",
            )
        st.subheader("CIFAR-10 subset")
        st.selectbox("Split", SPLITS, key=BY_NAME["split"].key)
        st.multiselect("Classes", list(range(len(CLASSES))), format_func=CLASSES.__getitem__,
                       key=BY_NAME["classes"].key)
        st.number_input("Images per class", min_value=1, step=10, key=BY_NAME["per_class"].key)
        st.number_input("Subset seed", min_value=0, step=1, key=BY_NAME["subset_seed"].key)
        st.subheader("CKA")
        st.radio("Estimator", list(ESTIMATORS), format_func=ESTIMATORS.__getitem__, key=BY_NAME["estimator"].key)
        st.radio("Kernel", list(KERNELS), format_func=KERNELS.__getitem__, key=BY_NAME["kernel"].key,
                 horizontal=True)
        st.number_input("RBF bandwidth σ (fraction of the median distance)", min_value=0.05, max_value=10.0,
                        step=0.1, key=BY_NAME["sigma"].key, disabled=s[BY_NAME["kernel"].key] != "rbf")
        st.number_input("Minibatch size", min_value=4, step=50, key=BY_NAME["batch"].key,
                        help="CKA is averaged over minibatches of this many images (Nguyen et al. 2021)")
        st.caption(f"Device: **{device()}** (CUDA is used automatically when present)")
        for note in s.pop("url_ignored", []):
            st.warning(f"Ignored the link's {note}; using the default.")
    choices = _read_choices()
    st.query_params.from_dict(choices.query())
    s[CHOICES] = choices
    return choices


def _read_choices() -> Choices:
    s = st.session_state
    values = tuple((f.name, s[f.key]) for f in FIELDS)
    v = dict(values)
    subset, options, problem = None, None, None
    try:
        subset = SubsetSpec(v["split"], tuple(v["classes"]), int(v["per_class"]), int(v["subset_seed"]))
    except DataError as err:
        problem = f"The CIFAR-10 subset cannot be used: {err}."
    rbf = v["kernel"] == "rbf"
    try:
        options = AnalysisOptions(
            kernel=v["kernel"], debiased=v["estimator"] == "debiased",
            sigma=float(v["sigma"]) if rbf else AnalysisOptions.sigma, batch_size=int(v["batch"]),
        )
    except ValueError as err:
        problem = problem or f"The CKA options cannot be used: {err}."
    return Choices(v["a"], v["b"], subset, options, problem, values)


def current() -> Choices:
    """The choices the sidebar made in this run (pages call this)."""
    return st.session_state[CHOICES]


def device() -> str:
    return str(_pick_device("auto"))


def _freshness(spec: str) -> str:
    """Modification times of a bundled or file checkpoint, so retrained weights are reloaded, not served stale."""
    scheme, _, rest = spec.partition(":")
    if scheme == "bundled":
        path = Path(models.registry.WEIGHTS_DIR) / rest
    elif scheme == "file":
        path = Path(rest).expanduser()
    else:
        return ""
    files = [path] if path.is_file() else [path / WEIGHTS_FILE, path / CONFIG_FILE] if path.is_dir() else []
    return ";".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in files if p.is_file())


@st.cache_resource(max_entries=6, show_spinner="Loading the network...")
def _network(spec: str, freshness: str) -> LoadedModel:
    return load_model(spec)


def load(spec: str) -> LoadedModel:
    """The network for a spec: this session's upload, or a shared cached load. Raises CheckpointError."""
    if spec.startswith("upload:"):
        uploads = st.session_state.get(UPLOADS, {})
        if spec not in uploads:
            raise CheckpointError(
                f"'{spec}' is not among this session's uploads (uploads stay in the session that made them); "
                "upload the file again on the Models page."
            )
        return uploads[spec]
    if spec.startswith("file:") and os.environ.get(NO_FILES_ENV) == "1":
        raise CheckpointError(
            "This server does not load file: paths; upload the checkpoint on the Models page instead."
        )
    failed = st.session_state.setdefault(FAILED, {})
    if spec in failed and time.monotonic() - failed[spec][0] < RETRY_AFTER_S:
        raise CheckpointError(failed[spec][1])
    try:
        return _network(spec, _freshness(spec))
    except CheckpointError as err:
        failed[spec] = (time.monotonic(), str(err))
        raise


def add_upload(model: LoadedModel) -> str:
    """Keep an uploaded network in this session only; returns its spec ('upload:NAME')."""
    st.session_state.setdefault(UPLOADS, {})[model.info.source] = model
    return model.info.source


@st.cache_data(max_entries=4, show_spinner="Loading CIFAR-10 images...")
def subset_of(spec: SubsetSpec) -> Subset:
    return load_subset(spec)


@contextmanager
def progress_panel(title: str) -> Iterator[Progress]:
    """A status box with a progress bar naming each stage; gone once the work is done.

    Called inside cached functions: everything is drawn in a placeholder created here and emptied at the
    end, so a cache hit replays nothing visible (and never touches elements made outside the function).
    """
    slot = st.empty()
    with slot.container():
        status = st.status(title, expanded=True)
        bar = status.progress(0.0, text="starting")

    def report(stage: str, done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"{stage} ({done}/{total})")

    try:
        yield report
    finally:
        slot.empty()


@st.cache_data(max_entries=8, show_spinner=False)
def _fingerprint(sha256: str, spec: SubsetSpec, options: AnalysisOptions, _model: LoadedModel, _device: str):
    subset = subset_of(spec)
    with progress_panel(f"{_model.info.label}: {spec.size:,} images") as report:
        return fingerprint(_model, subset, options, torch.device(_device), report)


@st.cache_data(max_entries=8, show_spinner=False)
def _result(sha_a: str, sha_b: str, spec: SubsetSpec, options: AnalysisOptions, _a, _b, _device: str):
    fa: Fingerprint = _fingerprint(sha_a, spec, options, _a, _device)
    fb: Fingerprint = _fingerprint(sha_b, spec, options, _b, _device)
    with progress_panel("Comparing A and B") as report:
        return finalize(fa, fb, pair_terms(fa, fb, torch.device(_device), report), spec, report)


@st.cache_data(max_entries=16, show_spinner=False)
def _shapes(sha256: str, _model: LoadedModel) -> list[tuple[int, ...]]:
    """Per-layer output shapes, for the memory check before an analysis (one image through the network)."""
    return layer_shapes(_model, torch.device(device()))


def analysis(choices: Choices) -> AnalysisResult | None:
    """The comparison for the current choices, or None after showing why it cannot be made."""
    if choices.problem:
        st.warning(choices.problem)
        return None
    loaded = []
    for side, spec in (("A", choices.model_a), ("B", choices.model_b)):
        try:
            loaded.append(load(spec))
        except CheckpointError as err:
            st.error(f"Model {side} ({spec}) could not be loaded: {err}")
    if len(loaded) < 2:
        return None
    a, b = loaded
    try:
        check_memory([_shapes(a.info.sha256, a), _shapes(b.info.sha256, b)], choices.subset.size, choices.options,
                     torch.device(device()))
        result = _result(a.info.sha256, b.info.sha256, choices.subset, choices.options, a, b, device())
    except (DataError, ValueError, MemoryError, torch.OutOfMemoryError) as err:
        st.error(f"The analysis failed: {err}")
        return None
    # The shared cache is keyed by content: name the models as this session knows them.
    return replace(result, model_a=ModelIdentity.of(a.info), model_b=ModelIdentity.of(b.info))


def use(side: str, spec: str) -> None:
    """Make `spec` model A or B (a button callback: it runs before the sidebar is drawn)."""
    st.session_state[BY_NAME[side].key] = spec


def upload(file) -> str:
    """Load an st.file_uploader file once per upload and keep it in this session; returns its spec."""
    seen = st.session_state.setdefault("upload_ids", {})
    if file.file_id not in seen:
        seen[file.file_id] = add_upload(load_uploaded(file.getvalue(), file.name))
    return seen[file.file_id]


@st.cache_data(max_entries=4, show_spinner=False)
def augmented_views(spec: SubsetSpec, options: AnalysisOptions, count: int, _device: str):
    """The first `count` images of the first minibatch and their SimCLR views, drawn exactly as the invariance
    analysis draws them (same seed, same device, the whole minibatch at once); uint8 HWC arrays and labels."""
    batch = subset_of(spec).images[: options.batch_size].to(_device)
    views = simclr_views(batch, view_generator(options.seed, 0, _device))[:count]
    as_hwc = lambda x: x.permute(0, 2, 3, 1).cpu().numpy()  # noqa: E731
    originals = as_hwc(batch[:count])
    return originals, (as_hwc(views) * 255).round().astype("uint8"), subset_of(spec).labels[:count].numpy()
