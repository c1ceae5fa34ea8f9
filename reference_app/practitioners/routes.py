"""Login, logout, the caller's own account, and account administration routes."""

from __future__ import annotations

from fastapi import APIRouter, status

from reference_app.kit.errors import AppError
from reference_app.kit.http import CallDep
from reference_app.kit.identifiers import RowId
from reference_app.practitioners import service
from reference_app.practitioners.auth import AnyUser, UserManage
from reference_app.practitioners.schemas import (
    AccountChange,
    AccountCreate,
    AccountCreated,
    AccountOut,
    LoginRequest,
    Me,
    TokenResponse,
)

router = APIRouter(tags=["authentication and accounts"])


@router.post("/auth/login", response_model=TokenResponse)
def login(body: LoginRequest, call: CallDep) -> TokenResponse:
    """Log in with password and a one-time code; returns a short-lived bearer token."""
    try:
        result = service.login(call, body.username, body.password, body.otp)
    except AppError as exc:
        # Keep the failure counts and the audit event even though the login is refused.
        call.db.commit()
        exc.audited = True
        raise
    return TokenResponse(access_token=result.access_token, expires_in=result.expires_in)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(principal: AnyUser, call: CallDep) -> None:
    """End the caller's session: its token stops working at once."""
    service.logout(call, principal)


@router.get("/auth/me", response_model=Me)
def me(principal: AnyUser, call: CallDep) -> Me:
    """The caller's own account: id, username, role, organisation and local authority."""
    return service.whoami(call, principal)


@router.post("/users", response_model=AccountCreated, status_code=status.HTTP_201_CREATED)
def create_user(body: AccountCreate, principal: UserManage, call: CallDep) -> AccountCreated:
    """Create an account; the initial password and TOTP secret are shown this once."""
    account = service.register_account(
        call,
        principal,
        username=body.username,
        display_name=body.display_name,
        role=body.role,
        organisation_id=body.organisation_id,
        email=body.email,
    )
    return AccountCreated(
        id=account.practitioner.id,
        username=body.username,
        role=body.role,
        password=account.password,
        totp_secret=account.totp_secret,
    )


@router.patch("/users/{practitioner_id}", response_model=AccountOut)
def change_user(
    practitioner_id: RowId, body: AccountChange, principal: UserManage, call: CallDep
) -> AccountOut:
    """Change an account's role or suspend/reinstate it; its sessions end at once."""
    user = service.change_account(
        call, principal, practitioner_id, role=body.role, status=body.status
    )
    return AccountOut(
        id=user.id,
        username=user.username,
        role=user.role,
        status=user.status,
        organisation_id=user.organisation_id,
        local_authority_id=user.local_authority_id,
    )
