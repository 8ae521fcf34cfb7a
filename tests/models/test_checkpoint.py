"""Every checkpoint format loads to the same network; every bad input is a clear CheckpointError."""

from __future__ import annotations

import argparse
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save as safetensors_bytes

from core.data import CIFAR10_MEAN, CIFAR10_STD
from core.errors import LensError
from models import ArchConfig, CheckpointError, build_resnet, list_bundled, load_model, load_uploaded, resnet_layers
from models.digest import weights_digest


def prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


# --- formats that load ---------------------------------------------------------------------------------------------


def test_safetensors_folder_loads_with_its_config(tmp_path, nets):
    net = nets.make(num_classes=10)
    folder = nets.folder(tmp_path / "ckpt", net, "supervised", metrics={"test_accuracy": 0.5})
    loaded = load_model(f"file:{folder}")
    nets.assert_same_outputs(net, loaded.module)
    info = loaded.info
    assert (info.method, info.num_classes, info.stem, info.source) == ("supervised", 10, "cifar", f"file:{folder}")
    assert info.mean == pytest.approx((0.4914, 0.4822, 0.4465)) and info.std == pytest.approx((0.2470, 0.2435, 0.2616))
    assert info.metrics == {"test_accuracy": 0.5}
    assert info.sha256 == weights_digest(net.state_dict())
    assert not any("default" in n for n in info.notes)  # config.json gave the normalisation
    assert not loaded.module.training
    assert hash(info) == hash(load_model(f"file:{folder}").info)  # usable as a cache key


def test_bundled_spec_reads_the_weights_folder(weights_dir, nets):
    net = nets.make(num_classes=0)
    nets.folder(weights_dir / "simclr-tiny", net, "simclr", metrics={"knn_accuracy": 0.4})
    (weights_dir / "still-training").mkdir()  # a run in progress: no config.json yet
    (weights_dir / "still-training" / "train_state.pt").write_bytes(b"x")
    loaded = load_model("bundled:simclr-tiny")
    nets.assert_same_outputs(net, loaded.module)
    assert loaded.info.method == "simclr" and loaded.info.num_classes == 0
    [entry] = list_bundled()
    assert (entry.spec.text, entry.method, entry.reported_accuracy) == ("bundled:simclr-tiny", "simclr", 0.4)
    with pytest.raises(CheckpointError, match="no finished bundled checkpoint 'still-training'.*bundled:simclr-tiny"):
        load_model("bundled:still-training")


def test_plain_pt_state_dict_uses_defaults_and_says_so(nets):
    net = nets.make(num_classes=10)
    loaded = load_uploaded(nets.torch_bytes(net.state_dict()), "weights.pt")
    nets.assert_same_outputs(net, loaded.module)
    assert loaded.info.method == "supervised" and loaded.info.num_classes == 10
    assert (loaded.info.mean, loaded.info.std) == (CIFAR10_MEAN, CIFAR10_STD)
    assert any("CIFAR-10 defaults" in n for n in loaded.info.notes)
    assert any("taken as supervised" in n for n in loaded.info.notes)
    assert loaded.info.source == "upload:weights.pt"


def test_ddp_module_prefix_is_stripped(nets):
    net = nets.make()
    loaded = load_uploaded(nets.torch_bytes(prefixed(net.state_dict(), "module.")), "ddp.pth")
    nets.assert_same_outputs(net, loaded.module)
    assert any("'module.'" in n for n in loaded.info.notes)


