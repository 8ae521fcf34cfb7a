"""The command line's refusals: CliError, and the files a command writes, whose failures are the user's to fix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import LensError


class CliError(LensError):
    """A command-line mistake the user can fix; printed as one line."""


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Writes to `path` (an --out, --csv or progress file, a training folder): an OSError there (no such folder,
    no permission, a full disk) is a CliError naming the file and the reason in plain words, not a bug."""
    try:
        yield
    except OSError as err:
        raise CliError(f"cannot write {err.filename or path}: {err.strerror or type(err).__name__}") from None
