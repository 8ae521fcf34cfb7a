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

Before torch reads a file, an inert reader of our own follows its pickle (_InertReader): it hands out no real
object, so a file cannot change torch for later loads, and it checks every size the file declares (storages,
tensor views, bytearrays, encoded strings, zip members) against the bytes the file holds, so a small file cannot
allocate gigabytes. PyTorch < 1.6 files that pickled whole modules, which torch's reader refuses, are built by
that same reader.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import pickle
import pickletools
import re
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator
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
MAX_PICKLE_OPS = 500_000  # a ResNet's pickle runs a few thousand; each op may make an object (~100 bytes)
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
        object.__setattr__(obj, "entries", {})  # items a dict subclass's pickle set on it
        object.__setattr__(obj, "listed", [])  # items a list subclass's pickle appended to it
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
    """(opcode, "module.name") of one pickle in `stream`, without running it; names as written. Refuses more
    operations than any checkpoint needs (each can make an object, so a small file could fill memory)."""
    for count, (op, arg, _) in enumerate(pickletools.genops(stream)):
        if count > MAX_PICKLE_OPS:
            raise UnsafeCheckpoint(f"its pickle runs over {MAX_PICKLE_OPS:,} operations, more than checkpoints need")
        yield op.name, (arg.replace(" ", ".", 1) if op.name in ("GLOBAL", "INST") else "")
        if op.name == "STOP":
            return


