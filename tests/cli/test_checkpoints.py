"""`python -m cli list` and `publish`: the table, and one-line errors with exit code 2."""

from __future__ import annotations

import socket

import pytest

from cli.main import main
from models import HUB_ENTRIES, hub
from models.registry import PAIR_ENTRIES


def test_list_prints_bundled_then_hub_entries(weights_dir, nets, capsys):
    nets.folder(weights_dir / "supervised-tiny", nets.make(), "supervised", metrics={"test_accuracy": 0.91})
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["spec", "method", "arch", "stem"]
    assert set(lines[1]) <= {"-", " "}
    rows = [line.split() for line in lines[2:]]
    assert rows[0][:6] == ["bundled:supervised-tiny", "supervised", "resnet18-w4", "cifar", "10", "0.9100"]
    assert [r[0] for r in rows[1:]] == [e.spec.text for e in HUB_ENTRIES + PAIR_ENTRIES]
    simclr50 = next(r for r in rows if r[0] == "hub:edadaltocg/resnet50_simclr_cifar10")
    assert simclr50[1:6] == ["simclr", "resnet50", "cifar", "0", "0.9012"]
    assert "0.4914,0.4822,0.4465" in simclr50 and "0.2023,0.1994,0.2010" in simclr50


def test_publish_without_token_is_one_line_and_exit_2(tmp_path, nets, monkeypatch, capsys):
    folder = nets.folder(tmp_path / "ckpt", nets.make(), "supervised")
    monkeypatch.setattr(hub, "get_token", lambda: None)
    assert main(["publish", str(folder), "me/cka-lens-test"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No Hugging Face token" in err and "hf auth login" in err


def test_publish_without_network_is_one_line_and_exit_2(tmp_path, nets, monkeypatch, capsys):
    folder = nets.folder(tmp_path / "ckpt", nets.make(), "supervised")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(hub, "get_token", lambda: "hf_not_a_real_token")
    assert main(["publish", str(folder), "me/cka-lens-test"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Publishing to me/cka-lens-test failed (connection failed)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["publish", "/no/such/folder", "me/repo"], "lacks model.safetensors or config.json"),
        (["publish", ".", "not a repo"], "not a Hub spec"),
    ],
)
def test_publish_refuses_bad_arguments(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
