"""Progress on a terminal and in a log: plain lines where a bar would make a mess."""

from __future__ import annotations

import io

from reference_app.kit.progress import Progress


def test_off_a_terminal_it_prints_plain_lines_with_the_rate_and_the_total() -> None:
    out = io.StringIO()
    with Progress("generate", 1000, "children", stream=out, tty=False, every=0.0) as progress:
        progress.update(250)
        progress.note("indexes: [1/3] CREATE INDEX ...")
        progress.update(750)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("generate: 250 of 1,000 children (25%), ")
    assert "left" in lines[0]
    assert lines[1] == "generate: indexes: [1/3] CREATE INDEX ..."
    assert lines[-1].startswith("generate: 1,000 of 1,000 children (100%)")
    assert lines[-1].endswith("in all")


def test_switched_off_it_says_nothing() -> None:
    out = io.StringIO()
    with Progress("backup", None, "rows", stream=out, tty=False, enabled=False) as progress:
        progress.update(5)
        progress.note("anything")
    assert out.getvalue() == ""
