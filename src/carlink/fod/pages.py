"""Functions and software updates of one car in the portal (FOD-1..8, OTA-1..4): what the car's model can
have in its country with each function's state, the order form (nothing is charged until the car activates
the function), cancelling an open order, and the person's switch for online updates with each update's state.

The pages call the same use cases as the JSON API (fod.owner_api) and behave as it does: every user of the
car may look, only the main user orders and switches; anyone else gets the 404 of a VIN that does not exist.
Every form carries the session's CSRF token and answers with a redirect; a refusal shows the page again with
the reason. A unit of work that changed a car's delivery set is followed by publishing it.
"""

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.errors import CarlinkError, NotFound
from carlink.fod import deliveries, functions, updates
from carlink.garage import service as garage
from carlink.identity.access import Caller, platform_of
from carlink.store import service as store
from carlink.store.portal import (
    current_caller,
    form_caller,
    form_number,
    page_language,
    path_vin,
    refused,
    render,
    see_other,
    to_signin,
)

router = APIRouter(include_in_schema=False)
# After this many failed attempts the car's own recovery (FOD-8) is not enough: the dealer has to look.
DEALER_AFTER_FAILURES = 3


def _page_path(vin: str) -> str:
    return f"/vehicles/{vin}/functions"


@router.get("/vehicles/{vin}/functions", response_model=None)
async def functions_page(request: Request, vin: str, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _page(request, session, caller, path_vin(vin), done=done)


@router.get("/vehicles/{vin}/updates", response_model=None)
async def updates_page(vin: str) -> Response:
    """The updates live on the functions page; an address of their own for links and mails."""
    return see_other(f"{_page_path(path_vin(vin))}#updates")


async def _page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    entry = await garage.garage_entry(session, caller.account, vin)  # 404 for anyone not on the car
    vehicle = entry.vehicle
    return render(
        request,
        "fod/functions.html",
        caller,
        status=status,
        entry=entry,
        items=await functions.functions_of(session, entry),
        methods=await store.payment_methods(session, caller.account) if entry.is_main_user else [],
        consent=await updates.consent(session, vehicle.id),
        updates=await updates.updates_of(session, vehicle.id),
        download_days=functions.DOWNLOAD_DAYS,
        dealer_after=DEALER_AFTER_FAILURES,
        **context,
    )


async def _refused(
    request: Request, caller: Caller, vin: str, error: CarlinkError, **context: Any
) -> Response:
    """The page again with the reason, in a unit of work of its own (the refused one was rolled back)."""
    async with platform_of(request).db.transaction() as session:
        return await _page(
            request,
            session,
            caller,
            vin,
            **refused(error),
            **context,
        )


@router.post("/vehicles/{vin}/functions/order", response_model=None)
async def order(
    request: Request,
    vin: str,
    offer_id: str = Form(""),
    payment_method_id: str = Form(""),
    accept_terms: str = Form(""),
    function: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """REQ: FOD-2, FOD-3 — an order the car has 28 days to fetch; charged only when the car activates it.
    A double submit finds the first order (the use case answers it) and says so."""
    vin = path_vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        async with platform.db.transaction() as session:
            placed, created = await functions.order_function(
                session,
                caller.account,
                vin,
                offer_id=form_number(offer_id),
                payment_method_id=form_number(payment_method_id),
                accept_terms=bool(accept_terms),
                language=page_language(caller.account),
            )
            vehicle_id = placed.vehicle_id
    except CarlinkError as error:
        return await _refused(request, caller, vin, error, error_function=function[:40])
    await deliveries.publish(platform, [vehicle_id])
    return see_other(f"{_page_path(vin)}?done={'ordered' if created else 'already_ordered'}")


@router.post("/vehicles/{vin}/functions/orders/{order_id}/cancel", response_model=None)
async def cancel(request: Request, vin: str, order_id: str, csrf_token: str = Form("")) -> Response:
    """Before the car installs it, an order can be cancelled; nothing was charged."""
    vin = path_vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        async with platform.db.transaction() as session:
            found, vehicle = await functions.own_order(session, caller.account, form_number(order_id))
            if vehicle.vin != vin:  # an order of another of their cars is not on this page
                raise NotFound("There is no such function order.", code="function_order_not_found")
            vehicle_id = (await functions.cancel_order(session, caller.account, found.id)).vehicle_id
    except CarlinkError as error:
        return await _refused(request, caller, vin, error)
    await deliveries.publish(platform, [vehicle_id])
    return see_other(f"{_page_path(vin)}?done=cancelled")


@router.post("/vehicles/{vin}/updates/consent", response_model=None)
async def consent(
    request: Request, vin: str, enabled: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """REQ: OTA-1 — the main user switches online updates on or off, recorded with time and policy version;
    switching off takes the updates the car has not begun to install out of its set."""
    vin = path_vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        async with platform.db.transaction() as session:
            changed = await updates.set_consent(session, caller.account, vin, bool(enabled))
    except CarlinkError as error:
        return await _refused(request, caller, vin, error, consent_error=True)
    await deliveries.publish(platform, changed)
    return see_other(f"{_page_path(vin)}?done={'updates_on' if enabled else 'updates_off'}#updates")
