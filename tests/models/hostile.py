"""Checkpoint files that try to change the server or exhaust its memory, rather than run code.

Each builder returns a file's bytes. Building them runs nothing and allocates little: the large sizes
are only declared. Never give these bytes to `pickle.loads` or an unpickler that reaches real objects.
"""

from __future__ import annotations

import io
import pickletools
import struct
import zipfile
from collections.abc import Callable

import torch
from torch import nn

from models.resnet import ArchConfig, build_resnet
from tests.models.payloads import Asm, zip_with_pickle

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def legacy_parts(data: bytes) -> tuple[bytes, bytes, bytes]:
    """A legacy torch file split into its three header pickles, its object pickle, and what follows it."""
    stream = io.BytesIO(data)
    for _ in range(3):
        for op, _, _ in pickletools.genops(stream):
            if op.name == "STOP":
                break
    head_end = stream.tell()
    for op, _, _ in pickletools.genops(stream):
        if op.name == "STOP":
            break
    return data[:head_end], data[head_end : stream.tell()], data[stream.tell() :]


def legacy_module(net: nn.Module) -> bytes:
    """A PyTorch < 1.6 file holding {'net': a whole module}, as kuangliu's old checkpoints do."""
    buffer = io.BytesIO()
    torch.save({"net": net}, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


def with_extra(data: bytes, key: str, payload: bytes) -> bytes:
    """The legacy file `data` (a dict pickle) with one more entry, `key`, built by the protocol-2 ops in
    `payload` (which must not use the memo)."""
    head, obj, rest = legacy_parts(data)
    assert obj[:2] == b"\x80\x02" and obj[-1:] == b"."
    body = obj[2:-1]  # the dict and its items; SETITEMS leaves the dict on the stack
    entry = Asm().str(key).out[2:] + payload + b"s"  # key, value, SETITEM onto the dict
    return head + b"\x80\x02" + body + bytes(entry) + b"." + rest


def _build_on_global(module: str, name: str, attrs: dict[str, bytes]) -> bytes:
    """GLOBAL module.name, then BUILD with slot state: setattr(global, attr, value) for each attr (each value
    given as the ops that push it)."""
    a = Asm().glob(module, name).op(b"N}")
    for attr, value in attrs.items():
        a.str(attr).op(value).op(b"s")
    return bytes(a.op(b"\x86b").out[2:])  # TUPLE2 (None, {...}), BUILD


def hostile_legacy_files(net: nn.Module) -> dict[str, bytes]:
    """Legacy whole-module files that load as `net` but, read by a general unpickler, change torch for every
    later load: a tensor rebuilder's defaults, a storage type's dtype, a collection type's behaviour."""
    clean = legacy_module(net)
    negate = Asm().op(b"}").str("negate").op(b"\x88s").out[2:]  # a metadata dict {'negate': True}
    return {
        "rebuild defaults": with_extra(
            clean,
            "x",
            _build_on_global("torch._utils", "_rebuild_tensor_v2", {"__defaults__": bytes(negate) + b"\x85"}),
        ),
        "storage dtype": with_extra(
            clean, "x", _build_on_global("torch", "FloatStorage", {"dtype": b"ctorch\nfloat64\n"})
        ),
        "ordered dict": with_extra(clean, "x", _build_on_global("collections", "OrderedDict", {"hostile": b"\x88"})),
    }


def torch_state() -> tuple:
    """What a hostile file might change in torch: compared before and after loading it."""
    return (
        torch._utils._rebuild_tensor_v2.__defaults__,
        torch.FloatStorage._dtype,
        vars(torch.FloatStorage).get("dtype"),
        dict(vars(torch.FloatStorage)).keys(),
        dict(vars(torch._utils._rebuild_tensor_v2)).keys(),
        hasattr(__import__("collections").OrderedDict, "hostile"),
    )


# ---------------------------------------------------------------- memory bombs


def bytearray_bomb() -> bytes:
    """builtins.bytearray(1.2e9) in a few hundred bytes."""
    a = Asm().op(b"}").str("state_dict").glob("builtins", "bytearray")
    a.op(b"J" + struct.pack("<i", 1_200_000_000)).tuple1().reduce().op(b"s")
    return zip_with_pickle(a.stop())


def codec_bomb() -> bytes:
    """26 nested _codecs.encode(..., 'hex') of 16 bytes: each doubles them, to a gigabyte."""
    a = Asm().op(b"}").str("state_dict")
    for _ in range(27):
        a.glob("_codecs", "encode")
    a.str("ab" * 8).str("latin1").tuple2().reduce()  # bytes, which the 'hex' codec then doubles 26 times
    for _ in range(26):
        a.str("hex").tuple2().reduce()
    return zip_with_pickle(a.op(b"s").stop())


def expanded_view_bomb() -> bytes:
    """A plain torch.save of a small ResNet's weights with one more entry: a zero-stride expanded view, 40000 x
    40000 floats over one stored float (6.4 GB once materialised, as a check of its values would)."""
    state = build_resnet(ArchConfig(18, width=4)).state_dict()
    buffer = io.BytesIO()
    torch.save(state | {"layer4.1.extra": torch.ones(1).expand(40000, 40000)}, buffer)
    return buffer.getvalue()


def zip_bomb() -> bytes:
    """A torch zip whose data.pkl is deflated: a gigabyte of unused pickle string, then the real pickle, in about
    a megabyte (written in chunks, so building it needs little memory)."""
    clean = io.BytesIO()
    torch.save({"w": torch.ones(2)}, clean)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(clean.getvalue())) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if not info.filename.endswith("data.pkl"):
                dst.writestr(info, body)
                continue
            packed = zipfile.ZipInfo(info.filename)
            packed.compress_type = zipfile.ZIP_DEFLATED
            with dst.open(packed, "w") as member:
                member.write(b"\x80\x02X" + struct.pack("<I", 1 << 30))
                for _ in range(64):
                    member.write(bytes(1 << 24))
                member.write(b"0" + body[2:])  # POP the string, then the real pickle
    return out.getvalue()


