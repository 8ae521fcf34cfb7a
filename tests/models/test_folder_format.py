"""Our checkpoint folder format: weights + config.json, float16 snapshots, and the run's snapshot config."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from models.errors import ArchitectureError
from models.folder_format import (
    CONFIG_FILE,
    SNAPSHOT_DIR,
    WEIGHTS_FILE,
    arch_from_config,
    save_folder,
    save_snapshot,
    save_snapshot_config,
)
from models.resnet import ArchConfig

ARCH = ArchConfig(depth=18, width=4, stem_padding=2, num_classes=0)
META = {"method": "simclr", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "metrics": {"knn_accuracy": 0.61}}


def test_a_saved_folder_holds_every_tensor_and_the_config(tmp_path, nets):
    net = nets.make(width=4, num_classes=0)
    save_folder(net, ARCH, META, tmp_path / "run")
    saved = load_file(tmp_path / "run" / WEIGHTS_FILE)
    assert saved.keys() == net.state_dict().keys()
    for key, value in net.state_dict().items():
        assert torch.equal(saved[key], value), key
    config = json.loads((tmp_path / "run" / CONFIG_FILE).read_text())
    assert config["depth"] == 18 and config["width"] == 4 and config["stem_padding"] == 2
    assert config["method"] == "simclr" and config["metrics"] == {"knn_accuracy": 0.61}


def test_the_config_gives_back_the_architecture(tmp_path, nets):
    save_folder(nets.make(width=4, num_classes=0), ARCH, META, tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert arch_from_config(config) == ARCH  # other keys (method, mean, metrics) are ignored


def test_a_config_with_only_some_fields_takes_the_defaults_for_the_rest():
    assert arch_from_config({"depth": 34, "note": "anything"}) == ArchConfig(depth=34)


@pytest.mark.parametrize(("config", "error"), [({"depth": 19}, ArchitectureError), ({"width": "wide"}, TypeError)])
def test_a_malformed_config_raises(config, error):
    with pytest.raises(error):
        arch_from_config(config)


def test_a_snapshot_is_float16_with_its_epoch_and_metrics(tmp_path, nets):
    net = nets.make(width=4)
    path = save_snapshot(net, tmp_path, 3, {"epoch": 3, "test_accuracy": 0.25})
    assert path == tmp_path / SNAPSHOT_DIR / "epoch-3.safetensors"
    assert [p.name for p in path.parent.iterdir()] == ["epoch-3.safetensors"]  # no temporary file left
    saved = load_file(path)
    assert saved["conv1.weight"].dtype == torch.float16
    assert saved["bn1.num_batches_tracked"].dtype == torch.int64  # integers stay integers
    torch.testing.assert_close(saved["conv1.weight"].float(), net.conv1.weight, atol=1e-3, rtol=1e-3)
    with safe_open(path, "pt") as f:
        assert f.metadata()["epoch"] == "3"
        assert json.loads(f.metadata()["metrics"]) == {"epoch": 3, "test_accuracy": 0.25}


def test_the_snapshot_config_says_the_runs_length(tmp_path):
    path = save_snapshot_config(ARCH, {"method": "supervised"}, 30, tmp_path)
    config = json.loads(path.read_text())
    assert path == tmp_path / SNAPSHOT_DIR / CONFIG_FILE
    assert config["epochs"] == 30 and config["method"] == "supervised"
    assert arch_from_config(config) == ARCH
