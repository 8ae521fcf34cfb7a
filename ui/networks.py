"""The networks a session can use: shared cached loads, and this session's own uploads.

Networks from bundled, Hub and file specs are loaded once per server (`st.cache_resource`, keyed by
spec and the weight files' modification times) and shared by every session, so they are never
changed after loading. Uploads never enter that cache: they live in the uploading session's state.
"""

from __future__ import annotations

import time
import weakref

import streamlit as st

from core import settings
from models import (
    CheckpointError,
    LoadedModel,
    load_model,
    load_uploaded,
    split_choices,
    weights_version,
    with_choices,
)

UPLOADS = "uploads"  # session_state: {"upload:NAME": LoadedModel}, this session's uploads only
FAILED = "failed_loads"  # session_state: {spec: (time, message)}, so a dead Hub is not retried on every rerun
RETRY_AFTER_S = 60.0


_SEEN: weakref.WeakValueDictionary[str, LoadedModel] = weakref.WeakValueDictionary()  # spec -> its cached load


@st.cache_resource(max_entries=6, show_spinner="Loading the network...")
def _network(spec: str, version: str) -> LoadedModel:
    model = load_model(spec)
    _SEEN[spec] = model
    return model


def peek(spec: str) -> LoadedModel | None:
    """The network for a spec if this session or the shared cache already holds it, else None; never loads (a spec
    whose files changed since still gives the network loaded before: `load` is the one to analyse with)."""
    if spec.startswith("upload:"):
        return st.session_state.get(UPLOADS, {}).get(spec)
    return _SEEN.get(spec)


def load(spec: str) -> LoadedModel:
    """The network for a spec: this session's upload, or a shared cached load. Raises CheckpointError."""
    if spec.startswith("upload:"):
        uploads = st.session_state.get(UPLOADS, {})
        base, choices = split_choices(spec)
        if base not in uploads:
            raise CheckpointError(
                f"'{base}' is not among this session's uploads (uploads stay in the session that made them); "
                "upload the file again on the Models page."
            )
        if choices is not None and spec not in uploads:
            uploads[spec] = with_choices(uploads[base], choices, spec)
        return uploads[spec]
    if spec.startswith("file:") and settings.file_specs_disabled():
        raise CheckpointError(
            "This server does not load file: paths; upload the checkpoint on the Models page instead."
        )
    failed = st.session_state.setdefault(FAILED, {})
    if spec in failed and time.monotonic() - failed[spec][0] < RETRY_AFTER_S:
        raise CheckpointError(failed[spec][1])
    try:
        return _network(spec, weights_version(spec))
    except CheckpointError as err:
        failed[spec] = (time.monotonic(), str(err))
        raise


def upload_specs() -> list[str]:
    """This session's uploads, as specs ('upload:NAME'), without the same upload under other choices."""
    return [spec for spec in st.session_state.get(UPLOADS, {}) if "#" not in spec]


def upload(file) -> str:
    """Load an st.file_uploader file once per upload and keep it in this session only; returns its spec."""
    seen = st.session_state.setdefault("upload_ids", {})
    if file.file_id not in seen:
        model = load_uploaded(file.getvalue(), file.name)
        st.session_state.setdefault(UPLOADS, {})[model.info.source] = model
        seen[file.file_id] = model.info.source
    return seen[file.file_id]
