"""Remote text on a page or in an SVG: bounded, and only characters HTML and XML 1.0 can carry."""

from __future__ import annotations

import defusedxml.ElementTree as ET
import pytest

from airflow_provider_flowinst.safe_text import REPLACEMENT, bounded, escaped


@pytest.mark.parametrize(
    "hostile",
    [
        "\ud800",  # a lone surrogate: not encodable as UTF-8
        "\x00",  # NUL, ESC, VT: invalid in XML 1.0
        "\x1b",
        "\x0b",
        "\ufffe",  # non-characters
        "\uffff",
        "\u202e",  # RIGHT-TO-LEFT OVERRIDE: would show the rest of the name reversed
        "\u2066",  # LEFT-TO-RIGHT ISOLATE
        "\u200b",  # ZERO WIDTH SPACE
        "\x85",  # a C1 control
    ],
)
def test_characters_that_break_or_spoof_a_document_are_replaced(hostile):
    text = bounded(f"load{hostile}mart", 100)

    assert text == f"load{REPLACEMENT}mart"
    text.encode("utf-8")
    assert ET.fromstring(f"<t a='{escaped(text, 100)}'>{escaped(text, 100)}</t>").text == text


def test_ordinary_text_passes_unchanged_tabs_and_newlines_included():
    text = "加载 données\tétape 1\nÜbersicht 🚀"

    assert bounded(text, 100) == text


def test_long_text_is_cut_with_an_ellipsis():
    assert bounded("x" * 100_000, 10) == "x" * 9 + "…"


def test_anything_becomes_text_even_what_cannot():
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert bounded(None, 5) == ""
    assert bounded(12, 5) == "12"
    assert bounded(Broken(), 5) == REPLACEMENT


def test_escaped_text_is_safe_in_markup_and_quoted_attributes():
    assert escaped('<b a="1">\'&', 100) == "&lt;b a=&quot;1&quot;&gt;&#x27;&amp;"
