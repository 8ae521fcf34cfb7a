"""What the weights cannot say, measured on CIFAR-10 test images, with real trained networks."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save

from core import settings
from core.data import CIFAR10_MEAN, CIFAR10_STD
from core.store import ENTRIES, RESULT, Store
from models import CheckpointError, build_resnet, calibration, load_model, load_uploaded, with_choices
from models.calibration import CHOICES, NORMALISATIONS, calibration_key, folded
from models.loaded import SourceHints
from models.registry import WEIGHTS_DIR
from models.resnet import ArchConfig


def _scores(evidence) -> dict[str, float]:
    """Each candidate's score on the most images it was scored on."""
    return {label: value for label, value, _ in sorted(evidence.scores, key=lambda row: row[2])}


POOLED = Path(__file__).parent / "fixtures" / "pooled-resnet18-w8.safetensors"  # tests/models/fixtures/make_pooled.py


def _upload(tensors: dict[str, torch.Tensor]) -> bytes:
    return save({k: v.contiguous() for k, v in tensors.items()})


@pytest.fixture(autouse=True)
def _measured(monkeypatch):
    monkeypatch.setenv(settings.CALIBRATION_IMAGES, "256")


@pytest.fixture(scope="module")
def supervised() -> dict[str, torch.Tensor]:
    return load_file(Path(WEIGHTS_DIR) / "supervised-resnet18-w16" / "model.safetensors")


def test_a_bare_state_dict_is_measured_and_the_trained_structure_wins(supervised):
    loaded = load_uploaded(_upload(supervised), "model.safetensors")
    evidence = loaded.info.calibration
    assert evidence.measured == ("stem_pool", "stem_padding", "normalisation")
    assert loaded.info.stem == "cifar" and loaded.info.arch.stem_padding == 1
    assert loaded.info.mean == NORMALISATIONS["cifar10"][0] and loaded.info.std == NORMALISATIONS["cifar10"][1]
    scores = _scores(evidence)
    assert evidence.accuracy > 0.8 and not evidence.warning
    assert scores["stem: max-pool, padding 1"] < evidence.accuracy - 0.2  # a wrong structure is far worse
    assert scores["normalisation: none"] < evidence.accuracy - 0.2
    assert any(note.startswith("measured on 256 CIFAR-10 test images") for note in loaded.info.notes)


def _fold_normalisation(tensors: dict[str, torch.Tensor], mean, std) -> dict[str, torch.Tensor]:
    """The same network for raw [0, 1] inputs: 1/std into conv1, the mean's response into bn1's running mean
    (exact away from the image border, where zero padding differs)."""
    out = dict(tensors)
    w = tensors["conv1.weight"]
    s, m = torch.tensor(std).view(1, 3, 1, 1), torch.tensor(mean).view(1, 3, 1, 1)
    out["conv1.weight"] = w / s
    out["bn1.running_mean"] = tensors["bn1.running_mean"] + (w * m / s).sum(dim=(1, 2, 3))
    return out


def test_a_network_trained_without_normalisation_is_recognised(supervised):
    folded = _fold_normalisation(supervised, *NORMALISATIONS["cifar10"])
    loaded = load_uploaded(_upload(folded), "raw-inputs.safetensors")
    assert (loaded.info.mean, loaded.info.std) == NORMALISATIONS["none"]
    assert loaded.info.calibration.accuracy > 0.8
    assert _scores(loaded.info.calibration)["normalisation: cifar10"] < 0.6


def test_a_person_s_choice_is_kept_and_the_rest_measured_again(supervised):
    loaded = load_uploaded(_upload(supervised), "model.safetensors")
    pooled = with_choices(
        loaded, SourceHints(stem_pool=True, origin="your choice"), "upload:model.safetensors#pool=yes"
    )
    assert pooled.identity.key != loaded.identity.key  # same file, another network: caches must tell them apart
    assert pooled.info.stem == "cifar-maxpool"
    assert pooled.info.calibration.measured == ("stem_padding", "normalisation")
    assert pooled.info.calibration.accuracy < loaded.info.calibration.accuracy - 0.2
    assert "set by your choice: stem pool" in pooled.info.notes
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # the same weights, one max-pool more: its outputs must differ
        assert not torch.allclose(pooled.module(x), loaded.module(x))


def test_choices_in_a_spec():
    loaded = load_model("bundled:supervised-resnet18-w16#norm=imagenet")
    assert (loaded.info.mean, loaded.info.std) == NORMALISATIONS["imagenet"]
    assert loaded.info.calibration.measured == ()  # the bundled card states everything else
    assert loaded.info.source == "bundled:supervised-resnet18-w16#norm=imagenet"
    with pytest.raises(CheckpointError, match="norm=cifar10"):
        load_model("bundled:supervised-resnet18-w16#norm=imagenette")
    with pytest.raises(CheckpointError, match="no choices"):
        load_model("bundled:supervised-resnet18-w16#")


def test_a_network_near_chance_is_flagged():
    torch.manual_seed(0)
    net = build_resnet(ArchConfig(depth=18, width=8, num_classes=10))
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    loaded = load_uploaded(buffer.getvalue(), "untrained.pt")
    assert "near chance" in loaded.info.calibration.warning


