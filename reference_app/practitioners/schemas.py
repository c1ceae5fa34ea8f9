"""Request and response bodies for login and account administration."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from reference_app.access.permissions import Role
from reference_app.kit.identifiers import RowId
from reference_app.kit.text import OneLine
from reference_app.practitioners.models import AccountStatus


class Strict(BaseModel):
    # Unknown fields are refused, so nobody mass-assigns a role, an LA or a shield flag.
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    otp: str = Field(pattern=r"^[0-9]{6}$")


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth token type)
    expires_in: int


class AccountCreate(Strict):
    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{2,63}$")
    display_name: OneLine = Field(min_length=1, max_length=120)
    role: Role
    organisation_id: RowId
    email: OneLine | None = Field(default=None, max_length=254)


class AccountCreated(BaseModel):
    """A new account: a one-time enrolment code for its user, never their password or secret.

    With credential custody switched off (development only) the password and TOTP secret are
    returned instead, as before.
    """

    id: int
    username: str
    role: Role
    role_pending: bool
    enrolment_code: str | None = None
    enrolment_expires_at: datetime | None = None
    password: str | None = None
    totp_secret: str | None = None


class EnrolRequest(Strict):
    username: str = Field(min_length=1, max_length=64)
    enrolment_code: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)


class PasswordChange(Strict):
    current_password: str = Field(min_length=1, max_length=256)
    otp: str = Field(pattern=r"^[0-9]{6}$")
    new_password: str = Field(min_length=1, max_length=256)


class TotpReset(Strict):
    password: str = Field(min_length=1, max_length=256)
    otp: str = Field(pattern=r"^[0-9]{6}$")


class TotpSecret(BaseModel):
    """A TOTP secret, shown once to its own user."""

    totp_secret: str
    otpauth_uri: str


class AccountChange(Strict):
    role: Role | None = None
    status: AccountStatus | None = None


class AccountOut(BaseModel):
    id: int
    username: str
    role: str
    role_pending: bool
    status: str
    organisation_id: int
    local_authority_id: int


class LocalAuthorityRef(BaseModel):
    code: str
    name: str


class Me(BaseModel):
    """The caller's own account: who the token speaks for."""

    id: int
    username: str
    role: Role
    role_pending: bool = False
    organisation_id: int
    local_authority_id: int
    local_authority: LocalAuthorityRef | None
