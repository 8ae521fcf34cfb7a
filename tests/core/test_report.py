"""The result file: a result with its ceilings and findings, read back whole; older files and bad ceilings."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from core.ceilings import Ceilings
from core.errors import ResultFileError
from core.report import MAX_REPORT_BYTES, open_report, read_report, report_csv, report_json
from core.result import MAX_LAYERS, to_json_dict
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


def _valid() -> dict:
    return json.loads(json.dumps(report_json(synthetic_result([0.9] * 8, FALLING), Ceilings())))


def _set(path: str, value) -> dict:
    """A valid file with one field (a dotted path; a number indexes a list) replaced; "..." removes it."""
    data = _valid()
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key = int(last) if last.isdigit() else last
    if value == "...":
        target.pop(key)
    else:
        target[key] = value
    return data


# Files that opened before and then made a page raise: each is refused when opened, naming what is wrong.
CRAFTED = {
    "probe_b one short": (lambda: _set("probe_b", _valid()["probe_b"][:-1]), "probe_b has not"),
    "invariance_b one long": (lambda: _set("invariance_b", [*_valid()["invariance_b"], 0.5]), "invariance_b has"),
    "a source that is a number": (lambda: _set("model_a.source", 123), "model_a.source is 123"),
    "a null layer name": (lambda: _set("layers_a.3", None), "layers_a[3] is not a layer name"),
    "seconds that are words": (lambda: _set("seconds", {"forward": "slow"}), "seconds['forward'] is 'slow'"),
    "a huge used_images": (lambda: _set("used_images", 10**4000), "used_images is not a number of images"),
    "used_images as text": (lambda: _set("used_images", "1,000"), "used_images is not a number of images"),
    "a cross row one short": (lambda: _set("cross.2", _valid()["cross"][2][:-1]), "cross[2] has not"),
    "a string among numbers": (lambda: _set("matched_cka.0", "0.9"), "matched_cka holds '0.9'"),
    "a matched layer of neither model": (lambda: _set("matched.0", "layer9.9"), "matched layers are not layers"),
    "a method with markup": (lambda: _set("model_b.method", "[x](https://e.x)"), "model_b.method is not"),
    "an undefined reason that is a number": (lambda: _set("undefined_a.0", 5), "undefined_a is not a string"),
    "a probe method of a megabyte": (lambda: _set("probe_method", "x" * 1_000_001), "probe_method is not a string"),
    "options with an unknown field": (lambda: _set("options.extra", 1), "options has a field 'extra'"),
    "a subset with text classes": (lambda: _set("subset.classes", ["0"]), "subset.classes is"),
    "a missing field": (lambda: _set("self_b", "..."), "self_b missing"),
    "a note that is a list": (lambda: _set("ceilings.note_a", [1]), "notes are not strings"),
}


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_a_crafted_result_file_is_refused_whole_with_its_first_problem(kind):
    build, says = CRAFTED[kind]
    with pytest.raises(ResultFileError) as refused:
        open_report("crafted.json", json.dumps(build()).encode())
    message = str(refused.value)
    assert message.startswith("'crafted.json' cannot be opened: ") and says in message, message
    assert len(message) < 400


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nests its JSON too deeply"),
        (b'{"cross": NaN}', "cannot be opened: NaN is not a JSON number"),
        (b'{"cross": 1e999}', "cross holds inf"),
        (b"x" * (MAX_REPORT_BYTES + 1), "limit"),
    ],
)
def test_a_file_that_is_not_a_result_is_refused_as_such(data, says):
    if says == "cross holds inf":
        data = json.dumps(_valid()).replace('"cross": [[', '"cross": [[1e999, ', 1).encode()
        data = data.replace(b"[[1e999, 0.5, ", b"[[1e999, ", 1)
    with pytest.raises(ResultFileError, match=re.escape(says)):
        open_report("bad.json", data)


def test_too_many_layers_are_refused_and_the_largest_valid_file_opens():
    data = _valid()
    names = [f"layer{i}" for i in range(MAX_LAYERS + 1)]
    data["layers_a"] = names
    with pytest.raises(ResultFileError, match=f"1 to {MAX_LAYERS} layer names"):
        open_report("wide.json", json.dumps(data).encode())
    n = MAX_LAYERS
    big = {
        **_valid(),
        "layers_a": names[:n],
        "layers_b": names[:n],
        "matched": names[:n],
        "cross": [[0.5] * n] * n,
        "self_a": [[0.5] * n] * n,
        "self_b": [[0.5] * n] * n,
        "undefined_a": [None] * n,
        "undefined_b": [None] * n,
    }
    for key in ("class", "invariance", "probe"):
        big[f"{key}_a"] = big[f"{key}_b"] = [0.5] * n
    for key in ("matched_cka", "null_mean", "null_p95", "interval_low", "interval_high"):
        big[key] = [0.5] * n
    raw = json.dumps(big).encode()
    result, _ = open_report("big.json", raw)
    assert result.cross.shape == (n, n) and len(raw) < MAX_REPORT_BYTES
