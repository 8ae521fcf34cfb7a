"""State that cannot break: the URL and the session hold canonical values only, a link's bad values are left out
with a notice at the top, an other seed is only ever proposed (or kept) from its model's method, and a refusal
shows a visitor its message without the operator's hint. The sidebar runs alone (no page, no analysis)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.errors import LensError, SettingsError
from core.options import DEFAULTS
from models import CheckpointError, ModelSpec, choose_sibling, registry_entries
from models.checkpoint import check_size
from tests.app.support import shown
from ui.choices import as_spec, model_label
from ui.text import plain

SUPERVISED_1 = "bundled:supervised-resnet18-w16-seed1"
SUPERVISED_0 = "bundled:supervised-resnet18-w16"
SIMCLR_1 = "bundled:simclr-resnet18-w16-seed1"
METHODS = {entry.spec.text: entry.method for entry in registry_entries()}
OLD_LABEL = "its registered other seed (bundled:simclr-resnet18-w16-seed1)"  # what an earlier version put in links
needs_seeds = pytest.mark.skipif(
    not {SUPERVISED_0, SUPERVISED_1, SIMCLR_1} <= set(METHODS), reason="the bundled seeds are not in models/weights"
)


def frame() -> None:
    """app.py's frame without the pages: the choices settled, the notices on top, the sidebar."""
    from ui.router import app_frame
    from ui.sidebar import notices, settle_choices, sidebar

    with app_frame():
        settle_choices()
        notices()
        sidebar()


def open_sidebar(params: dict[str, str]) -> AppTest:
    at = AppTest.from_function(frame, default_timeout=60)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def url_is_canonical(at: AppTest) -> None:
    """Every model in the URL is its own canonical spec (or auto / none)."""
    for name in ("a", "b", "a_seed", "b_seed"):
        value = at.query_params[name]
        assert value in ("auto", "none") or ModelSpec.parse(value).text == value, (name, value)


def caption_of_ceiling(at: AppTest, side: str) -> str:
    return next(shown(c.value) for c in at.sidebar.caption if shown(c.value).startswith(f"Ceiling of {side}"))


def test_a_link_is_read_as_the_command_line_reads_it_and_its_bad_values_are_left_out_with_one_notice_on_top():
    at = open_sidebar(
        {
            "a": " edadaltocg/resnet18_cifar10 ",  # a Hub repo typed as owner/repo, with spaces
            "b": "bogus:thing",
            "a_seed": OLD_LABEL,
            "b_seed": "garbage",
            "per_class": "abc",
            "kernel": "cosine",
            "classes": "0-9",
            "subset_seed": "3",  # a good value among the bad is kept
            "colour": "blue",  # a parameter this version does not have
        }
    )
    url_is_canonical(at)
    assert at.query_params["a"] == "hub:edadaltocg/resnet18_cifar10"
    assert at.query_params["b"] == "bundled:supervised-resnet18-w16" and at.query_params["b_seed"] == "auto"
    assert at.query_params["a_seed"] == "auto" and at.query_params["per_class"] == str(DEFAULTS.per_class)
    assert at.query_params["classes"] == "0,1,2,3,4,5,6,7,8,9" and at.query_params["subset_seed"] == "3"
    assert "colour" not in at.query_params
    (notice,) = [shown(w.value) for w in at.main.warning]  # one notice, in the page, not in the sidebar
    assert notice.startswith("Some of this link's settings could not be used, so they were left out:")
    for line in (
        "b = bogus:thing: 'bogus:' is not a known source",
        f"a_seed = {OLD_LABEL}: ",
        "b_seed = garbage: ",
        f"per_class = abc: 'abc' is not a whole number (using {DEFAULTS.per_class} instead)",
        "kernel = cosine: must be one of linear, rbf (using linear instead)",
        "classes = 0-9: unknown class '0-9'; use 0-9 or one of airplane, automobile, bird, cat, deer, dog, frog, "
        "horse, ship, truck (using 0,1,2,3,4,5,6,7,8,9 instead)",
        "colour: this version of CKA Lens has no such setting",
    ):
        assert f"- {line}" in notice, line
    assert "invalid literal" not in notice and not at.sidebar.warning
    at.button(key="dismiss_notices").click().run()
    assert not at.main.warning


