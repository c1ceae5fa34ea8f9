"""Guards for the subject access and change request routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from reference_app.access.guards import require
from reference_app.access.permissions import Permission
from reference_app.access.principal import Principal

SubjectAccessProduce = Annotated[Principal, Depends(require(Permission.SUBJECT_ACCESS_PRODUCE))]
RequestRaise = Annotated[Principal, Depends(require(Permission.REQUEST_RAISE))]
RequestDecide = Annotated[Principal, Depends(require(Permission.REQUEST_DECIDE))]
