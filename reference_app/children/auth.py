"""Guards for the children routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from reference_app.access.guards import require
from reference_app.access.permissions import Permission
from reference_app.access.principal import Principal

ChildSearch = Annotated[Principal, Depends(require(Permission.CHILD_SEARCH))]
ChildRead = Annotated[Principal, Depends(require(Permission.CHILD_RECORD_READ))]
ChildCreateGuard = Annotated[Principal, Depends(require(Permission.CHILD_CREATE))]
ChildCorrectGuard = Annotated[Principal, Depends(require(Permission.CHILD_RECORD_CORRECT))]
ChildShieldGuard = Annotated[Principal, Depends(require(Permission.CHILD_SHIELD))]
