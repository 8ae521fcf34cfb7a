"""The one error base: every refusal a person sees is a LensError, with a message they can act on."""

from __future__ import annotations


class LensError(ValueError):
    """A request CKA Lens cannot serve; the message says what was wrong and what would work.

    A ValueError, so code that treats bad input as a value problem keeps working. The app shows the
    message as it is; the command line prints it on one line and exits with status 2.
    """


class DataError(LensError):
    """A data source or subset choice that cannot be served."""


class OptionsError(LensError):
    """Analysis options that cannot be used together or at all."""


class SettingsError(LensError):
    """An environment variable whose value cannot be used."""


class MemoryRefusal(LensError):
    """An analysis refused up front because it would not fit in memory; the message names a setting that fits."""


class SeriesError(LensError):
    """A series of training snapshots that cannot be ordered or paired (names without a number, say)."""
