"""Guards for the account routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from reference_app.access.guards import authenticate, require
from reference_app.access.permissions import Permission
from reference_app.access.principal import Principal

AnyUser = Annotated[Principal, Depends(authenticate)]
UserManage = Annotated[Principal, Depends(require(Permission.USER_MANAGE))]
UserRoleConfirm = Annotated[Principal, Depends(require(Permission.USER_ROLE_CONFIRM))]
