"""The result file: a result with its ceilings and findings, read back whole; older files and bad ceilings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.ceilings import Ceilings
from core.errors import ResultFileError
from core.report import read_report, report_csv, report_json
from core.result import to_json_dict
from tests.app.support import synthetic_result

FALLING = [0.9, 0.6, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1]


def test_a_result_file_brings_back_its_ceilings():
    result = synthetic_result([0.9] * 8, FALLING)
    seeds = synthetic_result([0.97] * 8, [0.8] * 8, methods=("simclr", "simclr"))
    data = json.loads(json.dumps(report_json(result, Ceilings(a=seeds, note_b="none was asked for"))))
    back, ceilings = read_report(data)
    np.testing.assert_allclose(back.matched_cka, result.matched_cka)
    np.testing.assert_allclose(ceilings.a.matched_cka, seeds.matched_cka)
    assert ceilings.b is None and ceilings.note_b == "none was asked for"
    assert len(data["findings"]) == 8
    assert report_csv(result, Ceilings(a=seeds)).count("\nceiling_a_interval_high,") == len(seeds.matched)


def test_a_file_without_ceilings_has_none_and_bad_ceilings_are_refused_with_the_reason():
    result = synthetic_result([0.9] * 8, FALLING)
    assert read_report(to_json_dict(result))[1] == Ceilings()
    with pytest.raises(ResultFileError, match="its ceiling for A cannot be read: this is not a CKA Lens result"):
        read_report(to_json_dict(result) | {"ceilings": {"a": {"cross": [1]}}})
    with pytest.raises(ResultFileError, match="its ceilings are a JSON object, not list"):
        read_report(to_json_dict(result) | {"ceilings": []})
