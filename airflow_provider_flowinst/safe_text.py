"""Remote text made safe to show: bounded in length, and only characters HTML and XML 1.0 can carry.

Names, ids, states and times come from platforms other teams control. Before any of it reaches a page or an
SVG it is cut to a bounded length and every character that would break the document or mislead the reader
is replaced by U+FFFD: lone surrogates (not encodable as UTF-8), control characters (NUL, ESC, VT: invalid in
XML 1.0), non-characters (U+FFFE, U+FFFF), and format characters such as the bidi overrides (U+202E would
show a name reversed) and zero-width characters. Tab and newline are kept (hover text uses newlines).
"""

from __future__ import annotations

import html
import unicodedata
from typing import Any

REPLACEMENT = "\ufffd"
ELLIPSIS = "…"
#: Unicode categories replaced: controls, format characters (bidi, zero-width), surrogates, unassigned
#: code points (the non-characters U+FFFE and U+FFFF among them).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn"})
_KEPT_CONTROLS = frozenset("\t\n")


def _is_safe(char: str) -> bool:
    if char in _KEPT_CONTROLS:
        return True
    if char.isprintable() and char.isascii():  # the common case, cheaply
        return True
    return unicodedata.category(char) not in _UNSAFE_CATEGORIES


def bounded(value: Any, limit: int) -> str:
    """``value`` as text of at most ``limit`` characters (an ellipsis marks a cut), safe characters only."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except Exception:  # an int too long for str(), an object whose __str__ fails
            return REPLACEMENT
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + ELLIPSIS
    return "".join(char if _is_safe(char) else REPLACEMENT for char in text)


def escaped(value: Any, limit: int) -> str:
    """``bounded`` text escaped for HTML and XML, in element content and in quoted attributes."""
    return html.escape(bounded(value, limit), quote=True)
