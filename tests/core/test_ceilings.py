"""Ceilings (each model against another seed of its method): reading one layer, and the JSON and CSV forms."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.ceilings import Ceilings, Matched, ceilings_csv_rows, ceilings_from_json, ceilings_to_json, matched_at
from core.comparison import finalize, pair_terms
from core.errors import ResultFileError
from core.fingerprint import fingerprint
from core.options import AnalysisOptions
from tests.core.tiny import tiny_network, tiny_subset

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def result():
    """A against another seed, over five minibatches (so it has an interval), with an undefined null value."""
    subset, options = tiny_subset(40), AnalysisOptions(batch_size=8, permutations=2, probes=False, invariance=False)
    fa, fb = (fingerprint(tiny_network(seed), subset, options, CPU) for seed in (0, 2))
    out = finalize(fa, fb, pair_terms(fa, fb, CPU), subset.spec, with_readouts=False)
    return replace(out, null_p95=np.array([np.nan, *out.null_p95[1:]]))


def test_matched_at_reads_the_value_and_interval_of_one_layer(result):
    at = matched_at(result, "down")
    k = result.matched.index("down")
    assert (at.value, at.low, at.high) == (result.matched_cka[k], result.interval_low[k], result.interval_high[k])
    assert at.low <= at.value <= at.high
    assert at.half_width == pytest.approx((at.high - at.low) / 2) and at.half_width > 0


@pytest.mark.parametrize("layer", ["layer9.0 output", ""])
def test_matched_at_a_missing_layer_or_result_is_all_nan(result, layer):
    for at in (matched_at(result, layer), matched_at(None, "down")):
        assert math.isnan(at.value) and math.isnan(at.low) and math.isnan(at.high) and math.isnan(at.half_width)


def test_half_width_of_a_given_interval():
    assert Matched(0.5, 0.4, 0.7).half_width == pytest.approx(0.15)


def test_json_round_trip_keeps_every_value_nan_included(result):
    ceilings = Ceilings(a=result, note_b="no other seed of supervised is bundled")
    text = json.dumps(ceilings_to_json(ceilings), allow_nan=False)  # strict JSON: NaN became null
    back = ceilings_from_json(json.loads(text))
    assert back.b is None and back.note_b == "no other seed of supervised is bundled" and back.note_a == ""
    assert back.a.matched == result.matched and back.a.model_a == result.model_a
    np.testing.assert_array_equal(back.a.cross, result.cross)
    np.testing.assert_array_equal(back.a.null_p95, result.null_p95)  # NaN where it was NaN
    assert np.isnan(back.a.null_p95[0])


def test_absent_ceilings_read_as_none_on_both_sides():
    empty = ceilings_from_json(None)
    assert empty == Ceilings() and empty.side("a") == (None, "") and empty.side("b") == (None, "")


def test_side_picks_that_sides_result_and_note(result):
    ceilings = Ceilings(b=result, note_a="why not A")
    assert ceilings.side("a") == (None, "why not A")
    assert ceilings.side("b")[0] is result


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "its ceilings are a JSON object, not list"),
        ({"a": {"cross": []}}, "its ceiling for A cannot be read: this is not a CKA Lens result"),
        ({"b": "text"}, "its ceiling for B cannot be read: a result is a JSON object, not str"),
    ],
)
def test_unreadable_ceilings_say_which_side_and_why(data, message):
    with pytest.raises(ResultFileError, match=message):
        ceilings_from_json(data)


def test_csv_rows_hold_each_sides_curve_and_interval(result):
    rows = ceilings_csv_rows(Ceilings(b=result))
    assert len(rows) == 3 * len(result.matched)
    assert all(row.startswith("ceiling_b_") for row in rows)
    k = result.matched.index("flat")
    assert f"ceiling_b_matched_cka,flat,flat,{float(result.matched_cka[k])!r}" in rows
    section, layer_a, layer_b, value = rows[1].split(",")
    assert (section, layer_a, layer_b) == ("ceiling_b_interval_low", "conv", "conv")
    assert float(value) == result.interval_low[0]
    assert ceilings_csv_rows(Ceilings()) == []


def test_csv_leaves_an_undefined_value_empty(result):
    nan_result = replace(result, matched_cka=np.array([np.nan, *result.matched_cka[1:]]))
    assert ceilings_csv_rows(Ceilings(a=nan_result))[0] == "ceiling_a_matched_cka,conv,conv,"
