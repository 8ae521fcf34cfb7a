"""Unpickling a PyTorch checkpoint without importing or running anything named in it.

`torch.load(weights_only=True)` refuses every global it does not know, so an honest checkpoint that
also pickles a harmless object (hyper-parameters as an argparse.Namespace, a Lightning callback, an
omegaconf config, an mmengine buffer, a whole nn.Module) would be refused. Here each such global is
stood in for by a fresh, inert placeholder class of ours, registered with
`torch.serialization.safe_globals`: torch's own unpickler then builds placeholders that only record
their arguments. Nothing from the file is imported or called; torch's own allowlist (tensors, storages,
OrderedDict) and blocklist (os, sys, posix, nt) still win over any placeholder.

A static scan (pickletools only parses) runs first and refuses files that name a module no checkpoint
needs (subprocess, eval, runpy, ...): a second wall, not the guarantee. Measured with 23 payloads that
would run code: none ran, with or without the scan.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import pickletools
import re
import threading
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

import torch
from torch._utils import IMPORT_MAPPING, NAME_MAPPING

from models.errors import CheckpointError

# The opcodes torch's weights-only unpickler implements (protocol 2): anything else it would refuse anyway.
TORCH_OPCODES = frozenset(
    "GLOBAL NEWOBJ REDUCE BUILD APPEND APPENDS SETITEM SETITEMS MARK TUPLE TUPLE1 TUPLE2 TUPLE3 NONE NEWFALSE "
    "NEWTRUE EMPTY_TUPLE EMPTY_LIST EMPTY_DICT EMPTY_SET BININT BININT1 BININT2 BINFLOAT BINUNICODE "
    "SHORT_BINSTRING BINPERSID BINGET LONG_BINGET BINPUT LONG_BINPUT LONG1 PROTO STOP".split()
)
# Modules a weights file never needs; naming one is refused outright (checked in every spelling).
DENIED_MODULES = frozenset(
    "os posix nt sys subprocess commands runpy importlib pickle _pickle cPickle marshal shutil socket ctypes _ctypes "
    "code codeop codecs pty pdb bdb webbrowser timeit platform multiprocessing _posixsubprocess signal "
    "asyncio threading thread _thread types inspect operator _operator tempfile pathlib io _io shlex glob "
    "zipimport site sysconfig cProfile profile trace dill cloudpickle joblib yaml IPython _osx_support "
    "torch.hub torch.jit torch._C torch.package torch.ops torch._dynamo torch.cuda torch.distributed "
    "torch.multiprocessing torch.utils.cpp_extension torch.utils.data torch.serialization.load "
    "numpy.testing numpy.f2py numpy.distutils numpy.lib numpy.ctypeslib numpy.load".split()
)
# builtins a checkpoint may name (solo-learn files really pickle builtins.getattr); every other is refused.
ALLOWED_BUILTINS = frozenset(
    "set frozenset dict list tuple object getattr slice range complex bytearray bytes int float str bool".split()
)
MAX_RETRIES = 64
_PLACEHOLDER_IN_ERROR = re.compile(r"_Stand(\d+)'")
_LOCK = threading.Lock()  # safe_globals is process-wide: one load at a time may register placeholders


class UnsafeCheckpoint(CheckpointError):
    """The file is not loaded; the message says what it holds that will not be loaded, as a clause ("it refers to
    ...") that models.formats words into a whole sentence for the person."""


class DamagedPickle(UnsafeCheckpoint):
    """The file's pickle does not parse: it is truncated or damaged, or not a pickle at all."""


class Placeholder:
    """An inert stand-in for one pickled class or function: it records its arguments and state, nothing more.

    No __getattr__, __call__, __eq__ or __reduce__: a placeholder instance can be neither called nor compared.
    """

    stands_for = "?"

    def __new__(cls, *args: Any) -> Placeholder:
        obj = object.__new__(cls)
        object.__setattr__(obj, "args", args)
        object.__setattr__(obj, "state", None)
        return obj

    def __init__(self, *args: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:  # without it, BUILD would setattr whatever the file says
        object.__setattr__(self, "state", state)

    def __repr__(self) -> str:
        return f"<placeholder for {self.stands_for}>"


class ListPlaceholder(list):
    """Stands in for a pickled list subclass: torch appends only to lists and allowlisted list subclasses."""

    stands_for = "?"

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _DictLike:
    """Stands in for a pickled dict subclass (Lightning's AttributeDict, defaultdict): torch sets items only on
    a real dict, so this "class" makes a plain OrderedDict."""

    stands_for = "?"

    def __new__(cls, *args: Any) -> collections.OrderedDict:
        return collections.OrderedDict()


def _scan(stream: io.BytesIO) -> Iterator[tuple[str, str]]:
    """(opcode, "module.name") of one pickle in `stream`, without running it; names as written."""
    for op, arg, _ in pickletools.genops(stream):
        yield op.name, (arg.replace(" ", ".", 1) if op.name in ("GLOBAL", "INST") else "")
        if op.name == "STOP":
            return


def _pickles(data: bytes) -> list[bytes] | io.BytesIO:
    """The pickle of a zip checkpoint (data.pkl), or the stream of a legacy one (its first five pickles)."""
    if not data.startswith(b"PK\x03\x04"):
        return io.BytesIO(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise UnsafeCheckpoint("it is a TorchScript archive (loading it would run its code), not a checkpoint")
        pickle_name = next((n for n in names if n.endswith("data.pkl")), None)
        if pickle_name is None:
            raise UnsafeCheckpoint("it is a zip archive without data.pkl, not a torch.save checkpoint")
        return [archive.read(pickle_name)]


def strings_in(data: bytes, limit: int = 10_000) -> list[str]:
    """The first `limit` strings a checkpoint's pickle holds (dict keys among them), read without running it;
    [] when the pickle does not parse."""
    found: list[str] = []
    try:
        source = _pickles(data)
        streams = [io.BytesIO(p) for p in source] if isinstance(source, list) else [source] * 5
        for stream in streams:
            for op, arg, _ in pickletools.genops(stream):
                if (
                    op.name in ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "SHORT_BINSTRING")
                    and len(found) < limit
                ):
                    found.append(str(arg))
                if op.name == "STOP":
                    break
    except Exception:  # noqa: BLE001 - a hint, never a reason to fail
        pass
    return found


def _spellings(name: str) -> set[str]:
    """A global as written, as torch looks it up, and as plain pickle would import it (protocol 2 writes
    Python 2 names: subprocess.Popen is saved as commands.Popen)."""
    module, _, attr = name.rpartition(".")
    python_name = _compat_pickle.NAME_MAPPING.get(
        (module, attr), (_compat_pickle.IMPORT_MAPPING.get(module, module), attr)
    )
    return {name, _torch_name(name), ".".join(python_name)}


def _denied(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    if module in ("builtins", "__builtin__"):
        return attr not in ALLOWED_BUILTINS
    parts = name.split(".")
    prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    dunder = any(p.startswith("__") and p.endswith("__") for p in parts[1:])
    return bool(prefixes & DENIED_MODULES) or dunder or any(p in DENIED_MODULES for p in parts[1:])


def globals_in(data: bytes) -> list[str]:
    """Every global a torch checkpoint names (as torch will look it up); refuses what must not be loaded."""
    found: list[tuple[str, str]] = []
    try:
        source = _pickles(data)
        if isinstance(source, list):
            for pickle_bytes in source:
                found += _scan(io.BytesIO(pickle_bytes))
        else:  # legacy format: magic, protocol, system info, the object, storage keys
            for _ in range(5):
                found += _scan(source)
    except UnsafeCheckpoint:
        raise
    except Exception as err:  # noqa: BLE001 - a pickle that does not parse is not loaded
        _refuse_unsafe(found)  # what parsed before the damage may already say more (a plain pickle's payload)
        raise DamagedPickle(f"its pickle does not parse ({type(err).__name__}: {str(err)[:80]})") from None
    _refuse_unsafe(found)
    return sorted({_torch_name(name) for _, name in found if name})


def _refuse_unsafe(found: list[tuple[str, str]]) -> None:
    """Refuse globals a checkpoint never needs and opcodes torch's weights-only unpickler does not run."""
    denied = sorted({n for _, n in found if n and any(_denied(s) for s in _spellings(n))})
    if denied:
        raise UnsafeCheckpoint(f"it refers to {', '.join(denied[:3])}, which a checkpoint never needs")
    unknown = sorted({op for op, _ in found} - TORCH_OPCODES)
    if unknown:
        raise UnsafeCheckpoint(f"it uses pickle opcodes that safe loading does not run ({', '.join(unknown)})")


def _torch_name(name: str) -> str:
    """The name torch's unpickler looks a global up by (after its own Python 2 mapping)."""
    module, _, attr = name.rpartition(".")
    return ".".join(NAME_MAPPING.get((module, attr), (IMPORT_MAPPING.get(module, module), attr)))


def _stand_ins(names: list[str], dict_like: set[str], list_like: set[str]) -> list[tuple[type, str]]:
    """A fresh class per global, named _StandN so torch's error messages say which one it tripped on."""
    out = []
    for i, name in enumerate(names):
        base = _DictLike if name in dict_like else ListPlaceholder if name in list_like else Placeholder
        out.append((type(f"_Stand{i}", (base,), {"stands_for": name, "__module__": __name__}), name))
    return out


def unpickle(data: bytes) -> Any:
    """torch.load(weights_only=True) of `data` with every unknown global stood in for; plain data comes back.

    Raises UnsafeCheckpoint with a reason for anything that cannot be loaded this way.
    """
    names = globals_in(data)
    dict_like: set[str] = set()
    list_like: set[str] = set()
    for _ in range(MAX_RETRIES):
        try:
            with _LOCK, torch.serialization.safe_globals(_stand_ins(names, dict_like, list_like)):
                loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True, mmap=False)
        except Exception as err:  # noqa: BLE001 - every failure is a refusal, after the retries below
            message = str(err)
            which = _PLACEHOLDER_IN_ERROR.search(message)
            if which and "SETITEM" in message and names[int(which.group(1))] not in dict_like:
                dict_like.add(names[int(which.group(1))])
                continue
            if which and "append to lists" in message and names[int(which.group(1))] not in list_like:
                list_like.add(names[int(which.group(1))])
                continue
            if "persistent_load of storage" in message and not data.startswith(b"PK"):
                return plain(_legacy_with_modules(data, names))
            reason = message.split("WeightsUnpickler error:")[-1].strip().split("\n")[0]
            raise UnsafeCheckpoint(f"safe loading refused it ({reason[:200]})") from None
        return plain(loaded)
    raise UnsafeCheckpoint("its objects could not be stood in for")


# What the legacy reader below hands out as itself: torch's tensor rebuilders and storage types (read for their
# dtype only), and OrderedDict. Every other global becomes a placeholder.
_LEGACY_OWN = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
} | {
    f"torch.{kind}Storage": getattr(torch, f"{kind}Storage")
    for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
}


class _LegacyReader(pickle.Unpickler):
    """The object pickle of a PyTorch < 1.6 file (no zip) that pickled whole modules, which torch's weights-only
    unpickler refuses: a 'module' record (a class with its source code, kept for a warning) gives the class's
    placeholder and its source is ignored, storages are made empty and filled from the file afterwards, and
    every global is a placeholder unless torch's own above."""

    def __init__(self, stream: io.BytesIO, stand_ins: dict[str, type]) -> None:
        super().__init__(stream)
        self.stand_ins = stand_ins
        self.storages: dict[str, torch.UntypedStorage] = {}

    def find_class(self, module: str, name: str) -> Any:
        full = _torch_name(f"{module}.{name}")
        found = _LEGACY_OWN.get(full) or self.stand_ins.get(full)
        if found is None:  # the static scan named every global this pickle holds: anything else is damage
            raise UnsafeCheckpoint(f"it names {full}, which the scan did not find")
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise UnsafeCheckpoint("it holds a persistent record that is not a storage")
        if pid[0] == "module":  # ('module', class, source file, source): the class, already a placeholder
            if len(pid) == 4 and isinstance(pid[1], type) and issubclass(pid[1], Placeholder):
                return pid[1]
            raise UnsafeCheckpoint("it holds a module record whose class is not stood in for")
        if pid[0] != "storage" or len(pid) != 6 or pid[1] not in _LEGACY_OWN.values():
            raise UnsafeCheckpoint(f"it holds a persistent record of kind {str(pid[0])[:20]!r}")
        _, kind, key, _location, numel, view = pid
        if view is not None or not isinstance(numel, int) or not 0 <= numel < 1 << 40:
            raise UnsafeCheckpoint("it holds a storage record this reader does not know")
        dtype = kind.dtype
        if key not in self.storages:
            self.storages[key] = torch.UntypedStorage(numel * torch._utils._element_size(dtype))
        with warnings.catch_warnings():  # TypedStorage is what torch's own tensor rebuilders take here
            warnings.simplefilter("ignore", UserWarning)
            return torch.TypedStorage(wrap_storage=self.storages[key], dtype=dtype, _internal=True)


def _legacy_with_modules(data: bytes, names: list[str]) -> Any:
    """A legacy file's object with its storages' bytes read in (see _LegacyReader)."""
    stream = io.BytesIO(data)
    dict_like: set[str] = set()
    list_like: set[str] = set()
    for _ in range(MAX_RETRIES):
        stream.seek(0)
        stand_ins = {name: cls for cls, name in _stand_ins(names, dict_like, list_like)}
        try:
            for _ in range(3):  # magic number, protocol version, system info: plain values
                _LegacyReader(stream, {}).load()
            reader = _LegacyReader(stream, stand_ins)
            obj = reader.load()
            keys = _LegacyReader(stream, {}).load()
        except (TypeError, AttributeError) as err:
            which = _PLACEHOLDER_IN_ERROR.search(str(err))
            name = names[int(which.group(1))] if which else None
            if name and "item assignment" in str(err) and name not in dict_like:
                dict_like.add(name)
                continue
            if name and "append" in str(err) and name not in list_like:
                list_like.add(name)
                continue
            raise UnsafeCheckpoint(f"its objects could not be stood in for ({type(err).__name__})") from None
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise DamagedPickle(f"its pickle does not parse ({type(err).__name__})") from None
        if not isinstance(keys, list) or set(keys) != set(reader.storages):
            raise DamagedPickle("its storage list does not match its tensors")
        for key in keys:  # each: an int64 element count, then the raw bytes
            storage = reader.storages[key]
            head = stream.read(8)
            nbytes = storage.nbytes()
            raw = stream.read(nbytes)
            if len(head) != 8 or len(raw) != nbytes:
                raise DamagedPickle("it ends before its last tensor's bytes")
            storage.copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8).untyped_storage())
        return obj
    raise UnsafeCheckpoint("its objects could not be stood in for")


