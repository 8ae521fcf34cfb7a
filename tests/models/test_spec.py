"""ModelSpec: every form a person can write parses to the fields it names and back to its canonical text; bad
forms are refused with the plain messages; and a spec is parsed once, where it enters, on its way to the forward
pass."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from models import CheckpointError, ModelSpec, SpecChoices
from models.calibration import NORMALISATIONS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bundled:simclr-resnet18-w16", ModelSpec("bundled", "simclr-resnet18-w16")),
        ("bundled:run@epoch-3", ModelSpec("bundled", "run", snapshot="epoch-3")),
        (
            "bundled:NAME#pool=yes,padding=2,norm=imagenet",
            ModelSpec("bundled", "NAME", choices=SpecChoices(pool=True, padding=2, norm="imagenet")),
        ),
        ("hub:owner/repo", ModelSpec("hub", "owner/repo")),
        ("hub:owner/repo@v1.0", ModelSpec("hub", "owner/repo", revision="v1.0")),
        (
            "hub:owner/repo@refs/pr/1:sub/w.safetensors",
            ModelSpec("hub", "owner/repo", revision="refs/pr/1", file="sub/w.safetensors"),
        ),
        ("hub:owner/repo:runs/last.ckpt", ModelSpec("hub", "owner/repo", file="runs/last.ckpt")),
        ("file:/tmp/ckpt_epoch5.pt", ModelSpec("file", "/tmp/ckpt_epoch5.pt")),
        ("file:~/c:d@e.pt", ModelSpec("file", "~/c:d@e.pt")),  # a path keeps its ':' and '@'
        ("file:ckpt.pth#norm=cifar10", ModelSpec("file", "ckpt.pth", choices=SpecChoices(norm="cifar10"))),
        ("upload:weights.pt", ModelSpec("upload", "weights.pt")),
        ("upload:weights.pt#pool=no", ModelSpec("upload", "weights.pt", choices=SpecChoices(pool=False))),
        ("file:w.pt#arch=timm:resnet18", ModelSpec("file", "w.pt", arch="timm:resnet18")),
        ("upload:w.pt#arch=torchvision:resnet18", ModelSpec("upload", "w.pt", arch="torchvision:resnet18")),
        (
            "hub:o/r:w.pt#arch=timm:vit_tiny_patch16_224",
            ModelSpec("hub", "o/r", file="w.pt", arch="timm:vit_tiny_patch16_224"),
        ),
        ("timm:vit_tiny_patch16_224", ModelSpec("timm", "vit_tiny_patch16_224")),
        ("torchvision:resnet18", ModelSpec("torchvision", "resnet18")),
    ],
)
def test_every_form_parses_to_its_fields_and_round_trips(text, expected):
    spec = ModelSpec.parse(text)
    assert spec == expected
    assert spec.text == text == str(spec) == spec.key
    assert ModelSpec.parse(spec.text) == spec
    assert hash(spec) == hash(ModelSpec.parse(text))  # usable as a cache key


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("  bundled:x#norm=ImageNet , pool=YES  ", "bundled:x#pool=yes,norm=imagenet"),
        ("file:a.pt#padding=1,pool=no", "file:a.pt#pool=no,padding=1"),
        ("file:a.pt#norm=none,norm=cifar10", "file:a.pt#norm=cifar10"),  # the last one said counts
    ],
)
def test_other_spellings_of_one_spec_share_its_canonical_text(written, canonical):
    spec = ModelSpec.parse(written)
    assert spec.text == canonical and ModelSpec.parse(canonical) == spec


def test_choices_become_the_loaders_hints_and_the_base_drops_them():
    spec = ModelSpec.parse("hub:o/r@main#pool=yes,padding=0,norm=imagenet")
    hints = spec.choices.hints()
    assert (hints.stem_pool, hints.stem_padding) == (True, 0)
    assert (hints.mean, hints.std) == NORMALISATIONS["imagenet"] and hints.origin == "your choice"
    assert spec.base == ModelSpec("hub", "o/r", revision="main") and not spec.base.choices
    again = spec.base.with_choices(SpecChoices(norm="none"))
    assert again.text == "hub:o/r@main#norm=none"


def test_an_uploaded_file_name_never_starts_choices():
    assert ModelSpec.upload("ckpt#3.pt").text == "upload:ckpt_3.pt"
    assert ModelSpec.parse(ModelSpec.upload(" w.pt ").text) == ModelSpec("upload", "w.pt")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "nonsense",
            "'nonsense' is not a model spec; write bundled:NAME, hub:OWNER/REPO[@REVISION][:FILENAME], file:PATH or timm",
        ),
        ("file:", "'file:' is not a model spec"),
        ("ftp:somewhere", "'ftp:' is not a known source in 'ftp:somewhere'"),
        ("hub:noslash", "'hub:noslash' is not a Hub spec; write hub:OWNER/REPO[@REVISION][:FILENAME]"),
        ("hub:a/b/c", "'hub:a/b/c' is not a Hub spec"),
        ("hub:owner/repo@", "'hub:owner/repo@' is not a Hub spec"),
        ("hub:bad--name/repo", "'hub:bad--name/repo' is not a Hub spec"),
        ("hub:o/r:../etc/passwd", "'hub:o/r:../etc/passwd' names the file '../etc/passwd', which is not a file path"),
        ("hub:owner/repo:", "'hub:owner/repo:' names the file '', which is not a file path in a repo; write hub:"),
        ("bundled:run@", "'bundled:run@' has an '@' but no snapshot after it; write bundled:NAME@epoch-K."),
        ("bundled:x#", "'bundled:x#' has a '#' but no choices after it; write e.g. SPEC#norm=imagenet."),
        ("bundled:x#norm=imagenette", "'norm=imagenette' in 'bundled:x#norm=imagenette' is not a choice; write SPEC#"),
        ("file:x#padding=7", "'padding=7' in 'file:x#padding=7' is not a choice"),
        ("timm:no_such_net", "timm has no architecture 'no_such_net'"),
        ("torchvision:vit_tiny_patch16_224", "torchvision has no architecture 'vit_tiny_patch16_224'"),
        ("file:w.pt#arch=resnet18", "'resnet18' is not an architecture name; write timm:NAME"),
        ("file:w.pt#arch=keras:resnet18", "'keras:resnet18' is not an architecture name; write timm:NAME"),
        ("bundled:x#arch=timm:resnet18", "Only a file:, upload: or hub: spec takes an architecture (#arch=)"),
        ("file:w.pt#arch=timm:resnet18,norm=imagenet", "A named architecture takes its input form from its library"),
        ("timm:resnet18#norm=imagenet", "A named architecture takes its input form from its library"),
    ],
)
def test_bad_forms_are_refused_with_what_would_work(text, message):
    with pytest.raises(CheckpointError) as refused:
        ModelSpec.parse(text)
    assert str(refused.value).startswith(message)


def test_fields_that_do_not_fit_their_source_are_refused():
    with pytest.raises(CheckpointError, match="Only a Hub spec takes a revision"):
        ModelSpec("file", "a.pt", revision="main")
    with pytest.raises(CheckpointError, match="Only a bundled spec takes a snapshot"):
        ModelSpec("hub", "o/r", snapshot="epoch-1")
    with pytest.raises(CheckpointError, match="'ftp:' is not a known source"):
        ModelSpec("ftp", "x")
    with pytest.raises(CheckpointError, match="must be a string"):
        ModelSpec.parse(None)  # type: ignore[arg-type]


def test_the_architecture_a_spec_names_survives_the_base_only_without_choices():
    spec = ModelSpec.parse("file:w.pt#arch=timm:resnet18")
    assert spec.base == ModelSpec("file", "w.pt") and spec.base.text == "file:w.pt"
    assert replace(spec, location="v.pt").text == "file:v.pt#arch=timm:resnet18"


def test_the_command_line_parses_each_spec_once_on_its_way_to_the_forward_pass(tiny_specs, tmp_path, monkeypatch):
    from cli.main import main

    parsed: list[str] = []
    original = ModelSpec.parse.__func__

    def counting(cls, text):
        parsed.append(text)
        return original(cls, text)

    monkeypatch.setattr(ModelSpec, "parse", classmethod(counting))
    out = tmp_path / "r.json"
    argv = ["compare", "--a", tiny_specs["a"], "--b", tiny_specs["b"], "--a-sibling", tiny_specs["a2"]]
    argv += ["--b-sibling", "none", "--out", str(out), "--per-class", "4", "--batch-size", "20", "--permutations", "0"]
    assert main([*argv, "--no-probes", "--no-invariance"]) == 0
    assert sorted(parsed) == sorted(tiny_specs[k] for k in ("a", "b", "a2"))  # loading, siblings, cache: none again
    assert json.loads(out.read_text())["ceilings"]["a"]["model_b"]["source"] == tiny_specs["a2"]
