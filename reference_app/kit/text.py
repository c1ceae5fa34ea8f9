"""Text a person typed: no control or direction-override characters.

A NUL, an escape sequence or a stray line break inside a name ends up in printouts, CSV exports
and terminals; a right-to-left override makes a name or a note read differently from how it is
stored (and from how the audit trail shows it). Such characters are refused (422,
``control_characters``) rather than stored. One-line fields (names, addresses, recipients) refuse
every control character; multi-line fields (notes, reasons, justifications) allow tab and line
breaks and nothing else.

The rule is the ``text_hygiene`` control: a development build may switch it off, which the
request middleware passes down per request through ``hygiene``.
"""

from __future__ import annotations

import unicodedata
from contextvars import ContextVar
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

CONTROL_CHARACTERS = "control_characters"  # the stable error code and pydantic error type

# Bidirectional embeddings, overrides, isolates and marks (Unicode UAX #9).
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = frozenset("\t\n\r")

hygiene: ContextVar[bool] = ContextVar("contactpoint_text_hygiene", default=True)
"""Whether this request refuses control characters (off only in a weakened development build)."""


def offending(value: str, *, multiline: bool = False) -> str | None:
    """The first character ``value`` may not hold (C0 and C1 controls, DEL, bidi controls; tab
    and line breaks only where ``multiline``), or ``None``."""
    for ch in value:
        if multiline and ch in _LINE_BREAKS:
            continue
        if ch in _BIDI_CONTROLS or unicodedata.category(ch) == "Cc":
            return ch
    return None


def plain_text(value: str, *, multiline: bool = False) -> str:
    """Return ``value``, or refuse it if it holds a control character (while the rule is on)."""
    ch = offending(value, multiline=multiline) if hygiene.get() else None
    if ch is not None:
        raise PydanticCustomError(
            CONTROL_CHARACTERS,
            "control character U+{codepoint} is not allowed",
            {"codepoint": f"{ord(ch):04X}"},
        )
    return value


def refused(value: str, *, multiline: bool = False) -> bool:
    """Whether ``value`` must be refused (for text that does not pass through a schema)."""
    return hygiene.get() and offending(value, multiline=multiline) is not None


def one_line(value: str) -> str:
    """Refuse control characters (C0, C1, line breaks) and bidirectional controls."""
    return plain_text(value)


def multi_line(value: str) -> str:
    """Refuse control and bidirectional characters other than tab and line breaks."""
    return plain_text(value, multiline=True)


OneLine = Annotated[str, AfterValidator(one_line)]
MultiLine = Annotated[str, AfterValidator(multi_line)]