def test_lightning_ckpt_with_backbone_projector_and_classifier(nets):
    """solo-learn's layout: Lightning state_dict, backbone.* + projector.* + classifier.* (padding 2 stem)."""
    net = nets.make(num_classes=0, stem_padding=2)
    state = prefixed(net.state_dict(), "backbone.") | {
        "projector.0.weight": torch.randn(16, 32),
        "projector.2.weight": torch.randn(8, 16),
        "classifier.weight": torch.randn(10, 32),
        "classifier.bias": torch.randn(10),
    }
    ckpt = {"state_dict": state, "epoch": 999, "global_step": 12, "hyper_parameters": {"lr": 0.3, "method": "simclr"}}
    loaded = load_uploaded(nets.torch_bytes(ckpt), "simclr.ckpt")
    nets.assert_same_outputs(net, loaded.module)
    info = loaded.info
    assert info.method == "simclr" and info.num_classes == 0 and info.arch.stem_padding == 2
    notes = " | ".join(info.notes)
    for said in (
        "['state_dict']",
        "'backbone.'",
        "projector (2 tensors)",
        "classifier (2 tensors)",
        "solo-learn",
        "padding 2",
        "method 'simclr' read from the checkpoint's own settings",
    ):
        assert said in notes


def test_older_solo_learn_encoder_prefix_with_momentum_copy(nets):
    net = nets.make(num_classes=0, stem_padding=2, seed=3)
    other = nets.make(num_classes=0, seed=4)
    state = (
        prefixed(net.state_dict(), "encoder.")
        | prefixed(other.state_dict(), "momentum_encoder.")
        | {"projector.0.weight": torch.randn(4, 32), "classifier.weight": torch.randn(10, 32)}
    )
    loaded = load_uploaded(nets.torch_bytes({"state_dict": state}), "byol.ckpt")
    nets.assert_same_outputs(net, loaded.module)  # the online encoder, not the momentum copy
    assert any("'encoder.'" in n for n in loaded.info.notes)
    assert any("momentum_encoder (" in n for n in loaded.info.notes)


def test_solo_learn_imagenet_stem_keeps_its_7x7_conv(nets):
    net = nets.make(num_classes=0, stem="imagenet")
    state = prefixed(net.state_dict(), "backbone.") | {"classifier.weight": torch.randn(10, 32)}
    loaded = load_uploaded(nets.torch_bytes({"state_dict": state}), "imagenet.ckpt")
    nets.assert_same_outputs(net, loaded.module, size=64)
    assert loaded.info.stem == "imagenet" and not any("padding" in n for n in loaded.info.notes)


def test_lightning_without_classifier_keeps_padding_one(nets):
    """Not solo-learn (no online classifier): the CIFAR stem keeps the usual padding 1."""
    net = nets.make(num_classes=0)
    state = prefixed(net.state_dict(), "model.backbone.") | {"model.projection_head.0.weight": torch.randn(4, 32)}
    loaded = load_uploaded(nets.torch_bytes({"state_dict": state}), "lightly.ckpt")
    nets.assert_same_outputs(net, loaded.module)
    assert loaded.info.arch.stem_padding == 1 and loaded.info.method == "self-supervised (method unknown)"


