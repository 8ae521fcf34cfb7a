"""`python -m cli compare`: the same result as the library, one-line refusals with exit code 2, a bug an apology
with a reference and exit code 1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cli.main import main
from core.data import SubsetSpec, load_subset
from core.options import AnalysisOptions
from core.pipeline import compare
from models import load_model
from models.untrained import untrained_model

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
SMALL = ["--per-class", "6", "--batch-size", "30", "--permutations", "3"]
REFERENCE = re.compile(r"\(reference ([0-9a-f]{8})\)")


def test_the_timing_line_never_derives_the_rest_from_passes_counted_twice():
    from types import SimpleNamespace

    from cli.compare import _timing

    pair = SimpleNamespace(seconds={"forward": 6.0, "cka": 2.0, "probes": 1.0})
    assert _timing([pair], 10.0, "cpu").endswith("probes 1.0 s, loading and other 1.0 s")
    # the pair and its two ceilings: A's and B's passes are in two results each, so the sums pass the total
    line = _timing([pair, pair, pair], 20.0, "cpu")
    assert "3 comparisons" in line and "forward 18.0 s" in line and "other" not in line


def test_cli_writes_the_library_result(tiny_specs, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(
        [
            "compare",
            "--a",
            tiny_specs["a"],
            "--b",
            tiny_specs["b"],
            "--out",
            str(out),
            "--csv",
            str(tmp_path / "r.csv"),
            *SMALL,
        ]
    )
    assert code == 0
    closing = capsys.readouterr().err.strip().splitlines()[-1]
    assert closing.startswith("done in") and "forward" in closing and "probes" in closing
    data = json.loads(out.read_text())
    options = AnalysisOptions(batch_size=30, permutations=3)
    subset = load_subset(SubsetSpec(per_class=6))
    ref = compare(load_model(tiny_specs["a"]), load_model(tiny_specs["b"]), subset, options, torch.device("cpu"))
    np.testing.assert_allclose(np.array(data["cross"], dtype=float), ref.cross, atol=1e-9)
    assert (tmp_path / "r.csv").read_text().startswith("section,layer_a,layer_b,value")


def test_many_models_against_one_reference_write_one_file_each(tiny_specs, tmp_path):
    code = main(
        [
            "compare",
            "--a",
            tiny_specs["a"],
            "--b",
            tiny_specs["a2"],
            tiny_specs["b"],
            "--out",
            str(tmp_path / "many"),
            "--no-probes",
            "--no-invariance",
            *SMALL,
        ]
    )
    assert code == 0
    files = sorted((tmp_path / "many").glob("*.json"))
    assert len(files) == 2
    assert {json.loads(f.read_text())["model_b"]["source"] for f in files} == {tiny_specs["a2"], tiny_specs["b"]}


def test_progress_json_writes_a_preview_per_minibatch_then_the_final_results(tiny_specs, tmp_path):
    lines_file, out = tmp_path / "progress.jsonl", tmp_path / "many"
    args = ["compare", "--a", tiny_specs["a"], "--b", tiny_specs["a2"], tiny_specs["b"], "--out", str(out)]
    assert main([*args, "--progress-json", str(lines_file), *SMALL]) == 0  # 60 images: 2 minibatches of 30
    lines = [json.loads(line) for line in lines_file.read_text().splitlines()]
    events = [(line["event"], line["b"], line.get("batches_done")) for line in lines]
    assert events == [
        ("preview", tiny_specs["a2"], 1),
        ("preview", tiny_specs["a2"], 2),
        ("preview", tiny_specs["b"], 1),
        ("preview", tiny_specs["b"], 2),
        ("final", tiny_specs["a2"], None),
        ("final", tiny_specs["b"], None),
    ]
    assert [line["result"]["used_images"] for line in lines[:2]] == [30, 60]
    assert all(line["result"]["null_p95"] == [None] * len(line["result"]["matched"]) for line in lines[:4])
    written = json.loads((out / f"{tiny_specs['b'].replace(':', '_').replace('/', '_')}.json").read_text())
    assert lines[-1]["result"]["cross"] == written["cross"] and written["null_p95"][0] is not None
    elapsed = [line["elapsed_s"] for line in lines]
    assert elapsed == sorted(elapsed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--per-class", "0"], "images per class"),
        (["--per-class", "5000"], "images per class"),
        (["--classes", "dragon"], "unknown class"),
        (["--kernel", "cubic"], "invalid choice"),
        (["--batch-size", "2"], "batch size"),
        (["--device", "cuda"], "cuda"),
        (["--b", "file:/nonexistent/model.pt"], ""),
        (["--b", "bundled:no-such-model"], ""),
        (["--b", "gibberish"], ""),
        (["--kernel", "rbf", "--sigma", "nan"], "sigma must be a positive finite number"),
        (["--kernel", "rbf", "--sigma", "inf"], "sigma must be a positive finite number"),
        (["--per-class", "1", "--classes", "0,1,2"], "3 images make no minibatch of at least 4"),
        (["--classes", "cat"], "choose at least 2 classes (only cat is chosen): with one class every image has the"),
        (["--per-class", "3", "--batch-size", "10"], "the linear probes need at least 4 images per class: they train"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tiny_specs, tmp_path, capsys, args, message):
    if args == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    base = {"--a": tiny_specs["a"], "--b": tiny_specs["b"], "--out": str(tmp_path / "x.json")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["compare", *SMALL, *[t for kv in base.items() for t in kv]]  # argparse keeps the last value
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:")
    assert message.lower() in err.lower()
    assert not (tmp_path / "x.json").exists()


def test_module_entry_point_runs_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "compare", "--a", "nope", "--b", "nope", "--out", "x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_siblings_give_ceilings_and_the_findings_table_in_the_result(tiny_specs, tmp_path, capsys):
    out, csv = tmp_path / "r.json", tmp_path / "r.csv"
    args = ["compare", "--a", tiny_specs["a"], "--b", tiny_specs["b"], "--out", str(out), "--csv", str(csv)]
    assert main([*args, "--a-sibling", tiny_specs["a2"], "--b-sibling", "none", *SMALL]) == 0
    data = json.loads(out.read_text())
    ceilings = data["ceilings"]
    assert ceilings["b"] is None and ceilings["note_b"] == "none was asked for"
    assert ceilings["a"]["model_b"]["source"] == tiny_specs["a2"]
    options = AnalysisOptions(batch_size=30, permutations=3)
    subset = load_subset(SubsetSpec(per_class=6))
    ref = compare(load_model(tiny_specs["a"]), load_model(tiny_specs["a2"]), subset, options, torch.device("cpu"))
    np.testing.assert_allclose(np.array(ceilings["a"]["matched_cka"], dtype=float), ref.matched_cka, atol=1e-9)
    np.testing.assert_allclose(np.array(ceilings["a"]["interval_low"], dtype=float), ref.interval_low, atol=1e-9)
    assert [f["key"] for f in data["findings"]] == ["1", "2", "3", "4", "5", "6a", "6b", "conclusion"]
    assert {f["verdict"] for f in data["findings"]} <= {"holds", "does not hold", "cannot tell"}
    rows = [line.split(",") for line in csv.read_text().splitlines() if line.startswith("ceiling_a_matched_cka,")]
    assert [r[1] for r in rows] == list(ref.matched)
    np.testing.assert_allclose([float(r[3]) for r in rows], ref.matched_cka, atol=1e-12)
    printed, told = capsys.readouterr()
    steps = ["A vs B", "A vs its other seed", "the untrained floor and the seed spread"]  # the plan, as the app's
    assert [line for line in told.splitlines() if line.startswith("step ")] == [
        f"step {k} of 3: {name}" for k, name in enumerate(steps, 1)
    ]
    assert f"ceiling for A (simclr): {tiny_specs['a2']}" in printed
    assert "ceiling for B (supervised): none (none was asked for)" in printed
    assert all(f"{f['key']}  {f['verdict']}" in printed for f in data["findings"])


def test_bundled_models_default_to_their_registered_siblings(tiny_specs, weights_dir, tmp_path, nets):
    nets.folder(weights_dir / "tiny", nets.make(width=8, num_classes=0), "simclr")
    nets.folder(weights_dir / "tiny-seed1", nets.make(width=8, num_classes=0, seed=1), "simclr")
    out = tmp_path / "r.json"
    args = ["compare", "--a", "bundled:tiny", "--b", tiny_specs["b"], "--out", str(out), "--no-probes", *SMALL]
    assert main(args) == 0
    ceilings = json.loads(out.read_text())["ceilings"]
    assert ceilings["a"]["model_b"]["source"] == "bundled:tiny-seed1"
    assert ceilings["note_b"] == f"`{tiny_specs['b']}` has no registered other seed" and ceilings["b"] is None


def test_one_b_sibling_per_b_model(tiny_specs, tmp_path, capsys):
    argv = ["compare", "--a", tiny_specs["a"], "--b", tiny_specs["b"], tiny_specs["a2"], "--b-sibling", "none"]
    assert main([*argv, "--out", str(tmp_path / "many"), *SMALL]) == 2
    assert capsys.readouterr().err.strip() == "error: --b-sibling names 1 models for 2 --b models: give one per --b"


@pytest.mark.parametrize("bug", [KeyError("classes"), ValueError("operands could not be broadcast together")])
def test_a_bug_is_an_apology_with_a_reference_and_exit_1(tiny_specs, tmp_path, capsys, monkeypatch, bug):
    """A fault inside CKA Lens (here injected into the subset loader), even a plain ValueError, is not worded as a
    refusal: exit 1, a one-line apology with a reference, then the traceback filed under that reference."""

    def broken_load_subset(*args: object, **kwargs: object) -> None:
        raise bug

    monkeypatch.setattr("cli.compare.load_subset", broken_load_subset)
    argv = ["compare", "--a", tiny_specs["a"], "--b", tiny_specs["b"], "--out", str(tmp_path / "x.json"), *SMALL]
    assert main(argv) == 1
    first, *trace = capsys.readouterr().err.splitlines()
    assert first.startswith("CKA Lens failed with an internal error (reference ") and "this is a bug" in first
    assert not first.startswith("error:") and str(bug) not in first  # neither a refusal's wording nor Python's
    reference = REFERENCE.search(first).group(1)
    assert trace[0] == f"traceback of {reference}:"
    assert any("broken_load_subset" in line for line in trace) and trace[-1] == f"{type(bug).__name__}: {bug}"
    assert not (tmp_path / "x.json").exists()


def test_each_bug_gets_its_own_reference(tiny_specs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("cli.compare.load_subset", lambda *args: {}["split"])
    argv = ["compare", "--a", tiny_specs["a"], "--b", tiny_specs["b"], "--out", str(tmp_path / "x.json"), *SMALL]
    references = set()
    for _ in range(3):
        assert main(argv) == 1
        references.add(REFERENCE.search(capsys.readouterr().err).group(1))
    assert len(references) == 3


def test_an_out_file_that_cannot_be_written_is_a_refusal_naming_it(tiny_specs, tmp_path, capsys):
    out = tmp_path / "no-such-folder" / "x.json"
    argv = ["compare", "--a", tiny_specs["a"], "--b", tiny_specs["b"], "--out", str(out), "--no-invariance", *SMALL]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: cannot write {out}: No such file or directory"


def test_several_b_models_run_a_once_and_share_its_ceiling(tiny_specs, tmp_path, monkeypatch):
    import cli.compare
    import core.pipeline

    runs, real = [], core.pipeline.fingerprint_steps

    def counted(network, *args, **kwargs):
        runs.append(network.identity.source)
        return real(network, *args, **kwargs)

    monkeypatch.setattr(core.pipeline, "fingerprint_steps", counted)
    monkeypatch.setattr(cli.compare, "fingerprint_steps", counted)
    a, a2, b = tiny_specs["a"], tiny_specs["a2"], tiny_specs["b"]
    argv = ["compare", "--a", a, "--b", b, a2, "--a-sibling", a2, "--b-sibling", "none", "none"]
    assert main([*argv, "--out", str(tmp_path / "many"), "--no-probes", "--no-invariance", *SMALL]) == 0
    assert runs.count(a) == 1 and runs.count(b) == 1  # A's pass serves both comparisons and its ceiling
    written = [json.loads(f.read_text()) for f in sorted((tmp_path / "many").glob("*.json"))]
    assert {w["model_b"]["source"] for w in written} == {a2, b}
    assert all(w["ceilings"]["a"]["model_b"]["source"] == a2 for w in written)  # A's ceiling beside every B
    assert written[0]["ceilings"]["a"]["matched_cka"] == written[1]["ceilings"]["a"]["matched_cka"]


def test_the_result_holds_floors_pooled_invariance_seed_pairings_and_comparisons(tiny_specs, tmp_path, nets):
    b2 = "file:" + str(nets.folder(tmp_path / "b2", nets.make(width=8, num_classes=10, seed=5), "supervised"))
    out = tmp_path / "r.json"
    argv = ["compare", "--a", tiny_specs["a"], "--a-sibling", tiny_specs["a2"], "--b", tiny_specs["b"]]
    assert main([*argv, "--b-sibling", b2, "--out", str(out), "--floor-pairs", "2", "--no-probes", *SMALL]) == 0
    data = json.loads(out.read_text())
    m, la = len(data["matched"]), len(data["layers_a"])
    options = AnalysisOptions(batch_size=30, permutations=3, probes=False)
    subset = load_subset(SubsetSpec(per_class=6))
    a, b = load_model(tiny_specs["a"]), load_model(tiny_specs["b"])
    # the floor: untrained A-arch seed 2k against untrained B-arch seed 2k + 1, k = 0, 1, each compared here alone
    floors = [
        compare(untrained_model(a.info, 2 * k), untrained_model(b.info, 2 * k + 1), subset, options, CPU).matched_cka
        for k in range(2)
    ]
    np.testing.assert_allclose(np.array(data["floor_untrained"], dtype=float), np.mean(floors, 0), atol=1e-6)
    low, high = (np.array(data[f"floor_untrained_{e}"], dtype=float) for e in ("low", "high"))
    assert low.shape == high.shape == (m,) and np.all(low <= high) and data["floor_pairs"] == 2
    assert data["floor_method"].startswith("CKA between untrained") and "independent" in data["null_method"]
    assert len(data["untrained_a"]) == la and len(data["invariance_pooled_a"]) == la
    assert len(data["invariance_pooled_b"]) == len(data["layers_b"])
    # every cross pairing, A x B first, each the library's matched CKA for that pair
    pairings = data["seed_pairings"]
    specs = [(tiny_specs["a"], tiny_specs["b"]), (tiny_specs["a2"], tiny_specs["b"]), (tiny_specs["a"], b2)]
    assert [(p["a"], p["b"]) for p in pairings] == [*specs, (tiny_specs["a2"], b2)]
    np.testing.assert_allclose(np.array(pairings[0]["matched_cka"], float), data["matched_cka"], atol=1e-6)
    other = compare(load_model(tiny_specs["a2"]), b, subset, options, CPU)
    np.testing.assert_allclose(np.array(pairings[1]["matched_cka"], float), other.matched_cka, atol=1e-6)
    # every verdict comparison carries its estimate, interval and outcome
    comparisons = [c for f in data["findings"] for c in f["comparisons"]]
    assert comparisons and all({"estimate", "low", "high", "outcome", "p_fail"} <= set(c) for c in comparisons)
    assert all(f["multiplicity"].startswith("Holm") for f in data["findings"] if f["comparisons"])


def test_a_vit_against_a_resnet_reads_every_residual_block_twice_as_hooks_read_it(tmp_path):
    """The issue's command (on 10 images, without the extras): offline, untrained timm networks by name, layers
    paired by relative depth; every block of each network has its branch and output readings, and those readings
    are what forward hooks on the same modules see."""
    out = tmp_path / "vit_resnet.json"
    argv = ["compare", "--a", "timm:vit_tiny_patch16_224", "--b", "timm:resnet18", "--out", str(out)]
    argv += ["--per-class", "1", "--batch-size", "10", "--permutations", "0", "--no-probes", "--no-invariance"]
    assert main([*argv, "--floor-pairs", "0"]) == 0
    data = json.loads(out.read_text())
    assert data["matching"] == "by relative depth" and len(data["matched_b"]) == len(data["matched"])
    assert set(data["matched_b"]) <= set(data["layers_b"]) and set(data["matched"]) <= set(data["layers_a"])
    for spec, layers, block_type, readings in (
        ("timm:vit_tiny_patch16_224", data["layers_a"], "Block", ("attention branch", "mlp branch", "output")),
        ("timm:resnet18", data["layers_b"], "BasicBlock", ("residual", "output")),
    ):
        network = load_model(spec)
        blocks = [name for name, m in network.module.named_modules() if type(m).__name__ == block_type]
        assert len(blocks) == (12 if "vit" in spec else 8)
        assert {f"{b} {r}" for b in blocks for r in readings} <= set(layers)
        assert tuple(name for name, _ in network.layers) == tuple(layers)
        _assert_readings_are_the_hooked_outputs(network, blocks)


def _assert_readings_are_the_hooked_outputs(network, blocks: list[str]) -> None:
    """Each block's output reading is the block module's output, each branch reading its module's output, for two
    CIFAR images put through the network's own preprocessing."""
    from core.features import FeatureExtractor
    from core.network import preprocess

    images = preprocess(load_subset(SubsetSpec(per_class=1)).images[:2], network.input)
    names = [name for name, _ in network.layers]
    read: dict[str, torch.Tensor] = {}
    extractor = FeatureExtractor(network.module, network.layers, torch.device("cpu"))
    extractor.stream(images, lambda j, f: read.__setitem__(names[j], f.clone()))
    assert not extractor.unknown_layout  # every map and token layer is pooled over its true positions
    modules = dict(network.module.named_modules())
    hooked: dict[str, torch.Tensor] = {}
    nodes = dict(network.layers)
    wanted = set(blocks) | {nodes[n] for n in names if n.endswith((" branch", " residual"))}
    handles = [
        modules[w].register_forward_hook(lambda _m, _i, o, w=w: hooked.__setitem__(w, o.clone())) for w in wanted
    ]
    with torch.no_grad():
        network.module(images)
    for handle in handles:
        handle.remove()
    for name in names:
        target = block_of = name.split(" ", 1)[0]
        if name.endswith((" branch", " residual")):
            target = nodes[name]
        elif not (name.endswith(" output") and block_of in blocks and name == f"{block_of} output"):
            continue
        scale = max(1.0, float(hooked[target].abs().max()))
        assert (read[name] - hooked[target]).abs().max() <= 1e-5 * scale, name
