"""Request and response bodies for change requests and the subject access pack."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reference_app.children.schemas import ChildCorrect
from reference_app.kit.text import MultiLine
from reference_app.requests.models import Decision, RequestKind, RequestStatus

TEXT = Field(min_length=1, max_length=2000)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestCreate(Strict):
    """A family's request: a rectification names the corrected fields, the others none."""

    child_id: str = Field(min_length=13, max_length=20)
    kind: RequestKind
    changes: ChildCorrect | None = None
    justification: MultiLine = TEXT

    @model_validator(mode="after")
    def _changes_match_kind(self) -> RequestCreate:
        if self.kind is RequestKind.RECTIFICATION:
            if self.changes is None or not self.changes.model_dump(exclude_none=True):
                raise ValueError("a rectification names at least one corrected field in changes")
        elif self.changes is not None:
            raise ValueError(f"a {self.kind.value} request carries no changes")
        return self


class DecisionCreate(Strict):
    decision: Decision
    note: MultiLine | None = Field(default=None, min_length=1, max_length=2000)


class Organisation(BaseModel):
    name: str
    kind: str


class Actor(BaseModel):
    """Who acted, as the LA's team sees it."""

    practitioner_id: int
    role: str
    organisation: Organisation | None


class Step(BaseModel):
    at: datetime
    by: Actor


class DecisionStep(Step):
    decision: Decision
    note: str | None


class RequestSummary(BaseModel):
    id: int
    child_id: str
    kind: RequestKind
    status: RequestStatus
    raised_at: datetime
    decided_at: datetime | None


class RequestDetail(BaseModel):
    """A request's decision trail. The proposed values and the free text are shown to the
    child's LA team; the practitioner who raised it sees the fields and the outcome only."""

    id: int
    child_id: str
    kind: RequestKind
    status: RequestStatus
    fields: list[str]
    raised: Step
    decided: DecisionStep | None
    proposed_changes: dict[str, Any] | None = None
    justification: str | None = None
