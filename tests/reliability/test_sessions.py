"""Four app sessions at once, each with its own upload and subset: nobody sees another's upload or result."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import ui.networks
from models.folder_format import save_folder
from models.resnet import ArchConfig, build_resnet
from tests.app.support import APP


def _upload_bytes(seed: int, tmp_path) -> bytes:
    """A distinct small checkpoint (our folder format's safetensors file) per session."""
    import torch

    torch.manual_seed(seed)
    arch = ArchConfig(depth=18, width=4, num_classes=0)
    folder = tmp_path / f"s{seed}"
    save_folder(build_resnet(arch), arch, {"method": "simclr"}, folder)
    return (folder / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_four_sessions_keep_their_uploads_and_results_apart(tiny_specs, tmp_path):
    sessions = []
    for i in range(4):  # interleaved: every session is opened before any finishes its work
        at = AppTest.from_file(APP, default_timeout=300)
        pair = {"a": tiny_specs["a"], "b": tiny_specs["b"]}  # what is kept apart, not what is compared, is tested
        at.query_params.update(pair | {"per_class": str(4 + i), "batch": "20", "subset_seed": str(i)})
        sessions.append(at.run())
    uploads = [_upload_bytes(100 + i, tmp_path) for i in range(4)]
    for i, at in enumerate(sessions):
        at.switch_page("pages/models.py").run()
        at.file_uploader[0].upload(f"mine{i}.safetensors", uploads[i]).run()
        at.button(key=f"use_a_upload:mine{i}.safetensors").click().run()
    for i, at in enumerate(sessions):
        at.switch_page("pages/similarity.py").run()
        assert not at.exception and not at.error, i
        assert at.session_state[ui.networks.UPLOADS].keys() == {f"upload:mine{i}.safetensors"}
        options = at.selectbox(key="sb_a").options
        assert f"upload:mine{i}.safetensors" in options
        assert not any(f"mine{j}" in o for j in range(4) if j != i for o in options)
        caption = " ".join(c.value for c in at.caption)
        assert f"A = `upload:mine{i}.safetensors`" in caption and f"{(4 + i) * 10} test images" in caption, caption
    other = AppTest.from_file(APP, default_timeout=300)
    other.query_params.update({"a": "upload:mine0.safetensors", "per_class": "4"})
    other.run()
    assert "is not among this session's uploads" in other.error[0].value
    assert sessions[0].session_state[ui.networks.UPLOADS]  # the owner still has it
