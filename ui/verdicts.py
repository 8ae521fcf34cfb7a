"""Verdict badges: each verdict's word on its own colour, so that a findings table can be scanned at a glance.

The word carries the meaning (a reader who cannot tell the colours apart, or a screen reader, loses nothing);
the colour only helps. Each pair of text and background colours has a contrast ratio above 7:1.
"""

from __future__ import annotations

from core.findings import FAILS, HOLDS, UNSURE

BADGES = {  # verdict -> (text colour, background colour)
    HOLDS: ("#0b4a1a", "#d3f2da"),
    FAILS: ("#7a1010", "#fbdcdc"),
    UNSURE: ("#3d3d3d", "#ececec"),
}


def badge_style(verdict: str) -> str:
    """The CSS of a table cell holding `verdict`: its badge's colours, in bold; nothing for any other text."""
    if verdict not in BADGES:
        return ""
    text, background = BADGES[verdict]
    return f"color: {text}; background-color: {background}; font-weight: 600"
