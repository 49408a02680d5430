"""The dealer console (/dealer): the partner's customers with their cars and consent, recording a sale
and its invitation (ACC-2, ACC-4), driver cards (SEC-2) and the service or transport mode of the cars it
serves (SEC-3). Appointments and erasure requests live elsewhere.

Every page needs the dealer role; a dealer sees only its own customers, cars, sales and cards, and another
dealer's are as unknown as ones that do not exist (carlink.partners.dealers decides).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.clock import clock
from carlink.db.base import utcnow
from carlink.errors import CarlinkError, NotFound, vehicle_not_found
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.i18n import N_, _
from carlink.identity import invitations
from carlink.identity import service as identity
from carlink.identity.access import Caller, platform_of
from carlink.identity.models import Account
from carlink.partners import dealers
from carlink.partners import service as partners
from carlink.partners.models import Partner
from carlink.protocol.catalogue import CATALOGUE
from carlink.security import config as security_config
from carlink.security import modes
from carlink.security import owner as security_owner
from carlink.security import service as security
from carlink.store.portal import form_number, refused, render, see_other, staff_caller, to_signin

router = APIRouter(include_in_schema=False)
# The languages a buyer's invitation mail can be written in; the names are shown in the dealer's language.
MAIL_LANGUAGES = {"en": N_("English"), "de": N_("German"), "ja": N_("Japanese")}
COUNTRY_LANGUAGES = {"DE": "de", "AT": "de", "CH": "de", "JP": "ja"}
SALE_NOTICES = {
    "invited": N_("The sale is recorded and the buyer's invitation is on its way."),
    "linked": N_("The sale is recorded. The buyer has an ID already: the car is in their garage now."),
    "resent": N_("A new invitation is on its way; the earlier link no longer works."),
    "withdrawn": N_("The invitation is withdrawn; its link no longer works."),
}
CARD_NOTICES = {
    "registered": N_("The driver card is registered."),
    "revoked": N_("The driver card is revoked."),
}


def _notice(notices: dict[str, str], done: str) -> str | None:
    """The notice a redirect's ``done`` names, in the reader's language (None for an unknown one)."""
    return _(notices[done]) if done in notices else None


@dataclass(frozen=True)
class Desk:
    """The signed-in dealer and the partner it works for."""

    caller: Caller
    partner: Partner


async def dealer_desk(request: Request, session: AsyncSession, csrf_token: str | None = None) -> Desk | None:
    """The dealer at the console; None when nobody is signed in (a page then goes to sign-in)."""
    found = await staff_caller(request, session, identity.DEALER, csrf_token)
    if found is None:
        return None
    caller, role = found
    assert role.partner_id is not None
    return Desk(caller, await partners.partner(session, role.partner_id))


def _console(request: Request, name: str, desk: Desk, section: str, **context: Any) -> HTMLResponse:
    return render(
        request, name, desk.caller, section="", console_section=section, partner=desk.partner, **context
    )


async def consent_of(session: AsyncSession, account_id: int) -> Any:
    """The person's consent to data exchange with their partner (PRV-2), or None if not recorded."""
    from carlink.privacy import service as privacy  # privacy builds on identity and partners

    return await privacy.consent_state(session, account_id)


# --- customers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    account: Account
    vehicles: list[Vehicle]
    consent: Any
    partner_name: str


async def _customer(session: AsyncSession, account: Account, served: set[int]) -> Customer:
    vehicles = [
        entry.vehicle
        for entry in await garage.garage(session, account)
        if entry.is_main_user and entry.vehicle.id in served
    ]
    consent = await consent_of(session, account.id)
    chosen = None
    if consent is not None and consent.partner_id is not None:
        chosen = await session.get(Partner, consent.partner_id)
    return Customer(account, vehicles, consent, chosen.name if chosen else "")


