"""Shared fixtures: small checkpoints in our folder format, network builders, a stand-in weights folder."""

from __future__ import annotations

import copy
import fcntl
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from core import settings
from core.data import CIFAR10_MEAN, CIFAR10_STD
from models import DEFAULT_PAIR, registry
from models.folder_format import save_folder
from models.resnet import ArchConfig, CifarResNet, build_resnet
from tests.bundled import REAL_PAIR

DEFAULT_A, DEFAULT_B = DEFAULT_PAIR
# Most test networks have random weights, which measuring on test images cannot tell anything about; the tests
# of calibration (tests/models/test_calibration.py, and the model card in the app's tests) turn it on.
os.environ[settings.CALIBRATION_IMAGES] = "0"
# The app's floors rest on 1 pair of untrained networks here, not 8: every app test computes them, and the band's
# own behaviour at 8 pairs is tested on the engine, the command line and one app test (tests/core/test_floors.py,
# tests/cli, tests/app/test_app.py).
os.environ[settings.FLOOR_PAIRS] = "1"
# The result store lives in a fresh folder per test run, never in the user's cache. pytest-xdist's workers inherit
# the folder made by the process that starts them, so they share one store, as a server's processes would: what one
# worker computed, the other reads (a test that needs a store of its own sets one).
if "CKA_LENS_TEST_RUN_STORE" not in os.environ:  # the process that starts the run (or the workers)
    os.environ["CKA_LENS_TEST_RUN_STORE"] = tempfile.mkdtemp(prefix="cka-lens-test-store-")
os.environ[settings.STORE] = os.environ["CKA_LENS_TEST_RUN_STORE"]


