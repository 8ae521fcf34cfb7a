"""Text from outside shown as text: escaped strings render no link, image, emphasis or HTML."""

from __future__ import annotations

import re

import pytest

from ui.text import code, plain

INJECTIONS = [
    "[**Session expired, sign in**](https://evil.example/login) ![p](https://evil.example/p.png)",
    "<img src=x onerror=alert(1)> <a href='https://evil.example'>x</a>",
    "https://evil.example/login and www.evil.example",
    "# Heading\n\n- item `code` $x^2$ :red[alert] ~~gone~~ <https://evil.example>",
]
# What would become markup if it reached Markdown unescaped: a link or image, an autolink, HTML, emphasis.
MARKUP = re.compile(r"(?<!\\)\]\s*\(|(?<!\\)!\[|(?<!\\)<[a-z/]|https?:(?!\\)|www\.|(?<!\\)\*\*|^#|\n", re.MULTILINE)


CODE_SPAN = re.compile(r"(?<!\\)`[^`\n]*`")  # shown as it is: nothing inside is markup


def markup_in(body: str) -> list[str]:
    """The unescaped markup constructs in a Markdown body, outside its code spans."""
    return MARKUP.findall(CODE_SPAN.sub("", body))


@pytest.mark.parametrize("text", INJECTIONS)
def test_escaped_text_holds_no_markup_and_keeps_its_characters(text):
    assert markup_in(text)  # the check sees the raw string as markup
    escaped = plain(text)
    assert markup_in(escaped) == []
    assert re.sub(r"\\(.)", r"\1", escaped) == " ".join(text.split())


def test_a_code_span_cannot_be_closed_or_split_from_inside():
    span = code("a`b|c\nd")
    assert span == "`a'b\\|c d`"


def test_a_long_string_is_cut():
    assert len(plain("x" * 10_000_000)) == 200 and plain("x" * 10_000_000).endswith("…")
