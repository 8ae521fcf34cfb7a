"""Architectures by name: built the same under a seed, their input form from their library, weights loaded strictly
behind any wrapper prefix (a mismatch named key by key), specs and uploads with #arch=, untrained floors by name."""

from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import save as save_safetensors

from core.network import InputConfig
from models import CheckpointError, load_model, load_uploaded
from models.digest import weights_digest
from models.loaded import NamedArch, SourceHints
from models.named import build_named, input_config, load_named
from models.untrained import untrained_model

VIT, RESNET = "timm:vit_tiny_patch16_224", "torchvision:resnet18"


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_network_by_name_is_the_same_network_under_the_same_seed():
    torch.manual_seed(3)
    first = build_named("timm:resnet10t", num_classes=10)
    torch.manual_seed(3)
    again = build_named("timm:resnet10t", num_classes=10)
    torch.manual_seed(4)
    other = build_named("timm:resnet10t", num_classes=10)
    assert _same_weights(first, again) and not _same_weights(first, other)
    assert not first.training and first.get_classifier().out_features == 10


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        (VIT, InputConfig((224, 224), "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 0.9)),
        (RESNET, InputConfig((224, 224), "bilinear", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224 / 256)),
    ],
)
def test_the_input_form_is_the_librarys_own(arch, expected):
    assert input_config(arch) == expected
    assert input_config(build_named(arch)) == expected  # the module says the same as its name


def test_weights_load_strictly_behind_a_wrapper_and_give_the_same_outputs():
    torch.manual_seed(0)
    net = build_named("timm:resnet10t", num_classes=10)
    wrapped = {f"module.{k}": v for k, v in net.state_dict().items()} | {"module_ema.fc.weight": torch.zeros(1)}
    loaded = load_named(wrapped, "timm:resnet10t", "file:w.pt", SourceHints(method="supervised"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(x), atol=1e-5)
    info = loaded.info
    assert info.arch == NamedArch("timm:resnet10t", 10) and info.num_classes == 10 and info.method == "supervised"
    assert any("'module.'" in note for note in info.notes) and any("dropped 1" in note for note in info.notes)
    assert loaded.identity.arch == "timm:resnet10t"
    assert info.sha256 == weights_digest(net.state_dict())  # the tensors loaded, not the wrapping, decide it
    assert loaded.identity.reading == f"input {input_config('timm:resnet10t').text}"


def test_weights_without_a_classifier_give_pooled_features():
    backbone = {k: v for k, v in build_named(RESNET).state_dict().items() if not k.startswith("fc.")}
    loaded = load_named(backbone, RESNET, "file:w.pt", SourceHints())
    assert loaded.info.num_classes == 0 and loaded.layers[-1][0] == "pooled"
    assert loaded.module(torch.randn(1, 3, 32, 32)).shape == (1, 512)


def test_named_weights_get_the_same_value_checks_as_every_checkpoint():
    state = build_named(RESNET).state_dict()
    state["fc.bias"] = torch.full_like(state["fc.bias"], float("nan"))
    with pytest.raises(CheckpointError, match="'fc.bias' contains NaN or infinite values"):
        load_named(state, RESNET, "file:w.pt", SourceHints())
    state = build_named(RESNET).state_dict() | {"bn1.running_var": -torch.ones(64)}
    with pytest.raises(CheckpointError, match="'bn1.running_var' has negative values"):
        load_named(state, RESNET, "file:w.pt", SourceHints())


def test_weights_of_another_architecture_are_refused_key_by_key():
    state = build_named("timm:resnet10t").state_dict()
    with pytest.raises(CheckpointError) as refused:
        load_named(state, "timm:resnet18", "file:w.pt", SourceHints())
    message = str(refused.value)
    assert (
        message.startswith("The weights do not fit timm:resnet18:")
        and "53 missing (conv1.weight, layer1.1.conv1.weight" in message
    )
    assert "unexpected (conv1.0.weight" in message and "#arch=timm:NAME" in message


def test_a_file_and_an_upload_naming_their_architecture_load(tmp_path):
    torch.manual_seed(1)
    net = build_named(VIT, num_classes=10)
    data = save_safetensors({k: v.contiguous() for k, v in net.state_dict().items()})
    path = tmp_path / "vit.safetensors"
    path.write_bytes(data)
    from_file = load_model(f"file:{path}#arch={VIT}")
    uploaded = load_uploaded(data, "vit.safetensors", arch=VIT)
    assert from_file.identity.source == f"file:{path}#arch={VIT}"
    assert uploaded.identity.source == f"upload:vit.safetensors#arch={VIT}"
    assert from_file.identity.sha256 == uploaded.identity.sha256 and _same_weights(from_file.module, net)
    assert from_file.input.size == (224, 224) and from_file.info.num_classes == 10
    buffer = io.BytesIO()
    torch.save({"state_dict": net.state_dict()}, buffer)
    assert _same_weights(load_uploaded(buffer.getvalue(), "vit.pt", arch=VIT).module, net)


def test_the_untrained_floor_of_a_named_architecture_is_its_library_initialisation_under_the_seed():
    trained = load_model("timm:resnet10t")
    floor = untrained_model(trained.info, 5)
    torch.manual_seed(5)
    assert _same_weights(floor.module, build_named("timm:resnet10t"))
    assert floor.layers == trained.layers and floor.input == trained.input
    assert floor.identity.source == "untrained:timm:resnet10t/classes=1000#seed=5"
