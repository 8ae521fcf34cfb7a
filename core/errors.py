"""The one error base: every refusal a person sees is a LensError, with a message they can act on.

Anything else that escapes to the app or the command line is a bug: the app apologises with a reference
(ui.apology) and the command line exits with status 1, each logging the traceback; neither shows it as a
refusal.
"""

from __future__ import annotations

import secrets


class LensError(Exception):
    """A request CKA Lens cannot serve; the message says what was wrong and what would work.

    Not a ValueError: the faces catch LensError alone, so a ValueError from a bug (Python's own, or a
    library's) is never mistaken for a refusal. The app shows the message as it is; the command line
    prints it on one line and exits with status 2.

    `operator` is a hint for whoever runs CKA Lens (an environment variable to set, a file on the server):
    `str(err)` (what the command line prints and the server log keeps) ends with it, `err.visitor` (what the
    app shows a visitor, who cannot act on it) leaves it out.
    """

    def __init__(self, *args: object, operator: str = "") -> None:
        super().__init__(*args)
        self.operator = operator

    @property
    def visitor(self) -> str:
        """The message in a visitor's words: what was wrong and what they can do, without the operator's hint."""
        return super().__str__()

    def __str__(self) -> str:
        return f"{self.visitor} {self.operator}" if self.operator else self.visitor


class DataError(LensError):
    """A data source or subset choice that cannot be served."""


class OptionsError(LensError):
    """Analysis options that cannot be used together or at all."""


class SettingsError(LensError):
    """An environment variable whose value cannot be used: the operator's to fix, so a visitor is told only that
    the server is not set up right (the variable and its value go to the command line and the server log)."""

    @property
    def visitor(self) -> str:
        return (
            "This server is not set up right for that (one of its settings cannot be used); its operator can "
            "find which in the server's log. Please try again later."
        )

    def __str__(self) -> str:
        return " ".join(filter(None, (Exception.__str__(self), self.operator)))


class MemoryRefusal(LensError):
    """An analysis refused up front because it would not fit in memory; the message names a setting that fits."""


class SeriesError(LensError):
    """A series of training snapshots that cannot be ordered or paired (names without a number, say)."""


class ResultFileError(LensError):
    """A result file (one the command line wrote, or a download) that cannot be read back; the message says
    which part is wrong."""


class ContractError(ValueError):
    """A function called against its documented contract (mismatched shapes, an unknown kernel, no data yet).

    The faces check what people choose before it reaches such a function, so from the app or the command line
    this means a bug, and they report it as one. A ValueError, as Python's own argument checks are, for code
    that calls the engine directly (benchmarks, notebooks); never a LensError.
    """


class StoreEntryDamaged(Exception):
    """An entry of the result store that does not read back whole (truncated, a wrong checksum, another engine's
    format): caught where it is read, and the entry discarded and recomputed; never shown to anyone."""


def bug_reference() -> str:
    """A fresh reference for one bug's report: 8 hex characters, shown to the person and written beside the
    traceback in the log, so the report they quote leads to that traceback."""
    return secrets.token_hex(4)
