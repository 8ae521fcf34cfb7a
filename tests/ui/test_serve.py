"""ui.serve's warm-up: the default pair's result is computed into the result store, each step said."""

from __future__ import annotations

from dataclasses import replace

import models
from core import settings
from core.store import Store, result_key
from models import load_model
from ui import choices, serve, service


def test_the_warm_up_leaves_the_default_result_in_the_store(tiny_specs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(settings.STORE, str(tmp_path / "store"))
    monkeypatch.setattr(models, "DEFAULT_PAIR", tuple(models.ModelSpec.parse(tiny_specs[k]) for k in "ab"))
    defaults = {f.name: f.default for f in choices.FIELDS} | {"per_class": 6, "batch": 20}
    small = tuple(replace(f, default=defaults[f.name]) for f in choices.FIELDS)
    monkeypatch.setattr(choices, "FIELDS", small)
    service.forget()  # what earlier tests computed in this process must not stand in for the warm-up's work
    serve.warm()
    said = capsys.readouterr().out.splitlines()
    assert said[0] == "CKA Lens warm-up: step 1 of 3: importing torch and the app's modules"
    assert said[2].startswith("CKA Lens warm-up: step 3 of 3: computing the default comparison (60 images)")
    assert said[-1].startswith("CKA Lens warm-up: done in ")
    subset, options = choices.subset_and_options(defaults)
    a, b = (load_model(tiny_specs[k]) for k in ("a", "b"))
    stored = Store(tmp_path / "store", 10**9).result(result_key(a.identity.key, b.identity.key, subset, options))
    assert stored is not None and stored.used_images == 60
