"""`python -m cli training`: when do two runs part ways? Matched-layer CKA snapshot by snapshot, as the app's
Training page computes it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cli.bars import Bars
from cli.checkpoints import model_spec
from cli.compare import add_subset_and_cka_arguments, subset_and_options
from cli.errors import writing
from core.data import load_subset
from core.device import pick_device
from core.distributed import Cluster
from core.options import DEFAULTS
from core.pipeline import compare_pairs
from core.series import SeriesPlan, series_curves, to_csv, to_json_dict
from core.store import default_store, result_key
from models import load_model, series_of_specs

SERIES_HELP = (
    "bundled:NAME for a run's snapshots (e.g. bundled:simclr-resnet18-w16-seed1), or several specs (file:PATH, "
    "hub:..., bundled:NAME@epoch-K) ordered by the epoch or step in their names, the largest taken as the final network"
)


def add_parser(sub) -> None:
    t = sub.add_parser(
        "training",
        help="CKA over training: each snapshot of A against B's at the same fraction of training, and each "
        "snapshot against its own run's final network",
    )
    t.add_argument("--a", required=True, nargs="+", type=model_spec, metavar="SPEC", help=f"series A: {SERIES_HELP}")
    t.add_argument("--b", required=True, nargs="+", type=model_spec, metavar="SPEC", help="series B, in the same forms")
    t.add_argument("--out", required=True, help="JSON file: both series, the pairing and layer x snapshot CKA")
    t.add_argument("--csv", help="also write the layer x snapshot CKA as long-format CSV")
    add_subset_and_cka_arguments(t, per_class=DEFAULTS.series_per_class)
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    spec, options = subset_and_options(args, invariance=False, probes=False, permutations=0)
    plan = SeriesPlan.of(series_of_specs(args.a, "series A"), series_of_specs(args.b, "series B"))
    cluster = Cluster.from_env(pick_device(args.device))
    bars = Bars(cluster.rank == 0)
    try:
        subset = load_subset(spec, args.data_dir)
        networks = {s: load_model(s) for s in dict.fromkeys(s for pair in plan.pairs() for s in pair)}
        # each network runs once, whatever its number of pairs
        found = compare_pairs([(networks[r], networks[o]) for r, o in plan.pairs()], subset, options, cluster, bars)
        results = dict(zip(plan.pairs(), found, strict=False))  # empty on ranks other than 0
    finally:
        bars.close()
        cluster.close()
    if cluster.rank != 0:
        return 0
    store = default_store()
    if store:  # the app's Training page then shows these pairs without computing them
        for (reference, other), result in results.items():
            key = result_key(networks[reference].identity.key, networks[other].identity.key, spec, options)
            store.put_result(key, result)
    curves = series_curves(plan, lambda reference, other: results[(reference, other)])
    with writing(args.out):
        Path(args.out).write_text(json.dumps(to_json_dict(plan, curves, spec, options), indent=1) + "\n")
    if args.csv:
        with writing(args.csv):
            Path(args.csv).write_text(to_csv(plan, curves))
    for series in (plan.a, plan.b):
        print(f"{series.name}: {len(series.snapshots)} snapshots; {series.rule}", file=sys.stderr)
    for snapshot, j in zip(plan.a.snapshots, plan.pairing, strict=True):
        partner = plan.b.snapshots[j]
        print(
            f"  A {snapshot.label} ({snapshot.progress:.0%}) with B {partner.label} ({partner.progress:.0%})",
            file=sys.stderr,
        )
    print(
        f"done in {time.perf_counter() - t0:.1f} s on {cluster.describe()}: {len(networks)} networks, "
        f"{len(results)} pair analyses; wrote {args.out}",
        file=sys.stderr,
    )
    return 0