def make_checkpoint(folder: Path, seed: int, method: str, width: int = 8) -> Path:
    """A randomly initialised CIFAR ResNet-18 saved as a checkpoint folder (fast to run in tests)."""
    torch.manual_seed(seed)
    arch = ArchConfig(depth=18, width=width, num_classes=10 if method == "supervised" else 0)
    net = build_resnet(arch)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so layers differ between seeds
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
                m.running_mean.normal_(0, 0.1)
    save_folder(net, arch, {"method": method, "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}, folder)
    return folder


@pytest.fixture(scope="session")
def once_per_run(tmp_path_factory) -> Callable[[str, Callable[[Path], object]], object]:
    """`once_per_run(name, make)`: what `make(folder)` returns (JSON), made in `folder` by the first pytest process of
    the run to ask and read back by the others: pytest-xdist's workers share their session's temporary folder."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base

    def once(name: str, make: Callable[[Path], object]) -> object:
        folder = shared / f"once-{name}"
        folder.mkdir(exist_ok=True)
        made, failed = folder / "made.json", folder / "failed.txt"
        with open(folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker waits here for the first's value
            if failed.exists():  # not made again: it failed the same way for the first to try
                pytest.fail(f"{name} failed in another pytest process: {failed.read_text()}")
            if not made.exists():
                try:
                    made.write_text(json.dumps(make(folder)))
                except BaseException as error:
                    failed.write_text(f"{type(error).__name__}: {error}"[:8000])
                    raise
        return json.loads(made.read_text())

    return once


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The test networks are tiny and gain nothing from intra-op threads, while on a busy 2-core
    machine two threads spin against other processes (a width-4 forward took 1.4 s with 2 threads,
    0.01 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def components_scanned_once():
    """Each new AppTest scans every installed distribution for Streamlit components (0.17 CPU-s, some 80 times a
    run); the installed packages do not change during a run, so each pytest process scans them once."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:  # the GPU check's machine: no Streamlit, and no AppTest to run (bench/gpu_check.py)
        yield
        return
    found = manifest_scanner.scan_component_manifests()
    patch = pytest.MonkeyPatch()
    patch.setattr(manifest_scanner, "scan_component_manifests", lambda max_workers=None: list(found))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def tiny_specs(tmp_path_factory) -> dict[str, str]:
    """`file:` specs of three tiny checkpoints: two SimCLR-like seeds and one supervised."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "a": "file:" + str(make_checkpoint(root / "a", 0, "simclr")),
        "a2": "file:" + str(make_checkpoint(root / "a2", 1, "simclr")),
        "b": "file:" + str(make_checkpoint(root / "b", 2, "supervised")),
    }


@pytest.fixture(scope="session")
def stand_in_dir(tiny_specs, tmp_path_factory) -> Path | None:
    """A weights folder holding tiny checkpoints under the bundled pair's names; None when the real pair exists."""
    if REAL_PAIR:
        return None
    root = tmp_path_factory.mktemp("weights")
    for name, spec in ((DEFAULT_A, tiny_specs["a"]), (DEFAULT_B, tiny_specs["b"])):
        (root / name.location).symlink_to(Path(spec.removeprefix("file:")), target_is_directory=True)
    return root


@pytest.fixture
def bundled_pair(stand_in_dir, monkeypatch) -> bool:
    """Make `bundled:` specs resolve to the real pair if trained, else to tiny stand-ins; True when real."""
    if stand_in_dir is not None:
        monkeypatch.setattr(registry, "WEIGHTS_DIR", stand_in_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # an unknown hub repo fails at once instead of after a timeout
    return REAL_PAIR


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA: on a machine without it they are reported as skipped, never run.

    Tests marked `slow` run first: pytest-xdist's workers take the next test as they finish one (`make test`), so
    the long tests start early and the short ones fill in around them, rather than one worker running a long test
    alone at the end while the other waits. A module-scoped fixture may then be made once on each worker: those
    that cost seconds are made once per run (`once_per_run`) by a slow test, and the other tests reading them come
    last, when they are long made, so that no worker waits for the other's. Before them all comes the test that
    wants a server no page has been opened on: the first worker's shared server then serves it, and no other is
    started (tests/app/conftest.py)."""

    def order(item) -> tuple[bool, bool, bool]:
        slow = item.get_closest_marker("slow") is not None
        return "fresh_app_server" not in item.fixturenames, not slow, "once_per_run" in item.fixturenames and not slow

    items.sort(key=order)  # a stable sort: the collection order else
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class Nets:
    """Builders shared by the tests (a fixture, so test modules need no import tricks)."""

    @staticmethod
    def make(depth: int = 18, width: int = 4, num_classes: int = 10, seed: int = 0, **arch) -> CifarResNet:
        """A random network with non-trivial BatchNorm statistics, in eval mode.

        Random running statistics and affine parameters make every tensor matter, so a loader that
        dropped or swapped one would change the outputs.
        """
        torch.manual_seed(seed)
        net = build_resnet(ArchConfig(depth=depth, width=width, num_classes=num_classes, **arch))
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_var.uniform_(0.5, 2.0)
                    m.running_mean.normal_(0, 0.1)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
        return net.eval()

    @staticmethod
    def torch_bytes(obj: object) -> bytes:
        """What torch.save writes, kept in memory."""
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    @staticmethod
    def assert_same_outputs(original: torch.nn.Module, loaded: torch.nn.Module, size: int = 32) -> None:
        """Both networks give bit-identical outputs on the same random images. A loaded network's weights are
        channels-last (models.LoadedModel), which changes the rounding: the original is read in that layout too."""
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
        original = copy.deepcopy(original).eval().to(memory_format=torch.channels_last)
        with torch.no_grad():
            expected, got = original(x), loaded(x)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=0, atol=0)

    @staticmethod
    def folder(path: Path, net: CifarResNet, method: str, **meta) -> Path:
        """A checkpoint folder in our folder format (model.safetensors + config.json)."""
        meta = {"method": method, "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)} | meta
        save_folder(net, net.config, meta, path)
        return path


@pytest.fixture
def nets() -> type[Nets]:
    return Nets


@pytest.fixture
def weights_dir(tmp_path, monkeypatch) -> Path:
    """An empty models/weights stand-in, so `bundled:` tests never see (or touch) the real folders."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(registry, "WEIGHTS_DIR", folder)
    return folder
