"""Text from outside (a link, an uploaded file, a checkpoint, a result file) shown as text, never as markup.

Streamlit renders every message as Markdown (GitHub flavour: bare URLs become links), so a file name or a link's
value could otherwise put links, images or formatting into the app's own words.

A refusal (a LensError) passed here is shown in a visitor's words: its `visitor` text, without the hint for the
server's operator (an environment variable, a server path) that the command line and the log keep.
"""

from __future__ import annotations

import re

from core.errors import LensError

# The marks Markdown, GitHub's extensions or Streamlit give a meaning (CommonMark lets any punctuation be escaped):
# escaping ':', '.' and '@' also stops bare URLs and addresses (https://..., www.x.y, a@b.c) becoming links, '$' math.
_PUNCTUATION = re.compile(r"([\\`*_\[\]()<>#!|~$:.&+\-=@{}^])")
MAX_SHOWN = 200  # characters of one outside string shown in a message


def for_visitor(text: object) -> str:
    """`text` as a string; a refusal as its visitor's message (no operator hint)."""
    return text.visitor if isinstance(text, LensError) else str(text)


def short(text: object, limit: int = MAX_SHOWN) -> str:
    """`text` on one line, cut to `limit` characters (a 10 MB key name stays a short message); a refusal in its
    visitor's words."""
    flat = " ".join(for_visitor(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def plain(text: object, limit: int = MAX_SHOWN) -> str:
    """`text` as Markdown that shows exactly its characters: one line, cut to `limit`, every mark escaped."""
    return _PUNCTUATION.sub(r"\\\1", short(text, limit))


def code(text: object, limit: int = MAX_SHOWN) -> str:
    """`text` as an inline code span: nothing inside one is Markdown, but a backtick would end it and a bar would
    split a table's cell, so those are replaced and escaped."""
    return "`" + short(text, limit).replace("`", "'").replace("|", "\\|") + "`"