def _pickles(data: bytes) -> list[bytes] | io.BytesIO:
    """The pickle of a zip checkpoint (data.pkl), or the stream of a legacy one (its first five pickles)."""
    if not data.startswith(b"PK\x03\x04"):
        return io.BytesIO(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        _, pickle_name = _zip_layout(archive)
        return [archive.read(pickle_name)]


def _zip_layout(archive: zipfile.ZipFile) -> tuple[str, str]:
    """The folder every member of a torch zip lies in, and its one data.pkl; refuses what torch.save never writes
    (compressed members, a second or misplaced data.pkl, duplicate names), so what is scanned is what is read."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        raise UnsafeCheckpoint("it is a TorchScript archive (loading it would run its code), not a checkpoint")
    if not names or "/" not in names[0]:
        raise UnsafeCheckpoint("it is a zip archive without data.pkl, not a torch.save checkpoint")
    prefix = names[0].split("/", 1)[0] + "/"
    pickles = [n for n in names if n.endswith("data.pkl")]
    if pickles != [prefix + "data.pkl"]:
        raise UnsafeCheckpoint("it is a zip archive without exactly one data.pkl in its folder, as torch.save writes")
    if len(set(names)) != len(names) or not all(n.startswith(prefix) for n in names):
        raise UnsafeCheckpoint("its zip archive holds duplicate or stray members, which torch.save never writes")
    if any(info.compress_type != zipfile.ZIP_STORED for info in infos):
        raise UnsafeCheckpoint("its zip archive is compressed, which torch.save never does; save it with torch.save")
    return prefix, prefix + "data.pkl"


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
    inspect_allocations(data)
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
                return plain(_legacy_with_modules(data))
            reason = message.split("WeightsUnpickler error:")[-1].strip().split("\n")[0]
            if "weights_only" in reason or "trust" in reason:  # torch's advice to load it unsafely: never ours
                reason = "torch's weights-only reader does not read what it holds"
            raise UnsafeCheckpoint(f"safe loading refused it ({reason[:200]})") from None
        return plain(loaded)
    raise UnsafeCheckpoint("its objects could not be stood in for")


# Where honest checkpoints keep their storages, and what each storage type holds (read once, here: a file never
# reaches torch's own classes through the reader below, so it cannot change them).
_STORAGE_DTYPES = {f"torch.{name}": dtype for dtype, name in torch.storage._dtype_to_storage_type_map().items()} | {
    "torch.storage.UntypedStorage": torch.uint8  # dtypes without a storage type of their own (float8): bytes
}
_TENSOR_REBUILDERS = {"torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2"}
_PARAMETER_REBUILDERS = {"torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"}
# torch's own rebuilders of tensor kinds no CIFAR network holds: refused before torch would build them.
_EXOTIC_TENSORS = {
    name
    for name in torch._weights_only_unpickler._get_allowed_globals()
    if name.startswith("torch._utils._rebuild_") and name not in _TENSOR_REBUILDERS | _PARAMETER_REBUILDERS
} | {"torch._utils._rebuild_tensor_v3"}
_TEXT_CODECS = frozenset({"latin1", "latin-1", "utf8", "utf-8", "ascii"})  # what numpy's protocol-2 bytes use
MIN_BUDGET = 1 << 20  # bytes a pickle may build beyond its file's own size (small tuples, strings)
MAX_VIEW_ELEMENTS = 1 << 31  # no tensor a file holds may have more elements than this, however it is stored


def _short(value: object, limit: int = 60) -> str:
    """A value from a file, quoted and cut to `limit` characters, so no message grows with the file (a collection
    by its type alone: its repr could be as large as the file)."""
    if isinstance(value, (list, tuple, dict, set, frozenset, bytearray)):
        return type(value).__name__
    text = repr(value[: limit + 1] if isinstance(value, (str, bytes)) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Ref:
    """A global a pickle names, as the reader below hands it out: its name only, never the object itself."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


class _StorageRecord:
    """A storage a pickle refers to: its dtype and element count, checked against the file before any use."""

    def __init__(self, dtype: torch.dtype, numel: int, untyped: torch.UntypedStorage | None) -> None:
        self.dtype, self.numel, self.untyped = dtype, numel, untyped


class _InertReader(pickle._Unpickler):
    """A pickle reader that runs only torch's protocol-2 opcodes and calls nothing a file names.

    Every global is a `_Ref`; calling one runs our own checked stand-in (an OrderedDict, a tensor over a storage
    of the file's own bytes) or makes an inert placeholder; BUILD reaches only placeholders; storages are
    checked against the bytes that can hold them before anything is allocated. `build` False only checks:
    storages stay records and tensors stay descriptions, so a file can be inspected before torch reads it.
    """

    def __init__(
        self, stream: io.BytesIO, storage_bytes: Callable[[str], int], budget: int, build: bool, storage_total: int
    ) -> None:
        super().__init__(stream)
        self.storage_bytes = storage_bytes  # a storage's key -> the bytes the file holds for it
        self.storage_left = storage_total  # the bytes the file holds for all its storages together
        self.budget = budget  # bytes this pickle may still allocate through calls (bytearray, codecs)
        self.build = build
        self.storages: dict[str, _StorageRecord] = {}
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        return _Ref(_torch_name(f"{module}.{name}"))

    def _charge(self, nbytes: int) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise UnsafeCheckpoint("it declares more memory than the file could need (a memory bomb)")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise UnsafeCheckpoint("it holds a persistent record that is not a storage")
        if pid[0] == "module":  # ('module', class, source file, source) of a PyTorch < 1.6 whole-module file
            if len(pid) == 4 and isinstance(pid[1], _Ref):
                return pid[1]
            raise UnsafeCheckpoint("it holds a module record that is not a class")
        if pid[0] != "storage" or len(pid) not in (5, 6) or not isinstance(pid[1], _Ref):
            raise UnsafeCheckpoint(f"it holds a persistent record of kind {_short(pid[0], 20)}")
        key, numel = pid[2], pid[4]
        dtype = _STORAGE_DTYPES.get(pid[1].name)
        if dtype is None:
            raise UnsafeCheckpoint(f"it holds a storage of type {_short(pid[1].name)}, which is not a tensor type")
        if not isinstance(key, str) or len(key) > 64 or type(numel) is not int or numel < 0:
            raise UnsafeCheckpoint("it holds a storage record this reader does not know")
        if len(pid) == 6 and pid[5] is not None:
            raise UnsafeCheckpoint("it holds a storage view, which this reader does not read")
        if key not in self.storages:
            nbytes = numel * torch._utils._element_size(dtype)
            self.storage_left -= nbytes
            if nbytes > self.storage_bytes(key) or self.storage_left < 0:
                raise UnsafeCheckpoint(
                    f"a storage declares {nbytes:,} bytes, more than the file holds for it (a memory bomb)"
                )
            untyped = torch.UntypedStorage(nbytes) if self.build else None
            self.storages[key] = _StorageRecord(dtype, numel, untyped)
        record = self.storages[key]
        if record.dtype != dtype or record.numel != numel:
            raise UnsafeCheckpoint("it gives one storage two different types or sizes")
        return record

    def call(self, func: Any, args: Any) -> Any:
        """What REDUCE and NEWOBJ make: our stand-in for a known global, else a placeholder."""
        if not isinstance(func, _Ref) or not isinstance(args, tuple):
            raise UnsafeCheckpoint(f"it calls {_short(func)}, which is not a class or function")
        name = func.name
        if name in _TENSOR_REBUILDERS:
            return self.tensor(*args[:4]) if len(args) >= 4 else _bad_call(name)
        if name in _PARAMETER_REBUILDERS or name == "torch.nn.parameter.Parameter":
            return args[0] if args and isinstance(args[0], (torch.Tensor, _TensorShape)) else _bad_call(name)
        if name == "torch._tensor._rebuild_from_type_v2":
            if len(args) == 4 and isinstance(args[0], _Ref) and args[0].name in _TENSOR_REBUILDERS:
                return self.call(args[0], args[2] if isinstance(args[2], tuple) else ())
            return _bad_call(name)
        if name in _EXOTIC_TENSORS or name.startswith(("torch.sparse.", "torch.cuda.sparse.")):
            raise UnsafeCheckpoint(f"it holds a kind of tensor this app does not load ({name})")
        if name == "builtins.bytearray":
            return self.bytes_from(args, bytearray)
        if name == "_codecs.encode":
            return self.encoded(args)
        if name == "collections.OrderedDict" or name == "collections.Counter":
            return collections.OrderedDict(_pairs(args))
        if name in ("builtins.set", "builtins.frozenset"):
            return (set if name == "builtins.set" else frozenset)(_items(args))
        if name == "torch.Size":
            return tuple(_items(args))
        if name == "builtins.complex" and all(type(a) in (int, float) for a in args) and len(args) <= 2:
            return complex(*args)
        cls = self.classes.get(name) or _stand_in(name)
        self.classes[name] = cls
        return cls(*args)

    def bytes_from(self, args: tuple, kind: type) -> Any:
        """bytearray(data) of bytes the file holds; bytearray(n) only for n within the budget."""
        if len(args) == 1 and type(args[0]) is int:
            self._charge(max(args[0], 0))
            return kind(args[0])
        if args and isinstance(args[0], (bytes, bytearray, str)) and len(args) <= 2:
            self._charge(len(args[0]) * 4)
            return kind(args[0], *args[1:]) if isinstance(args[0], str) else kind(args[0])
        return kind() if not args else _bad_call("builtins.bytearray")

    def encoded(self, args: tuple) -> bytes:
        """_codecs.encode of a string with a text codec (numpy's bytes in protocol 2); no other codec runs."""
        if len(args) != 2 or not isinstance(args[0], str) or args[1] not in _TEXT_CODECS:
            raise UnsafeCheckpoint(
                f"it encodes with {_short(args[1] if len(args) > 1 else None)}, which a checkpoint never needs"
            )
        self._charge(len(args[0]) * 4)
        return args[0].encode(args[1])

    def tensor(self, storage: Any, offset: Any, size: Any, stride: Any) -> Any:
        """A tensor over one of the file's storages, once its view is checked to lie inside it and be no larger
        than it (an expanded view would multiply memory when read)."""
        if not isinstance(storage, _StorageRecord):
            raise UnsafeCheckpoint("it holds a tensor without a storage")
        dims = tuple(size) if isinstance(size, (tuple, list)) else None
        steps = tuple(stride) if isinstance(stride, (tuple, list)) else None
        ints = dims is not None and steps is not None and all(type(v) is int for v in (offset, *dims, *steps))
        if not ints or len(dims) != len(steps) or len(dims) > 16 or min((offset, *dims, *steps)) < 0:
            raise UnsafeCheckpoint("it holds a tensor whose shape, strides or offset are not valid")
        numel = math.prod(dims)
        if numel and offset + sum((d - 1) * s for d, s in zip(dims, steps, strict=True)) >= storage.numel:
            raise UnsafeCheckpoint("it holds a tensor that reaches past the end of its storage")
        if numel > max(storage.numel, 1) or numel > MAX_VIEW_ELEMENTS:
            raise UnsafeCheckpoint(
                f"it holds a tensor view of {numel:,} elements over {storage.numel:,} stored ones (an expanded "
                "view); save it with .contiguous()"
            )
        if not self.build:
            return _TensorShape(dims)
        with warnings.catch_warnings():  # a TypedStorage is what set_ takes with a dtype
            warnings.simplefilter("ignore", UserWarning)
            typed = torch.TypedStorage(wrap_storage=storage.untyped, dtype=storage.dtype, _internal=True)
        return torch.empty(0, dtype=storage.dtype).set_(typed, offset, dims, steps)

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, Placeholder):
            object.__setattr__(target, "state", state)
        elif isinstance(target, ListPlaceholder):
            target.state = state
        elif not isinstance(target, (dict, torch.Tensor, _TensorShape)):  # a state dict's _metadata: dropped
            raise UnsafeCheckpoint(f"it sets the state of {_short(target)}, which is not one of its own objects")

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self.call(self.stack[-1], args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self.call(self.stack[-1], args)

    def load_setitems(self) -> None:
        items = self.pop_mark()
        _set_items(self.stack[-1], items)

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        _set_items(self.stack[-1], [key, value])

    def load_appends(self) -> None:
        items = self.pop_mark()
        _append(self.stack[-1], items)

    def load_append(self) -> None:
        value = self.stack.pop()
        _append(self.stack[-1], [value])

    dispatch = {
        code: method
        for code, method in pickle._Unpickler.dispatch.items()
        if pickletools.code2op[chr(code)].name in TORCH_OPCODES
    } | {
        pickle.BUILD[0]: load_build,
        pickle.REDUCE[0]: load_reduce,
        pickle.NEWOBJ[0]: load_newobj,
        pickle.SETITEMS[0]: load_setitems,
        pickle.SETITEM[0]: load_setitem,
        pickle.APPENDS[0]: load_appends,
        pickle.APPEND[0]: load_append,
    }


class _TensorShape(tuple):
    """A checked tensor's shape, where the reader only inspects a file."""


def _bad_call(name: str) -> Any:
    raise UnsafeCheckpoint(f"it calls {name} with arguments a checkpoint never gives it")


def _items(args: tuple) -> list:
    if not args:
        return []
    if len(args) == 1 and isinstance(args[0], (list, tuple, set, frozenset)):
        return list(args[0])
    return _bad_call("a collection")


def _pairs(args: tuple) -> list:
    items = _items(args) if not (args and isinstance(args[0], dict)) else list(args[0].items())
    if not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in items):
        return _bad_call("collections.OrderedDict")
    return items


