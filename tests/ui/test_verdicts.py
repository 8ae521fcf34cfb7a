"""Verdict badges: each verdict's word keeps its meaning, on colours that are told apart and read easily."""

from __future__ import annotations

import re

from core.findings import FAILS, HOLDS, UNSURE
from ui.verdicts import badge_style


def luminance(hex_colour: str) -> float:
    """WCAG 2 relative luminance of '#rrggbb'."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def colours(style: str) -> tuple[str, str]:
    return re.search(r"(?<!-)color: (#\w{6})", style)[1], re.search(r"background-color: (#\w{6})", style)[1]


def test_every_verdict_has_its_own_background_and_text_that_reads_at_7_to_1():
    styles = {verdict: badge_style(verdict) for verdict in (HOLDS, FAILS, UNSURE)}
    assert len({colours(s)[1] for s in styles.values()}) == 3
    for verdict, style in styles.items():
        text, background = sorted(map(luminance, colours(style)))
        assert (background + 0.05) / (text + 0.05) >= 7, verdict  # WCAG AAA for normal text


def test_other_text_is_left_as_it_is():
    assert badge_style("holds, mostly") == "" and badge_style("") == ""
