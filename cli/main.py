"""The parser of `python -m cli` and its one rule for errors: one line on stderr, exit status 2."""

from __future__ import annotations

import argparse
import sys

from cli import checkpoints, compare, train, training
from core.errors import LensError

USAGE_ERROR = 2


class CliError(LensError):
    """A command-line mistake the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise CliError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cli", description="CKA Lens: compare the layers of networks with CKA.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    compare.add_parser(sub)
    training.add_parser(sub)
    train.add_parser(sub)
    checkpoints.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; any refusal is one line on stderr and exit code 2."""
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (LensError, ValueError, OSError) as error:
        print(f"error: {error}".splitlines()[0], file=sys.stderr)
        return USAGE_ERROR
    except MemoryError as error:
        print(
            f"error: {error or 'out of memory; use fewer images (--per-class) or a smaller --batch-size'}",
            file=sys.stderr,
        )
        return USAGE_ERROR
