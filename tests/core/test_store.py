"""The result store: entries survive a restart, damage is detected and recomputed, the size bound holds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from core import settings
from core import store as store_module
from core.data import SubsetSpec, load_subset
from core.fingerprint import fingerprint
from core.options import AnalysisOptions
from core.pipeline import compare
from core.result import to_json_dict
from core.spill import OnDisk, part_bytes
from core.store import ENGINE_VERSION, ENTRIES, Store, content_key, fingerprint_key, result_key
from models import load_model

CPU = torch.device("cpu")
FAST = AnalysisOptions(batch_size=20, permutations=5)
SPEC = SubsetSpec(per_class=6, seed=1)


@pytest.fixture(scope="module")
def models(tiny_specs):
    return {k: load_model(v) for k, v in tiny_specs.items()}


@pytest.fixture(scope="module")
def result(models):
    return compare(models["a"], models["b"], load_subset(SPEC), FAST, CPU)


def test_a_result_comes_back_exactly_and_from_a_new_store_object(tmp_path, models, result):
    key = result_key(models["a"].identity.key, models["b"].identity.key, SPEC, FAST)
    assert not Store(tmp_path, 10**8).has_result(key)
    Store(tmp_path, 10**8).put_result(key, result)
    assert Store(tmp_path, 10**8).has_result(key)
    again = Store(tmp_path, 10**8).result(key)  # a restarted server: nothing in memory
    assert to_json_dict(again) == to_json_dict(result)
    np.testing.assert_array_equal(again.cross, result.cross)


def test_a_fingerprint_comes_back_exactly_and_compares_the_same(tmp_path, models, result):
    fp = fingerprint(models["a"], load_subset(SPEC), FAST, CPU)
    key = fingerprint_key(models["a"].identity.key, SPEC, FAST)
    store = Store(tmp_path, 10**8)
    store.put_fingerprint(key, fp)
    back = Store(tmp_path, 10**8).fingerprint(key)
    assert back.layers == fp.layers and back.batch_ids == fp.batch_ids and back.model == fp.model
    _assert_same_fingerprint(back, fp)


def _assert_same_fingerprint(back, fp) -> None:
    """Every tensor of two fingerprints equal to the bit, the per-layer probe features included."""
    assert back.layers == fp.layers and back.batch_ids == fp.batch_ids and back.model == fp.model
    mine = [*back.rows, *back.self_hsic, *back.labels, back.label_hsic, back.inv_cross, back.constant]
    theirs = [*fp.rows, *fp.self_hsic, *fp.labels, fp.label_hsic, fp.inv_cross, fp.constant]
    assert len(mine) == len(theirs) and all(torch.equal(x, y) for x, y in zip(mine, theirs, strict=True))
    assert len(back.pooled) == len(fp.pooled) == len(fp.layers)
    for mine_layer, their_layer in zip(back.pooled, fp.pooled, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(mine_layer, their_layer, strict=True))


def test_a_spilled_fingerprint_is_stored_and_read_back_spilled_and_exact(tmp_path, models, monkeypatch):
    """Computed with every batch on disk, stored, and read back (again beyond the bound, so on disk): the same
    tensors as the fingerprint computed in memory."""
    in_memory = fingerprint(models["a"], load_subset(SPEC), FAST, CPU)
    monkeypatch.setenv(settings.SPILL_MB, "0")
    spilled = fingerprint(models["a"], load_subset(SPEC), FAST, CPU)
    assert spilled.rows.spilled == len(spilled.rows) == 3 and spilled.pooled[0].spilled == 3
    store = Store(tmp_path, 10**8)
    store.put_fingerprint("5" * 32, spilled)
    back = Store(tmp_path, 10**8).fingerprint("5" * 32)
    assert back.rows.spilled == 3 and back.pooled[-1].spilled == 3
    _assert_same_fingerprint(back, in_memory)


def test_a_fingerprint_larger_than_the_store_is_refused_before_it_is_read(tmp_path, models, monkeypatch):
    """The entry's size comes from the parts' shapes: a store too small for a spilled fingerprint refuses it
    without reading a single part back, and writes nothing; a store large enough reads every part."""
    monkeypatch.setenv(settings.SPILL_MB, "0")
    spilled = fingerprint(models["a"], load_subset(SPEC), FAST, CPU)
    reads = []
    original = OnDisk.load
    monkeypatch.setattr(OnDisk, "load", lambda part: reads.append(part.name) or original(part))
    Store(tmp_path, sum(part_bytes(p) for p in spilled.rows.parts)).put_fingerprint("6" * 32, spilled)
    assert reads == [] and not list(tmp_path.iterdir())
    Store(tmp_path, 10**9).put_fingerprint("6" * 32, spilled)
    assert len(reads) == 3 * (1 + len(spilled.layers)) and (tmp_path / ENTRIES / f"{'6' * 32}.fp").exists()


def test_keys_change_with_every_input_and_the_engine_version(models, monkeypatch):
    a, b = models["a"].identity.key, models["b"].identity.key
    base = result_key(a, b, SPEC, FAST)
    assert base == result_key(a, b, SPEC, FAST)
    assert base != result_key(b, a, SPEC, FAST)
    assert base != result_key(a, b, replace(SPEC, seed=2), FAST)
    assert base != result_key(a, b, SPEC, replace(FAST, batch_size=30))
    assert base != content_key("result", a + "x", b, SPEC, FAST)
    monkeypatch.setattr(store_module, "ENGINE_VERSION", ENGINE_VERSION + "-next")
    assert base != result_key(a, b, SPEC, FAST)


def test_an_entry_from_another_engine_version_is_not_read(tmp_path, result, monkeypatch):
    Store(tmp_path, 10**8).put_result("3" * 32, result)
    monkeypatch.setattr(store_module, "ENGINE_VERSION", ENGINE_VERSION + "-next")
    assert Store(tmp_path, 10**8).result("3" * 32) is None


@pytest.mark.parametrize("suffix", [".json", ".fp"])
def test_a_damaged_entry_is_never_shown_and_is_removed(tmp_path, models, result, suffix):
    store = Store(tmp_path, 10**8)
    key = "0" * 32
    path = tmp_path / ENTRIES / f"{key}{suffix}"
    fp = fingerprint(models["a"], load_subset(SPEC), FAST, CPU) if suffix == ".fp" else None
    size = None
    for i in range(17):  # one bit at 17 places from the first byte to the last, in the header and the numbers
        if suffix == ".json":
            store.put_result(key, result)
        else:
            store.put_fingerprint(key, fp)
        data = bytearray(path.read_bytes())
        size = size or len(data)
        assert len(data) == size
        at = i * (size - 1) // 16
        data[at] ^= 0x01
        path.write_bytes(bytes(data))
        read = store.result(key) if suffix == ".json" else store.fingerprint(key)
        assert read is None and not path.exists(), f"a bit flipped at byte {at} of {size} went unnoticed"


def test_a_changed_digit_that_parses_to_the_same_float_is_still_caught(tmp_path, result):
    """Digits beyond a float's precision can change without changing the float they parse to."""
    store = Store(tmp_path, 10**8)
    store.put_result("4" * 32, result)
    path = tmp_path / ENTRIES / f"{'4' * 32}.json"
    head, body = path.read_text().split("\n", 1)
    number = re.search(r"(?<![\d.])\d+\.\d{6,}", body)
    longer = number.group() + "00000001"
    assert float(longer) == float(number.group())
    path.write_text(head + "\n" + body[: number.start()] + longer + body[number.end() :])
    assert store.result("4" * 32) is None


