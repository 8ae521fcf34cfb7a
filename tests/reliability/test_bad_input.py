"""Bad files through both doors, the command line and the app's uploader: a clear message, nothing run,
and the next action still works. The same files (bad_files.py) go through both."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core.memory
from cli.main import main
from models import CheckpointError, load_uploaded
from tests.app.support import APP, chart_specs, shown
from tests.reliability.bad_files import bad_files, good_files

# What each refusal must say (a fragment of the loader's one sentence).
EXPECTED = {
    "empty": "is empty",
    "truncated safetensors": "damaged or truncated safetensors",
    "safetensors header lying about sizes": "damaged or truncated safetensors",
    "random bytes": "neither a safetensors file nor a PyTorch checkpoint",
    "image renamed .pt": "PNG image, not a checkpoint",
    "pickle with a code payload": "nothing in it ran",
    "torch.save with a code payload": "nothing in it ran",
    "mobilenet state dict": "not a ResNet",
    "squeezenet state dict": "not a ResNet",
    "nan weights": "NaN or infinite",
    "inf weights": "NaN or infinite",
    "zip that is not a torch archive": "not a PyTorch checkpoint",
    "truncated torch archive": "damaged or truncated",
    "torch file holding a tensor, not a state dict": "not a state dict",
    "state dict with missing blocks": "BasicBlocks per stage",
    "unsupported extension": "neither a safetensors file nor a PyTorch checkpoint",
    "state dict with int keys": "has a weight named 0",
    "state dict with tuple keys": "has a weight named ('c', 'o', 'n'",
    "complex64 weights": "is complex64, which CKA Lens does not read",
    "float8 weights": "a kind of tensor this app does not load",
    "negative BatchNorm variance": "'layer1.0.bn1.running_var' has negative values",
    "a weight named with 10 MB": "has a weight named 'xxxxxxxx",
    "legacy file with an unhashable storage key": "storage record",
    "legacy file with a negative stride": "not valid",
    "legacy file declaring a terabyte": "more than the file holds",
}
SMALL = ["--per-class", "4", "--batch-size", "20", "--permutations", "2", "--no-probes"]


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file a code payload would create if it ever ran."""
    return tmp_path / "payload-ran"


def test_the_table_covers_every_kind(marker):
    assert set(bad_files(marker)) == set(EXPECTED)
    assert len(EXPECTED) >= 15


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_command_line_refuses_with_one_line_and_exit_2(kind, marker, tmp_path, tiny_specs, capsys):
    name, data = bad_files(marker)[kind]()
    path = tmp_path / name
    path.write_bytes(data)
    code = main(["compare", "--a", f"file:{path}", "--b", tiny_specs["b"], "--out", str(tmp_path / "r.json"), *SMALL])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert len(err) < 1200, "a refusal stays short whatever the file holds"
    assert EXPECTED[kind] in err
    assert not marker.exists(), "a pickle payload ran"
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("kind", sorted(good_files()))
def test_unusual_but_valid_files_load(kind, tmp_path, tiny_specs):
    name, data = good_files()[kind]()
    (tmp_path / name).write_bytes(data)
    out = tmp_path / "r.json"
    assert main(["compare", "--a", f"file:{tmp_path / name}", "--b", tiny_specs["b"], "--out", str(out), *SMALL]) == 0
    assert out.exists()


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path, tiny_specs, monkeypatch, capsys):
    name, data = good_files()["half precision"]()
    (tmp_path / name).write_bytes(data)
    monkeypatch.setenv("CKA_LENS_MAX_UPLOAD_MB", "0.01")
    assert main(["compare", "--a", f"file:{tmp_path / name}", "--b", tiny_specs["b"], "--out", "x", *SMALL]) == 2
    assert "CKA_LENS_MAX_UPLOAD_MB" in capsys.readouterr().err


def test_a_request_too_large_for_memory_is_refused_with_a_setting_that_fits(tmp_path, tiny_specs, monkeypatch, capsys):
    monkeypatch.setattr(core.memory, "available_bytes", lambda device: 40 * 1024**2)
    argv = [
        "compare",
        "--a",
        tiny_specs["a"],
        "--b",
        tiny_specs["b"],
        "--out",
        str(tmp_path / "r.json"),
        "--per-class",
        "1000",
        "--batch-size",
        "1000",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "GB is free" in err and ("a batch size of" in err or "at most" in err)
    assert not (tmp_path / "r.json").exists()


def test_the_app_uploader_refuses_every_bad_file_and_keeps_working(marker, bundled_pair):
    """One session uploads every bad file in turn; each shows the loader's sentence; then it still analyses."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"per_class": "4", "batch": "20"})
    at.run().switch_page("pages/models.py").run()
    assert not at.file_uploader[0].proto.type  # any file may be chosen: the loader judges the content
    for kind, build in bad_files(marker).items():
        name, data = build()
        with pytest.raises(CheckpointError) as raised:
            load_uploaded(data, name)
        at.file_uploader[0].upload(name, data).run()
        assert not at.exception, (kind, [e.message for e in at.exception])
        assert [shown(e.value) for e in at.error] == [shown(raised.value)], kind
        assert EXPECTED[kind] in shown(at.error[0].value)
    assert not marker.exists(), "a pickle payload ran"
    at.switch_page("pages/similarity.py").run()
    assert not at.exception and not at.error
    assert len(chart_specs(at)) == 5  # how far training moved each layer among them


def test_the_app_refuses_an_analysis_too_large_for_memory(bundled_pair, monkeypatch):
    monkeypatch.setattr(core.memory, "available_bytes", lambda device: 1024**2)
    at = AppTest.from_file(APP, default_timeout=300)
    # a subset no other test computes: the check runs before a computation, and a cached result needs none
    at.query_params.update({"per_class": "4", "batch": "20", "subset_seed": "707"})
    at.run()
    assert not at.exception
    assert any("needs about" in e.value for e in at.error)


def test_a_ceiling_that_cannot_be_computed_leaves_the_pair_shown_with_a_note(tiny_specs, monkeypatch):
    import ui.service
    from core.errors import MemoryRefusal

    real = ui.service.compare_pairs

    def refusing_ceilings(pairs, *args, **kwargs):
        if any(second.identity.source == tiny_specs["a2"] for _, second in pairs):
            raise MemoryRefusal("this analysis needs about 9.0 GB but about 1.0 GB is free on cpu")
        return real(pairs, *args, **kwargs)

    monkeypatch.setattr(ui.service, "compare_pairs", refusing_ceilings)
    at = AppTest.from_file(APP, default_timeout=300)
    query = {"a": tiny_specs["a"], "b": tiny_specs["b"], "a_seed": tiny_specs["a2"], "b_seed": "none"}
    at.query_params.update(query | {"per_class": "6", "batch": "20", "subset_seed": "717"})
    at.run()
    assert not at.exception and not at.error
    notes = [shown(c.value) for c in at.caption if shown(c.value).startswith("No ceiling for")]
    assert len(notes) == 2 and "needs about 9.0 GB" in notes[0] and tiny_specs["a2"] in notes[0]
    assert "none was asked for" in notes[1]
