"""Scan exported telemetry (files of spans, metrics and logs) for known personal values.

The values come from a generated registry's ``children_sample.jsonl`` (every sampled child's
reference, names, date of birth and postcode) and ``personas.json`` (usernames). A value
matches as a whole word, case-sensitively for names (a given name is also an ordinary word),
and a postcode with or without its space.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CHILD_FIELDS = ("child_id", "family_name", "given_name", "date_of_birth", "postcode")


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    field: str  # which kind of value, never the value itself (the report must not leak it)


def personal_values(data_dir: Path) -> dict[str, str]:
    """Value -> the field it is, from the sample and the personas beside it."""
    values: dict[str, str] = {}
    sample = data_dir / "children_sample.jsonl"
    for line in sample.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        for field in CHILD_FIELDS:
            value = str(row.get(field) or "").strip()
            if len(value) >= 3:
                values[value] = field
                if field == "postcode":
                    values[value.replace(" ", "")] = field
    personas = data_dir / "personas.json"
    if personas.exists():
        for persona in json.loads(personas.read_text()):
            if persona.get("username"):
                values[str(persona["username"])] = "username"
    return values


def _pattern(values: Iterable[str]) -> re.Pattern[str]:
    alternatives = sorted((re.escape(v) for v in values), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(alternatives) + r")(?![\w-])")


def scan(files: Iterable[Path], values: dict[str, str]) -> list[Finding]:
    """Every line of ``files`` that carries one of ``values``."""
    if not values:
        return []
    pattern = _pattern(values)
    findings = []
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                for match in pattern.finditer(line):
                    findings.append(Finding(path.name, number, values[match.group(0)]))
    return findings