def _stand_in(name: str) -> type:
    return type("_Stand", (Placeholder,), {"stands_for": name, "__module__": __name__})


def _set_items(target: Any, items: list) -> None:
    """SETITEM(S): onto a dict, or kept by a placeholder for a dict subclass; nothing else takes items."""
    pairs = list(zip(items[::2], items[1::2], strict=False))
    if isinstance(target, dict):
        target.update(pairs)
    elif isinstance(target, Placeholder):
        object.__getattribute__(target, "entries").update(pairs)
    else:
        raise UnsafeCheckpoint(f"it sets items on {_short(target)}, which is not a dict")


def _append(target: Any, items: list) -> None:
    """APPEND(S): onto a list, or kept by a placeholder for a list subclass; nothing else takes items."""
    if isinstance(target, list):
        target.extend(items)
    elif isinstance(target, Placeholder):
        object.__getattribute__(target, "listed").extend(items)
    else:
        raise UnsafeCheckpoint(f"it appends to {_short(target)}, which is not a list")


def _inert_load(
    stream: io.BytesIO, storage_bytes: Callable[[str], int], budget: int, build: bool, storage_total: int = 0
) -> tuple[Any, _InertReader]:
    """One pickle from `stream` through the inert reader; every failure is a refusal, never another error."""
    reader = _InertReader(stream, storage_bytes, budget, build, storage_total)
    try:
        return reader.load(), reader
    except UnsafeCheckpoint:
        raise
    except RecursionError:
        raise UnsafeCheckpoint("its objects nest too deeply") from None
    except Exception as err:  # noqa: BLE001 - a pickle the reader cannot follow is damaged
        raise DamagedPickle(f"its pickle does not parse ({type(err).__name__})") from None


