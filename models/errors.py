"""The one error every checkpoint source raises, so callers (the app, the CLI) need catch only this."""

from __future__ import annotations

import os


class CheckpointError(ValueError):
    """A checkpoint could not be loaded; the message is one sentence a person can act on.

    It says what was wrong and what would work instead, so the app can show it as it is and the CLI
    can print it on one line.
    """


def env_number(name: str, default: float, advice: str) -> float:
    """The number in environment variable `name`; `default` when it is unset or blank.

    Anything else is a CheckpointError naming the variable, its value and `advice`, so a typo in a
    limit is reported instead of silently replaced.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise CheckpointError(f"{name}={raw!r} {advice}") from None
