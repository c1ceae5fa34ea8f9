"""Login, logout, the caller's own account, and account administration routes."""

from __future__ import annotations

from fastapi import APIRouter, status

from reference_app.kit.errors import AppError
from reference_app.kit.http import BoundaryRoute, CallDep
from reference_app.kit.identifiers import RowId
from reference_app.practitioners import service
from reference_app.practitioners.auth import AnyUser, UserManage, UserRoleConfirm
from reference_app.practitioners.models import Practitioner
from reference_app.practitioners.schemas import (
    AccountChange,
    AccountCreate,
    AccountCreated,
    AccountOut,
    EnrolRequest,
    LoginRequest,
    Me,
    PasswordChange,
    TokenResponse,
    TotpReset,
    TotpSecret,
)

router = APIRouter(tags=["authentication and accounts"], route_class=BoundaryRoute)


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


@router.post("/auth/enrol", response_model=TotpSecret)
def enrol(body: EnrolRequest, call: CallDep) -> TotpSecret:
    """Set a new account's own password with its enrolment code; returns its TOTP secret once."""
    try:
        secret = service.enrol(call, body.username, body.enrolment_code, body.password)
    except AppError as exc:
        # Keep the failure counts and the audit event even though enrolment is refused.
        call.db.commit()
        exc.audited = True
        raise
    return TotpSecret(totp_secret=secret.totp_secret, otpauth_uri=secret.otpauth_uri)


@router.post("/auth/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(body: PasswordChange, principal: AnyUser, call: CallDep) -> None:
    """Change the caller's own password (current password and a fresh code)."""
    try:
        service.change_password(call, principal, body.current_password, body.otp, body.new_password)
    except AppError as exc:
        call.db.commit()
        exc.audited = True
        raise


@router.post("/auth/totp", response_model=TotpSecret)
def reset_totp(body: TotpReset, principal: AnyUser, call: CallDep) -> TotpSecret:
    """Replace the caller's own TOTP secret (password and a fresh code); shown this once."""
    try:
        secret = service.reset_totp(call, principal, body.password, body.otp)
    except AppError as exc:
        call.db.commit()
        exc.audited = True
        raise
    return TotpSecret(totp_secret=secret.totp_secret, otpauth_uri=secret.otpauth_uri)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(principal: AnyUser, call: CallDep) -> None:
    """End the caller's session: its token stops working at once."""
    service.logout(call, principal)


@router.get("/auth/me", response_model=Me)
def me(principal: AnyUser, call: CallDep) -> Me:
    """The caller's own account: id, username, role, organisation and local authority."""
    return service.whoami(call, principal)


@router.post(
    "/users",
    response_model=AccountCreated,
    response_model_exclude_none=True,
    status_code=status.HTTP_201_CREATED,
)
def create_user(body: AccountCreate, principal: UserManage, call: CallDep) -> AccountCreated:
    """Create an account; its user's one-time enrolment code is shown this once."""
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
        role_pending=account.practitioner.role_pending,
        enrolment_code=account.enrolment_code,
        enrolment_expires_at=account.enrolment_expires_at,
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
    return _out(user)


@router.post("/users/{practitioner_id}/confirm-role", response_model=AccountOut)
def confirm_role(practitioner_id: RowId, principal: UserRoleConfirm, call: CallDep) -> AccountOut:
    """Confirm a child-data role given to an account of the caller's LA by someone else."""
    return _out(service.confirm_role(call, principal, practitioner_id))


def _out(user: Practitioner) -> AccountOut:
    return AccountOut(
        id=user.id,
        username=user.username,
        role=user.role,
        role_pending=user.role_pending,
        status=user.status,
        organisation_id=user.organisation_id,
        local_authority_id=user.local_authority_id,
    )
