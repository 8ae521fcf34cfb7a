"""Pickled objects in checkpoints: honest ones load without running anything; code payloads never run."""

from __future__ import annotations

import argparse
import collections
import io
import pickle
import subprocess
import sys
import types
import warnings
import zipfile

import pytest
import torch
from torch import nn

from models import CheckpointError, load_uploaded, safe_pickle
from tests.models import hostile
from tests.models.payloads import PAYLOADS, _Reduce


def _save(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.name)
def test_a_code_payload_is_refused_by_the_loader_and_never_runs(payload, tmp_path):
    sentinel = tmp_path / "ran"
    data = payload.build(str(sentinel))
    with pytest.raises(CheckpointError) as refused:
        load_uploaded(data, "checkpoint.pt")
    assert not sentinel.exists(), payload.description
    message = str(refused.value)
    assert "checkpoint.pt" in message and len(message.splitlines()) == 1


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.name)
def test_placeholders_alone_keep_every_payload_inert(payload, tmp_path, monkeypatch):
    """The deny list is a second wall: switched off, the placeholders still run nothing."""
    monkeypatch.setattr(safe_pickle, "_denied", lambda name: False)
    sentinel = tmp_path / "ran"
    data = payload.build(str(sentinel))
    try:
        safe_pickle.unpickle(data)
    except safe_pickle.UnsafeCheckpoint:
        pass
    assert not sentinel.exists(), payload.description


def test_there_are_enough_payloads_of_every_kind():
    assert len(PAYLOADS) >= 12
    names = {p.name for p in PAYLOADS}
    assert {
        "subprocess_popen",
        "builtins_eval",
        "runpy_run_code",
        "importlib_import_module",
        "functools_partial",
        "whole_module_nested",
        "lightning_hparams",
        "optimizer_state",
    } <= names


class _FakeLibrary:
    """Registers classes under a library's real module path while a file is written, as a real file would
    refer to them (the library itself is not installed here)."""

    def __init__(self, module: str, **classes: type):
        self.module, self.classes = module, classes

    def __enter__(self):
        parts = self.module.split(".")
        self.added = [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) not in sys.modules]
        for name in self.added:
            sys.modules[name] = types.ModuleType(name)
        for name, cls in self.classes.items():
            cls.__module__, cls.__qualname__ = self.module, name
            setattr(sys.modules[self.module], name, cls)
        return self

    def __exit__(self, *exc):
        for name in self.added:
            del sys.modules[name]


def test_a_lightning_checkpoint_with_a_namespace_and_a_callback_loads_its_weights(nets):
    net = nets.make()

    class ModelCheckpoint:  # pickled as a dict key, as PL <= 1.4 does
        pass

    with _FakeLibrary("pytorch_lightning.callbacks.model_checkpoint", ModelCheckpoint=ModelCheckpoint):
        data = _save(
            {
                "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"args": argparse.Namespace(method="simclr", lr=0.1)},
                "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.9)}},
                "epoch": 3,
            }
        )
    loaded = load_uploaded(data, "last.ckpt")
    nets.assert_same_outputs(net, loaded.module)


def test_a_whole_pickled_module_gives_its_state_dict(nets):
    net = nets.make()
    wrapped = nn.DataParallel(net)
    data = _save({"net": wrapped, "acc": 91.0, "epoch": 10})
    got = safe_pickle.unpickle(data)["net"]
    assert got.keys() == {f"module.{k}" for k in net.state_dict()}
    assert all(torch.equal(got[f"module.{k}"], v) for k, v in net.state_dict().items())


def test_dict_and_list_subclasses_and_configs_become_plain_data():
    class AttributeDict(dict):
        pass

    class ListConfig(list):
        pass

    with _FakeLibrary("lightning_fabric.utilities.data", AttributeDict=AttributeDict):
        with _FakeLibrary("somelib.lists", ListConfig=ListConfig):
            data = _save(
                {
                    "hparams": AttributeDict(method="byol", depth=18),
                    "stages": ListConfig([1, 2]),
                    "w": torch.ones(2),
                    "order": collections.Counter("aab"),
                }
            )
    got = safe_pickle.unpickle(data)
    assert got["hparams"] == {"method": "byol", "depth": 18}
    assert got["stages"] == [1, 2] and got["order"] == {"a": 2, "b": 1}
    assert torch.equal(got["w"], torch.ones(2))


def test_a_torchscript_archive_is_refused_without_being_run():
    data = io.BytesIO()
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), data)
    with pytest.raises(safe_pickle.UnsafeCheckpoint, match="TorchScript"):
        safe_pickle.unpickle(data.getvalue())


