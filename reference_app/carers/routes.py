"""Carer routes."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from reference_app.carers import service
from reference_app.carers.models import Relationship
from reference_app.children.auth import ChildCorrectGuard
from reference_app.kit.http import BoundaryRoute, CallDep
from reference_app.kit.identifiers import RowId
from reference_app.kit.text import OneLine

router = APIRouter(tags=["carers"], route_class=BoundaryRoute)
PHONE = r"^\+?[0-9 ]{10,16}$"


class CarerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    given_name: OneLine = Field(min_length=1, max_length=80)
    family_name: OneLine = Field(min_length=1, max_length=80)
    relationship: Relationship
    parental_responsibility: bool = False
    phone: str | None = Field(default=None, pattern=PHONE)
    email: OneLine | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


class CarerCorrect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    given_name: OneLine | None = Field(default=None, min_length=1, max_length=80)
    family_name: OneLine | None = Field(default=None, min_length=1, max_length=80)
    phone: str | None = Field(default=None, pattern=PHONE)
    email: OneLine | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


class CarerLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    relationship: Relationship
    parental_responsibility: bool = False


class CarerRef(BaseModel):
    carer_id: int


@router.post(
    "/children/{child_id}/carers", response_model=CarerRef, status_code=status.HTTP_201_CREATED
)
def add_carer(
    child_id: str, body: CarerCreate, principal: ChildCorrectGuard, call: CallDep
) -> CarerRef:
    """Link a new carer to a child of the caller's local authority."""
    carer = service.add(call, principal, child_id, body.model_dump())
    return CarerRef(carer_id=carer.id)


@router.post(
    "/children/{child_id}/carers/{carer_id}",
    response_model=CarerRef,
    status_code=status.HTTP_201_CREATED,
)
def link_carer(
    child_id: str, carer_id: RowId, body: CarerLink, principal: ChildCorrectGuard, call: CallDep
) -> CarerRef:
    """Link a carer of another child of the caller's local authority (a sibling's parent)."""
    carer = service.link(call, principal, child_id, carer_id, body.model_dump())
    return CarerRef(carer_id=carer.id)


@router.patch("/carers/{carer_id}", response_model=CarerRef)
def correct_carer(
    carer_id: RowId, body: CarerCorrect, principal: ChildCorrectGuard, call: CallDep
) -> CarerRef:
    """Correct a carer's details."""
    carer = service.correct(call, principal, carer_id, body.model_dump(exclude_none=True))
    return CarerRef(carer_id=carer.id)
