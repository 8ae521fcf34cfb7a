"""The parser of `python -m cli` and its rule for errors: a refusal is one line on stderr and exit status 2; a bug
is a one-line apology with a reference, then its traceback, on stderr, and exit status 1."""

from __future__ import annotations

import argparse
import sys
import traceback

from cli import checkpoints, compare, snapshots, train
from cli.errors import CliError
from core.errors import LensError, bug_reference

BUG = 1
USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise CliError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cli", description="CKA Lens: compare the layers of networks with CKA.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    compare.add_parser(sub)
    snapshots.add_parser(sub)
    train.add_parser(sub)
    checkpoints.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; a refusal (LensError) is one line on stderr and exit code 2, a bug an apology (exit 1)."""
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except LensError as error:
        print(f"error: {error}".splitlines()[0], file=sys.stderr)
        return USAGE_ERROR
    except MemoryError as error:
        print(
            f"error: {error or 'out of memory; use fewer images (--per-class) or a smaller --batch-size'}",
            file=sys.stderr,
        )
        return USAGE_ERROR
    except Exception as error:  # noqa: BLE001 - a bug: never worded as a refusal, always with its traceback
        return apologise(error)


def apologise(error: Exception) -> int:
    """A bug's report: one line that says so, with a reference, then the traceback under that reference (the
    terminal's stderr is this command's log), so that a report quoting the line can be matched to its trace."""
    reference = bug_reference()
    print(
        f"CKA Lens failed with an internal error (reference {reference}); this is a bug, not a problem with your "
        "command: please report it with the traceback below.",
        file=sys.stderr,
    )
    print(f"traceback of {reference}:", file=sys.stderr)
    traceback.print_exception(error, file=sys.stderr)
    return BUG