def inspect_allocations(data: bytes) -> None:
    """Follow a torch file's pickle without building anything, refusing what would allocate more than the file
    could honestly need: storages larger than their bytes, expanded views, bytearray and codec bombs."""
    budget = len(data) + MIN_BUDGET
    if data.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            prefix, pickle_name = _zip_layout(archive)
            sizes = {info.filename: info.file_size for info in archive.infolist()}
            pickle_bytes = archive.read(pickle_name)
        record_bytes = lambda key: sizes.get(f"{prefix}data/{key}", 0)  # noqa: E731
        _inert_load(io.BytesIO(pickle_bytes), record_bytes, budget, False, len(data))
        return
    stream = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, system info: plain values
        _inert_load(stream, lambda key: 0, MIN_BUDGET, False)
    remaining = len(data) - stream.tell()  # the storages follow the pickle: together they fit in what is left
    _, reader = _inert_load(stream, lambda key: remaining, budget, False, remaining)
    _storage_keys(stream, reader)


def _storage_keys(stream: io.BytesIO, reader: _InertReader) -> list[str]:
    """The legacy file's list of storage keys, which must name exactly the storages its tensors use."""
    keys, _ = _inert_load(stream, lambda key: 0, MIN_BUDGET, False)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or set(keys) != set(reader.storages):
        raise DamagedPickle("its storage list does not match its tensors")
    return keys


def _legacy_with_modules(data: bytes) -> Any:
    """A PyTorch < 1.6 file that pickled whole modules (torch's weights-only reader refuses their 'module'
    records), read by the inert reader: module classes become placeholders, storages are filled from the file."""
    stream = io.BytesIO(data)
    for _ in range(3):
        _inert_load(stream, lambda key: 0, MIN_BUDGET, False)
    remaining = len(data) - stream.tell()
    obj, reader = _inert_load(stream, lambda key: remaining, len(data) + MIN_BUDGET, True, remaining)
    for key in _storage_keys(stream, reader):  # each: an int64 element count, then the raw bytes
        untyped = reader.storages[key].untyped
        head = stream.read(8)
        raw = stream.read(untyped.nbytes())
        if len(head) != 8 or len(raw) != untyped.nbytes():
            raise DamagedPickle("it ends before its last tensor's bytes")
        if raw:
            untyped.copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8).untyped_storage())
    return obj


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
    entries, listed = object.__getattribute__(x, "entries"), object.__getattribute__(x, "listed")
    if entries or listed:  # a dict or list subclass, read by the inert reader
        return {walk(k): walk(v) for k, v in entries.items()} if entries else [walk(v) for v in listed]
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
