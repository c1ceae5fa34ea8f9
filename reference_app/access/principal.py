"""Who is calling: the authenticated practitioner behind a request."""

from __future__ import annotations

from dataclasses import dataclass

from reference_app.access.permissions import PRACTITIONER_ROLES, Permission, Role


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: Role
    organisation_id: int
    local_authority_id: int
    session_id: str
    permissions: frozenset[Permission]
    # A role given by someone other than a data manager of the LA, not yet confirmed: it holds
    # no permission until then.
    role_pending: bool = False

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def is_practitioner(self) -> bool:
        return self.role in PRACTITIONER_ROLES

    @property
    def is_data_manager(self) -> bool:
        return self.role is Role.LA_DATA_MANAGER