@pytest.mark.parametrize("nested", ["model", "model_state_dict", "net"])
def test_state_dict_nested_under_trainer_keys(nets, nested):
    net = nets.make()
    loaded = load_uploaded(nets.torch_bytes({nested: net.state_dict(), "epoch": 3, "optimizer": {}}), "w.tar")
    nets.assert_same_outputs(net, loaded.module)
    assert any(f"['{nested}']" in n for n in loaded.info.notes)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_are_cast_to_float32(nets, dtype):
    net = nets.make()
    half = {k: v.to(dtype) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    rounded = nets.make()
    rounded.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    loaded = load_uploaded(safetensors_bytes(half), "half.safetensors")
    nets.assert_same_outputs(rounded, loaded.module)
    assert all(p.dtype == torch.float32 for p in loaded.module.parameters())
    assert any(f"cast {str(dtype)[6:]} weights to float32" in n for n in loaded.info.notes)


def test_torchvision_imagenet_resnet18_is_detected_as_imagenet_stem(nets):
    net = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    loaded = load_uploaded(nets.torch_bytes(net.state_dict()), "resnet18.pth")
    arch = loaded.info.arch
    assert (arch.depth, arch.width, arch.stem, arch.num_classes) == (18, 64, "imagenet", 7)
    assert loaded.info.stem == "imagenet" and loaded.info.layers[0] == ("stem", "maxpool")
    nets.assert_same_outputs(net, loaded.module, size=64)


@pytest.mark.parametrize(("depth", "stem"), [(18, "cifar"), (34, "cifar"), (50, "cifar"), (50, "imagenet")])
def test_depth_width_and_block_type_are_inferred(nets, depth, stem):
    net = nets.make(depth=depth, width=4, num_classes=0, stem=stem)
    loaded = load_uploaded(safetensors_bytes(net.state_dict()), "net.safetensors")
    assert loaded.info.arch == net.config
    assert loaded.info.layers == tuple(resnet_layers(net.config))
    nets.assert_same_outputs(net, loaded.module)


def test_kuangliu_style_names_are_renamed(nets):
    net = nets.make()
    kuangliu = {
        k.replace(".downsample.", ".shortcut.").replace("fc.", "linear."): v for k, v in net.state_dict().items()
    }
    loaded = load_uploaded(nets.torch_bytes(kuangliu), "ckpt.pth")
    nets.assert_same_outputs(net, loaded.module)
    assert any("renamed" in n and "shortcut" in n for n in loaded.info.notes)


def test_missing_batchnorm_counters_are_filled(nets):
    net = nets.make()
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    loaded = load_uploaded(nets.torch_bytes(state), "w.pt")
    nets.assert_same_outputs(net, loaded.module)
    assert any("num_batches_tracked" in n for n in loaded.info.notes)


def test_config_sets_stem_padding_and_method(tmp_path, nets):
    net = nets.make(num_classes=0, stem_padding=2)
    folder = nets.folder(tmp_path / "solo", net, "byol")
    loaded = load_model(f"file:{folder}")
    assert loaded.info.arch.stem_padding == 2 and loaded.info.method == "byol"
    nets.assert_same_outputs(net, loaded.module)


def test_sha256_is_stable_and_identifies_the_tensors(nets):
    state = nets.make().state_dict()
    data = nets.torch_bytes(state)
    first, second = load_uploaded(data, "a.pt"), load_uploaded(data, "renamed.pth")
    assert first.info.sha256 == second.info.sha256 == weights_digest(state)
    other = load_uploaded(nets.torch_bytes(nets.make(seed=5).state_dict()), "a.pt")
    assert other.info.sha256 != first.info.sha256


def test_file_spec_loads_a_single_file(tmp_path, nets):
    net = nets.make()
    path = tmp_path / "weights.pth"
    torch.save(net.state_dict(), path)
    loaded = load_model(f"file:{path}")
    nets.assert_same_outputs(net, loaded.module)
    assert loaded.info.sha256 == weights_digest(net.state_dict())


# --- unsafe pickles never run -------------------------------------------------------------------------------------


class Payload:
    """Unpickling this creates a file: the stand-in for arbitrary code in a malicious checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_payload_is_live(tmp_path):
    """The payload really runs under plain pickle, so the tests below prove the loader stops it."""
    target = tmp_path / "proof"
    pickle.loads(pickle.dumps(Payload(target))).close()  # noqa: S301 - deliberately unsafe, on our own bytes
    assert target.exists()


@pytest.mark.parametrize("writer", ["pickle", "torch.save", "nested in a checkpoint"])
def test_code_in_a_pickle_never_runs(tmp_path, nets, writer):
    target = tmp_path / "pwned"
    if writer == "pickle":
        data = pickle.dumps(Payload(target))
    elif writer == "torch.save":
        data = nets.torch_bytes(Payload(target))
    else:
        data = nets.torch_bytes({"state_dict": nets.make().state_dict(), "callbacks": Payload(target)})
    with pytest.raises(CheckpointError, match="nothing in it ran"):
        load_uploaded(data, "evil.pt")
    assert not target.exists()


class HyperParameters:
    """A custom class in a Lightning checkpoint's hyper_parameters."""

    def __init__(self) -> None:
        self.lr = 0.1


@pytest.mark.parametrize("hparams", [argparse.Namespace(lr=0.1, arch="resnet18"), HyperParameters()])
def test_a_lightning_checkpoint_with_objects_loads_its_weights_without_running_them(nets, hparams):
    """Its objects are stood in for by inert placeholders; the weights are those of the network saved."""
    net = nets.make()
    data = nets.torch_bytes({"state_dict": net.state_dict(), "hyper_parameters": hparams})
    loaded = load_uploaded(data, "lightning.ckpt")
    nets.assert_same_outputs(net, loaded.module)


# --- bad inputs ------------------------------------------------------------------------------------------------------


def _safetensors_with_header(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _bad_inputs(nets) -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, filename, a regex the message must match)."""
    good_st = safetensors_bytes({"conv1.weight": torch.zeros(4, 3, 3, 3)})
    good_pt = nets.torch_bytes(nets.make().state_dict())
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return {
        "empty": (b"", "weights.pt", "is empty"),
        "random bytes": (bytes(range(256)) * 8, "weights.pt", "neither a safetensors file nor a PyTorch"),
        "png renamed .pt": (b"\x89PNG\r\n\x1a\n" + bytes(100), "weights.pt", "is a PNG image, not a checkpoint"),
        "zip but not torch": (other_zip.getvalue(), "weights.pt", r"zip archive \(notes.txt\) but not a PyTorch"),
        "truncated torch file": (good_pt[: len(good_pt) // 2], "weights.pt", "damaged|truncated"),
        "truncated safetensors": (good_st[:-10], "w.safetensors", "damaged or truncated safetensors"),
        "header lies about sizes": (
            _safetensors_with_header({"a": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, bytes(16)),
            "w.safetensors",
            "damaged or truncated safetensors",
        ),
        "header length huge": (struct.pack("<Q", 1 << 60) + b'{"a": 1}', "w.safetensors", "damaged or truncated"),
        "a tensor, not a dict": (nets.torch_bytes(torch.zeros(3)), "w.pt", "holds a Tensor, not a state dict"),
        "a dict without tensors": (nets.torch_bytes({"epoch": 3, "lr": 0.1}), "w.pt", "holds no tensors"),
    }


BAD_NAMES = [
    "empty",
    "random bytes",
    "png renamed .pt",
    "zip but not torch",
    "truncated torch file",
    "truncated safetensors",
    "header lies about sizes",
    "header length huge",
    "a tensor, not a dict",
    "a dict without tensors",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_files_are_checkpoint_errors(nets, name):
    data, filename, pattern = _bad_inputs(nets)[name]
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_uploaded(data, filename)
    assert isinstance(err.value, LensError) and "\n" not in str(err.value)


def _meta_state(factory) -> dict[str, torch.Tensor]:
    """A torchvision model's key names and shapes without allocating its weights."""
    with torch.device("meta"):
        state = factory().state_dict()
    return {k: torch.zeros(v.shape) if v.numel() < 100_000 else torch.zeros(1) for k, v in state.items()}


@pytest.mark.parametrize(
    ("factory", "pattern"),
    [
        (torchvision.models.mobilenet_v2, r"not a ResNet \(a torchvision VGG/MobileNet.*'features.0.0.weight'"),
        (torchvision.models.vgg11, r"not a ResNet .*'classifier.0.bias'.*ResNet-18/34/50/101/152"),
    ],
)
def test_other_architectures_are_named(nets, factory, pattern):
    with pytest.raises(CheckpointError, match=pattern):
        load_uploaded(safetensors_bytes(_meta_state(factory)), "other.safetensors")


def test_a_resnext_is_refused_with_the_shapes_that_do_not_fit():
    state = {k: torch.zeros(v.shape) for k, v in torchvision.models.resnext50_32x4d().state_dict().items()}
    with pytest.raises(CheckpointError, match=r"do not fit the inferred resnet50 .*wrong shape \(layer1.0.conv1"):
        load_uploaded(safetensors_bytes(state), "resnext.safetensors")


@pytest.mark.parametrize(("depth", "blocks"), [(101, 33), (152, 50)])
def test_deep_torchvision_resnets_load(depth, blocks):
    """ResNet-101/152 in torchvision's names (our builder uses torchvision's blocks; narrow, to stay small)."""
    net = build_resnet(ArchConfig(depth=depth, width=8, stem="imagenet", num_classes=1000)).eval()
    loaded = load_uploaded(safetensors_bytes(net.state_dict()), "deep.safetensors")
    assert loaded.info.arch.name == f"resnet{depth}-w8" and loaded.info.stem == "imagenet"
    assert len(loaded.info.layers) == 2 * blocks + 2  # stem, two readings per block, pooled (the 1000-way fc dropped)
    x = torch.randn(2, 3, 64, 64)
    net.to(memory_format=torch.channels_last)  # as a loaded network's weights are: 150 random blocks amplify rounding
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), net.avgpool(_trunk(net, x)).flatten(1))