def huge_legacy_storage() -> bytes:
    """A legacy file whose one tensor's storage declares 2**38 floats (1 TB) and holds four bytes."""
    head, _, _ = legacy_parts(legacy_module(nn.Linear(1, 1)))
    a = Asm().op(b"}").str("w").glob("torch._utils", "_rebuild_tensor_v2").op(b"((")
    a.str("storage").glob("torch", "FloatStorage").str("0").str("cpu")
    a.op(b"\x8a\x05" + (1 << 38).to_bytes(5, "little") + b"NtQ")  # LONG1 numel, view None, TUPLE, BINPERSID
    a.op(b"K\x00K\x01\x85K\x01\x85\x89").glob("collections", "OrderedDict").op(b")Rt").reduce().op(b"s")
    keys = Asm().op(b"]").str("0").op(b"a").stop()
    return head + a.stop() + keys + struct.pack("<q", 1) + b"\0\0\0\0"


def _legacy_tensor(storage_key: bytes, stride: bytes) -> bytes:
    """A legacy file of one tensor {'w': ...} whose storage key and stride are given as the ops that push them."""
    head, _, _ = legacy_parts(legacy_module(nn.Linear(1, 1)))
    a = Asm().op(b"}").str("w").glob("torch._utils", "_rebuild_tensor_v2").op(b"((")
    a.str("storage").glob("torch", "FloatStorage").op(storage_key).str("cpu").op(b"K\x01NtQ")
    a.op(b"K\x00K\x01\x85").op(stride).op(b"\x89").glob("collections", "OrderedDict").op(b")Rt").reduce().op(b"s")
    keys = Asm().op(b"]").str("0").op(b"a").stop()
    return head + a.stop() + keys + struct.pack("<q", 1) + b"\0\0\0\0"


def unhashable_storage_key() -> bytes:
    """A legacy tensor whose storage key is a list."""
    return _legacy_tensor(b"]", b"K\x01\x85")


def negative_stride() -> bytes:
    """A legacy tensor with a stride of -1."""
    return _legacy_tensor(b"X\x01\x00\x00\x000", b"J\xff\xff\xff\xff\x85")


BOMBS: dict[str, Callable[[], bytes]] = {
    "bytearray": bytearray_bomb,
    "codecs": codec_bomb,
    "expanded view": expanded_view_bomb,
    "zip bomb": zip_bomb,
    "huge legacy storage": huge_legacy_storage,
}


def many_empty_tensors(count: int = 300_000) -> bytes:
    """A safetensors file of `count` empty tensors: a few dozen bytes each on disk, far more once read."""
    entries = ",".join(f'"t{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' for i in range(count))
    header = ("{" + entries + "}").encode()
    return struct.pack("<Q", len(header)) + header


BOMBS["many empty tensors"] = many_empty_tensors
