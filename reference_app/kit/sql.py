"""Set-based SQL that the two backends spell differently."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import QueryableAttribute, Session


def among(
    db: Session, column: ColumnElement[Any] | QueryableAttribute[Any], values: Collection[Any]
) -> ColumnElement[bool]:
    """``column IN values`` for a long list: one array parameter on PostgreSQL (one statement to
    prepare and cache, however many values), bound parameters on SQLite (in process, cheap)."""
    if db.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)
