"""Text a person typed into a one-line field: no control or direction-override characters.

A NUL, an escape sequence or a line break inside a name ends up in printouts, CSV exports and
terminals; a right-to-left override makes a name read differently from how it is stored. Such
characters are refused (422) rather than stored.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# Bidirectional embeddings, overrides, isolates and marks (Unicode UAX #9).
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def one_line(value: str) -> str:
    """Refuse control characters (C0, C1, line breaks) and bidirectional controls."""
    for ch in value:
        if ch in _BIDI_CONTROLS or unicodedata.category(ch) == "Cc":
            raise ValueError(f"control character U+{ord(ch):04X} is not allowed")
    return value


OneLine = Annotated[str, AfterValidator(one_line)]
