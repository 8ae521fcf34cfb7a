"""The weights' digest is the tensors' (models.digest): one network, one digest, whatever file holds it."""

from __future__ import annotations

import torch
from safetensors.torch import save as safetensors_bytes

from models import load_model, load_uploaded
from models.digest import weights_digest


def _wrappings(net, nets, tmp_path) -> dict[str, object]:
    """The same network loaded from five wrappings of its weights."""
    state = net.state_dict()
    counters = {k for k in state if k.endswith("num_batches_tracked")}
    lightning = {
        "state_dict": {f"model.backbone.{k}": v for k, v in state.items()}
        | {"model.projection_head.0.weight": torch.randn(4, 32)},
        "epoch": 7,
        "global_step": 70,
        "optimizer_states": [],
    }
    bare = {k: v for k, v in state.items() if k not in counters}  # an exporter that leaves the counters out
    return {
        "bare .pth": load_uploaded(nets.torch_bytes(state), "net.pth"),
        "Lightning .ckpt with a projection head": load_uploaded(nets.torch_bytes(lightning), "run.ckpt"),
        "DataParallel .pt without counters": load_uploaded(
            nets.torch_bytes({f"module.{k}": v for k, v in bare.items()}), "dp.pt"
        ),
        "safetensors file": load_uploaded(safetensors_bytes(dict(bare)), "net.safetensors"),
        "our folder (safetensors + config.json)": load_model(f"file:{nets.folder(tmp_path / 'f', net, 'simclr')}"),
    }


def test_the_same_tensors_in_any_wrapping_get_one_digest_and_one_store_key(nets, tmp_path):
    net = nets.make(num_classes=0)
    loaded = _wrappings(net, nets, tmp_path)
    digests = {name: model.info.sha256 for name, model in loaded.items()}
    assert set(digests.values()) == {weights_digest(net.state_dict())}, digests
    assert len({model.identity.key for model in loaded.values()}) == 1  # what the result store is keyed by


def test_a_changed_tensor_changes_the_digest(nets):
    net = nets.make(num_classes=10)
    state = net.state_dict()
    first = load_uploaded(nets.torch_bytes(state), "a.pth").info.sha256
    nudged = dict(state)
    weight = state["layer2.0.conv1.weight"].clone()
    weight.view(-1)[17] = torch.nextafter(weight.view(-1)[17], torch.tensor(1.0))  # one value, by one ulp
    nudged["layer2.0.conv1.weight"] = weight
    assert load_uploaded(nets.torch_bytes(nudged), "a.pth").info.sha256 != first
    assert load_uploaded(nets.torch_bytes(nets.make(num_classes=10, seed=1).state_dict()), "a.pth").info.sha256 != first


def test_names_shapes_and_dtypes_count_not_only_the_bytes():
    values = torch.arange(12, dtype=torch.float32)
    base = weights_digest({"a": values})
    assert weights_digest({"a": values.clone()}) == base  # the values, not the object
    assert weights_digest({"a": values.reshape(3, 4)}) != base
    assert weights_digest({"b": values}) != base
    assert weights_digest({"a": values.view(torch.int32)}) != base  # the same bytes read as another dtype
    assert weights_digest({"a": values[:6], "b": values[6:]}) != weights_digest({"a": values[:5], "b": values[5:]})
    assert weights_digest({"a": values.reshape(3, 4).t()}) == weights_digest({"a": values.reshape(3, 4).t().clone()})
    assert weights_digest({"a": values, "bn.num_batches_tracked": torch.tensor(5)}) == base  # counters left out