@router.get("/dealer", response_model=None)
async def customers(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        desk = await dealer_desk(request, session)
        if desk is None:
            return to_signin(request)
        ids = await dealers.customer_ids(session, desk.partner.id)
        served = await dealers.served_vehicle_ids(session, desk.partner.id)
        accounts = (
            list(await session.scalars(select(Account).where(Account.id.in_(ids)).order_by(Account.email)))
            if ids
            else []
        )
        rows = [await _customer(session, account, served) for account in accounts]
        waiting = [
            row for row in await invitations.sales_of(session, desk.partner.id) if row.state != "registered"
        ]
        return _console(request, "dealer/customers.html", desk, "customers", customers=rows, waiting=waiting)


@router.get("/dealer/customers/{account_id}", response_model=None)
async def customer(request: Request, account_id: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        desk = await dealer_desk(request, session)
        if desk is None:
            return to_signin(request)
        number = form_number(account_id)
        account = await session.get(Account, number) if number else None
        if account is None or not await dealers.serves_customer(session, desk.partner.id, account.id):
            raise NotFound("there is no such customer of yours", code="customer_not_found")
        served = await dealers.served_vehicle_ids(session, desk.partner.id)
        return _console(
            request,
            "dealer/customer.html",
            desk,
            "customers",
            customer=await _customer(session, account, served),
            sales=await invitations.sales_of(session, desk.partner.id, email=account.email),
        )


# --- recording a sale (ACC-2) ------------------------------------------------------------------------------


async def _sale_form(
    request: Request, session: AsyncSession, desk: Desk, *, status: int = 200, **context: Any
) -> HTMLResponse:
    country = desk.partner.country
    entered = {
        "buyer_country": country,
        "language": COUNTRY_LANGUAGES.get(country, "en"),
        "model_year": str(utcnow().year),
    } | context.pop("entered", {})
    return _console(
        request,
        "dealer/sale_new.html",
        desk,
        "sale",
        status=status,
        catalogue=CATALOGUE,
        countries=await partners.countries(session),
        mail_languages=MAIL_LANGUAGES,
        entered=entered,
        **context,
    )


@router.get("/dealer/sales/new", response_model=None)
async def new_sale(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        desk = await dealer_desk(request, session)
        if desk is None:
            return to_signin(request)
        return await _sale_form(request, session, desk)


def _delivery(raw: str) -> dt.date | None:
    if not raw.strip():
        return None
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise CarlinkError("enter the delivery date as a date", code="invalid_date") from None


@router.post("/dealer/sales", response_model=None)
async def record_sale(
    request: Request,
    csrf_token: str = Form(""),
    vin: str = Form(""),
    model: str = Form(""),
    variant: str = Form(""),
    model_year: str = Form(""),
    colour: str = Form(""),
    buyer_email: str = Form(""),
    buyer_name: str = Form(""),
    buyer_country: str = Form(""),
    language: str = Form(""),
    delivery_date: str = Form(""),
) -> Response:
    platform = platform_of(request)
    entered = {
        "vin": vin,
        "model": model,
        "variant": variant,
        "model_year": model_year,
        "colour": colour,
        "buyer_email": buyer_email,
        "buyer_name": buyer_name,
        "buyer_country": buyer_country,
        "language": language,
        "delivery_date": delivery_date,
    }
    async with platform.db.transaction() as session:
        desk = await dealer_desk(request, session, csrf_token)
        assert desk is not None
        try:
            sale = invitations.SaleInput(
                vin=vin,
                model_key=model,
                variant_code=variant,
                model_year=form_number(model_year),
                colour=colour,
                buyer_email=buyer_email,
                buyer_name=buyer_name,
                buyer_country=buyer_country,
                language=language,
                delivery_date=_delivery(delivery_date),
            )
            # record_sale checks everything before it writes, so a refused form leaves nothing behind.
            outcome = await invitations.record_sale(
                session, platform.settings, desk.partner, desk.caller.account, sale
            )
        except CarlinkError as error:
            return await _sale_form(
                request,
                session,
                desk,
                **refused(error),
                entered=entered,
            )
    done = "linked" if outcome.buyer is not None else "invited"
    return see_other(f"/dealer/sales/{outcome.sale.id}?done={done}")


@router.get("/dealer/sales/{sale_id}", response_model=None)
async def sale_page(request: Request, sale_id: str, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        desk = await dealer_desk(request, session)
        if desk is None:
            return to_signin(request)
        return await _sale_page(request, session, desk, sale_id, notice=_notice(SALE_NOTICES, done))


async def _sale_page(
    request: Request, session: AsyncSession, desk: Desk, sale_id: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    sale = await invitations.own_sale(session, desk.partner.id, form_number(sale_id))
    row = next(r for r in await invitations.sales_of(session, desk.partner.id) if r.sale.id == sale.id)
    buyer = await session.get(Account, sale.buyer_account_id) if sale.buyer_account_id else None
    return _console(
        request,
        "dealer/sale.html",
        desk,
        "customers",
        status=status,
        row=row,
        buyer=buyer,
        vehicle_name=invitations.vehicle_name(row.vehicle),
        **context,
    )


@router.post("/dealer/sales/{sale_id}/resend", response_model=None)
async def resend(request: Request, sale_id: str, csrf_token: str = Form("")) -> Response:
    """REQ: ACC-4 — the dealer resends the registration mail: a new link; the older one stops working."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        desk = await dealer_desk(request, session, csrf_token)
        assert desk is not None
        sale = await invitations.own_sale(session, desk.partner.id, form_number(sale_id))
        try:
            await invitations.resend(session, platform.settings, desk.partner.id, sale.id)
        except CarlinkError as error:
            return await _sale_page(
                request,
                session,
                desk,
                sale_id,
                **refused(error),
            )
    return see_other(f"/dealer/sales/{sale.id}?done=resent")


@router.post("/dealer/sales/{sale_id}/withdraw", response_model=None)
async def withdraw(request: Request, sale_id: str, csrf_token: str = Form("")) -> Response:
    async with platform_of(request).db.transaction() as session:
        desk = await dealer_desk(request, session, csrf_token)
        assert desk is not None
        sale = await invitations.own_sale(session, desk.partner.id, form_number(sale_id))
        try:
            await invitations.withdraw(session, desk.partner.id, sale.id)
        except CarlinkError as error:
            return await _sale_page(
                request,
                session,
                desk,
                sale_id,
                **refused(error),
            )
    return see_other(f"/dealer/sales/{sale.id}?done=withdrawn")


# --- driver cards ------------------------------------------------------------------------------------------


async def _cards_page(
    request: Request, session: AsyncSession, desk: Desk, *, status: int = 200, **context: Any
) -> HTMLResponse:
    served = await dealers.served_vehicle_ids(session, desk.partner.id)
    vehicles = (
        list(await session.scalars(select(Vehicle).where(Vehicle.id.in_(served)).order_by(Vehicle.vin)))
        if served
        else []
    )
    return _console(
        request,
        "dealer/driver_cards.html",
        desk,
        "driver-cards",
        status=status,
        cards=await security.cards_of(session, desk.partner.id),
        vehicles=vehicles,
        vehicle_name=invitations.vehicle_name,
        **context,
    )


@router.get("/dealer/driver-cards", response_model=None)
async def driver_cards(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        desk = await dealer_desk(request, session)
        if desk is None:
            return to_signin(request)
        return await _cards_page(request, session, desk, notice=_notice(CARD_NOTICES, done))


@router.post("/dealer/driver-cards", response_model=None)
async def register_card(
    request: Request,
    csrf_token: str = Form(""),
    vin: str = Form(""),
    serial: str = Form(""),
    label: str = Form(""),
) -> Response:
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        desk = await dealer_desk(request, session, csrf_token)
        assert desk is not None
        try:
            card = await security.register_card(
                session,
                desk.partner.id,
                vin=vin,
                serial=serial,
                label=label,
                registered_by=desk.caller.account.id,
            )
        except CarlinkError as error:
            entered = {"vin": vin, "serial": serial, "label": label}
            return await _cards_page(
                request,
                session,
                desk,
                **refused(error),
                entered=entered,
            )
    # SEC-2: the car learns its cards from its security set (the jobs role re-sends what did not go out).
    await security_config.publish(platform, card.vehicle_id)
    return see_other("/dealer/driver-cards?done=registered")


@router.post("/dealer/driver-cards/{card_id}/revoke", response_model=None)
async def revoke_card(request: Request, card_id: str, csrf_token: str = Form("")) -> Response:
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        desk = await dealer_desk(request, session, csrf_token)
        assert desk is not None
        card = await security.revoke_card(session, desk.partner.id, form_number(card_id))
    await security_config.publish(platform, card.vehicle_id)
    return see_other("/dealer/driver-cards?done=revoked")


# --- service and transport mode (SEC-3) --------------------------------------------------------------------

MODE_NOTICES = {
    "set": N_("The mode is set. The car receives it when it is next online."),
    "ended": N_("The mode has ended: every alarm of the car counts again."),
    "none": N_("No mode was in force for this car."),
}


async def _served_vehicle(session: AsyncSession, desk: Desk, vin: str) -> Vehicle:
    """A car this dealer serves; any other is as unknown as one that does not exist."""
    vehicle = await garage.vehicle_by_vin(session, garage.checked_vin(vin))
    if vehicle is None or not await dealers.serves_vehicle(session, desk.partner.id, vehicle.id):
        raise vehicle_not_found(vin.strip().upper()[:17])
    return vehicle


async def _modes_page(
    request: Request, session: AsyncSession, desk: Desk, *, status: int = 200, **context: Any
) -> HTMLResponse:
    served = await dealers.served_vehicle_ids(session, desk.partner.id)
    vehicles = (
        list(await session.scalars(select(Vehicle).where(Vehicle.id.in_(served)).order_by(Vehicle.vin)))
        if served
        else []
    )
    now = clock.now()
    return _console(
        request,
        "dealer/security_modes.html",
        desk,
        "security-modes",
        status=status,
        rows=[(vehicle, await modes.in_force(session, vehicle.id, now)) for vehicle in vehicles],
        vehicle_name=invitations.vehicle_name,
        mode_hours=security_owner.MODE_HOURS,
        **context,
    )


@router.get("/dealer/security-modes", response_model=None)
async def security_modes(request: Request, done: str = "") -> Response:
    """REQ: SEC-3 — the cars the dealer serves, each with the mode in force, and the form to set one."""
    async with platform_of(request).db.session() as session:
        desk = await dealer_desk(request, session)
        if desk is None:
            return to_signin(request)
        return await _modes_page(request, session, desk, notice=_notice(MODE_NOTICES, done))


@router.post("/dealer/security-modes", response_model=None)
async def set_security_mode(
    request: Request,
    csrf_token: str = Form(""),
    vin: str = Form(""),
    kind: str = Form(""),
    hours: str = Form(""),
) -> Response:
    """REQ: SEC-3 — a workshop puts a car it serves into service mode (or transport mode) for N hours."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        desk = await dealer_desk(request, session, csrf_token)
        assert desk is not None
    try:
        async with platform.db.transaction() as session:
            vehicle = await _served_vehicle(session, desk, vin)
            await modes.set_mode(
                session,
                vehicle.id,
                kind[:20],
                form_number(hours),
                account_id=desk.caller.account.id,
                partner_id=desk.partner.id,
            )
    except CarlinkError as error:
        async with platform.db.session() as session:
            entered = {"vin": vin[:17], "kind": kind[:20], "hours": hours[:6]}
            return await _modes_page(
                request,
                session,
                desk,
                **refused(error),
                entered=entered,
            )
    await security_config.publish(platform, vehicle.id)
    return see_other("/dealer/security-modes?done=set")


@router.post("/dealer/security-modes/end", response_model=None)
async def end_security_mode(request: Request, csrf_token: str = Form(""), vin: str = Form("")) -> Response:
    """REQ: SEC-3 — the work is done before the time set: the car's alarms count again."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        desk = await dealer_desk(request, session, csrf_token)
        assert desk is not None
    try:
        async with platform.db.transaction() as session:
            vehicle = await _served_vehicle(session, desk, vin)
            ended = await modes.end_mode(session, vehicle.id, account_id=desk.caller.account.id)
    except CarlinkError as error:
        async with platform.db.session() as session:
            return await _modes_page(request, session, desk, **refused(error))
    if ended:
        await security_config.publish(platform, vehicle.id)
    return see_other(f"/dealer/security-modes?done={'ended' if ended else 'none'}")
