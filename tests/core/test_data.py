"""core.data: subset specs, reproducible selection, the data sources and normalisation (no network)."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import core.data as data
from core.data import CLASSES, DataError, SubsetSpec, load_split, load_subset, normalize, select_indices
from core.errors import LensError, OptionsError
from core.options import AnalysisOptions


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, no user cache, no $CIFAR10_DIR and an empty split cache in every test."""
    calls: list[str] = []

    def no_download(split: str, timeout_s: float = 10.0) -> bool:
        calls.append(split)
        return False

    monkeypatch.setattr(data, "_download", no_download)
    monkeypatch.setattr(data, "DOWNLOAD_DIR", tmp_path / "download-cache")
    monkeypatch.setattr(data, "_SPLIT_CACHE", {})
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    return calls


def fake_batches(folder: Path, per_batch: int = 20) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A tiny folder in torchvision's cifar-10-batches-py layout: rows of 3072 bytes, channel-major
    (1024 red, 1024 green, 1024 blue, each row-major). Pixel (c, y, x) of image k in batch b holds
    (y * 32 + x + 7 * c + 11 * k + 50 * b) % 256, so the layout can be checked value by value."""
    folder.mkdir(parents=True)
    written = {}
    c, y, x = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    for b, name in enumerate(["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]):
        chw = np.stack([(y * 32 + x + 7 * c + 11 * k + 50 * b) % 256 for k in range(per_batch)]).astype(np.uint8)
        labels = [(k + b) % 10 for k in range(per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": chw.reshape(per_batch, 3072), "labels": labels, "batch_label": name}, f)
        written[name] = (chw.transpose(0, 2, 3, 1), np.asarray(labels))
    return written


# ---------------------------------------------------------------------------------------------------
# SubsetSpec
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ()}, r"choose at least 2 classes \(none is chosen\)"),
        ({"classes": (3,)}, r"choose at least 2 classes \(only cat is chosen\): with one class every image"),
        ({"per_class": 0}, "between 1 and 1000 for the test split"),
        ({"per_class": 1001}, "between 1 and 1000 for the test split"),
        ({"split": "train", "per_class": 5001}, "between 1 and 5000 for the train split"),
        ({"classes": (3, 10)}, r"class indices must be 0-9; got \[10\]"),
        ({"classes": (-1, 2)}, r"class indices must be 0-9; got \[-1\]"),
        ({"split": "val"}, r"split must be one of \('test', 'train'\), not 'val'"),
    ],
)
def test_subset_spec_validation(kwargs, message):
    with pytest.raises(DataError, match=message):
        SubsetSpec(**kwargs)


def test_a_one_class_subset_is_refused_with_the_reason():
    """Item 3 of issue 26: one class made every probe right by default ('Best linear probe ... 100% at stem')."""
    with pytest.raises(DataError) as refused:
        SubsetSpec(classes=(4,), per_class=20)
    assert str(refused.value) == (
        "choose at least 2 classes (only deer is chosen): with one class every image has the same label, so a "
        "linear probe is right by default and class structure has nothing to measure"
    )


@pytest.mark.parametrize(("classes", "least"), [(2, 3), (3, 3), (5, 4), (10, 4)])
def test_probes_need_room_for_every_class_in_both_parts_of_their_split(classes, least):
    """The least per-class count is the first at which the images the probes train on and those they are scored
    on each number at least the classes (AnalysisOptions.held_out is the split core.readouts makes)."""
    options = AnalysisOptions(batch_size=4)
    assert options.min_per_class(classes) == least
    for k, room in ((least, True), (least - 1, False)):
        held = options.held_out(classes * k)
        assert (min(held, classes * k - held) >= classes) is room
    SubsetSpec(classes=tuple(range(classes)), per_class=least).check_for(options)
    fewer = SubsetSpec(classes=tuple(range(classes)), per_class=least - 1)
    fewer.check_for(dataclasses.replace(options, probes=False))  # without probes, no split to make room in
    with pytest.raises(DataError, match=f"need at least {least} images per class"):
        fewer.check_for(options)


def test_too_few_images_per_class_for_the_probes_are_refused_with_the_reason():
    with pytest.raises(DataError) as refused:
        SubsetSpec(per_class=3).check_for(AnalysisOptions(batch_size=4))
    assert str(refused.value) == (
        "with 10 classes, the linear probes need at least 4 images per class: they train on 70% of the images and "
        "are scored on the other 30%, and with 3 per class one part would have fewer images than there are classes "
        "(21 to train on, 9 to score on), so some class could not be in both; choose at least 4 images per class"
    )
    with pytest.raises(OptionsError, match="3 images make no minibatch of at least 4"):  # the minibatch comes first
        SubsetSpec(classes=(0, 1, 2), per_class=1).check_for(AnalysisOptions())


def test_data_error_is_a_refusal_and_not_a_value_error():
    """The faces catch LensError alone: a refusal must be one, and a ValueError from a bug must not look like one."""
    assert issubclass(DataError, LensError) and not issubclass(DataError, ValueError)


def test_subset_spec_normalises_classes_and_size():
    spec = SubsetSpec(classes=(5, 1, 5, 3), per_class=7)
    assert spec.classes == (1, 3, 5)
    assert spec.size == 21
    assert SubsetSpec(split="train", per_class=5000).per_class == 5000


def test_key_is_stable_and_depends_on_every_field():
    spec = SubsetSpec()
    assert spec.key() == "41e825fb08f670f5"  # fixed: it names cache entries across runs and machines
    assert SubsetSpec(classes=(2, 0, 1)).key() == SubsetSpec(classes=(0, 1, 2, 2)).key()
    changed = [
        dataclasses.replace(spec, split="train"),
        dataclasses.replace(spec, classes=(0, 1)),
        dataclasses.replace(spec, per_class=99),
        dataclasses.replace(spec, seed=1),
    ]
    keys = {spec.key(), *(s.key() for s in changed)}
    assert len(keys) == 5


# ---------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------


def test_load_split_reads_the_embedded_test_split(offline):
    images, labels, source = load_split("test")
    assert images.shape == (10000, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [1000] * 10
    assert source == str(data.EMBEDDED_DIR)
    assert images.std() > 30  # real pictures, not a placeholder
    assert offline == []  # found without trying a download


def test_load_split_reads_the_torchvision_batches_layout(tmp_path, offline):
    root = tmp_path / "cifar"
    written = fake_batches(root / "cifar-10-batches-py")
    images, labels, source = load_split("train", root)
    assert source == str(root)
    want_images = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    want_labels = np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert images.shape == (100, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(labels, want_labels)
    assert images[0, 2, 5, 1] == (2 * 32 + 5 + 7 + 50) % 256  # pixel (y=2, x=5), green, batch 1, image 0

    # pointing at the batches folder itself works too, and the test split comes from test_batch
    test_images, test_labels, _ = load_split("test", root / "cifar-10-batches-py")
    np.testing.assert_array_equal(test_images, written["test_batch"][0])
    np.testing.assert_array_equal(test_labels, written["test_batch"][1])
    assert offline == []


def test_load_split_reads_npz_and_cifar10_dir(tmp_path, monkeypatch):
    folder = tmp_path / "npz"
    folder.mkdir()
    imgs = np.arange(4 * 32 * 32 * 3, dtype=np.int64).reshape(4, 32, 32, 3).astype(np.uint8)
    np.savez(folder / "train.npz", images=imgs, labels=np.array([3, 1, 4, 1], dtype=np.int32))
    monkeypatch.setenv("CIFAR10_DIR", str(folder))
    images, labels, source = load_split("train")
    assert source == str(folder)
    np.testing.assert_array_equal(images, imgs)
    assert labels.dtype == np.int64 and labels.tolist() == [3, 1, 4, 1]


def test_only_a_small_split_is_kept_in_memory_between_calls(tmp_path, monkeypatch):
    folder = tmp_path / "npz"
    folder.mkdir()
    imgs = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    np.savez(folder / "train.npz", images=imgs, labels=np.arange(4))
    np.savez(folder / "test.npz", images=imgs[:2], labels=np.arange(2))
    monkeypatch.setattr(data, "KEEP_SPLIT_BYTES", imgs[:2].nbytes)  # the test split fits, the train split not
    assert load_split("test", folder)[0] is load_split("test", folder)[0]
    first = load_split("train", folder)[0]
    assert first is not load_split("train", folder)[0]
    np.testing.assert_array_equal(first, imgs)
    assert list(data._SPLIT_CACHE) == [("test", str(folder))]


def test_missing_train_split_names_every_place_looked_at(tmp_path, monkeypatch, offline):
    embedded = tmp_path / "embedded"
    embedded.mkdir()
    monkeypatch.setattr(data, "EMBEDDED_DIR", embedded)
    nowhere = tmp_path / "no-such-dir"
    with pytest.raises(DataError) as caught:
        load_split("train", nowhere)
    message = str(caught.value)
    for place in (nowhere, data.DOWNLOAD_DIR, embedded):
        assert str(place) in message
    assert "CIFAR-10 train split not found" in message and "--data-dir" in message
    assert offline == ["train"]  # the download was tried (and failed) once


def test_a_download_that_leaves_no_files_is_an_error_not_endless_recursion(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "EMBEDDED_DIR", tmp_path / "embedded")
    calls = []
    monkeypatch.setattr(data, "_download", lambda split, timeout_s=10.0: calls.append(split) or True)
    with pytest.raises(DataError, match="train split not found"):
        load_split("train", tmp_path / "nothing")
    assert calls == ["train"]


def test_a_successful_download_is_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "EMBEDDED_DIR", tmp_path / "embedded")

    def download(split: str, timeout_s: float = 10.0) -> bool:
        fake_batches(data.DOWNLOAD_DIR / "cifar-10-batches-py", per_batch=10)
        return True

    monkeypatch.setattr(data, "_download", download)
    images, _, source = load_split("train")
    assert images.shape == (50, 32, 32, 3) and source == str(data.DOWNLOAD_DIR)


# ---------------------------------------------------------------------------------------------------
# Subsets
# ---------------------------------------------------------------------------------------------------


def test_same_spec_gives_the_same_images_in_the_same_order():
    spec = SubsetSpec(classes=(0, 3, 7), per_class=40, seed=5)
    a, b = load_subset(spec), load_subset(SubsetSpec(classes=(7, 3, 0), per_class=40, seed=5))
    np.testing.assert_array_equal(a.indices, b.indices)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.source == str(data.EMBEDDED_DIR)


def test_subset_contents_match_the_split():
    spec = SubsetSpec(classes=(1, 2, 9), per_class=25, seed=3)
    subset = load_subset(spec)
    images, labels, _ = load_split("test")
    assert subset.images.shape == (75, 3, 32, 32) and subset.images.dtype == torch.uint8
    assert subset.labels.dtype == torch.int64
    assert len(set(subset.indices.tolist())) == 75  # no image twice
    assert np.bincount(subset.labels.numpy(), minlength=10).tolist() == [0, 25, 25, 0, 0, 0, 0, 0, 0, 25]
    np.testing.assert_array_equal(subset.labels.numpy(), labels[subset.indices])
    np.testing.assert_array_equal(subset.images.numpy(), images[subset.indices].transpose(0, 3, 1, 2))
    assert subset.images.is_contiguous()


def test_different_seed_gives_different_images():
    a = load_subset(SubsetSpec(classes=(4, 6), per_class=25, seed=0))
    b = load_subset(SubsetSpec(classes=(4, 6), per_class=25, seed=1))
    assert len(set(a.indices.tolist()) & set(b.indices.tolist())) < 25
    assert not torch.equal(a.images, b.images)


def test_select_indices_exact_per_class_and_interleaved():
    labels = np.repeat(np.arange(10), 30)
    spec = SubsetSpec(classes=(0, 5), per_class=30, seed=2)
    keep = select_indices(labels, spec)
    assert np.bincount(labels[keep], minlength=10)[[0, 5]].tolist() == [30, 30] and len(keep) == 60
    assert set(labels[keep[:20]].tolist()) == {0, 5}  # shuffled together, not class after class


def test_the_tail_of_a_subset_holds_every_class_like_its_head():
    """Before the final shuffle the last 50 of 1,000 test images held 6.3 of 10 classes on average (the classes
    that fill last); minibatches must be interchangeable, so the tail must look like any other slice."""
    _, labels, _ = load_split("test")
    for seed in range(10):
        keep = select_indices(labels, SubsetSpec(per_class=100, seed=seed))
        assert len(set(labels[keep[-50:]].tolist())) >= 9, seed


def test_too_few_images_in_a_small_source_is_a_data_error(tmp_path):
    fake_batches(tmp_path / "cifar-10-batches-py")  # 10 images of each class in the train split
    assert load_subset(SubsetSpec(split="train", per_class=10), tmp_path).images.shape == (100, 3, 32, 32)
    with pytest.raises(DataError, match=r"not enough images for .*'airplane': 10.*choose at most 10 per class"):
        load_subset(SubsetSpec(split="train", per_class=11), tmp_path)


def test_classes_names():
    assert len(CLASSES) == 10 and CLASSES[0] == "airplane" and CLASSES[9] == "truck"


# ---------------------------------------------------------------------------------------------------
# normalize
# ---------------------------------------------------------------------------------------------------


def test_normalize_uint8_and_float():
    u8 = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2).contiguous()
    mean, std = (0.5, 0.2, 0.1), (0.25, 0.5, 2.0)
    out = normalize(u8, mean, std)
    assert out.dtype == torch.float32 and out.shape == u8.shape
    want = torch.tensor([(0.0 - 0.5) / 0.25, (0.2 - 0.2) / 0.5, (1.0 - 0.1) / 2.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)
    as_float = u8.float() / 255
    before = as_float.clone()
    torch.testing.assert_close(normalize(as_float, mean, std), want, atol=1e-6, rtol=0)
    assert torch.equal(as_float, before)  # the input is not modified in place


def test_parse_classes_takes_indices_and_names_and_names_what_is_wrong():
    from core.data import parse_classes

    assert parse_classes("3, cat,0,0") == (0, 3)
    assert parse_classes("") == ()
    with pytest.raises(DataError, match="unknown class '10'"):
        parse_classes("1,10")


def test_the_subset_is_gathered_in_chunks_with_the_same_images_in_the_same_order():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    keep = rng.permutation(50)[:23]
    out = np.zeros((23, 3, 32, 32), dtype=np.uint8)
    released = []
    data._gather((images[s : s + 5] for s in range(0, 50, 5)), keep, out, lambda: released.append(1))
    np.testing.assert_array_equal(out, images[keep].transpose(0, 3, 1, 2))
    assert len(released) == 10
    with pytest.raises(DataError, match="the split ended after 20 images; the subset needs image"):
        data._gather((images[s : s + 5] for s in range(0, 20, 5)), np.array([3, 30]), out[:2], lambda: None)


def _npz_split(folder: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A compressed train.npz of n random images, 10 classes in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(1).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    np.savez_compressed(folder / "train.npz", images=images, labels=labels)
    return images, labels


def test_a_large_split_is_read_as_it_is_decompressed_and_gives_the_same_subset(tmp_path, monkeypatch):
    """Beyond KEEP_SPLIT_BYTES the subset is gathered from the npz a chunk at a time (never the whole split):
    the same images, labels and order as from the split read whole."""
    images, labels = _npz_split(tmp_path / "npz", 300)
    spec = SubsetSpec(split="train", per_class=20, seed=4)
    whole = load_subset(spec, tmp_path / "npz")
    monkeypatch.setattr(data, "KEEP_SPLIT_BYTES", 1000)
    monkeypatch.setattr(data, "CHUNK_ROWS", 7)
    read_whole = []
    monkeypatch.setattr(data, "_read_npz", lambda path: read_whole.append(path))
    streamed = load_subset(spec, tmp_path / "npz")
    assert read_whole == []
    np.testing.assert_array_equal(streamed.indices, whole.indices)
    assert torch.equal(streamed.images, whole.images) and torch.equal(streamed.labels, whole.labels)
    np.testing.assert_array_equal(streamed.images.numpy(), images[streamed.indices].transpose(0, 3, 1, 2))
    assert streamed.labels.tolist() == labels[streamed.indices].tolist()


def test_an_npz_with_images_of_another_shape_is_a_data_error(tmp_path, monkeypatch):
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "train.npz", images=np.zeros((20, 3, 32, 32), np.uint8), labels=np.arange(20) % 10)
    monkeypatch.setattr(data, "KEEP_SPLIT_BYTES", 0)
    with pytest.raises(DataError, match=r"train.npz: images must be uint8 N x 32 x 32 x 3 in C order"):
        load_subset(SubsetSpec(split="train", per_class=1), tmp_path / "npz")


@pytest.mark.parametrize("content", [b"not a zip at all", None])
def test_a_split_file_that_is_not_our_npz_is_a_data_error(tmp_path, content):
    (tmp_path / "npz").mkdir()
    if content is None:
        np.savez(tmp_path / "npz" / "train.npz", pixels=np.zeros((2, 32, 32, 3), np.uint8))
    else:
        (tmp_path / "npz" / "train.npz").write_bytes(content)
    with pytest.raises(DataError, match=r"train.npz is not an npz with the arrays 'images' and 'labels'"):
        load_subset(SubsetSpec(split="train", per_class=1), tmp_path / "npz")


def _resident_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the resident set from /proc")
def test_a_large_subset_is_mapped_and_a_released_batch_leaves_memory_but_not_the_subset(tmp_path, monkeypatch):
    """Beyond MAP_SUBSET_BYTES the images live in a mapped temporary file: loading leaves none of them resident,
    a batch read brings its pages in, `release` takes them out again, and the images read back the same."""
    images, _ = _npz_split(tmp_path / "npz", 3000)
    monkeypatch.setattr(data, "KEEP_SPLIT_BYTES", 0)
    monkeypatch.setattr(data, "MAP_SUBSET_BYTES", 1_000_000)
    subset = load_subset(SubsetSpec(split="train", per_class=300, seed=2), tmp_path / "npz")  # 9 MB of images
    assert subset.mapping is not None
    expected = torch.from_numpy(images[subset.indices].transpose(0, 3, 1, 2).copy())
    before = _resident_kb()
    assert torch.equal(subset.images, expected)  # every page touched
    touched = _resident_kb()
    subset.release(slice(0, 3000))
    released = _resident_kb()
    assert touched - before > 7_000 and touched - released > 7_000
    assert torch.equal(subset.images[1000:1100], expected[1000:1100])


@pytest.mark.parametrize("mapped", [False, True])
def test_a_subset_survives_pickling_mapped_or_not(tmp_path, monkeypatch, mapped):
    """The app's cache pickles subsets: the copy has the same images, labels and indices, and is mapped again."""
    monkeypatch.setattr(data, "MAP_SUBSET_BYTES", 1000 if mapped else 10**9)
    subset = load_subset(SubsetSpec(per_class=20, seed=1))
    copy = pickle.loads(pickle.dumps(subset))  # noqa: S301 - our own bytes
    assert (copy.mapping is not None) == mapped and copy.spec == subset.spec and copy.source == subset.source
    assert torch.equal(copy.images, subset.images) and torch.equal(copy.labels, subset.labels)
    np.testing.assert_array_equal(copy.indices, subset.indices)


def test_a_small_subset_stays_in_memory_and_release_changes_nothing():
    subset = load_subset(SubsetSpec(per_class=10))
    copy = subset.images.clone()
    subset.release(slice(0, 100))
    assert subset.mapping is None and torch.equal(subset.images, copy)
