"""The store in the portal after the order: the car's Services with withdrawal, cancellation, hotspot use
and the plan recommender (STO-8, STO-10, STO-11, CON-3, CON-4), selling the car (STO-9), and the person's
saved cards and billing address. Shared pieces: store.portal."""

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.catalog import service as catalog
from carlink.catalog.rules import PlanAdvice, recommend_plan
from carlink.db.base import utcnow
from carlink.errors import CarlinkError
from carlink.garage import service as garage
from carlink.garage.service import GarageEntry
from carlink.identity.access import Caller, platform_of
from carlink.store import contracts, service
from carlink.store.portal import (
    card_years,
    current_caller,
    form_caller,
    form_number,
    form_status,
    page_language,
    path_vin,
    refused,
    render,
    see_other,
    to_signin,
    typed_card,
)
from carlink.store.rules import ENTITLED
from carlink.store.schemas import contract_out
from carlink.telemetry import service as telemetry

router = APIRouter(include_in_schema=False)
MAX_ANNUAL_KM = 1_000_000


# --- Services of the car (STO-8, STO-10, STO-11, CON-3, CON-4) ---------------------------------------------


@dataclass(frozen=True)
class PlanAnswer:
    """The data-plan recommender's answer (CON-4): how much a month, and the package that covers it."""

    annual_km: str
    streaming: bool
    advice: PlanAdvice | None = None
    package: catalog.ServiceOffers | None = None
    invalid: bool = False


async def _plan(session: AsyncSession, entry: GarageEntry, annual_km: str, streaming: bool) -> PlanAnswer:
    if not annual_km.strip():
        return PlanAnswer(annual_km, streaming)
    digits = re.sub(r"[\s,.'_]", "", annual_km)[:12]
    if not digits.isascii() or not digits.isdigit() or int(digits) > MAX_ANNUAL_KM:
        return PlanAnswer(annual_km[:12], streaming, invalid=True)
    advice = recommend_plan(int(digits), streaming)
    vehicle = entry.vehicle
    items = await catalog.services_for(
        session, country=vehicle.country, model_key=vehicle.model_key, engine=entry.variant.engine.value
    )
    packages = sorted(
        (i for i in items if i.service.kind == "data_package" and i.service.volume_mb),
        key=lambda i: i.service.volume_mb or 0,
    )
    fitting = next((p for p in packages if (p.service.volume_mb or 0) >= advice.wanted_mb), None)
    return PlanAnswer(digits, streaming, advice, fitting or (packages[-1] if packages else None))


@router.get("/vehicles/{vin}/services", response_model=None)
async def services(
    request: Request, vin: str, annual_km: str = "", streaming: str = "", done: str = ""
) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _services_page(
            request, session, caller, path_vin(vin), annual_km=annual_km, streaming=bool(streaming), done=done
        )


async def _services_page(
    request: Request,
    session: AsyncSession,
    caller: Caller,
    vin: str,
    *,
    status: int = 200,
    annual_km: str = "",
    streaming: bool = False,
    **context: Any,
) -> HTMLResponse:
    entry = await garage.garage_entry(session, caller.account, vin)
    language, now = page_language(caller.account), utcnow()
    rows = [
        (
            contract,
            contract_out(
                contract,
                entry.vehicle.vin,
                language,
                now,
                main=entry.is_main_user,
                account_id=caller.account.id,
            ),
        )
        for contract in await service.vehicle_contracts(session, entry.vehicle.id)
    ]
    hotspot = (await telemetry.stored_overview(session, entry.vehicle)).get("hotspot")
    return render(
        request,
        "store/services.html",
        caller,
        status=status,
        entry=entry,
        rows=rows,
        hotspot=hotspot,
        plan=await _plan(session, entry, annual_km, streaming),
        **context,
    )


@router.post("/vehicles/{vin}/services/{contract_id}/withdraw", response_model=None)
async def withdraw(request: Request, vin: str, contract_id: str, csrf_token: str = Form("")) -> Response:
    """REQ: STO-10 — within 14 days, free of charge: the price goes back to the card."""
    vin = path_vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        await contracts.withdraw(platform, caller.account, form_number(contract_id))
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _services_page(
                request,
                session,
                caller,
                vin,
                **refused(error),
            )
    return see_other(f"/vehicles/{vin}/services?done=withdrawn")