def plain(root: Any) -> Any:
    """The loaded object with placeholders turned into plain data where they carry some, never by calling them:
    tensors detached, a pickled nn.Module into its state dict, Namespace/omegaconf/AttributeDict into dicts."""
    memo: dict[int, Any] = {}

    def walk(x: Any, depth: int) -> Any:
        if depth > 200:
            raise UnsafeCheckpoint("its objects nest too deeply")
        if id(x) in memo:
            return memo[id(x)]
        if isinstance(x, torch.Tensor):
            out: Any = x.detach()  # drops any hooks a pickled Parameter carried
        elif isinstance(x, Placeholder):
            out = _placeholder_value(x, lambda v: walk(v, depth + 1))
        elif isinstance(x, dict):
            out = {walk(k, depth + 1): walk(v, depth + 1) for k, v in x.items()}
        elif isinstance(x, list):  # also ListPlaceholder
            out = [walk(v, depth + 1) for v in x]
        elif isinstance(x, tuple):
            out = tuple(walk(v, depth + 1) for v in x)
        else:
            out = x
        memo[id(x)] = out
        return out

    return walk(root, 0)


def _placeholder_value(x: Placeholder, walk) -> Any:
    """What a placeholder carries: a module's weights, a config's fields; else the placeholder itself."""
    state = x.state
    if isinstance(state, dict) and "_modules" in state and "_parameters" in state:
        return module_state_dict(x)
    if x.stands_for.startswith("omegaconf.") and isinstance(state, dict):
        return walk(state["_content"] if "_content" in state else state.get("_val"))
    if isinstance(state, dict):  # argparse.Namespace and other objects pickled as their __dict__
        return {k: walk(v) for k, v in state.items()}
    return x


def module_state_dict(module: Placeholder, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of a pickled nn.Module (a tree of placeholders): parameters and persistent buffers."""
    out: dict[str, torch.Tensor] = {}
    state = module.state if isinstance(module.state, dict) else {}
    for name, tensor in (state.get("_parameters") or {}).items():
        if isinstance(tensor, torch.Tensor):
            out[prefix + name] = tensor.detach()
    transient = state.get("_non_persistent_buffers_set") or set()
    for name, tensor in (state.get("_buffers") or {}).items():
        if isinstance(tensor, torch.Tensor) and name not in transient:
            out[prefix + name] = tensor.detach()
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, Placeholder):
            out |= module_state_dict(child, f"{prefix}{name}.")
    return out
