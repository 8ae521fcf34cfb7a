"""`python -m cli compare`: the app's analysis from a terminal, on one process or under torchrun."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from cli.bars import Bars
from cli.checkpoints import describe, model_spec
from cli.errors import CliError, writing
from core.ceilings import Ceilings
from core.cka import KERNELS
from core.data import SPLITS, DataError, Subset, SubsetSpec, load_subset, parse_classes
from core.device import pick_device
from core.distributed import Cluster
from core.findings import findings_table
from core.fingerprint import Fingerprint, fingerprint_steps
from core.floors import INIT_PAIRS
from core.names import side_labels
from core.network import Network
from core.options import DEFAULTS, ESTIMATORS, AnalysisOptions
from core.pipeline import (
    FingerprintShelf,
    Pair,
    PairWithCeilings,
    compare_pairs,
    compare_with_ceilings,
)
from core.report import report_csv, report_json
from core.result import AnalysisResult, to_json_dict
from core.store import default_store, result_key
from models import AUTO, NO_SIBLING, CheckpointError, LoadedModel, ModelSpec, choose_sibling, load_model
from models.references import with_floors_and_seeds


def _classes(text: str) -> tuple[int, ...]:
    try:
        return parse_classes(text)
    except DataError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _sibling_spec(text: str) -> ModelSpec | str:
    """A --a-sibling / --b-sibling argument: 'none' (no ceiling), 'auto' (the registry's) or a SPEC."""
    return text if text in (AUTO, NO_SIBLING) else model_spec(text)


def add_parser(sub) -> None:
    c = sub.add_parser("compare", help="CKA between every pair of layers, probes, class structure, invariance")
    c.add_argument(
        "--a",
        required=True,
        type=model_spec,
        metavar="SPEC",
        help="bundled:NAME, hub:OWNER/REPO[@REV][:FILE], file:PATH, or timm:NAME / torchvision:NAME (untrained); "
        "add #pool=yes|no,padding=1|2,norm=NAME to set what the weights cannot say (otherwise measured on CIFAR-10 "
        "test images where the source does not say), or #arch=timm:NAME for weights of an architecture by name",
    )
    c.add_argument(
        "--b", required=True, nargs="+", type=model_spec, metavar="SPEC", help="one model, or several to compare with A"
    )
    c.add_argument(
        "--a-sibling",
        type=_sibling_spec,
        metavar="SPEC",
        help="another seed of A's method: A vs it is the ceiling A vs B is read against (default: the registry's, "
        "for bundled models; 'none' for no ceiling)",
    )
    c.add_argument(
        "--b-sibling",
        nargs="+",
        type=_sibling_spec,
        metavar="SPEC",
        help="another seed of B's method, one per --b (defaults as for A)",
    )
    c.add_argument("--out", required=True, help="result JSON file (a folder when --b names several models)")
    c.add_argument("--csv", help="also write the result as long-format CSV")
    add_subset_and_cka_arguments(c, per_class=DEFAULTS.per_class)
    c.add_argument(
        "--permutations",
        type=int,
        default=DEFAULTS.permutations,
        help="permutation-null samples for the matched layers (default %(default)s)",
    )
    c.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="seeds augmented views and permutations (default %(default)s)"
    )
    c.add_argument("--no-invariance", action="store_true", help="skip the augmented-view forward pass")
    c.add_argument("--no-probes", action="store_true")
    c.add_argument(
        "--floor-pairs",
        type=int,
        default=INIT_PAIRS,
        help="pairs of init seeds of untrained networks behind the floor (0: no floor; fewer are run for a large "
        "network on a CPU, and the result says so)",
    )
    c.add_argument(
        "--progress-json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write a preview after every minibatch as a line of JSON (to FILE, or stderr without one, instead of "
        "the progress bars), then a last line for each finished result; one process only",
    )
    c.set_defaults(func=run)


