"""A pair and its ceilings is assembled in one place (core.pipeline.compare_with_ceilings), and read against its
floors and seed pairings by one function (models.references.with_floors_and_seeds): the command line, the app's
service and the server's warm-up all go through them."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

import cli.compare
import core.pipeline
import models
import models.references
import ui.service
from cli.main import main
from core.data import SubsetSpec
from core.options import AnalysisOptions
from models import load_model
from ui import choices, serve


def test_the_cli_the_service_and_the_warm_up_call_the_one_assembly(tiny_specs, tmp_path, monkeypatch):
    assert cli.compare.compare_with_ceilings is core.pipeline.compare_with_ceilings
    assert ui.service.compare_with_ceilings is core.pipeline.compare_with_ceilings
    calls: list[tuple] = []
    real = core.pipeline.compare_with_ceilings

    def spy(face: str):
        def assembled(a, b, sibling_a, sibling_b, *args, **kwargs):
            sources = [None if n is None else n.identity.source for n in (a, b, sibling_a, sibling_b)]
            calls.append((face, *sources))
            return real(a, b, sibling_a, sibling_b, *args, **kwargs)

        return assembled

    monkeypatch.setattr(cli.compare, "compare_with_ceilings", spy("cli"))
    monkeypatch.setattr(ui.service, "compare_with_ceilings", spy("service"))
    a, a2, b = tiny_specs["a"], tiny_specs["a2"], tiny_specs["b"]
    out = tmp_path / "r.json"
    argv = ["compare", "--a", a, "--b", b, "--a-sibling", a2, "--b-sibling", "none", "--out", str(out)]
    assert main([*argv, "--per-class", "6", "--batch-size", "20", "--permutations", "3"]) == 0
    assert calls == [("cli", a, b, a2, None)]

    spec, options = SubsetSpec(per_class=6), AnalysisOptions(batch_size=20, permutations=3)
    found = ui.service.pair_with_ceilings(load_model(a), load_model(b), load_model(a2), None, spec, options)
    assert calls[-1] == ("service", a, b, a2, None)
    written = json.loads(out.read_text())  # the same comparison as the CLI's, here from the store it filled
    np.testing.assert_allclose(np.array(written["cross"], dtype=float), found.pair.cross, rtol=0, atol=0)
    np.testing.assert_allclose(written["ceilings"]["a"]["matched_cka"], found.ceiling_a.matched_cka, rtol=0, atol=0)
    for name in ("floor_untrained", "floor_untrained_low", "floor_untrained_high", "untrained_a"):  # no recompute
        np.testing.assert_allclose(np.array(written[name], dtype=float), getattr(found.pair, name), rtol=0, atol=0)
    assert [(p.a, p.b) for p in found.pair.seed_pairings] == [(a, b), (a2, b)]

    monkeypatch.setattr(models, "DEFAULT_PAIR", (models.ModelSpec.parse(a), models.ModelSpec.parse(b)))
    defaults = {f.name: f.default for f in choices.FIELDS} | {"per_class": 6, "batch": 20}
    monkeypatch.setattr(choices, "FIELDS", tuple(replace(f, default=defaults[f.name]) for f in choices.FIELDS))
    serve.warm()
    assert calls[-1] == ("service", a, b, None, None)  # tiny networks have no registered other seed
    assert len(calls) == 3


def test_the_cli_and_the_service_read_a_pair_against_its_floors_through_one_function():
    assert cli.compare.with_floors_and_seeds is models.references.with_floors_and_seeds
    assert ui.service.with_floors_and_seeds is models.references.with_floors_and_seeds
