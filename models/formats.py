"""Bytes -> state dict: recognise the file format, parse it safely, and find the weights inside.

Nothing here runs code from the file: safetensors is parsed by its own (Rust) reader, which checks
the header against the data, and every PyTorch file goes through `torch.load(weights_only=True)`
from memory, with the classes it pickles stood in for by inert placeholders (models.safe_pickle).
There is no fallback to `weights_only=False`.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from models.errors import CheckpointError
from models.methods import known_method
from models.safe_pickle import DamagedPickle, UnsafeCheckpoint, strings_in, unpickle

SUPPORTED_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".tar", ".ckpt", ".th", ".t7")  # any name: content decides
SUPPORTED_TEXT = "a .safetensors file or a PyTorch checkpoint (.pt, .pth, .pth.tar, .bin, .th, .t7, Lightning .ckpt)"
MAX_TENSORS = 10_000  # a ResNet-152 has about 930 tensors in its state dict
MAX_KEY_CHARS = 300  # the longest weight name a network has is under 100 characters
MAX_SAFETENSORS_HEADER = 4 << 20  # bytes of JSON header; ~150 bytes per tensor
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net")  # where trainers nest the state dict

# Leading bytes of files people upload by mistake, so the error can say what the file really is.
_FOREIGN_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"\x93NUMPY": "a NumPy .npy array",
    b"\x89HDF": "an HDF5 (Keras .h5) file",
}


@dataclass(frozen=True)
class ParsedFile:
    """The tensors found in a file and what was done to find them."""

    tensors: dict[str, torch.Tensor]
    format: str  # "safetensors" or "torch"
    notes: tuple[str, ...]
    lightning: bool  # the file was a Lightning-style checkpoint (weights nested under "state_dict")
    method: str | None = None  # the training method the file's own metadata names (hyper_parameters, args ...)


def parse_checkpoint(data: bytes, filename: str) -> ParsedFile:
    """Recognise `data`'s format from its content (not its name) and return the tensors inside."""
    filename = filename if len(filename) <= 120 else filename[:117] + "..."  # quoted in every message below
    kind = detect_format(data, filename)
    if kind == "safetensors":
        return ParsedFile(_read_safetensors(data, filename), "safetensors", (), False)
    obj = _read_torch(data, filename)
    tensors, notes, lightning = extract_state_dict(obj, filename)
    odd = [k for k in tensors if not isinstance(k, str) or len(k) > MAX_KEY_CHARS]
    if odd:
        raise CheckpointError(
            f"'{filename}' has a weight named {repr(odd[0])[:60]} (a state dict's keys are names of at most "
            f"{MAX_KEY_CHARS} characters); save `model.state_dict()`."
        )
    if len(tensors) > MAX_TENSORS:
        raise CheckpointError(
            f"'{filename}' holds {len(tensors):,} tensors, more than a network has (at most {MAX_TENSORS:,} are "
            "read); save only the network's state_dict()."
        )
    return ParsedFile(tensors, "torch", notes, lightning, method_in_metadata(obj))


def detect_format(data: bytes, filename: str) -> str:
    """'safetensors' or 'torch', from the leading bytes; anything else is a CheckpointError.

    The content decides because names lie (a PNG renamed .pt) and Hub files have fixed names.
    """
    if not data:
        raise CheckpointError(f"'{filename}' is empty (0 bytes); choose {SUPPORTED_TEXT}.")
    for magic, what in _FOREIGN_MAGIC.items():
        if data.startswith(magic):
            raise CheckpointError(f"'{filename}' is {what}, not a checkpoint; choose {SUPPORTED_TEXT}.")
    if _looks_like_safetensors(data):  # first: a header length of 128 also starts with the pickle byte 0x80
        return "safetensors"
    if data.startswith(b"PK\x03\x04"):
        _check_torch_zip(data, filename)
        return "torch"
    if data[:1] == b"\x80" or data[257:262] == b"ustar":  # pickle protocol >= 2, or torch's legacy tar format
        return "torch"
    raise CheckpointError(
        f"'{filename}' is neither a safetensors file nor a PyTorch checkpoint (unrecognised content); "
        f"choose {SUPPORTED_TEXT}."
    )


def _looks_like_safetensors(data: bytes) -> bool:
    """A safetensors file starts with a little-endian u64 header length followed by a JSON object.

    The length is not checked here: a lying or truncated header is safetensors' reader's to report.
    """
    return len(data) >= 10 and data[8:9] == b"{" and struct.unpack("<Q", data[:8])[0] >= 2