def test_the_least_recently_used_entries_go_first(tmp_path, result):
    size = len(Path(_one(tmp_path / "probe", result)).read_bytes())
    store = Store(tmp_path / "s", int(size * 3.5))
    for i in range(3):
        store.put_result(f"{i:032d}", result)
        os.utime(tmp_path / "s" / ENTRIES / f"{i:032d}.json", (time.time() - 100 + i, time.time() - 100 + i))
    assert store.result(f"{0:032d}") is not None  # read: now the most recently used
    store.put_result(f"{3:032d}", result)
    kept = sorted(p.stem for p in (tmp_path / "s" / ENTRIES).glob("*.json"))
    assert kept == [f"{i:032d}" for i in (0, 2, 3)] and store.size() <= store.max_bytes


def _one(folder: Path, result) -> str:
    Store(folder, 10**8).put_result("9" * 32, result)
    return str(folder / ENTRIES / f"{'9' * 32}.json")


def test_a_writer_killed_mid_write_leaves_no_entry_and_the_next_one_is_written(tmp_path, result):
    """A process killed while it writes a large entry: no entry under the key, the half file is swept later,
    and the entry computed again is kept."""
    writer = textwrap.dedent(
        f"""
        from core.store import Store
        store = Store({str(tmp_path)!r}, 10**10)
        store._write("{"1" * 32}", ".json", [b"x" * 400_000_000], 400_000_000)
        """
    )
    own = tmp_path / ENTRIES
    proc = subprocess.Popen([sys.executable, "-c", writer], cwd=Path(__file__).parents[2])
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.endswith(".tmp") and p.stat().st_size for p in own.glob(".*")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(p.name.endswith(".tmp") for p in own.glob(".*")), "the writer never started writing"
    store = Store(tmp_path, 10**10)
    assert store.result("1" * 32) is None  # nothing half-written is ever read
    for tmp in own.glob(".*.tmp"):
        os.utime(tmp, (0, 0))  # long dead
    store.put_result("1" * 32, result)
    assert to_json_dict(store.result("1" * 32)) == to_json_dict(result)
    assert not list(own.glob(".*.tmp"))


