"""The subject access pack as a printable, self-contained HTML page.

Every value is escaped. The page carries its own content security policy: the registry's
default (``default-src 'none'``) would block the one stylesheet the page needs to print well,
so this answer allows exactly that stylesheet by its SHA-256 hash and nothing else: no script,
no image, no other style, no form, no framing. The hash pins the stylesheet's bytes, so even a
value that escaped escaping could neither run code nor restyle the page.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

STYLE = """
body { font: 11pt/1.4 Georgia, serif; margin: 2em; color: #000; }
h1 { font-size: 16pt; } h2 { font-size: 13pt; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; }
th, td { border: 1px solid #555; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eee; }
thead { display: table-header-group; }
tr { page-break-inside: avoid; }
.meta { color: #333; }
@page { size: A4; margin: 15mm; }
@media print { body { margin: 0; } h2 { page-break-after: avoid; } }
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "-"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items() if v is not None)
    return str(value)


def _cell(value: Any) -> str:
    return escape(_text(value), quote=True)


def _table(headings: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headings)}">None recorded.</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(
        f'<tr><th scope="row">{escape(k)}</th><td>{_cell(v)}</td></tr>' for k, v in pairs
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _organisation(value: dict[str, Any] | None) -> str:
    return f"{value['name']} ({value['kind']})" if value else "the registry (automatic)"


def _data_held(held: dict[str, Any] | None, purged_at: str | None) -> str:
    if held is None:
        return (
            f"<p>The record was deleted on {_cell(purged_at)} UTC, at the end of its retention "
            "period. The access history below is kept.</p>"
        )
    la = held.get("local_authority") or {}
    parts = [
        _pairs(
            [
                ("Child identifier", held["child_id"]),
                ("Given name", held["given_name"]),
                ("Family name", held["family_name"]),
                ("Date of birth", held["date_of_birth"]),
                ("Gender", held["gender"]),
                ("Address", held["address"]),
                ("Local authority", la.get("name")),
                ("Shielded", held["shielded"]),
                ("Archived", held["archived"]),
                ("Deceased", held["deceased"]),
                ("Warning flags", held["warning_flags"]),
            ]
        ),
        "<h3>Parents and carers</h3>",
        _table(
            ["Name", "Relationship", "Parental responsibility", "Phone", "Email"],
            (
                (
                    f"{c['given_name']} {c['family_name']}",
                    c["relationship"],
                    c["parental_responsibility"],
                    c["phone"],
                    c["email"],
                )
                for c in held["carers"]
            ),
        ),
        "<h3>Services</h3>",
        _table(
            ["Organisation", "Phone", "From", "To", "Lead professional", "CAF", "Sensitive"],
            (
                (
                    _organisation(s["organisation"]),
                    s["organisation"]["phone"],
                    s["started_on"],
                    s["ended_on"],
                    s["lead_professional"],
                    s["caf_assessment_on"],
                    s["sensitive"],
                )
                for s in held["services"]
            ),
        ),
    ]
    return "".join(parts)


def render(pack: dict[str, Any]) -> str:
    """The pack as one HTML document, every value escaped."""
    produced_by = pack["produced_by"]
    history = _table(
        ["When (UTC)", "What", "Organisation", "Role", "Reason", "Relationship", "Outcome"],
        (
            (
                e["occurred_at"],
                e["description"],
                _organisation(e["organisation"]),
                e["role"],
                e["reason"],
                e["relationship"],
                e["outcome"],
            )
            for e in pack["access_history"]
        ),
    )
    requests = _table(
        ["Raised (UTC)", "Kind", "Raised by", "Changes asked", "Why", "Status", "Decided", "Note"],
        (
            (
                r["raised"]["at"],
                r["kind"],
                _organisation(r["raised"]["by"]["organisation"]),
                r["proposed_changes"],
                r["justification"],
                r["status"],
                r["decided"]["at"] if r["decided"] else None,
                r["decided"]["note"] if r["decided"] else None,
            )
            for r in pack["requests"]
        ),
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in pack["notes"])
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>Subject access: {_cell(pack['child_id'])}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Information held on child {_cell(pack['child_id'])}</h1>"
        f'<p class="meta">Produced {_cell(pack["produced_at"])} UTC by '
        f"{_cell(_organisation(produced_by['organisation']))}.</p>"
        f"<h2>Data held</h2>{_data_held(pack['data_held'], pack['purged_at'])}"
        f"<h2>Who has accessed the record</h2>{history}"
        f"<h2>Requests to correct or shield the record</h2>{requests}"
        f"<h2>About this pack</h2><ul>{notes}</ul>"
        "</body></html>\n"
    )