@pytest.mark.parametrize(
    ("where", "hint"),
    [
        ("model", "torch.save(ckpt['model'], 'weights.pt')"),
        ("net", "torch.save(ckpt['net'], 'weights.pt')"),
        ("state_dict", "torch.save(ckpt['state_dict'], 'weights.pt')"),
    ],
)
def test_a_refusal_names_the_key_this_file_keeps_its_weights_under(where, hint, tmp_path):
    sentinel = tmp_path / "ran"
    gadget = _Reduce(subprocess.call, (["touch", str(sentinel)],))
    data = _save({where: nn.Linear(2, 2).state_dict(), "epoch": 3, "extra": gadget})
    with pytest.raises(CheckpointError) as refused:
        load_uploaded(data, "ckpt.pth")
    assert f"`{hint}`" in str(refused.value) and not sentinel.exists()


def test_no_hostile_legacy_file_changes_a_later_load(nets):
    """Files that, read by a general unpickler, would set attributes on torch's own rebuilders, storage types or
    OrderedDict: each is refused or loaded, and torch and the next load of an honest file stay as they were."""
    net = nets.make(width=2)
    victim = hostile.legacy_module(net)
    torch_before = hostile.torch_state()
    first = load_uploaded(victim, "victim.pt")
    for name, data in hostile.hostile_legacy_files(net).items():
        try:
            load_uploaded(data, f"{name}.pt")
        except CheckpointError as refused:
            assert len(str(refused).splitlines()) == 1
        assert hostile.torch_state() == torch_before, name
        again = load_uploaded(victim, "victim.pt")
        nets.assert_same_outputs(first.module, again.module)
        nets.assert_same_outputs(net, again.module)


def test_a_legacy_whole_module_file_loads_through_the_inert_reader(nets):
    net = nets.make(width=2)
    got = safe_pickle.unpickle(hostile.legacy_module(net))["net"]
    assert got.keys() == net.state_dict().keys()
    assert all(torch.equal(got[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (hostile.unhashable_storage_key, "storage record"),
        (hostile.negative_stride, "not valid"),
        (hostile.huge_legacy_storage, "more than the file holds"),
    ],
)
def test_a_malformed_legacy_file_is_refused_in_one_line(build, says):
    with pytest.raises(CheckpointError) as refused:
        load_uploaded(build(), "old.pt")
    assert says in str(refused.value) and len(str(refused.value).splitlines()) == 1


def _rezipped(data: bytes, extra: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> bytes:
    """A torch zip with its members rewritten (deflated when asked) and `extra` members added."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=compress)
        for name, body in extra.items():
            dst.writestr(name, body)
    return out.getvalue()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"archive/sub/data.pkl": b"\x80\x02}."}, "exactly one data.pkl"),
        ({"decoy/data.pkl": b"\x80\x02}."}, "exactly one data.pkl"),
        ({"archive/data.pkl": b"\x80\x02}."}, "exactly one data.pkl"),
        ({"archive/byteorder": b"big"}, "duplicate or stray members"),
        ({"stray.bin": b"x"}, "duplicate or stray members"),
        ("deflated", "compressed"),
    ],
)
def test_a_zip_whose_scanned_pickle_might_not_be_the_one_read_is_refused(change, says, tmp_path):
    sentinel = tmp_path / "ran"
    honest = _save({"w": torch.ones(2), "x": _Reduce(subprocess.call, (["touch", str(sentinel)],))})
    clean = _save({"w": torch.ones(2)})
    if change == "deflated":
        data = _rezipped(clean, {}, zipfile.ZIP_DEFLATED)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": the point of the file
            data = _rezipped(clean if "archive/data.pkl" not in change else honest, change)
    with pytest.raises(safe_pickle.UnsafeCheckpoint, match=says):
        safe_pickle.unpickle(data)
    assert not sentinel.exists()


def test_a_refusal_never_passes_on_torchs_advice_to_load_unsafely(monkeypatch, nets):
    """torch's message for a blocked module opens with 'Re-running torch.load with weights_only set to False will
    likely succeed': a refusal of ours never says that."""
    blocked = (
        f"Weights only load failed. {torch.serialization.UNSAFE_MESSAGE}\n\n"
        "Trying to load unsupported GLOBAL zz.yy whose module zz is blocked."
    )

    def load(*args, **kwargs):
        raise pickle.UnpicklingError(blocked)

    monkeypatch.setattr(torch, "load", load)
    with pytest.raises(CheckpointError) as refused:
        load_uploaded(_save(nets.make().state_dict()), "w.pt")
    assert "weights_only" not in str(refused.value) and "False" not in str(refused.value)
