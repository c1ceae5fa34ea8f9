"""Workflow steps as compare-and-set: a row moves on only from the state its caller saw.

Two data managers who read an alert as ``open`` and both step it must not both win, nor may the
later one undo the earlier (an acknowledge landing on a closed alert). Each step is one
``UPDATE ... WHERE id = :id AND <the state read>``: PostgreSQL re-checks the condition on the
row the first writer committed (READ COMMITTED), SQLite runs one writer at a time (every write
transaction begins IMMEDIATE), so exactly one UPDATE matches and the other step is refused
with 409 ``state_changed``. The winner writes the step's audit event in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, inspect, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ClauseElement

from reference_app.kit.errors import Conflict


class StateChanged(Conflict):
    code = "state_changed"
    message = "Someone else changed this since you read it; read it again and decide anew."


def advance(db: Session, row: Any, *expected: ColumnElement[bool], **values: Any) -> bool:
    """Set ``values`` on ``row`` if it still matches ``expected``; False if another transaction
    moved it first. The loaded ``row`` takes the new values (SQL expressions are re-read)."""
    if db.is_modified(row):
        db.flush()  # the row's own pending changes first: the UPDATE below must not lose them
    mapper = inspect(row).mapper
    keys = [
        column == getattr(row, mapper.get_property_by_column(column).key)
        for column in mapper.primary_key
    ]
    result = db.execute(
        update(mapper.class_)
        .where(*keys, *expected)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    computed = [name for name, value in values.items() if isinstance(value, ClauseElement)]
    for name, value in values.items():
        if name not in computed:
            set_committed_value(row, name, value)
    if computed:
        db.expire(row, computed)
    return True


def advance_or_refuse(db: Session, row: Any, *expected: ColumnElement[bool], **values: Any) -> None:
    """``advance``, refusing the step with 409 ``state_changed`` when another came first."""
    if not advance(db, row, *expected, **values):
        raise StateChanged()
