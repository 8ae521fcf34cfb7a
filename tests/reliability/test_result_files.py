"""A refused result file leaves nothing open: the pages show the sidebar's pair again, and nothing raises."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from core.result import to_json_dict
from tests.app.support import APP, shown, synthetic_result


def test_a_refused_result_file_keeps_nothing_open(bundled_pair):
    good = to_json_dict(synthetic_result([0.9] * 8, [0.5] * 8))
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"per_class": "10"})
    at.run().switch_page("pages/open_result.py").run()
    at.file_uploader(key="result_file").upload("good.json", json.dumps(good).encode()).run()
    assert at.success, "the valid file opened"
    at.file_uploader(key="result_file").upload("bad.json", json.dumps(good | {"used_images": "1,000"}).encode()).run()
    assert not at.exception and not at.success
    assert "used_images is not a number of images" in shown(at.error[0].value)
    at.switch_page("pages/probes.py").run()
    assert not at.exception and not at.error
    assert not any(shown(i.value).startswith("Showing") for i in at.info), "nothing is open"
