"""ui.networks: the app's walk from a typed model to a loaded network parses the spec once, at the sidebar's edge."""

from __future__ import annotations

from models import ModelSpec, SpecChoices
from ui import networks
from ui.choices import as_spec


def test_the_sidebars_spec_reaches_the_network_without_being_parsed_again(tiny_specs, monkeypatch):
    parsed: list[str] = []
    original = ModelSpec.parse.__func__
    monkeypatch.setattr(ModelSpec, "parse", classmethod(lambda cls, text: parsed.append(text) or original(cls, text)))
    spec = as_spec(f"  {tiny_specs['b']}#norm=imagenet ")  # typed into the sidebar
    loaded = networks.load(spec)
    assert networks.load(spec) is loaded and networks.peek(spec) is loaded  # the shared cache, by the parsed spec
    assert loaded.info.source == f"{tiny_specs['b']}#norm=imagenet" and loaded.info.mean == (0.485, 0.456, 0.406)
    assert networks.load(spec.base).info.source == tiny_specs["b"]
    assert networks.load(spec.with_choices(SpecChoices())) is networks.load(spec.base)
    assert parsed == [f"{tiny_specs['b']}#norm=imagenet"]  # once, where it was typed
