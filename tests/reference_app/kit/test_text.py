"""One-line text fields refuse control and direction-override characters."""

from __future__ import annotations

import pytest

from reference_app.kit.text import one_line


@pytest.mark.parametrize("value", ["O'Brien", "Zoë Ångström", "Nguyễn", "Smith-Jones", "李"])
def test_ordinary_names_pass(value: str) -> None:
    assert one_line(value) == value


@pytest.mark.parametrize(
    "value", ["A\x00B", "A\x07", "A\x1b[31mB", "A\r\nB", "A\tB", "A\x85B", "A\u202eB", "A\u2066B"]
)
def test_control_and_bidi_characters_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        one_line(value)
