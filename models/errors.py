"""The one error every checkpoint source raises, so callers (the app, the CLI) need catch only this."""

from __future__ import annotations

from core.errors import LensError


class CheckpointError(LensError):
    """A checkpoint could not be loaded; the message is one sentence a person can act on.

    It says what was wrong and what would work instead, so the app can show it as it is and the CLI
    can print it on one line.
    """
