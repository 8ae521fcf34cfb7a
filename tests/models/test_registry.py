"""The registry's siblings: the other seeds a model is read against (the ceiling), found by name, appearing
the moment a training run writes its final weights."""

from __future__ import annotations

from dataclasses import replace

from models import registry
from models.registry import choose_sibling, siblings


def test_the_bundled_supervised_network_names_its_trained_seed_1():
    assert siblings("bundled:supervised-resnet18-w16").specs == ("bundled:supervised-resnet18-w16-seed1",)
    assert siblings("bundled:supervised-resnet18-w16-seed1").specs == ("bundled:supervised-resnet18-w16",)


def test_a_seed_still_training_gives_no_sibling_and_a_plain_note_until_its_weights_exist(weights_dir, nets):
    nets.folder(weights_dir / "tiny-simclr", nets.make(num_classes=0), "simclr")
    (weights_dir / "tiny-simclr-seed1" / "snapshots").mkdir(parents=True)  # training: snapshots only
    found = siblings("bundled:tiny-simclr")
    assert found.specs == ()
    assert found.note == "its other seed `tiny-simclr-seed1` is still training (no final weights yet)"
    assert choose_sibling("bundled:tiny-simclr", None) == (None, found.note)
    nets.folder(weights_dir / "tiny-simclr-seed1", nets.make(num_classes=0, seed=1), "simclr")  # training ends
    assert siblings("bundled:tiny-simclr") == registry.Siblings(("bundled:tiny-simclr-seed1",), "")


def test_only_the_same_method_counts_and_choices_after_hash_pass_on(weights_dir, nets):
    nets.folder(weights_dir / "tiny", nets.make(), "supervised")
    nets.folder(weights_dir / "tiny-seed1", nets.make(num_classes=0), "simclr")
    nets.folder(weights_dir / "tiny-seed2", nets.make(seed=2), "supervised")
    assert siblings("bundled:tiny#norm=imagenet").specs == ("bundled:tiny-seed2#norm=imagenet",)
    assert siblings("bundled:tiny-seed1").note == "`bundled:tiny-seed1` has no other seed in models/weights"


def test_other_sources_have_none_unless_the_registry_lists_them(monkeypatch):
    assert siblings("file:/somewhere/model.pt").note == "`file:/somewhere/model.pt` has no registered other seed"
    assert siblings("bundled:supervised-resnet18-w16@epoch-4").specs == ()
    repo = "edadaltocg/resnet18_cifar10"
    assert siblings(f"hub:{repo}").note == f"the registry names no other seed of `hub:{repo}`"
    entries = tuple(
        replace(e, siblings=("hub:someone/resnet18_seed1",)) if e.repo_id == repo else e for e in registry.HUB_ENTRIES
    )
    monkeypatch.setattr(registry, "HUB_ENTRIES", entries)
    assert siblings(f"hub:{repo}@main").specs == ("hub:someone/resnet18_seed1",)


def test_a_person_can_name_a_sibling_or_none():
    assert choose_sibling("file:x.pt", "file:y.pt") == ("file:y.pt", "")
    assert choose_sibling("bundled:supervised-resnet18-w16", "none") == (None, "none was asked for")
    assert choose_sibling("bundled:supervised-resnet18-w16", "auto")[0] == "bundled:supervised-resnet18-w16-seed1"