def test_an_unwritable_store_keeps_nothing_and_raises_nothing(tmp_path, result):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    store = Store(blocked / "store", 10**8)
    store.put_result("2" * 32, result)
    assert store.result("2" * 32) is None


@pytest.mark.parametrize("how", ["copied", "linked"])
def test_an_entry_under_another_keys_name_is_not_served(tmp_path, models, result, how):
    """Another valid entry copied over an entry, or linked in its place, is not served under that key."""
    a, b = models["a"].identity.key, models["b"].identity.key
    mine, other = result_key(a, b, SPEC, FAST), result_key(b, a, SPEC, FAST)
    store = Store(tmp_path, 10**8)
    store.put_result(other, result)
    path, source = tmp_path / ENTRIES / f"{mine}.json", tmp_path / ENTRIES / f"{other}.json"
    if how == "copied":
        path.write_bytes(source.read_bytes())
    else:
        path.symlink_to(source)
    assert not (how == "linked" and store.has_result(mine))
    assert store.result(mine) is None and not path.is_symlink()
    assert store.result(other) is not None, "the entry linked to is left as it was"


def test_a_fingerprint_under_another_keys_name_is_not_served(tmp_path, models):
    fp = fingerprint(models["a"], load_subset(SPEC), FAST, CPU)
    mine = fingerprint_key(models["a"].identity.key, SPEC, replace(FAST, batch_size=30))
    other = fingerprint_key(models["a"].identity.key, SPEC, FAST)
    store = Store(tmp_path, 10**8)
    store.put_fingerprint(other, fp)
    own = tmp_path / ENTRIES
    (own / f"{mine}.fp").write_bytes((own / f"{other}.fp").read_bytes())
    assert store.fingerprint(mine) is None and store.fingerprint(other) is not None


