"""Text from a link or a result file reaches the app's messages as text: no link, image or emphasis of its own."""

from __future__ import annotations

import json
from dataclasses import replace

from streamlit.testing.v1 import AppTest

from core.result import to_json_dict
from tests.app.support import APP, synthetic_result
from tests.ui.test_text import INJECTIONS, markup_in
from ui.figure import MATCHED_ALT

ATTACK = INJECTIONS[0]


def bodies(at: AppTest) -> list[str]:
    """Every Markdown body on the page (sidebar included), except the app's own figure image."""
    kinds = (at.markdown, at.caption, at.info, at.warning, at.error, at.success)
    return [e.value for group in kinds for e in group if not e.value.startswith(f"![{MATCHED_ALT}]")]


def assert_no_injected_markup(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    for body in bodies(at):
        if "evil" in body or "Session" in body:  # each line, less the app's own list marker (the notice's items)
            for line in body.split("\n"):
                assert markup_in(line.removeprefix("- ")) == [], body


def test_a_links_value_is_shown_as_text_in_the_apps_warning(bundled_pair):
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"batch": ATTACK, "per_class": "10"})
    at.run()
    assert any("Session expired" in w.value for w in at.warning), "the ignored value is named"
    assert_no_injected_markup(at)


def test_a_result_files_strings_are_shown_as_text_on_every_page(bundled_pair):
    result = synthetic_result([0.9] * 8, [0.5] * 8)
    result = replace(
        result,
        model_a=replace(result.model_a, source=ATTACK),
        probe_method=ATTACK,
        seconds={"forward": 1.0},
    )
    data = json.dumps(to_json_dict(result)).encode()
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"per_class": "10"})
    at.run()
    at.switch_page("pages/open_result.py").run()
    at.file_uploader(key="result_file").upload(f"{ATTACK}.json", data).run()
    assert any("Session expired" in s.value for s in at.success), "the file was opened"
    assert_no_injected_markup(at)
    for page in ("overview", "similarity", "probes"):
        at.switch_page(f"pages/{page}.py").run()
        assert any("Session expired" in b for b in bodies(at)), page
        assert_no_injected_markup(at)
