"""`python -m cli compare`: the app's analysis from a terminal, on one process or under torchrun."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from cli.checkpoints import describe
from core.ceilings import Ceilings
from core.data import DataError, SubsetSpec, load_subset, parse_classes
from core.device import pick_device
from core.distributed import Cluster
from core.errors import LensError
from core.names import side_labels
from core.options import AnalysisOptions
from core.pipeline import compare_pairs
from core.report import report_csv, report_json
from core.result import AnalysisResult, to_json_dict
from core.store import default_store, result_key
from core.verdicts import findings_table
from models import CheckpointError, LoadedModel, choose_sibling, load_model


def _classes(text: str) -> tuple[int, ...]:
    try:
        return parse_classes(text)
    except DataError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parser(sub) -> None:
    c = sub.add_parser("compare", help="CKA between every pair of layers, probes, class structure, invariance")
    c.add_argument(
        "--a",
        required=True,
        metavar="SPEC",
        help="bundled:NAME, hub:OWNER/REPO[@REV][:FILE], file:PATH; add #pool=yes|no,padding=1|2,norm=NAME to set "
        "what the weights cannot say (otherwise measured on CIFAR-10 test images where the source does not say)",
    )
    c.add_argument("--b", required=True, nargs="+", metavar="SPEC", help="one model, or several to compare with A")
    c.add_argument(
        "--a-sibling",
        metavar="SPEC",
        help="another seed of A's method: A vs it is the ceiling A vs B is read against (default: the registry's, "
        "for bundled models; 'none' for no ceiling)",
    )
    c.add_argument(
        "--b-sibling", nargs="+", metavar="SPEC", help="another seed of B's method, one per --b (defaults as for A)"
    )
    c.add_argument("--out", required=True, help="result JSON file (a folder when --b names several models)")
    c.add_argument("--csv", help="also write the result as long-format CSV")
    add_subset_and_cka_arguments(c, per_class=100)
    c.add_argument("--permutations", type=int, default=20)
    c.add_argument("--seed", type=int, default=0, help="seeds augmented views and permutations")
    c.add_argument("--no-invariance", action="store_true", help="skip the augmented-view forward pass")
    c.add_argument("--no-probes", action="store_true")
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
    parser.add_argument("--split", default="test", choices=("test", "train"))
    parser.add_argument("--classes", type=_classes, default=tuple(range(10)), help="comma-separated, e.g. 0,1,cat")
    parser.add_argument("--per-class", type=int, default=per_class)
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (npz pair or cifar-10-batches-py)")
    parser.add_argument("--kernel", default="linear", choices=("linear", "rbf"))
    parser.add_argument("--sigma", type=float, default=0.8, help="RBF bandwidth, fraction of the median distance")
    parser.add_argument("--estimator", default="debiased", choices=("debiased", "biased"))
    parser.add_argument("--batch-size", type=int, default=100, help="images per CKA minibatch")
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


class _Bars:
    """A tqdm bar per stage, on stderr; silent on ranks other than 0."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.stage = enabled, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage, self.bar = stage, tqdm(total=total, desc=stage, file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    bars = _Bars(cluster.rank == 0 and args.progress_json != "-")
    many = len(args.b) > 1
    chosen_b = args.b_sibling or [None] * len(args.b)
    if len(chosen_b) != len(args.b):
        raise LensError(f"--b-sibling names {len(chosen_b)} models for {len(args.b)} --b models: give one per --b")
    if many:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    try:
        subset = load_subset(spec, args.data_dir)
        reference = load_model(args.a)
        others = [load_model(b) for b in args.b]
        sibling_a, note_a = _sibling(args.a, args.a_sibling)
        siblings_b = [_sibling(b, chosen) for b, chosen in zip(args.b, chosen_b, strict=True)]
        pairs = [(reference, other) for other in others]
        pairs += [(reference, sibling_a)] if sibling_a else []
        pairs += [(other, sibling) for other, (sibling, _) in zip(others, siblings_b, strict=True) if sibling]
        if cluster.rank == 0:
            for model in dict.fromkeys(m for pair in pairs for m in pair):
                print(describe(model.info), file=sys.stderr)
        results = compare_pairs(pairs, subset, options, cluster, bars, preview=lines and lines.preview)
        for result in results if lines else ():
            lines.write("final", result)
    finally:
        bars.close()
        cluster.close()
        if lines:
            lines.close()
    if cluster.rank != 0:
        return 0
    store = default_store()
    if store:
        for (first, second), result in zip(pairs, results, strict=True):
            store.put_result(result_key(first.identity.key, second.identity.key, spec, options), result)
    later = iter(results[len(others) :])
    ceiling_a = next(later) if sibling_a else None
    written = []
    for b_spec, result, (sibling_b, note_b) in zip(args.b, results[: len(others)], siblings_b, strict=True):
        ceilings = Ceilings(ceiling_a, next(later) if sibling_b else None, note_a, note_b)
        out = Path(args.out) / f"{_slug(b_spec)}.json" if many else Path(args.out)
        out.write_text(json.dumps(report_json(result, ceilings), indent=1) + "\n")
        written.append(str(out))
        if args.csv and not many:
            Path(args.csv).write_text(report_csv(result, ceilings))
        print(_findings_text(result, ceilings))
    print(
        f"{_timing(results, time.perf_counter() - t0, cluster.describe())}; wrote {', '.join(written)}", file=sys.stderr
    )
    return 0


def _timing(results: list[AnalysisResult], total: float, where: str) -> str:
    """Where the time went. A network in several comparisons (the pair's and a ceiling's) counts its pass in each,
    so with several comparisons the stages are their sums and the rest of the total is not derived from them."""
    seconds = {k: sum(r.seconds[k] for r in results) for k in ("forward", "cka", "probes")}
    stages = f"forward {seconds['forward']:.1f} s, CKA {seconds['cka']:.1f} s, probes {seconds['probes']:.1f} s"
    if len(results) == 1:
        return f"done in {total:.1f} s on {where}: {stages}, loading and other {total - sum(seconds.values()):.1f} s"
    return f"done in {total:.1f} s on {where}; {len(results)} comparisons, each with its networks' passes: {stages}"


def _sibling(spec: str, chosen: str | None) -> tuple[LoadedModel | None, str]:
    """The loaded other seed of `spec` (named, or the registry's) and a note when there is none. A named one
    that does not load is an error; the registry's is skipped with the reason."""
    sibling, note = choose_sibling(spec, chosen)
    if sibling is None:
        return None, note
    try:
        return load_model(sibling), ""
    except CheckpointError as err:
        if chosen:
            raise
        return None, f"its other seed {sibling} could not be loaded ({err})"


def _findings_text(result: AnalysisResult, ceilings: Ceilings) -> str:
    """The ceilings' notes and the findings table, for the terminal."""
    labels = side_labels(result.model_a.method, result.model_b.method)
    lines = [f"A = {result.model_a.source}, B = {result.model_b.source}"]
    for label, side in zip(labels, "ab", strict=True):
        ceiling, note = ceilings.side(side)
        lines.append(f"ceiling for {label}: " + (ceiling.model_b.source if ceiling else f"none ({note})"))
    lines += [f"{f.key:>10}  {f.verdict:<13}  {f.shows}" for f in findings_table(result, ceilings)]
    return "\n".join(lines)


def _slug(spec: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in spec)
