"""The networks a session can use: shared cached loads, and this session's own uploads.

Networks from bundled, Hub and file specs are loaded once per server (`st.cache_resource`, keyed by
the spec and its weight files' modification times) and shared by every session, so they are never
changed after loading. Uploads never enter that cache: they live in the uploading session's state.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import replace

import streamlit as st

from core import settings
from models import (
    CheckpointError,
    LoadedModel,
    ModelSpec,
    list_bundled,
    load_model,
    load_uploaded,
    registry_entries,
    weights_version,
    with_choices,
)
from models.methods import known_method
from models.registry import find_hub_entry

UPLOADS = "uploads"  # session_state: {"upload:NAME": LoadedModel}, this session's uploads as uploaded
CHOSEN_UPLOADS = "chosen_uploads"  # session_state: {"upload:NAME#choices": LoadedModel}, the same under choices
UPLOAD_IDS = "upload_ids"  # session_state: {st.file_uploader file id: its spec}
FAILED = "failed_loads"  # session_state: {spec: (time, message, operator hint)}: a dead Hub is not retried each rerun
RETRY_AFTER_S = 60.0


_SEEN: weakref.WeakValueDictionary[ModelSpec, LoadedModel] = weakref.WeakValueDictionary()  # spec -> its cached load


@st.cache_resource(max_entries=6, show_spinner="Loading the network...")
def _network(key: str, version: str, _spec: ModelSpec) -> LoadedModel:
    model = load_model(_spec)
    _SEEN[_spec] = model
    return model


def peek(spec: ModelSpec) -> LoadedModel | None:
    """The network for a spec if this session or the shared cache already holds it, else None; never loads (a spec
    whose files changed since still gives the network loaded before: `load` is the one to analyse with)."""
    if spec.source == "upload":
        s = st.session_state
        return s.get(CHOSEN_UPLOADS, {}).get(spec.text) if spec.choices else s.get(UPLOADS, {}).get(spec.text)
    return _SEEN.get(spec)


def load(spec: ModelSpec) -> LoadedModel:
    """The network for a spec: this session's upload, or a shared cached load. Raises CheckpointError."""
    if spec.source == "upload":
        return _upload(spec)
    if spec.source == "file" and settings.file_specs_disabled():
        raise CheckpointError(
            "This server does not load file: paths; upload the checkpoint on the Models page instead."
        )
    failed = st.session_state.setdefault(FAILED, {})
    if spec.text in failed and time.monotonic() - failed[spec.text][0] < RETRY_AFTER_S:
        raise CheckpointError(failed[spec.text][1], operator=failed[spec.text][2])
    try:
        return _network(spec.key, weights_version(spec), spec)
    except CheckpointError as err:
        failed[spec.text] = (time.monotonic(), err.visitor, err.operator)
        raise


def _upload(spec: ModelSpec) -> LoadedModel:
    """This session's upload, under the spec's choices if it has any (read again once, then kept)."""
    uploads = st.session_state.get(UPLOADS, {})
    base = replace(spec.base, arch=spec.arch).text  # the upload as read, before any choices
    if base not in uploads:
        raise CheckpointError(
            f"'{base}' is not among this session's uploads: an upload stays in the browser tab that made it, so a "
            "new tab, or someone who opened a shared link, must upload the file again on the Models page."
        )
    if not spec.choices:
        return uploads[base]
    chosen = st.session_state.setdefault(CHOSEN_UPLOADS, {})
    if spec.text not in chosen:
        chosen[spec.text] = with_choices(uploads[base], spec.choices.hints(), spec.text)
    return chosen[spec.text]


def method_of(spec: ModelSpec) -> str | None:
    """The training method `spec`'s network was trained with, where it is known without loading anything: the
    registry's for a bundled model (or one of its snapshots) or a listed Hub repo, else the network's own if this
    session or the shared cache holds it (an upload, say); None when unknown. Other seeds are proposed, and kept,
    only when this agrees: a ceiling compares two seeds of one method."""
    base = spec.base
    if base.source == "bundled":
        method = next((e.method for e in list_bundled() if e.spec.location == base.location), None)
    elif base.source == "hub":
        entry = find_hub_entry(base.location)
        method = entry.method if entry else None
    else:
        method = None
    if method is None:
        loaded = peek(spec) or peek(base)
        method = loaded.info.method if loaded is not None else None
    return known_method(method) if method else None


def same_method_models(spec: ModelSpec) -> list[ModelSpec]:
    """The models to propose as `spec`'s other seed: the registry's and this session's uploads trained with the same
    (known) method, `spec` itself left out; none when its method is not known."""
    method = method_of(spec)
    if method is None:
        return []
    candidates = {e.spec: known_method(e.method) for e in registry_entries()}
    candidates |= {upload: method_of(upload) for upload in upload_specs()}
    return [c for c, its in candidates.items() if c.base != spec.base and its == method]


def upload_specs() -> list[ModelSpec]:
    """This session's uploads ('upload:NAME'), each as uploaded, in the order they came."""
    return list(dict.fromkeys(st.session_state.get(UPLOAD_IDS, {}).values()))


MAX_SESSION_UPLOAD_MB = 400  # weights one session keeps from uploads (a ResNet-50 holds 94 MB): a bounded share


def upload(file, in_use: set[str] = frozenset(), arch: str | None = None) -> tuple[ModelSpec, list[ModelSpec]]:
    """Load an st.file_uploader file once per upload and keep it in this session only; returns its spec and the
    uploads let go to make room for it. A session keeps at most MAX_SESSION_UPLOAD_MB of uploaded weights: past
    that the oldest uploads whose specs are not `in_use` go first, and if that is not enough the upload is refused
    (the session keeps what it had)."""
    seen = st.session_state.setdefault(UPLOAD_IDS, {})
    upload_id = file.file_id + (f"#{arch}" if arch else "")  # the same file read as another architecture is another
    if upload_id in seen:
        return seen[upload_id], []
    spec = replace(ModelSpec.upload(file.name), arch=arch)
    model = load_uploaded(file.getvalue(), file.name, arch=arch)
    uploads = st.session_state.setdefault(UPLOADS, {})
    others = {text: held for text, held in uploads.items() if text != spec.text}
    room = MAX_SESSION_UPLOAD_MB * 2**20 - _weight_bytes(model)
    dropped, held = [], sum(_weight_bytes(m) for m in others.values())
    for text in [t for t in others if t not in in_use]:
        if held <= room:
            break
        dropped.append(ModelSpec.parse(text))
        held -= _weight_bytes(others[text])
    if held > room:
        raise CheckpointError(
            f"'{file.name[:80]}' does not fit beside the uploads this session uses: a session keeps "
            f"{MAX_SESSION_UPLOAD_MB} MB of uploaded weights at most. Choose other models A and B, then upload again."
        )
    for gone in dropped:
        _forget_upload(gone)
    uploads[spec.text] = model
    seen[upload_id] = spec
    return spec, dropped


def _weight_bytes(model: LoadedModel) -> int:
    return sum(t.numel() * t.element_size() for t in model.module.state_dict().values())


def _forget_upload(spec: ModelSpec) -> None:
    """Let go of an upload and every form of it under choices."""
    s = st.session_state
    s[UPLOADS].pop(spec.text, None)
    for text in [t for t in s.get(CHOSEN_UPLOADS, {}) if ModelSpec.parse(t).base == spec]:
        del s[CHOSEN_UPLOADS][text]
    for file_id in [i for i, seen in s[UPLOAD_IDS].items() if seen == spec]:
        del s[UPLOAD_IDS][file_id]
