"""One defaults table: the app's sidebar, `python -m cli compare` and the engine's own types start from the same
analysis, the one core/options.py's DEFAULTS describes."""

from __future__ import annotations

import pytest

from cli.compare import subset_and_options as cli_subset_and_options
from cli.main import build_parser
from core.data import SubsetSpec
from core.options import DEFAULTS, AnalysisOptions
from ui import choices


def test_the_sidebar_and_the_command_line_start_from_the_engines_defaults():
    engine = (SubsetSpec(), AnalysisOptions())
    assert engine == (
        SubsetSpec(DEFAULTS.split, DEFAULTS.classes, DEFAULTS.per_class, DEFAULTS.subset_seed),
        AnalysisOptions(DEFAULTS.kernel, DEFAULTS.estimator == "debiased", DEFAULTS.sigma, DEFAULTS.batch_size),
    )
    sidebar = choices.subset_and_options({f.name: f.default for f in choices.FIELDS})
    args = build_parser().parse_args(["compare", "--a", "bundled:a", "--b", "bundled:b", "--out", "r.json"])
    command_line = cli_subset_and_options(args, permutations=args.permutations, seed=args.seed)
    assert sidebar == engine == command_line


def test_the_training_command_takes_fewer_images_per_class_and_says_so(capsys):
    args = build_parser().parse_args(["training", "--a", "bundled:a", "--b", "bundled:b", "--out", "t.json"])
    assert args.per_class == DEFAULTS.series_per_class < DEFAULTS.per_class
    with pytest.raises(SystemExit):
        build_parser().parse_args(["training", "--help"])
    assert f"images per class (default {DEFAULTS.series_per_class})" in " ".join(capsys.readouterr().out.split())
