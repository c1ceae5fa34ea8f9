"""The README's commands are runnable as written: every `contactpoint` (and
`contactpoint-registry`) command it shows exists, and every option it gives that command is one
the command takes."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from contactpoint.cli import main
from reference_app.cli import main as registry_main

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `contactpoint` or `contactpoint-registry` and what follows it on a line of code (a shell block,
# or an inline code span).
_COMMAND = re.compile(
    r"(?:^|[\s`(/])(contactpoint(?:-registry)?)((?:\s+[a-z][a-z0-9-]*)+)([^`\n]*)"
)
PROGRAMS: dict[str, click.Command] = {"contactpoint": main, "contactpoint-registry": registry_main}
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def _code(text: str) -> list[str]:
    """Lines of shell blocks, and inline code spans, of a Markdown text."""
    out: list[str] = []
    block = False
    # A shell line ending in a backslash goes on on the next.
    text = re.sub(r"\\\n\s*", " ", text)
    for line in text.splitlines():
        if line.startswith("```"):
            block = not block
            continue
        if block:
            out.append(line)
        else:
            out.extend(re.findall(r"`([^`]+)`", line))
    return out


def _mentions() -> list[tuple[str, str, str, str]]:
    found = []
    for path in DOCS:
        for line in _code(path.read_text(encoding="utf-8")):
            for match in _COMMAND.finditer(line):
                program, words, rest = match.groups()
                found.append((path.name, program, " ".join(words.split()), rest))
    return found


MENTIONS = _mentions()


def _resolve(program: str, words: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The deepest command the words name, the words that named it, and the rest."""
    command = PROGRAMS[program]
    used: list[str] = []
    for word in words:
        if isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
            used.append(word)
        else:
            break
    return command, used, words[len(used) :]


def test_the_readme_shows_commands() -> None:
    assert len(MENTIONS) > 20


@pytest.mark.parametrize(("doc", "program", "words", "rest"), MENTIONS)
def test_each_command_and_option_exists(doc: str, program: str, words: str, rest: str) -> None:
    command, used, extra = _resolve(program, words.split())
    assert used or not extra or extra[0].startswith("-"), f"{doc}: no command `{words}`"
    if isinstance(command, click.Group) and extra:
        pytest.fail(f"{doc}: `{program} {words}`: {extra[0]!r} is not a command of it")
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    options |= {"--help", "-h"}
    if command is PROGRAMS[program]:
        options |= {"--version"}
    for option in _OPTION.findall(" ".join(extra) + " " + rest):
        assert option in options, (
            f"{doc}: `{program} {' '.join(used)}` takes no {option} "
            f"(it takes {', '.join(sorted(options))})"
        )


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found, block = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            block = not block
        elif not block and line.startswith("#"):
            found.add(_slug(line.lstrip("#")))
    return found


LINKS = [
    (path, target)
    for path in DOCS
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8"))
    if not target.startswith(("http://", "https://", "mailto:"))
]


@pytest.mark.parametrize(("doc", "target"), LINKS, ids=[f"{p.name}->{t}" for p, t in LINKS])
def test_each_link_leads_somewhere(doc: Path, target: str) -> None:
    file, _, anchor = target.partition("#")
    where = (doc.parent / file).resolve() if file else doc
    assert where.exists(), f"{doc.name}: {target} does not exist"
    if anchor and where.suffix == ".md":
        assert anchor in _anchors(where), f"{doc.name}: no heading #{anchor} in {where.name}"