@needs_seeds
def test_the_ceiling_after_changing_model_a_is_of_a_s_own_method_and_the_url_holds_specs():
    at = open_sidebar({"per_class": "10"})
    assert caption_of_ceiling(at, "A") == f"Ceiling of A: A against {SIMCLR_1}"
    at.selectbox(key="sb_a").set_value(SUPERVISED_1).run()
    assert not at.exception and not at.main.warning
    url_is_canonical(at)
    assert at.query_params["a"] == SUPERVISED_1 and at.query_params["a_seed"] == "auto"
    assert caption_of_ceiling(at, "A") == f"Ceiling of A: A against {SUPERVISED_0}"
    labels = at.selectbox(key="sb_a_seed").options  # what the browser shows and sends back
    assert labels[:2] == ["its registered other seed", "none (no ceiling)"]
    proposed = [as_spec(label).text for label in labels[2:]]  # each label reads back as its spec
    assert proposed and {METHODS[p] for p in proposed} == {"supervised"} and SUPERVISED_1 not in proposed
    assert at.selectbox(key="sb_a").options == [
        model_label(as_spec(label).text) for label in at.selectbox(key="sb_a").options
    ]
    at.selectbox(key="sb_a_seed").set_value(SUPERVISED_0).run()  # chosen by name: kept, and named in the URL
    assert at.query_params["a_seed"] == SUPERVISED_0
    at.selectbox(key="sb_a").set_value(DEFAULT_SIMCLR := "bundled:simclr-resnet18-w16").run()
    (notice,) = [shown(w.value) for w in at.main.warning]  # a supervised seed is no ceiling for a SimCLR model
    assert f"Model A's other seed {SUPERVISED_0} was not used: it was trained with supervised, model A with simclr" in (
        notice
    )
    assert at.query_params["a"] == DEFAULT_SIMCLR and at.query_params["a_seed"] == "auto"
    assert caption_of_ceiling(at, "A") == f"Ceiling of A: A against {SIMCLR_1}"


@needs_seeds
@pytest.mark.parametrize(
    ("sibling", "why"),
    [(SIMCLR_1, "it was trained with simclr, model A with supervised"), (SUPERVISED_1, "it is model A itself")],
)
def test_a_link_whose_other_seed_is_no_ceiling_falls_back_to_the_registered_one(sibling, why):
    at = open_sidebar({"a": SUPERVISED_1, "a_seed": sibling})
    (notice,) = [shown(w.value) for w in at.main.warning]
    assert f"Model A's other seed {sibling} was not used: {why}" in notice
    assert at.query_params["a_seed"] == "auto"
    assert choose_sibling(ModelSpec.parse(SUPERVISED_1), "auto")[0] == ModelSpec.parse(SUPERVISED_0)


@needs_seeds
def test_a_model_s_label_in_the_sidebar_reads_back_as_the_same_spec():
    for spec in (SUPERVISED_1, SUPERVISED_1 + "@epoch-5", "hub:edadaltocg/resnet18_cifar10@main", "upload:x.pth"):
        assert as_spec(model_label(spec)).text == spec
    assert model_label(SUPERVISED_1) == "supervised-resnet18-w16-seed1"
    assert as_spec(model_label("hub:a/b:weights.bin")).text == "hub:a/b:weights.bin"
    at = open_sidebar({"a": "supervised-resnet18-w16-seed1#norm=imagenet", "b": "edadaltocg/resnet50_simclr_cifar10"})
    assert at.query_params["a"] == SUPERVISED_1 + "#norm=imagenet"  # a label in a link: the URL gets the spec
    assert at.query_params["b"] == "hub:edadaltocg/resnet50_simclr_cifar10" and not at.main.warning
    captions = [shown(c.value) for c in at.sidebar.caption]  # a name the select would cut is written out below it
    assert SUPERVISED_1 + "#norm=imagenet" in captions and "hub:edadaltocg/resnet50_simclr_cifar10" in captions
    fits = [shown(c.value) for c in open_sidebar({"a": SUPERVISED_1}).sidebar.caption]
    assert SUPERVISED_1 not in fits  # a name the select shows whole (the browser test measures it) is not repeated


def test_a_model_in_use_that_is_an_upload_says_the_link_does_not_carry_it():
    at = open_sidebar({"a": "upload:mine.pth"})
    (info,) = [shown(i.value) for i in at.sidebar.info]
    assert info.startswith("Model A is a file you uploaded: an upload stays in this browser tab's session.")
    assert "a new tab, or anyone you send the link to, must upload the file again" in info


def test_a_refusal_shows_a_visitor_its_message_and_keeps_the_operators_hint_for_the_log_and_the_command_line():
    with pytest.raises(CheckpointError) as big:
        check_size(3_000_000, "big.pth", 1_000_000)
    assert "CKA_LENS_MAX_UPLOAD_MB" in str(big.value)  # the command line prints str()
    assert "CKA_LENS_MAX_UPLOAD_MB" not in big.value.visitor and "use a smaller checkpoint" in big.value.visitor
    assert "CKA_LENS_" not in shown(plain(big.value, 600))  # every page shows refusals through ui.text
    setting = SettingsError("CKA_LENS_THREADS='x' is not a number of threads; set it to e.g. 1.")
    assert "CKA_LENS_THREADS" in str(setting) and "CKA_LENS" not in setting.visitor
    assert str(LensError("plain")) == LensError("plain").visitor == "plain"