def test_eviction_and_clean_up_touch_only_the_stores_own_files(tmp_path, result):
    """A store pointed at a shared folder: foreign files, old foreign .tmp files, folders and links to foreign
    files survive eviction, and none of them makes it fail."""
    own = tmp_path / ENTRIES  # foreign files even inside the store's own folder
    own.mkdir()
    notes, backup, target = tmp_path / "notes.txt", own / "backup.tmp", own / "elsewhere.bin"
    for foreign in (notes, backup, target):
        foreign.write_bytes(b"x" * 100_000)
        os.utime(foreign, (0, 0))
    (own / "lost+found").mkdir()
    link = own / f"{'a' * 32}.json"
    link.symlink_to(target)
    size = len(Path(_one(tmp_path / "probe", result)).read_bytes())
    store = Store(tmp_path, int(size * 1.5))
    for i in range(3):
        store.put_result(f"{i:032d}", result)
    assert notes.exists() and backup.exists() and target.exists() and (own / "lost+found").is_dir()
    assert link.is_symlink() and store.size() <= store.max_bytes
    assert store.result(f"{2:032d}") is not None and store.result("a" * 32) is None and target.exists()


def test_shipped_results_are_read_where_the_store_has_none_and_never_changed(tmp_path, models, result):
    key = result_key(models["a"].identity.key, models["b"].identity.key, SPEC, FAST)
    Store(tmp_path / "shipped", 10**8).put_result(key, result)
    (entry,) = (tmp_path / "shipped" / ENTRIES).iterdir()
    os.utime(entry, (1_000_000, 1_000_000))
    shipped = Store(tmp_path / "shipped", 0, read_only=True)
    store = Store(tmp_path / "user", 10**8, shipped)
    assert store.has_result(key) and to_json_dict(store.result(key)) == to_json_dict(result)
    assert entry.stat().st_mtime == 1_000_000  # read, not touched: it is no store's to evict
    assert not (tmp_path / "user" / ENTRIES).exists()  # served from where it is, not copied
    shipped.put_result(result_key("other", "key", SPEC, FAST), result)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # a read-only store keeps nothing
    entry.write_bytes(entry.read_bytes().replace(b'"used_images": ', b'"used_images": 1'))
    assert store.result(key) is None and entry.exists()  # damaged: never shown, and not deleted either
    store.put_result(key, result)  # the store's own entry comes first
    assert to_json_dict(store.result(key)) == to_json_dict(result)


def test_the_default_store_reads_the_shipped_results_unless_they_are_off(tmp_path, models, result, monkeypatch):
    key = result_key(models["a"].identity.key, models["b"].identity.key, SPEC, FAST)
    Store(tmp_path / "shipped", 10**8).put_result(key, result)
    monkeypatch.setenv(settings.STORE, str(tmp_path / "user"))
    monkeypatch.setenv(settings.SHIPPED, str(tmp_path / "shipped"))
    assert store_module.default_store().result(key) is not None
    monkeypatch.setenv(settings.SHIPPED, "off")
    assert store_module.default_store().result(key) is None


def test_a_record_comes_back_from_the_store_or_the_shipped_one_and_a_damaged_one_is_deleted(tmp_path):
    key, shipped_key = content_key("calibration", "a"), content_key("calibration", "b")
    shipped = Store(tmp_path / "shipped", 10**8)
    shipped.put_record(shipped_key, {"accuracy": 0.5})
    store = Store(tmp_path / "user", 10**8, Store(tmp_path / "shipped", 0, read_only=True))
    store.put_record(key, {"accuracy": 0.25, "scores": [["stem: padding 1", 0.25, 256]]})
    assert store.record(key) == {"accuracy": 0.25, "scores": [["stem: padding 1", 0.25, 256]]}
    assert store.record(shipped_key) == {"accuracy": 0.5} and store.record(content_key("calibration", "c")) is None
    assert store.result(key) is None and store.record(key) is None  # not a result: deleted as damage by its reader
    store.put_record(key, [1, 2])  # JSON, but not an object: no record's reader could use it
    assert store.record(key) is None and not list((tmp_path / "user" / ENTRIES).iterdir())
    store.put_record(key, {"accuracy": 0.25})
    store.discard_record(key)
    assert store.record(key) is None
