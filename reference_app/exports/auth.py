"""Guards for the export routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from reference_app.access.guards import require
from reference_app.access.permissions import Permission
from reference_app.access.principal import Principal

ExportRequestGuard = Annotated[Principal, Depends(require(Permission.EXPORT_REQUEST))]
ExportApproveGuard = Annotated[Principal, Depends(require(Permission.EXPORT_APPROVE))]
