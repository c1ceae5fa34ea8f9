"""Guards for the alert routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from reference_app.access.guards import require
from reference_app.access.permissions import Permission
from reference_app.access.principal import Principal

AlertRead = Annotated[Principal, Depends(require(Permission.ALERT_READ))]
AlertManage = Annotated[Principal, Depends(require(Permission.ALERT_MANAGE))]
