"""The one error every checkpoint source raises, so callers (the app, the CLI) need catch only this."""

from __future__ import annotations

from core.errors import LensError


class CheckpointError(LensError):
    """A checkpoint could not be loaded; the message is one sentence a person can act on.

    It says what was wrong and what would work instead, so the app can show it as it is and the CLI
    can print it on one line.
    """


class ArchitectureError(LensError):
    """A ResNet configuration CKA Lens cannot build (a depth with no standard block counts, a width below 1, ...):
    from a training command's options, or from a checkpoint's shapes, where it is reworded as a CheckpointError."""