def _trunk(net, x):
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def test_strict_load_lists_missing_unexpected_and_wrong_shapes(nets):
    state = nets.make().state_dict()
    del state["layer2.0.bn1.weight"]
    state["layer1.0.extra.weight"] = torch.zeros(2)
    state["layer3.1.conv2.weight"] = torch.zeros(16, 16, 1, 1)
    with pytest.raises(CheckpointError) as err:
        load_uploaded(nets.torch_bytes(state), "w.pt")
    message = str(err.value)
    assert "1 missing (layer2.0.bn1.weight)" in message
    assert "1 unexpected (layer1.0.extra.weight)" in message
    assert "1 wrong shape (layer3.1.conv2.weight (16, 16, 1, 1) vs (16, 16, 3, 3))" in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(nets, bad):
    state = nets.make().state_dict()
    state["layer4.1.conv2.weight"][0, 0, 0, 0] = bad
    with pytest.raises(CheckpointError, match="'layer4.1.conv2.weight' contains NaN or infinite"):
        load_uploaded(safetensors_bytes(state), "w.safetensors")


def test_upload_size_limit_names_the_limit_and_the_env_var(nets):
    data = nets.torch_bytes(nets.make().state_dict())
    with pytest.raises(CheckpointError, match=r"over the 0.001 MB limit.*CKA_LENS_MAX_UPLOAD_MB"):
        load_uploaded(data, "w.pt", max_bytes=1000)


