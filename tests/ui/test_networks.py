"""ui.networks: the app's walk from a typed model to a loaded network parses the spec once, at the sidebar's edge."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from models import ModelSpec, SpecChoices
from ui import networks
from ui.choices import as_spec


def test_the_sidebars_spec_reaches_the_network_without_being_parsed_again(tiny_specs, monkeypatch):
    parsed: list[str] = []
    original = ModelSpec.parse.__func__
    monkeypatch.setattr(ModelSpec, "parse", classmethod(lambda cls, text: parsed.append(text) or original(cls, text)))
    spec = as_spec(f"  {tiny_specs['b']}#norm=imagenet ")  # typed into the sidebar
    loaded = networks.load(spec)
    assert networks.load(spec) is loaded and networks.peek(spec) is loaded  # the shared cache, by the parsed spec
    assert loaded.info.source == f"{tiny_specs['b']}#norm=imagenet" and loaded.info.mean == (0.485, 0.456, 0.406)
    assert networks.load(spec.base).info.source == tiny_specs["b"]
    assert networks.load(spec.with_choices(SpecChoices())) is networks.load(spec.base)
    assert parsed == [f"{tiny_specs['b']}#norm=imagenet"]  # once, where it was typed


def _uploads_page(paths: list[str], in_use: list[str], cap_mb: float) -> None:
    """Upload each file in turn with `in_use` kept, under a cap of `cap_mb`; write what each upload did."""
    from types import SimpleNamespace
    from unittest import mock

    import streamlit as st

    from models import CheckpointError
    from ui import networks

    with mock.patch.object(networks, "MAX_SESSION_UPLOAD_MB", cap_mb):
        for i, path in enumerate(paths):
            data = open(path, "rb").read()
            file = SimpleNamespace(file_id=str(i), name=f"net{i}.safetensors", getvalue=lambda data=data: data)
            try:
                spec, dropped = networks.upload(file, set(in_use))
                st.write(f"kept {spec.text}; let go {[d.text for d in dropped]}")
            except CheckpointError as err:
                st.write(f"refused: {err}")
        st.write(f"held {sorted(spec.text for spec in networks.upload_specs())}")


def _files_and_mb(tiny_specs: dict[str, str]) -> tuple[list[str], list[float]]:
    """The three tiny checkpoints' weight files, and each network's weights in MB as the app counts them."""
    from models.folder_format import WEIGHTS_FILE

    keys = ("a", "a2", "b")
    paths = [f"{tiny_specs[k].removeprefix('file:')}/{WEIGHTS_FILE}" for k in keys]
    mb = [
        sum(
            t.numel() * t.element_size()
            for t in networks.load(ModelSpec.parse(tiny_specs[k])).module.state_dict().values()
        )
        / 2**20
        for k in keys
    ]
    return paths, mb


def test_past_the_sessions_upload_cap_the_oldest_upload_not_in_use_is_let_go(tiny_specs):
    paths, mb = _files_and_mb(tiny_specs)
    cap = mb[0] + mb[2] + 0.5 * mb[1]  # net0 and net2 fit together; net1 does not fit beside both
    at = AppTest.from_function(_uploads_page, args=(paths, ["upload:net0.safetensors"], cap)).run()
    assert not at.exception
    assert [m.value for m in at.markdown] == [
        "kept upload:net0.safetensors; let go []",
        "kept upload:net1.safetensors; let go []",
        "kept upload:net2.safetensors; let go ['upload:net1.safetensors']",  # net0 is in use: net1 goes instead
        "held ['upload:net0.safetensors', 'upload:net2.safetensors']",
    ]


def test_an_upload_that_fits_only_by_dropping_what_is_in_use_is_refused_and_nothing_is_lost(tiny_specs):
    paths, mb = _files_and_mb(tiny_specs)
    at = AppTest.from_function(
        _uploads_page, args=(paths, ["upload:net0.safetensors", "upload:net1.safetensors"], mb[0] + mb[1] + 0.5 * mb[2])
    ).run()
    assert not at.exception
    said = [m.value for m in at.markdown]
    assert said[2].startswith("refused: 'net2.safetensors' does not fit beside the uploads this session uses")
    assert said[3] == "held ['upload:net0.safetensors', 'upload:net1.safetensors']"
