"""Free text refuses control and direction-override characters: one-line fields every control
character, multi-line fields all but tab and line breaks; the rule switched off lets them by."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from reference_app.kit.text import (
    CONTROL_CHARACTERS,
    MultiLine,
    OneLine,
    hygiene,
    multi_line,
    one_line,
    refused,
)

HOSTILE = [
    "A\x00B",  # NUL
    "A\x07",  # C0
    "A\x1b[31mB",  # escape sequence
    "A\x7fB",  # DEL
    "A\x85B",  # C1 (next line)
    "A\x9bB",  # C1 (CSI)
    "A\u200eB",  # left-to-right mark
    "A\u200fB",  # right-to-left mark
    "A\u202aB",  # LRE
    "A\u202eB",  # RLO
    "A\u2066B",  # LRI
    "A\u2069B",  # PDI
]


class Form(BaseModel):
    name: OneLine
    note: MultiLine | None = None


@pytest.mark.parametrize(
    "value", ["O'Brien", "Zoë Ångström", "Nguyễn", "Smith-Jones", "李", "עברית"]
)
def test_ordinary_names_pass(value: str) -> None:
    assert one_line(value) == value
    assert multi_line(value) == value


@pytest.mark.parametrize("value", [*HOSTILE, "A\r\nB", "A\tB", "A\nB"])
def test_one_line_text_refuses_every_control_character(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Form(name=value)
    assert caught.value.errors()[0]["type"] == CONTROL_CHARACTERS
    assert "control character U+" in str(caught.value)
    assert refused(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_multi_line_text_refuses_controls_other_than_line_breaks(value: str) -> None:
    with pytest.raises(ValidationError):
        Form(name="Ada", note=value)
    assert refused(value, multiline=True)


def test_multi_line_text_keeps_tabs_and_line_breaks() -> None:
    note = "First line\r\nSecond\tline\nThird"
    assert Form(name="Ada", note=note).note == note
    assert not refused(note, multiline=True)


def test_switched_off_the_characters_pass() -> None:
    token = hygiene.set(False)
    try:
        assert Form(name="A\u202eB", note="\x00").name == "A\u202eB"
        assert not refused("A\x00B")
    finally:
        hygiene.reset(token)