@router.post("/vehicles/{vin}/services/{contract_id}/cancel", response_model=None)
async def cancel(
    request: Request, vin: str, contract_id: str, back: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """REQ: STO-11 — the subscription stops renewing and runs to the end of the period already paid."""
    vin = path_vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        await contracts.cancel(platform, caller.account, form_number(contract_id))
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            if back == "handover":
                return await _handover_page(
                    request,
                    session,
                    caller,
                    vin,
                    **refused(error),
                )
            return await _services_page(
                request,
                session,
                caller,
                vin,
                **refused(error),
            )
    return see_other(f"/vehicles/{vin}/{'handover' if back == 'handover' else 'services'}?done=cancelled")


@router.get("/vehicles/{vin}/handover", response_model=None)
async def handover(request: Request, vin: str, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _handover_page(request, session, caller, path_vin(vin), done=done)


async def _handover_page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """REQ: STO-9, STO-11 — what stays with the car for the next owner, and what to cancel first."""
    entry = await service.buyer_entry(session, caller.account, vin)
    language, now = page_language(caller.account), utcnow()
    renewing = await contracts.renewing_subscriptions(session, entry.vehicle.id)
    passing = [
        c
        for c in await service.vehicle_contracts(session, entry.vehicle.id)
        if c.state in ENTITLED and c.ends_at > now
    ]
    return render(
        request,
        "store/handover.html",
        caller,
        status=status,
        entry=entry,
        renewing=[
            contract_out(c, entry.vehicle.vin, language, now, main=True, account_id=caller.account.id)
            for c in renewing
        ],
        passing=[
            contract_out(c, entry.vehicle.vin, language, now, main=True, account_id=caller.account.id)
            for c in passing
        ],
        **context,
    )


# --- the person's cards and billing address ----------------------------------------------------------------


@router.get("/account/payment", response_model=None)
async def account_payment(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _account_payment_page(request, session, caller, done=done)


async def _account_payment_page(
    request: Request,
    session: AsyncSession,
    caller: Caller,
    *,
    status: int = 200,
    entered: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    saved = await service.profile_address(session, caller.account)
    return render(
        request,
        "store/account_payment.html",
        caller,
        status=status,
        section="account",
        methods=await service.payment_methods(session, caller.account),
        address=entered or (saved.as_dict() if saved else {"country": caller.account.country}),
        years=card_years(),
        **context,
    )


@router.post("/account/payment", response_model=None)
async def add_card(
    request: Request,
    number: str = Form(""),
    exp_month: str = Form(""),
    exp_year: str = Form(""),
    cvc: str = Form(""),
    holder: str = Form(""),
    make_default: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    card = typed_card(number, exp_month, exp_year, cvc, holder)
    try:
        await service.add_card(platform, caller.account, card, make_default=bool(make_default))
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _account_payment_page(
                request,
                session,
                caller,
                status=form_status(error),
                card_error=error.message,
                error_code=error.code,
                card_form={"exp_month": exp_month, "exp_year": exp_year, "holder": holder[:120]},
            )
    return see_other("/account/payment?done=card")


@router.post("/account/payment/remove", response_model=None)
async def remove_card(request: Request, method_id: str = Form(""), csrf_token: str = Form("")) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            await service.remove_payment_method(session, caller.account, form_number(method_id))
        except CarlinkError as error:
            return await _account_payment_page(
                request,
                session,
                caller,
                status=form_status(error),
                cards_error=error.message,
                error_code=error.code,
            )
    return see_other("/account/payment?done=removed")


@router.post("/account/payment/address", response_model=None)
async def save_address(
    request: Request,
    name: str = Form(""),
    street: str = Form(""),
    postcode: str = Form(""),
    city: str = Form(""),
    country: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """The profile's billing address, for express checkout (STO-3)."""
    entered = {"name": name, "street": street, "postcode": postcode, "city": city, "country": country}
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            await service.save_profile_address(session, caller.account, service.checked_address(entered))
        except CarlinkError as error:
            return await _account_payment_page(
                request,
                session,
                caller,
                status=form_status(error),
                entered=entered,
                address_error=error.message,
                error_code=error.code,
            )
    return see_other("/account/payment?done=address")
