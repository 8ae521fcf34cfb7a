"""The registry's siblings: the other seeds a model is read against (the ceiling), found by name, appearing
the moment a training run writes its final weights."""

from __future__ import annotations

from dataclasses import replace

from models import ModelSpec, registry
from models.registry import choose_sibling, siblings

P = ModelSpec.parse


def test_the_bundled_supervised_network_names_its_trained_seed_1():
    assert siblings(P("bundled:supervised-resnet18-w16")).specs == (P("bundled:supervised-resnet18-w16-seed1"),)
    assert siblings(P("bundled:supervised-resnet18-w16-seed1")).specs == (P("bundled:supervised-resnet18-w16"),)


def test_a_seed_still_training_gives_no_sibling_and_a_plain_note_until_its_weights_exist(weights_dir, nets):
    nets.folder(weights_dir / "tiny-simclr", nets.make(num_classes=0), "simclr")
    (weights_dir / "tiny-simclr-seed1" / "snapshots").mkdir(parents=True)  # training: snapshots only
    found = siblings(P("bundled:tiny-simclr"))
    assert found.specs == ()
    assert found.note == "its other seed `tiny-simclr-seed1` is still training (no final weights yet)"
    assert choose_sibling(P("bundled:tiny-simclr"), None) == (None, found.note)
    nets.folder(weights_dir / "tiny-simclr-seed1", nets.make(num_classes=0, seed=1), "simclr")  # training ends
    assert siblings(P("bundled:tiny-simclr")) == registry.Siblings((P("bundled:tiny-simclr-seed1"),), "")


def test_only_the_same_method_counts_and_choices_after_hash_pass_on(weights_dir, nets):
    nets.folder(weights_dir / "tiny", nets.make(), "supervised")
    nets.folder(weights_dir / "tiny-seed1", nets.make(num_classes=0), "simclr")
    nets.folder(weights_dir / "tiny-seed2", nets.make(seed=2), "supervised")
    assert siblings(P("bundled:tiny#norm=imagenet")).specs == (P("bundled:tiny-seed2#norm=imagenet"),)
    assert siblings(P("bundled:tiny-seed1")).note == "`bundled:tiny-seed1` has no other seed among the bundled models"


def test_other_sources_have_none_unless_the_registry_lists_them(monkeypatch):
    assert siblings(P("file:/somewhere/model.pt")).note == "`file:/somewhere/model.pt` has no registered other seed"
    assert siblings(P("bundled:supervised-resnet18-w16@epoch-4")).specs == ()
    repo = "edadaltocg/resnet18_cifar10"
    assert siblings(P(f"hub:{repo}")).note == f"the registry names no other seed of `hub:{repo}`"
    other = P("hub:someone/resnet18_seed1")
    entries = tuple(replace(e, siblings=(other,)) if e.repo_id == repo else e for e in registry.HUB_ENTRIES)
    monkeypatch.setattr(registry, "HUB_ENTRIES", entries)
    assert siblings(P(f"hub:{repo}@main")).specs == (other,)


def test_a_person_can_name_a_sibling_or_none():
    assert choose_sibling(P("file:x.pt"), P("file:y.pt")) == (P("file:y.pt"), "")
    assert choose_sibling(P("bundled:supervised-resnet18-w16"), "none") == (None, "none was asked for")
    assert choose_sibling(P("bundled:supervised-resnet18-w16"), "auto")[0] == P("bundled:supervised-resnet18-w16-seed1")


def test_the_curated_pairs_are_offered_never_the_default_and_name_their_architecture():
    offered = {entry.spec for entry in registry.registry_entries()}
    for title, a, b, question in registry.CURATED_PAIRS:
        assert {a, b} <= offered and question
        assert {a, b}.isdisjoint(registry.DEFAULT_PAIR)
        assert all(title in registry.find_hub_entry(spec.location).pair for spec in (a, b))
    dino = registry.find_hub_entry("timm/vit_small_patch16_224.dino")
    assert (dino.named, dino.method, dino.arch.num_classes) == ("timm:vit_small_patch16_224", "dino", 0)
    assert dino.hints().arch == "timm:vit_small_patch16_224"
    assert registry.find_hub_entry("edadaltocg/resnet18_cifar10").hints().arch is None  # the ResNet reader's
