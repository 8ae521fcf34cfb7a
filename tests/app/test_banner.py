"""The near-chance banner (ui.banner): an uploaded network that measures near chance is named, with its card, at
the top of every analysis page, and a network that does not is never named."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import settings
from models import load_uploaded
from tests.app.support import APP, shown

ANALYSIS_PAGES = ("overview", "similarity", "probes", "training", "images")
NAME = "near-chance.safetensors"


def test_a_near_chance_upload_is_named_at_the_top_of_every_analysis_page(bundled_pair, tiny_specs, monkeypatch):
    monkeypatch.setenv(settings.CALIBRATION_IMAGES, "64")  # measured, as on a server (the suite skips it)
    data = (Path(tiny_specs["b"].removeprefix("file:")) / "model.safetensors").read_bytes()  # random weights
    warning = load_uploaded(data, NAME).info.calibration.warning
    assert "is near chance" in warning  # what the Models page says of it, and the banner repeats
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"per_class": "5", "batch": "25"})  # 50 images: 2 minibatches, enough for every page
    at.run().switch_page("pages/models.py").run()
    at.file_uploader[0].upload(NAME, data).run()
    at.button(key=f"use_a_upload:{NAME}").click().run()
    expected = (
        f"Model A (upload:{NAME}) may not be the network it claims to be. {warning}. Every comparison on this page "
        "with model A describes that network as loaded: see model A's card on the Models page for what was "
        "measured, and change there what the weights cannot say."
    )
    for page in ANALYSIS_PAGES:
        at.switch_page(f"pages/{page}.py").run()
        if page == "overview":  # computed with the upload; the other pages then stop at a refused subset, after it
            assert "A = upload:" + NAME in " ".join(shown(c.value) for c in at.caption)
            at.multiselect(key="sb_classes").set_value([0]).run()
        assert not at.exception, (page, [e.message for e in at.exception])
        warnings = [shown(w.value).replace("**", "") for w in at.warning]  # read as on screen, bold or not
        assert warnings[0] == expected, page  # first, before anything the page computes
        assert not any("Model B" in w for w in warnings), page  # the bundled network is not near chance
        if page != "overview":  # the one-class subset is refused below the banner, in the sidebar's words
            assert any(w.startswith("The CIFAR-10 subset cannot be used: choose at least 2 classes") for w in warnings)
    at.switch_page("pages/models.py").run()
    assert not [w for w in at.warning if "may not be the network" in w.value]  # the card says it there itself
