"""/api/v1/accounts and /api/v1/me: register, the caller's ID, password and security PIN."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from carlink.garage import service as garage
from carlink.identity import service as identity
from carlink.identity.access import platform_of, require_caller

router = APIRouter(prefix="/api/v1", tags=["identity"])


class RegisterIn(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=256)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166 country of residence")
    display_name: str = Field(default="", max_length=120)


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


@router.post("/accounts", response_model=AccountOut, status_code=201)
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
        )
        return account_out(account)


@router.get("/me", response_model=AccountOut)
async def me(request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        return account_out(caller.account)


@router.post("/me/password", status_code=204)
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


@router.put("/me/pin", status_code=204)
async def set_pin(body: PinIn, request: Request) -> None:
    """Sets the 4-digit security PIN. Resetting it switches remote access off on the cars of which the
    person is the main user, until it is authorised again in each car (VEH-5)."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        await garage.change_security_pin(session, caller.account, password=body.password, pin=body.pin)
