"""Request and response bodies for children."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reference_app.access.permissions import AccessReason
from reference_app.children.models import Gender
from reference_app.kit.schemas import IsoDate
from reference_app.kit.text import MultiLine, OneLine

NAME = Field(min_length=1, max_length=80)

# ``X-Access-Reason: <code>[; free text]``: a reason code, then optionally free text
# without control or text-direction characters; the whole header at most this long.
ACCESS_REASON_MAX_LENGTH = 500
_NOT_TEXT = r"\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069"


ACCESS_REASON_PATTERN = (
    "^ *(" + "|".join(reason.value for reason in AccessReason) + f") *(;[^{_NOT_TEXT}]*)?$"
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Address(Strict):
    line1: OneLine = Field(min_length=1, max_length=120)
    line2: OneLine | None = Field(default=None, max_length=120)
    town: OneLine = Field(min_length=1, max_length=80)
    postcode: str = Field(pattern=r"^[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}$")


class SearchRequest(Strict):
    """Family name plus at least one other criterion; exact or phonetic, never wildcards."""

    family_name: OneLine = NAME
    given_name: OneLine | None = Field(default=None, min_length=1, max_length=80)
    date_of_birth: IsoDate | None = None
    postcode: str | None = Field(default=None, pattern=r"^[A-Za-z0-9 ]{5,8}$")

    @model_validator(mode="after")
    def _two_criteria(self) -> SearchRequest:
        others = [self.given_name, self.date_of_birth, self.postcode]
        if all(value is None for value in others):
            raise ValueError(
                "give the family name and at least one of given_name, date_of_birth or postcode"
            )
        for value in (self.family_name, self.given_name or "x"):
            if any(ch in value for ch in "*%?_"):
                raise ValueError("wildcards are not allowed in a search")
        return self


class SearchResult(BaseModel):
    child_id: str
    given_name: str
    family_name: str
    gender: str
    age: int
    # None for a shielded child (or one of its household): which LA it lives in is withheld,
    # and ``contact`` says how to ask for contact through the LA teams instead.
    local_authority: str | None = None
    contact: str | None = None


class SearchResponse(BaseModel):
    results: list[SearchResult]
    count: int
    refine_search: bool
    message: str | None = None


class ChildCreate(Strict):
    given_name: OneLine = NAME
    family_name: OneLine = NAME
    date_of_birth: IsoDate
    gender: Gender
    address: Address


class ChildCorrect(Strict):
    given_name: OneLine | None = Field(default=None, min_length=1, max_length=80)
    family_name: OneLine | None = Field(default=None, min_length=1, max_length=80)
    date_of_birth: IsoDate | None = None
    gender: Gender | None = None
    address: Address | None = None
    # Only that the child has died, and when that was recorded; never a date of death.
    deceased: Literal[True] | None = None


class ShieldChange(Strict):
    shielded: bool
    decision_note: MultiLine | None = Field(default=None, max_length=500)


class ChildCreated(BaseModel):
    child_id: str


class UnshieldApproval(Strict):
    decision_note: MultiLine | None = Field(default=None, max_length=500)


class PendingUnshield(BaseModel):
    """A request to lift the shield, waiting for a second data manager of the LA."""

    id: int
    requested_by: int
    requested_at: datetime
    alert_id: int | None


class ShieldOutcome(BaseModel):
    """Where the shield stands after a change: an unshield may wait for a second person."""

    child_id: str
    shielded: bool
    pending_unshield: PendingUnshield | None = None
