"""The real download path (huggingface_hub's hf_hub_download) against a local stand-in for the Hub.

The server (tests/models/fake_hub.py) answers like huggingface.co; it serves checkpoints in the exact layouts of
the registry's repos.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import pytest
import torch

from models import HUB_ENTRIES, CheckpointError, load_model
from models.digest import weights_digest
from models.hub import timm_repo_hints
from models.registry import PAIR_ENTRIES
from tests.models.fake_hub import COMMIT_MAIN, COMMIT_OLD, FakeHub, reachable_hub, timm_repo

TIMEOUT_SECONDS = 1.0


@pytest.fixture
def hub(tmp_path, monkeypatch, weights_dir, nets) -> Iterator[FakeHub]:
    """The fake Hub and its CDN (another origin, as on huggingface.co), with an empty cache and no token.

    huggingface_hub reads HF_ENDPOINT and HF_HUB_CACHE at import; models.hub reads them at each call and
    passes endpoint=/cache_dir= explicitly, so setting the environment here is enough (the request log
    proves the requests reached this server). A bundled checkpoint exists so errors can name it.
    """
    nets.folder(weights_dir / "tiny-simclr", nets.make(num_classes=0), "simclr")
    with reachable_hub(monkeypatch, tmp_path) as fake:
        monkeypatch.setenv("CKA_LENS_HUB_TIMEOUT", str(TIMEOUT_SECONDS))
        yield fake


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the registry's repos, in their exact layouts -------------------------------------------------------------------


@pytest.mark.parametrize("entry", HUB_ENTRIES, ids=lambda e: e.repo_id)
def test_registry_layouts_download_and_load(hub, nets, entry):
    """edadaltocg layout: plain torch.save(state_dict) as pytorch_model.bin, timm/torchvision names, no prefix,
    CIFAR stem, fc only for supervised models. Width 4 for speed; depth and block type are the real ones."""
    net = nets.make(depth=entry.arch.depth, width=4, num_classes=entry.arch.num_classes, seed=entry.arch.depth)
    state = net.state_dict()
    assert any(k.startswith("fc.") for k in state) == (entry.method == "supervised")
    data = nets.torch_bytes(state)
    hub.add(entry.repo_id, {"pytorch_model.bin": data, "config.json": b'{"num_classes": 10}'})
    loaded = load_model(entry.spec)
    nets.assert_same_outputs(net, loaded.module)
    info = loaded.info
    assert (info.method, info.mean, info.std) == (entry.method, entry.mean, entry.std)
    assert (info.arch.depth, info.arch.stem, info.num_classes) == (entry.arch.depth, "cifar", entry.arch.num_classes)
    assert info.arch.bottleneck == (entry.arch.depth == 50)
    assert info.sha256 == weights_digest(state)
    if entry.reported_accuracy is not None:
        assert info.metrics == {"reported_accuracy": entry.reported_accuracy}
    notes = " | ".join(info.notes)
    assert f"downloaded {entry.repo_id}/pytorch_model.bin (commit {COMMIT_MAIN[:10]})" in notes
    assert "registry expected" in notes  # width 4 here, 64 on the Hub: the weights decide
    assert ("HEAD", f"/{entry.repo_id}/resolve/main/pytorch_model.bin") in hub.requests
    assert any(method == "GET" and path.startswith("/cdn/") for method, path in hub.requests)


def test_second_load_comes_from_the_cache(hub, nets):
    hub.add("edadaltocg/resnet18_cifar10", {"pytorch_model.bin": nets.torch_bytes(nets.make().state_dict())})
    first = load_model("hub:edadaltocg/resnet18_cifar10")
    downloads = sum(path.startswith("/cdn/") for _, path in hub.requests)
    second = load_model("hub:edadaltocg/resnet18_cifar10")
    assert sum(path.startswith("/cdn/") for _, path in hub.requests) == downloads == 1
    assert first.info.sha256 == second.info.sha256


# --- repos not in the registry --------------------------------------------------------------------------------------


def test_unknown_repo_prefers_model_safetensors_and_reads_config(hub, nets, tmp_path):
    net = nets.make(num_classes=0, stem_padding=2)
    folder = nets.folder(tmp_path / "ours", net, "simclr", metrics={"knn_accuracy": 0.8})
    hub.add("someone/our-format", {n: (folder / n).read_bytes() for n in ("model.safetensors", "config.json")})
    loaded = load_model("hub:someone/our-format")
    nets.assert_same_outputs(net, loaded.module)
    assert loaded.info.method == "simclr" and loaded.info.arch.stem_padding == 2
    assert loaded.info.metrics == {"knn_accuracy": 0.8}
    assert not any(p.endswith("pytorch_model.bin") for _, p in hub.requests)


def test_unknown_repo_falls_back_to_pytorch_model_bin(hub, nets):
    net = nets.make()
    hub.add("someone/bin-only", {"pytorch_model.bin": nets.torch_bytes(net.state_dict())})
    loaded = load_model("hub:someone/bin-only")
    nets.assert_same_outputs(net, loaded.module)
    assert loaded.info.method == "supervised"


def test_unknown_repo_without_weights_says_how_to_name_the_file(hub):
    hub.add("someone/empty", {"README.md": b"# nothing"})
    with pytest.raises(CheckpointError, match=r"neither model.safetensors nor pytorch_model.bin.*hub:someone/empty:"):
        load_model("hub:someone/empty")


def test_explicit_filename_in_a_subfolder(hub, nets):
    net = nets.make()
    hub.add("someone/ckpts", {"runs/last.ckpt": nets.torch_bytes({"state_dict": prefixed(net.state_dict())})})
    loaded = load_model("hub:someone/ckpts:runs/last.ckpt")
    nets.assert_same_outputs(net, loaded.module)


def prefixed(state: dict) -> dict:
    return {"model." + k: v for k, v in state.items()}


def test_missing_file_is_named(hub, nets):
    hub.add("someone/bin-only", {"pytorch_model.bin": nets.torch_bytes(nets.make().state_dict())})
    with pytest.raises(CheckpointError, match="has no file 'nope.pt'"):
        load_model("hub:someone/bin-only:nope.pt")


# --- revisions ------------------------------------------------------------------------------------------------------


def test_revision_pinning_loads_that_commit(hub, nets):
    current, old = nets.make(seed=1), nets.make(seed=2)
    hub.add("someone/pinned", {"pytorch_model.bin": nets.torch_bytes(current.state_dict())})
    hub.add("someone/pinned", {"pytorch_model.bin": nets.torch_bytes(old.state_dict())}, revision=COMMIT_OLD)
    nets.assert_same_outputs(old, load_model(f"hub:someone/pinned@{COMMIT_OLD}").module)
    nets.assert_same_outputs(current, load_model("hub:someone/pinned").module)


def test_unknown_revision(hub, nets):
    hub.add("someone/pinned", {"pytorch_model.bin": nets.torch_bytes(nets.make().state_dict())})
    with pytest.raises(CheckpointError, match="has no revision 'v9'"):
        load_model("hub:someone/pinned@v9")


# --- errors, all bounded in time ------------------------------------------------------------------------------------


def test_missing_repo(hub):
    with pytest.raises(CheckpointError, match="has no repo someone/missing"):
        load_model("hub:someone/missing")


@pytest.mark.parametrize(
    "spec",
    [
        "hub:",
        "hub:noslash",
        "hub:a/b/c",
        "hub:owner/repo@",
        "hub:bad--name/repo",
        "hub:owner/re po",
        "hub:owner/repo:../../etc/passwd",
        "hub:owner/repo:",
    ],
)
def test_malformed_specs_are_refused_without_network(hub, spec):
    with pytest.raises(CheckpointError, match="not a (Hub|model) spec|not a file path"):
        load_model(spec)
    assert hub.requests == []


def _assert_quick_error(spec: str, pattern: str) -> None:
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_model(spec)
    assert "bundled:tiny-simclr" in str(err.value)  # the offline alternative is named


def test_server_error(hub):
    _assert_quick_error("hub:broken/repo", r"could not be reached .*server error, HTTP 500")


def test_slow_server_times_out(hub):
    _assert_quick_error("hub:slow/repo", rf"could not be reached .*no answer within {TIMEOUT_SECONDS:g} s")


def test_unreachable_endpoint(hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    _assert_quick_error("hub:edadaltocg/resnet50_simclr_cifar10", r"could not be reached .*connection failed")


def test_cached_copy_is_used_when_the_hub_is_unreachable_or_offline(hub, nets, monkeypatch):
    net = nets.make(depth=50, num_classes=0)
    hub.add("edadaltocg/resnet50_simclr_cifar10", {"pytorch_model.bin": nets.torch_bytes(net.state_dict())})
    load_model("hub:edadaltocg/resnet50_simclr_cifar10")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    unreachable = load_model("hub:edadaltocg/resnet50_simclr_cifar10")
    nets.assert_same_outputs(net, unreachable.module)
    assert any("could not be reached" in n and "cached copy" in n for n in unreachable.info.notes)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = load_model("hub:edadaltocg/resnet50_simclr_cifar10")
    assert any("downloaded before (offline)" in n for n in offline.info.notes)
    with pytest.raises(CheckpointError, match="cannot be reached from this server .* never downloaded here") as refused:
        load_model("hub:edadaltocg/resnet18_cifar10")
    assert "HF_HUB_OFFLINE" not in refused.value.visitor  # the app's visitor cannot set it


def test_size_limit_is_checked_before_downloading(hub, nets, monkeypatch):
    hub.add("edadaltocg/resnet18_cifar10", {"pytorch_model.bin": nets.torch_bytes(nets.make().state_dict())})
    monkeypatch.setenv("CKA_LENS_MAX_UPLOAD_MB", "0.01")
    with pytest.raises(CheckpointError, match="over the 0.01 MB limit.*CKA_LENS_MAX_UPLOAD_MB"):
        load_model("hub:edadaltocg/resnet18_cifar10")
    assert not any(path.startswith("/cdn/") for _, path in hub.requests)


def test_foreign_config_json_is_ignored_with_a_note(hub, nets):
    net = nets.make()
    config = json.dumps({"method": {"not": "a string"}}).encode()
    hub.add("someone/odd-config", {"pytorch_model.bin": nets.torch_bytes(net.state_dict()), "config.json": config})
    loaded = load_model("hub:someone/odd-config")
    nets.assert_same_outputs(net, loaded.module)
    assert any("ignored the repo's config.json" in n for n in loaded.info.notes)


# --- timm's own Hub layout: config.json (architecture, pretrained_cfg) + model.safetensors --------------------------


def test_a_timm_format_repo_loads_end_to_end_with_its_preprocessing(hub, tmp_path):
    model, files = timm_repo(tmp_path)
    hub.add("timm/test_vit.r160_in1k", files)  # the id timm gives test_vit's weights on the Hub
    loaded = load_model("hub:timm/test_vit.r160_in1k")
    info = loaded.info
    assert (info.arch.name, info.num_classes) == ("timm:test_vit", 10)
    config = info.input_config
    assert (config.size, config.interpolation, config.crop_pct) == ((160, 160), "bicubic", 0.95)
    assert (config.mean, config.std) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), model(x), rtol=1e-4, atol=1e-5)
    assert info.sha256 == weights_digest(model.state_dict())  # the tensors loaded, as for any other network
    assert any("from the repo's config.json" in note for note in info.notes)
    assert ("HEAD", "/timm/test_vit.r160_in1k/resolve/main/config.json") in hub.requests


def test_the_repos_config_decides_the_preprocessing_over_the_librarys(hub, tmp_path):
    """test_vit's own config says bicubic and mean 0.5; this repo's says otherwise, and the repo's is used."""
    _, files = timm_repo(tmp_path, classes=0, interpolation="bilinear", mean=[0.485, 0.456, 0.406])
    hub.add("someone/vit-run", files)
    info = load_model("hub:someone/vit-run").info
    assert (info.arch.name, info.num_classes) == ("timm:test_vit", 0)
    assert (info.input_config.interpolation, info.mean) == ("bilinear", (0.485, 0.456, 0.406))


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"input_size": [160, 160]}, "input_size"),
        ({"interpolation": "lanczos"}, "interpolation 'lanczos'"),
        ({"mean": [0.5, 0.5]}, "mean"),
        ({"crop_pct": 1.5}, "crop_pct"),
    ],
)
def test_a_timm_config_out_of_shape_says_which_field(cfg, message):
    base = {"input_size": [3, 224, 224], "interpolation": "bicubic", "mean": [0.5] * 3, "std": [0.5] * 3}
    with pytest.raises(CheckpointError, match=message):
        timm_repo_hints({"architecture": "vit_tiny_patch16_224", "pretrained_cfg": base | cfg}, "r/config.json")


def test_a_config_in_another_layout_is_not_timms():
    assert timm_repo_hints({"num_classes": 10}, "r/config.json") is None
    assert timm_repo_hints({"architecture": "resnet18"}, "r/config.json") is None  # no pretrained_cfg
    hints = timm_repo_hints(
        {"architecture": "resnet18", "pretrained_cfg": {"mean": [0.5] * 3, "std": [0.25] * 3}}, "r/config.json"
    )
    assert (hints.arch, hints.input.size, hints.input.interpolation) == ("timm:resnet18", (224, 224), "bilinear")


@pytest.mark.parametrize("entry", PAIR_ENTRIES, ids=lambda e: e.repo_id)
def test_offline_a_curated_pair_says_the_hub_is_unreachable_in_plain_words(hub, monkeypatch, entry):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(CheckpointError) as err:
        load_model(entry.spec)
    message = err.value.visitor  # what the app shows; the command line adds the operator's hint
    assert "could not be reached" in message and entry.repo_id in message
    assert not re.search(r"\b(HF|CKA_LENS)_[A-Z_]+", message) and "127.0.0.1" not in message