def test_file_size_limit_is_checked_before_reading(tmp_path, nets, monkeypatch):
    path = tmp_path / "big.pt"
    torch.save(nets.make().state_dict(), path)
    monkeypatch.setenv("CKA_LENS_MAX_UPLOAD_MB", "0.001")

    def no_reading(self):
        raise AssertionError(f"read {self} despite the limit")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    with pytest.raises(CheckpointError, match="CKA_LENS_MAX_UPLOAD_MB"):
        load_model(f"file:{path}")


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("nonsense", "not a model spec"),
        ("ftp:somewhere", "'ftp:' is not a known source"),
        ("file:/no/such/checkpoint.pt", "no file or folder at"),
        ("bundled:../etc", "no finished bundled checkpoint"),
    ],
)
def test_bad_specs(weights_dir, spec, pattern):
    with pytest.raises(CheckpointError, match=pattern):
        load_model(spec)


def test_broken_config_json_is_reported(tmp_path, nets):
    folder = nets.folder(tmp_path / "ckpt", nets.make(), "supervised")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json' is not valid JSON"):
        load_model(f"file:{folder}")


def test_a_stem_pool_the_weights_cannot_show_is_reported_as_uncertain(tmp_path, nets):
    net = nets.make()
    bare = load_uploaded(nets.torch_bytes(net.state_dict()), "weights.pt")
    assert any(n.startswith("uncertain: the weights cannot show whether a max-pool") for n in bare.info.notes)
    described = load_model(f"file:{nets.folder(tmp_path / 'ours', net, 'supervised')}")  # config.json says
    assert not any(n.startswith("uncertain") for n in described.info.notes)


def test_a_size_just_over_the_limit_is_not_rounded_onto_it():
    with pytest.raises(CheckpointError) as refused:
        load_uploaded(b"\0" * 200_001, "w.pt", max_bytes=200_000)
    assert "is 200,001 bytes, over the 200,000-byte limit" in str(refused.value)