def test_without_images_the_open_choices_are_stated_as_uncertain(supervised, monkeypatch):
    monkeypatch.setenv(settings.CALIBRATION_IMAGES, "0")
    loaded = load_uploaded(_upload(supervised), "model.safetensors")
    assert loaded.info.calibration is None
    assert any(note.startswith("uncertain: the weights cannot show whether a max-pool") for note in loaded.info.notes)
    assert any(note.startswith("no normalisation given") for note in loaded.info.notes)


def test_a_max_pool_the_weights_cannot_show_is_found():
    """A network trained with a max-pool after its 3x3 stem (tests/models/fixtures/make_pooled.py), uploaded as a
    bare state dict, as huyvnphan/PyTorch_CIFAR10 ships its weights."""
    loaded = load_uploaded(POOLED.read_bytes(), "resnet18.pt")
    assert loaded.info.stem == "cifar-maxpool" and loaded.info.arch.stem_padding == 1
    scores = _scores(loaded.info.calibration)
    assert loaded.info.calibration.accuracy > 0.45
    assert scores["stem: padding 1"] < loaded.info.calibration.accuracy - 0.1
    assert any("max-pool after the stem: yes" in note for note in loaded.info.notes)


@pytest.mark.parametrize(
    "arch",
    [
        ArchConfig(depth=18, width=8),
        ArchConfig(depth=50, width=8, stem_pool=True),
        ArchConfig(depth=20, width=8, stages=(3, 3, 3), shortcut="pad"),
    ],
    ids=["basic", "bottleneck", "three-stage"],
)
def test_the_folded_copy_computes_what_the_network_does_and_leaves_it_untouched(arch):
    torch.manual_seed(0)
    net = build_resnet(arch).eval()
    for norm in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # statistics of a trained net
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.data.uniform_(0.5, 1.5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    copy = folded(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in copy.modules())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), net(x), atol=1e-4, rtol=1e-4)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.fixture
def own_store(tmp_path, monkeypatch) -> Store:
    """An empty result store of this test's own, with no shipped entries behind it."""
    monkeypatch.setenv(settings.STORE, str(tmp_path))
    monkeypatch.setenv(settings.SHIPPED, "off")
    return Store(tmp_path, settings.store_bytes())


def _measurings(monkeypatch) -> list[int]:
    """A list that grows by one at each measurement from here on."""
    calls: list[int] = []
    real = calibration.measure
    monkeypatch.setattr(calibration, "measure", lambda *args: calls.append(1) or real(*args))
    return calls


def _same_network(x, y) -> bool:
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return x.info == y.info and x.identity == y.identity and torch.equal(x.module(inputs), y.module(inputs))


def test_a_second_load_reads_the_calibration_from_the_store(own_store, monkeypatch):
    first = load_uploaded(POOLED.read_bytes(), "resnet18.pt")
    assert first.info.stem == "cifar-maxpool"  # a structure the measurement chose, not the loader's start
    measurings = _measurings(monkeypatch)
    second = load_uploaded(POOLED.read_bytes(), "resnet18.pt")
    assert measurings == [] and _same_network(second, first)
    # the key: the weights' digest and the loader's starting point for a bare state dict, all three choices open
    key = calibration_key(first.info.sha256, ArchConfig(depth=18, width=8), CIFAR10_MEAN, CIFAR10_STD, CHOICES)
    assert own_store.record(key)["calibration"]["accuracy"] == first.info.calibration.accuracy
    monkeypatch.setenv(settings.CALIBRATION_IMAGES, "128")  # another sample: another key, measured
    assert load_uploaded(POOLED.read_bytes(), "resnet18.pt").info.calibration.images == 128 and measurings == [1]


def test_a_damaged_calibration_entry_is_measured_again_and_replaced(own_store, tmp_path, monkeypatch):
    first = load_uploaded(POOLED.read_bytes(), "resnet18.pt")
    (entry,) = (tmp_path / ENTRIES).glob(f"*{RESULT}")
    data = entry.read_bytes()
    entry.write_bytes(data.replace(b'"stem_pool": true', b'"stem_pool": false'))  # one choice flipped
    measurings = _measurings(monkeypatch)
    again = load_uploaded(POOLED.read_bytes(), "resnet18.pt")
    assert measurings == [1] and _same_network(again, first)
    assert entry.read_bytes() == data  # written again as measured
    assert _same_network(load_uploaded(POOLED.read_bytes(), "resnet18.pt"), first) and measurings == [1]


def test_a_stored_calibration_it_could_not_have_made_is_measured_again(own_store, monkeypatch):
    monkeypatch.setenv(settings.CALIBRATION_IMAGES, "64")  # three measurements again: on fewer images
    first = load_uploaded(POOLED.read_bytes(), "resnet18.pt")
    key = calibration_key(first.info.sha256, ArchConfig(depth=18, width=8), CIFAR10_MEAN, CIFAR10_STD, CHOICES)
    record = own_store.record(key)
    for change in ({"stem_padding": 7}, {"mean": [0.1, 0.2, 0.3]}, {"stem_pool": "yes"}):
        own_store.put_record(key, record | {"decided": record["decided"] | change})  # well-formed, checksum and all
        measurings = _measurings(monkeypatch)
        assert _same_network(load_uploaded(POOLED.read_bytes(), "resnet18.pt"), first) and measurings == [1]
        assert own_store.record(key) == record