def add_subset_and_cka_arguments(parser, per_class: int) -> None:
    """The subset, CKA and device options every analysing command takes (`compare`, `training`)."""
    parser.add_argument("--split", default=DEFAULTS.split, choices=SPLITS, help="CIFAR-10 split (default %(default)s)")
    parser.add_argument(
        "--classes", type=_classes, default=DEFAULTS.classes, help="comma-separated, e.g. 0,1,cat (default: all ten)"
    )
    parser.add_argument("--per-class", type=int, default=per_class, help="images per class (default %(default)s)")
    parser.add_argument(
        "--subset-seed", type=int, default=DEFAULTS.subset_seed, help="chooses the images (default %(default)s)"
    )
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (npz pair or cifar-10-batches-py)")
    parser.add_argument("--kernel", default=DEFAULTS.kernel, choices=KERNELS, help="CKA kernel (default %(default)s)")
    parser.add_argument(
        "--sigma",
        type=float,
        default=DEFAULTS.sigma,
        help="RBF bandwidth, fraction of the median distance (default %(default)s)",
    )
    parser.add_argument(
        "--estimator", default=DEFAULTS.estimator, choices=ESTIMATORS, help="HSIC estimator (default %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULTS.batch_size, help="images per CKA minibatch (default %(default)s)"
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def subset_and_options(args: argparse.Namespace, **options) -> tuple[SubsetSpec, AnalysisOptions]:
    """The subset and analysis options of `add_subset_and_cka_arguments`; `options` sets the others."""
    spec = SubsetSpec(args.split, args.classes, args.per_class, args.subset_seed)
    cka = {"kernel": args.kernel, "debiased": args.estimator == "debiased", "sigma": args.sigma}
    chosen = AnalysisOptions(**cka, batch_size=args.batch_size, **options)
    chosen.check_subset(spec.size)  # before any network is loaded
    return spec, chosen


class _PreviewLines:
    """`--progress-json`: one JSON object per line, flushed, for notebooks and dashboards.

    {"event": "preview", "a": A's source, "b": B's source, "batches_done": k, "batches": n, "elapsed_s": t,
    "result": {...}} after every minibatch (its result without the null and the read-outs, which come at the end), then
    {"event": "final", "a": ..., "b": ..., "elapsed_s": t, "result": {...}} for each comparison (ceilings
    included: a pair of two seeds of one method is a comparison too)."""

    def __init__(self, target: str, t0: float):
        with writing(target):
            self.stream = sys.stderr if target == "-" else open(target, "w")  # noqa: SIM115 - closed by close()
        self.t0 = t0

    def write(self, event: str, result, **extra) -> None:
        head = {"event": event, "a": result.model_a.source, "b": result.model_b.source, **extra}
        line = head | {"elapsed_s": round(time.perf_counter() - self.t0, 3), "result": to_json_dict(result)}
        self.stream.write(json.dumps(line) + "\n")
        self.stream.flush()

    def preview(self, result, done: int, total: int) -> None:
        self.write("preview", result, batches_done=done, batches=total)

    def close(self) -> None:
        if self.stream is not sys.stderr:
            self.stream.close()


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    spec, options = subset_and_options(
        args,
        invariance=not args.no_invariance,
        probes=not args.no_probes,
        permutations=args.permutations,
        seed=args.seed,
    )
    cluster = Cluster.from_env(pick_device(args.device))
    lines = _PreviewLines(args.progress_json, t0) if args.progress_json and cluster.rank == 0 else None
    bars = Bars(cluster.rank == 0 and args.progress_json != "-")
    many = len(args.b) > 1
    chosen_b = args.b_sibling or [None] * len(args.b)
    if len(chosen_b) != len(args.b):
        raise CliError(f"--b-sibling names {len(chosen_b)} models for {len(args.b)} --b models: give one per --b")
    if many:
        with writing(args.out):
            Path(args.out).mkdir(parents=True, exist_ok=True)
    try:
        subset = load_subset(spec, args.data_dir)
        reference = load_model(args.a)
        others = [load_model(b) for b in args.b]
        sibling_a, note_a = _sibling(args.a, args.a_sibling)
        siblings_b = [_sibling(b, chosen) for b, chosen in zip(args.b, chosen_b, strict=True)]
        if cluster.rank == 0:
            everyone = [reference, *others, sibling_a, *(sibling for sibling, _ in siblings_b)]
            for model in dict.fromkeys(m for m in everyone if m is not None):
                print(describe(model.info), file=sys.stderr)
        found = _compared(
            reference,
            sibling_a,
            others,
            [s for s, _ in siblings_b],
            subset,
            options,
            cluster,
            bars,
            lines,
            args.floor_pairs,
        )
    finally:
        bars.close()
        cluster.close()
        if lines:
            lines.close()
    if cluster.rank != 0:
        return 0
    results = [r for each in found for r in each.results]
    store = default_store()
    if store:  # every result names the networks it compared
        for result in results:
            store.put_result(result_key(result.model_a.key, result.model_b.key, spec, options), result)
    ceiling_a = found[0].ceiling_a  # computed with the first B, read beside every B
    written = []
    for b_spec, each, (_, note_b) in zip(args.b, found, siblings_b, strict=True):
        result, ceilings = each.pair, Ceilings(ceiling_a, each.ceiling_b, note_a, note_b)
        out = Path(args.out) / f"{_slug(b_spec)}.json" if many else Path(args.out)
        with writing(out):
            out.write_text(json.dumps(report_json(result, ceilings), indent=1) + "\n")
        written.append(str(out))
        if args.csv and not many:
            with writing(args.csv):
                Path(args.csv).write_text(report_csv(result, ceilings))
        print(_findings_text(result, ceilings))
    print(
        f"{_timing(results, time.perf_counter() - t0, cluster.describe())}; wrote {', '.join(written)}", file=sys.stderr
    )
    return 0


def _compared(
    reference: LoadedModel,
    sibling_a: LoadedModel | None,
    others: list[LoadedModel],
    siblings_b: list[LoadedModel | None],
    subset: Subset,
    options: AnalysisOptions,
    cluster: Cluster,
    bars: Bars,
    lines: _PreviewLines | None,
    floor_pairs: int,
) -> list[PairWithCeilings]:
    """A against each B with its ceilings (core.pipeline.compare_with_ceilings, the app's assembly too); A's own
    ceiling is computed with the first B only. Every fingerprint of the run is kept (the floors and the seed
    pairings are made from them), and the comparisons take them from there, so each network's pass runs once
    however many B there are. With `lines`, a preview of every comparison (ceilings included) after each
    minibatch, then every result. Each pair then gets its untrained floors and its seed pairings
    (models.references). Empty on ranks other than 0."""
    kept: dict[str, Fingerprint] = {}

    def steps(network: Network) -> Iterator[Fingerprint]:
        return fingerprint_steps(network, subset, options, cluster.device, bars, cluster.shard)

    source = FingerprintShelf(kept).source(steps, key=lambda network: network.identity.key)
    preview = lines.preview if lines else None

    def compute(pairs: list[Pair]) -> list[AnalysisResult]:
        return compare_pairs(pairs, subset, options, cluster, bars, preview, source)

    found = []
    for k, (other, sibling_b) in enumerate(zip(others, siblings_b, strict=True)):
        each = compare_with_ceilings(reference, other, sibling_a if k == 0 else None, sibling_b, compute)
        seeds_a = [reference] + ([sibling_a] if sibling_a else [])
        seeds_b = [other] + ([sibling_b] if sibling_b else [])
        pair = with_floors_and_seeds(
            each and each.pair, seeds_a, seeds_b, kept, subset, cluster, floor_pairs, default_store(), bars
        )
        found += [replace(each, pair=pair)] if each is not None else []
    for result in (r for each in found for r in each.results) if lines else ():
        lines.write("final", result)
    return found


def _timing(results: list[AnalysisResult], total: float, where: str) -> str:
    """Where the time went. A network in several comparisons (the pair's and a ceiling's) counts its pass in each,
    so with several comparisons the stages are their sums and the rest of the total is not derived from them."""
    seconds = {k: sum(r.seconds[k] for r in results) for k in ("forward", "cka", "probes")}
    stages = f"forward {seconds['forward']:.1f} s, CKA {seconds['cka']:.1f} s, probes {seconds['probes']:.1f} s"
    if len(results) == 1:
        return f"done in {total:.1f} s on {where}: {stages}, loading and other {total - sum(seconds.values()):.1f} s"
    return f"done in {total:.1f} s on {where}; {len(results)} comparisons, each with its networks' passes: {stages}"


def _sibling(spec: ModelSpec, chosen: ModelSpec | str | None) -> tuple[LoadedModel | None, str]:
    """The loaded other seed of `spec` (named, or the registry's) and a note when there is none. A named one
    that does not load is an error; the registry's is skipped with the reason."""
    sibling, note = choose_sibling(spec, chosen)
    if sibling is None:
        return None, note
    try:
        return load_model(sibling), ""
    except CheckpointError as err:
        if isinstance(chosen, ModelSpec):
            raise
        return None, f"its other seed {sibling} could not be loaded ({err})"


def _findings_text(result: AnalysisResult, ceilings: Ceilings) -> str:
    """The ceilings' notes and the findings table, for the terminal."""
    labels = side_labels(result.model_a.method, result.model_b.method)
    lines = [f"A = {result.model_a.source}, B = {result.model_b.source}"]
    for label, side in zip(labels, "ab", strict=True):
        ceiling, note = ceilings.side(side)
        lines.append(f"ceiling for {label}: " + (ceiling.model_b.source if ceiling else f"none ({note})"))
    table = findings_table(result, ceilings)
    lines += [f"{f.key:>10}  {f.verdict:<13}  {f.shows}" for f in table]
    lines += [f"the verdicts rest on {table[0].rests_on}"] if table else []
    return "\n".join(lines)


def _slug(spec: ModelSpec) -> str:
    """A file name for the result of comparing with `spec`."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in spec.text)
