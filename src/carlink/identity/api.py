"""/api/v1/accounts and /api/v1/me: register, the caller's ID, password and security PIN."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from carlink import i18n
from carlink.error_responses import errors
from carlink.garage import service as garage
from carlink.identity import invitations
from carlink.identity import service as identity
from carlink.identity.access import platform_of, require_caller

router = APIRouter(prefix="/api/v1", tags=["identity"])


class RegisterIn(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=256)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166 country of residence")
    display_name: str = Field(default="", max_length=120)
    locale: str | None = Field(
        default=None, max_length=8, description="en, de or ja; without it, the request's Accept-Language"
    )


class AccountOut(BaseModel):
    id: int
    email: str
    display_name: str
    country: str
    locale: str
    pin_set: bool


class PasswordIn(BaseModel):
    current_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


class PinIn(BaseModel):
    password: str = Field(max_length=256)
    pin: str = Field(min_length=4, max_length=4, description="4 digits")


def account_out(account: Any) -> dict[str, Any]:
    return {
        "id": account.id,
        "email": account.email,
        "display_name": account.display_name,
        "country": account.country,
        "locale": account.locale,
        "pin_set": account.pin_hash is not None,
    }


@router.post("/accounts", response_model=AccountOut, status_code=201, responses=errors(409))
async def register(body: RegisterIn, request: Request) -> dict[str, Any]:
    """Self-registration, only in countries configured for it (ACC-3)."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        account = await identity.register(
            session,
            platform.settings,
            email=body.email,
            password=body.password,
            country=body.country,
            display_name=body.display_name,
            locale=i18n.supported(body.locale) or i18n.current(),
        )
        return account_out(account)


@router.get("/me", response_model=AccountOut)
async def me(request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        return account_out(caller.account)


@router.post("/me/password", status_code=204, responses=errors(429))
async def change_password(body: PasswordIn, request: Request) -> None:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        await identity.change_password(
            session,
            caller.account,
            current=body.current_password,
            new=body.new_password,
            keep=caller.web_session,
        )


@router.put("/me/pin", status_code=204, responses=errors(429))
async def set_pin(body: PinIn, request: Request) -> None:
    """Sets the 4-digit security PIN. Resetting it switches remote access off on the cars of which the
    person is the main user, until it is authorised again in each car (VEH-5)."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        await garage.change_security_pin(session, caller.account, password=body.password, pin=body.pin)


class DeleteIdIn(BaseModel):
    password: str = Field(max_length=256)
    erase: bool = Field(default=False, description="also file the request to erase the data (PRV-5)")


@router.delete("/me", status_code=204, responses=errors(429))
async def delete_id(body: DeleteIdIn, request: Request) -> None:
    """Deletes the caller's ID (ACC-5): every session and refresh token ends at once, the person leaves
    their cars, subscriptions stop renewing; the master data is kept until an erasure request (PRV-5)."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        await identity.delete_id(session, caller.account, password=body.password, request_erasure=body.erase)


# --- invitations (ACC-2, ACC-3, ACC-4) ---------------------------------------------------------------------


class AcceptIn(BaseModel):
    display_name: str = Field(default="", max_length=120)
    password: str = Field(max_length=256)
    partner_id: int = Field(ge=1, le=2**31 - 1, description="the preferred partner, one of the invitation's")
    accept_privacy_policy: bool = Field(description="the current privacy policy is accepted (required)")
    consent: bool = Field(default=False, description="consent to data exchange with the partner (PRV-2)")


class AcceptedOut(BaseModel):
    account: AccountOut
    vin: str


class InvitationOut(BaseModel):
    email: str
    country: str
    vin: str
    vehicle_name: str
    dealer_id: int
    expires_at: str
    partners: list[dict[str, Any]]


class ResendIn(BaseModel):
    email: str = Field(max_length=254)


@router.get("/invitations/{token}", response_model=InvitationOut, responses=errors(409, 410))
async def invitation(token: str, request: Request) -> dict[str, Any]:
    """What a registration link is for; 410 `invitation_used` or `invitation_expired` once it is spent."""
    async with platform_of(request).db.transaction() as session:
        welcome = await invitations.open_invitation(session, token)
        return {
            "email": welcome.invitation.email,
            "country": welcome.invitation.country,
            "vin": welcome.vehicle.vin,
            "vehicle_name": invitations.vehicle_name(welcome.vehicle),
            "dealer_id": welcome.dealer.id,
            "expires_at": welcome.invitation.expires_at.isoformat(),
            "partners": [{"id": p.id, "name": p.name, "city": p.city} for p in welcome.partners],
        }


@router.post(
    "/invitations/{token}/accept", response_model=AcceptedOut, status_code=201, responses=errors(409, 410)
)
async def accept_invitation(token: str, body: AcceptIn, request: Request) -> dict[str, Any]:
    """Creates the ID from the dealer's invitation (ACC-3): the car becomes the person's at once."""
    choices = invitations.Choices(
        display_name=body.display_name,
        password=body.password,
        password_again=body.password,
        partner_id=body.partner_id,
        policy_accepted=body.accept_privacy_policy,
        consent=body.consent,
    )
    async with platform_of(request).db.transaction() as session:
        account, vehicle = await invitations.accept(session, token, choices)
        return {"account": account_out(account), "vin": vehicle.vin}


@router.post("/invitations/{token}/add-car", response_model=AcceptedOut, responses=errors(409, 410))
async def add_car_from_invitation(token: str, request: Request) -> dict[str, Any]:
    """The invited address has an ID already: the caller, signed in with that ID, takes the car into it."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        vehicle = await invitations.claim_with_id(session, token, caller.account)
        return {"account": account_out(caller.account), "vin": vehicle.vin}


@router.post("/invitations/resend", status_code=202, responses=errors(409, 429))
async def resend_invitation(body: ResendIn, request: Request) -> dict[str, str]:
    """Sends the registration mail again (ACC-4); the same answer whether or not the address is invited."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        await invitations.ask_again(session, platform.settings, body.email)
    return {"message": invitations.RESEND_ANSWER}
