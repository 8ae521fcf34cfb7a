"""Whether the real bundled pair is trained here (tests fall back to tiny stand-ins under the same names)."""

from __future__ import annotations

from models import DEFAULT_PAIR, list_bundled

REAL_PAIR = set(DEFAULT_PAIR) <= {entry.spec for entry in list_bundled()}