def _check_torch_zip(data: bytes, filename: str) -> None:
    """A torch zip archive holds `<name>/data.pkl`; any other zip (or a broken one) is refused early."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as err:
        raise CheckpointError(
            f"'{filename}' is a damaged or truncated zip archive ({err}); download or export it again."
        ) from None
    if not any(name.endswith("data.pkl") for name in names):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise CheckpointError(
            f"'{filename}' is a zip archive ({shown}) but not a PyTorch checkpoint (no data.pkl inside); "
            f"choose {SUPPORTED_TEXT}."
        )


def _read_safetensors(data: bytes, filename: str) -> dict[str, torch.Tensor]:
    """Parse with safetensors' reader, which validates the header's offsets against the bytes, once the header
    itself is checked to be of a size and tensor count a network could have (a header of a million empty
    tensors would cost gigabytes and a minute to read)."""
    (length,) = struct.unpack("<Q", data[:8])
    header: object = {}  # a header longer than the file, or not JSON, is damage: safetensors' reader says so
    if length > MAX_SAFETENSORS_HEADER and length <= len(data) - 8:
        header = None
    elif length <= len(data) - 8:
        try:
            header = json.loads(data[8 : 8 + length])
        except ValueError:
            pass
    if header is None or (isinstance(header, dict) and len(header) > MAX_TENSORS + 1):
        raise CheckpointError(
            f"'{filename}' declares more tensors than a network holds (at most {MAX_TENSORS:,} are read); "
            "export only the network's weights."
        )
    try:
        return dict(load_safetensors(data))
    except (SafetensorError, ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(
            f"'{filename}' is a damaged or truncated safetensors file ({_one_line(err)}); export it again "
            "with safetensors.torch.save_file."
        ) from None


def _read_torch(data: bytes, filename: str) -> object:
    """The checkpoint's objects, unpickled by torch's weights-only unpickler with every unknown class stood in for
    by an inert placeholder (models.safe_pickle): nothing named in the file is imported or run."""
    try:
        return unpickle(data)
    except DamagedPickle as err:
        raise CheckpointError(
            f"'{filename}' could not be read as a PyTorch checkpoint ({err}); it may be truncated or damaged: "
            "download or export it again."
        ) from None
    except UnsafeCheckpoint as err:
        raise CheckpointError(
            f"'{filename}' was not loaded, and nothing in it ran: {err}. If you trust the file, load it yourself "
            f"and re-save only the weights, e.g. `{resave_hint(data)}`, then load that."
        ) from None


def resave_hint(data: bytes) -> str:
    """How to re-save this file's weights: under the key it keeps them, as far as its pickle's strings tell."""
    words = set(strings_in(data))
    key = next((k for k in NESTED_KEYS if k in words), None)
    if key == "net" and "_modules" in words:  # kuangliu's old files: a whole module under 'net'
        return "torch.save(ckpt['net'].state_dict(), 'weights.pt')"
    if key:
        return f"torch.save(ckpt['{key}'], 'weights.pt')"
    if "_modules" in words:
        return "torch.save(model.state_dict(), 'weights.pt')"
    return "torch.save(ckpt['state_dict'], 'weights.pt')"


METADATA_KEYS = ("hyper_parameters", "hparams", "args", "opt", "config", "cfg")  # where trainers keep settings


def method_in_metadata(obj: object, depth: int = 0) -> str | None:
    """A 'method' string in the settings a trainer saved beside the weights (Lightning's hyper_parameters,
    an argparse Namespace under 'args' or 'opt', a config), or a known method heading a 'model_name', searched
    a few levels deep; None if there is none."""
    if not isinstance(obj, Mapping) or depth > 3:
        return None
    if depth and isinstance(obj.get("method"), str):
        return obj["method"]
    if depth and isinstance(obj.get("model_name"), str):  # SupContrast: 'SupCE_cifar10_resnet18_lr_...'
        found = known_method(obj["model_name"].split("_", 1)[0])
        if found:
            return found
    for key, value in obj.items():
        if (depth or key in METADATA_KEYS) and isinstance(value, Mapping):
            found = method_in_metadata(value, depth + 1)
            if found:
                return found
    return None


def extract_state_dict(obj: object, filename: str) -> tuple[dict[str, torch.Tensor], tuple[str, ...], bool]:
    """Find the state dict in what torch.load returned: the dict itself or one nested by a trainer.

    Returns the tensors, notes on where they were found, and whether it was a Lightning checkpoint.
    """
    notes: list[str] = []
    path: list[str] = []
    for _ in range(4):  # trainers nest at most a few levels deep ({"model": {"state_dict": ...}})
        if not isinstance(obj, Mapping):
            raise CheckpointError(
                f"'{filename}' holds a {type(obj).__name__}, not a state dict; save `model.state_dict()` instead."
            )
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        nested = next((k for k in NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            return _tensor_entries(obj, filename, path, notes), tuple(notes), path[:1] == ["state_dict"]
        path.append(nested)
        obj = obj[nested]
    if path:
        where = "".join(f"['{p}']" for p in path)
        notes.append(f"took the weights from the checkpoint's {where} entry")
    return dict(obj), tuple(notes), path[:1] == ["state_dict"]  # type: ignore[arg-type]


def _tensor_entries(obj: Mapping, filename: str, path: list[str], notes: list[str]) -> dict[str, torch.Tensor]:
    """A dict that mixes tensors with other values: keep the tensors if they look like weights."""
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(repr(k) for k in list(obj)[:6]) or "none"
        raise CheckpointError(
            f"'{filename}' holds no tensors where a state dict was expected (keys: {keys}); supported: "
            f"a state dict, or a dict holding one under {', '.join(repr(k) for k in NESTED_KEYS)}."
        )
    if path:
        notes.append("took the weights from the checkpoint's " + "".join(f"['{p}']" for p in path) + " entry")
    notes.append(f"ignored {len(obj) - len(tensors)} non-tensor entries")
    return tensors


def _one_line(err: BaseException) -> str:
    """An exception's message squeezed to one short line, for embedding in our sentence."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."
