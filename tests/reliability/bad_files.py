"""Bad checkpoint files people upload, built in memory: (file name, bytes) per kind.

Shared by the command-line and app-uploader tests so both face exactly the same files.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save as safetensors_bytes

from models.resnet import ArchConfig, build_resnet
from tests.models import hostile

SMALL = ArchConfig(depth=18, width=4, num_classes=10)


def _state(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in build_resnet(SMALL).state_dict().items()}


def _torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class Payload:
    """Unpickling this would create `marker` (it must never happen)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _lying_safetensors() -> bytes:
    header = {"conv1.weight": {"dtype": "F32", "shape": [4, 3, 3, 3], "data_offsets": [0, 10_000_000]}}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * 64


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "not a torch archive")
    return buf.getvalue()


def _poisoned(value: float) -> bytes:
    state = _state()
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = value
    return _torch_bytes(state)


def _with(change: Callable[[dict], dict]) -> bytes:
    """A valid state dict, changed by `change`, as torch.save writes it."""
    return _torch_bytes(change(_state()))


def _negative_variance(state: dict) -> dict:
    state["layer1.0.bn1.running_var"][0] = -1.0  # finite, but the features would be NaN
    return state


def _other_architecture(name: str) -> bytes:
    import torchvision

    return _torch_bytes(getattr(torchvision.models, name)(weights=None).state_dict())


def bad_files(marker: Path) -> dict[str, Callable[[], tuple[str, bytes]]]:
    """Kind -> builder of (file name, bytes). Every one must be refused with a clear message."""
    return {
        "empty": lambda: ("weights.pt", b""),
        "truncated safetensors": lambda: ("model.safetensors", safetensors_bytes(_state())[:5000]),
        "safetensors header lying about sizes": lambda: ("model.safetensors", _lying_safetensors()),
        "random bytes": lambda: ("weights.pt", np.random.default_rng(0).bytes(4096)),
        "image renamed .pt": lambda: ("weights.pt", _png()),
        "pickle with a code payload": lambda: ("weights.pkl", pickle.dumps(Payload(marker))),
        "torch.save with a code payload": lambda: ("weights.pt", _torch_bytes({"model": Payload(marker)})),
        "mobilenet state dict": lambda: ("mobilenet.pth", _other_architecture("mobilenet_v3_small")),
        "squeezenet state dict": lambda: ("squeezenet.pth", _other_architecture("squeezenet1_1")),
        "nan weights": lambda: ("weights.pt", _poisoned(float("nan"))),
        "inf weights": lambda: ("weights.pt", _poisoned(float("inf"))),
        "zip that is not a torch archive": lambda: ("weights.pt", _zip()),
        "truncated torch archive": lambda: ("weights.pt", _torch_bytes(_state())[:20000]),
        "torch file holding a tensor, not a state dict": lambda: ("weights.pt", _torch_bytes(torch.zeros(3))),
        "state dict with missing blocks": lambda: (
            "weights.pt",
            _torch_bytes({k: v for k, v in _state().items() if not k.startswith("layer4.1.")}),
        ),
        "unsupported extension": lambda: ("weights.onnx", b"\x08\x07onnx"),
        "state dict with int keys": lambda: ("weights.pt", _with(lambda s: {i: v for i, v in enumerate(s.values())})),
        "state dict with tuple keys": lambda: ("weights.pt", _with(lambda s: {tuple(k): v for k, v in s.items()})),
        "complex64 weights": lambda: ("weights.pt", _with(lambda s: {k: v.to(torch.complex64) for k, v in s.items()})),
        "float8 weights": lambda: ("weights.pt", _with(lambda s: {k: v.to(torch.float8_e4m3fn) for k, v in s.items()})),
        "negative BatchNorm variance": lambda: ("weights.pt", _with(_negative_variance)),
        "a weight named with 10 MB": lambda: ("weights.pt", _with(lambda s: s | {"x" * 10_000_000: torch.zeros(1)})),
        "legacy file with an unhashable storage key": lambda: ("old.pt", hostile.unhashable_storage_key()),
        "legacy file with a negative stride": lambda: ("old.pt", hostile.negative_stride()),
        "legacy file declaring a terabyte": lambda: ("old.pt", hostile.huge_legacy_storage()),
    }


def good_files() -> dict[str, Callable[[], tuple[str, bytes]]]:
    """Unusual but valid files that must load."""
    return {
        "half precision": lambda: ("weights.pt", _torch_bytes(_state(torch.float16))),
        "bfloat16 safetensors": lambda: ("model.safetensors", safetensors_bytes(_state(torch.bfloat16))),
        "lightning checkpoint with a Namespace": lambda: (
            "last.ckpt",
            _torch_bytes({"state_dict": _state(), "hyper_parameters": argparse.Namespace(lr=0.1)}),
        ),
        "unknown wrapper prefix": lambda: (
            "weights.pth",
            _torch_bytes({"module." + k: v for k, v in _state().items()}),
        ),
    }
