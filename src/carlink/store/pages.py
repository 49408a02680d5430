"""The store in the portal, up to the order (STO-1..5): the services of one car, its terms, the cart, the
checkout steps and the order with the card issuer's challenge. Shared pieces: store.portal."""

import contextlib
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.catalog import service as catalog
from carlink.catalog.models import Offer
from carlink.db.base import utcnow
from carlink.errors import CarlinkError, NotFound
from carlink.garage import service as garage
from carlink.identity.access import Caller, platform_of
from carlink.security import activations
from carlink.store import contracts, service
from carlink.store.contracts import WITHDRAWAL_DAYS
from carlink.store.models import PaymentMethod
from carlink.store.payments import SANDBOX_CHALLENGE_CODE
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
    step_url,
    to_signin,
    typed_card,
)
from carlink.store.rules import ENTITLED, OrderState
from carlink.store.service import CartItem, CartView

router = APIRouter(include_in_schema=False)


# --- the store of one car (STO-1, STO-2, STO-4) ------------------------------------------------------------


@router.get("/vehicles/{vin}/store", response_model=None)
async def storefront(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _store_page(request, session, caller, path_vin(vin))


async def _store_page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    front = await service.storefront(session, caller.account, vin)
    now = utcnow()
    active_until: dict[str, Any] = {}
    for contract in front.contracts:
        if contract.state in ENTITLED and contract.ends_at > now:
            known = active_until.get(contract.service_code)
            active_until[contract.service_code] = max(known or contract.ends_at, contract.ends_at)
    in_cart = []
    if front.can_buy:
        in_cart = [
            item.service.code for item in (await service.cart_view(session, caller.account, vin)).items
        ]
    return render(
        request,
        "store/storefront.html",
        caller,
        status=status,
        entry=front.entry,
        front=front,
        active_until=active_until,
        in_cart=in_cart,
        needs_phone=activations.needs_phone,
        # REQ: SEC-1 — one tracking package per car: the packages are not offered while one runs.
        tracking_running=await activations.live(session, front.entry.vehicle.id) is not None,
        **context,
    )


@router.get("/vehicles/{vin}/store/terms/{document}", response_model=None)
async def terms_in_force(request: Request, vin: str, document: str) -> Response:
    """REQ: STO-6 — the general terms ("general") or a service's terms, as they apply today."""
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        entry = await garage.garage_entry(session, caller.account, path_vin(vin))
        found = await catalog.terms_in_force(session, [document[:40]], page_language(caller.account))
        if not found:
            raise NotFound("There are no such terms.", code="terms_not_found")
        return render(request, "store/terms.html", caller, entry=entry, terms=found[0], in_force=True)


@router.get("/store/terms/versions/{terms_id}", response_model=None)
async def terms_version(request: Request, terms_id: str) -> Response:
    """Any version of the terms, as an order or contract names it; readable without signing in."""
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        terms = await catalog.terms_version(session, form_number(terms_id))
        return render(request, "store/terms.html", caller, entry=None, terms=terms, in_force=False)


# --- the cart ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CartRow:
    """A line of the cart, and whether the store changed its price since it was chosen."""

    item: CartItem
    replacement: Offer | None

    @property
    def stale(self) -> bool:
        return self.item.offer.retired_at is not None


async def _cart_rows(session: AsyncSession, view: CartView) -> list[CartRow]:
    vehicle = view.entry.vehicle
    in_force = {
        (offer.service_code, offer.term): offer
        for item in await catalog.services_for(
            session,
            country=vehicle.country,
            model_key=vehicle.model_key,
            engine=view.entry.variant.engine.value,
        )
        for offer in item.offers
    }
    rows = []
    for item in view.items:
        current = in_force.get((item.service.code, item.offer.term))
        replacement = current if item.offer.retired_at is not None else None
        rows.append(CartRow(item, replacement))
    return rows


@router.get("/vehicles/{vin}/cart", response_model=None)
async def cart(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _cart_page(request, session, caller, path_vin(vin))


async def _cart_page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    view = await service.cart_view(session, caller.account, vin)
    address = await service.profile_address(session, caller.account)
    default_card = any(m.is_default for m in await service.payment_methods(session, caller.account))
    return render(
        request,
        "store/cart.html",
        caller,
        status=status,
        entry=view.entry,
        view=view,
        rows=await _cart_rows(session, view),
        # REQ: STO-3 — with an address and a default card in the profile, straight to the review.
        express=bool(view.items) and address is not None and default_card,
        **context,
    )


@router.post("/vehicles/{vin}/cart/add", response_model=None)
async def add_to_cart(
    request: Request,
    vin: str,
    offer_id: str = Form(""),
    auto_renew: str = Form(""),
    phone: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Only the offer id counts: the price and the term come from the catalogue, never from the form. A
    tracking package brings the phone number the SOC calls (SEC-1)."""
    vin = path_vin(vin)
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            await service.add_to_cart(
                session,
                caller.account,
                vin,
                form_number(offer_id),
                auto_renew=bool(auto_renew),
                phone=phone[:40] or None,
            )
        except CarlinkError as error:
            return await _store_page(
                request,
                session,
                caller,
                vin,
                **refused(error),
                error_offer=form_number(offer_id),
                entered_phone=phone[:40],
            )
    return see_other(f"/vehicles/{vin}/cart")


@router.post("/vehicles/{vin}/cart/remove", response_model=None)
async def remove_from_cart(
    request: Request, vin: str, service_code: str = Form(""), csrf_token: str = Form("")
) -> Response:
    vin = path_vin(vin)
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        await service.remove_from_cart(session, caller.account, vin, service_code[:40])
    return see_other(f"/vehicles/{vin}/cart")


@router.post("/vehicles/{vin}/cart/express", response_model=None)
async def express_checkout(request: Request, vin: str, csrf_token: str = Form("")) -> Response:
    """REQ: STO-3 — address and default card from the profile, then the review."""
    vin = path_vin(vin)
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        view = await service.express_checkout(session, caller.account, vin)
    return see_other(step_url(vin, view.next_step))


# --- checkout: billing address, payment, review, confirm (STO-3, STO-5) ------------------------------------


@router.get("/vehicles/{vin}/checkout/address", response_model=None)
async def checkout_address(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _address_page(request, session, caller, path_vin(vin))


async def _address_page(
    request: Request,
    session: AsyncSession,
    caller: Caller,
    vin: str,
    *,
    status: int = 200,
    entered: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    view = await service.cart_view(session, caller.account, vin)
    if not view.items:
        return see_other(step_url(vin, "cart"))
    address = entered or view.cart.billing
    if address is None:
        saved = await service.profile_address(session, caller.account)
        address = (
            saved.as_dict()
            if saved
            else {"name": caller.account.display_name, "country": caller.account.country}
        )
    return render(
        request,
        "store/checkout_address.html",
        caller,
        status=status,
        entry=view.entry,
        view=view,
        address=address,
        **context,
    )


@router.post("/vehicles/{vin}/checkout/address", response_model=None)
async def set_address(
    request: Request,
    vin: str,
    name: str = Form(""),
    street: str = Form(""),
    postcode: str = Form(""),
    city: str = Form(""),
    country: str = Form(""),
    remember: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    vin = path_vin(vin)
    entered = {"name": name, "street": street, "postcode": postcode, "city": city, "country": country}
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            view = await service.set_billing(session, caller.account, vin, entered, remember=bool(remember))
        except CarlinkError as error:
            return await _address_page(
                request,
                session,
                caller,
                vin,
                status=form_status(error),
                entered=entered,
                error=error.message,
                error_code=error.code,
            )
    return see_other(step_url(vin, view.next_step))


@router.get("/vehicles/{vin}/checkout/payment", response_model=None)
async def checkout_payment(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _payment_page(request, session, caller, path_vin(vin))


async def _payment_page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> Response:
    view = await service.cart_view(session, caller.account, vin)
    if not view.items or not view.cart.billing:
        return see_other(step_url(vin, view.next_step))
    methods = await service.payment_methods(session, caller.account)
    chosen = view.payment_method.id if view.payment_method else next((m.id for m in methods), None)
    return render(
        request,
        "store/checkout_payment.html",
        caller,
        status=status,
        entry=view.entry,
        view=view,
        methods=methods,
        chosen=chosen,
        years=card_years(),
        **context,
    )


@router.post("/vehicles/{vin}/checkout/payment", response_model=None)
async def choose_payment(
    request: Request,
    vin: str,
    payment_method_id: str = Form(""),
    number: str = Form(""),
    exp_month: str = Form(""),
    exp_year: str = Form(""),
    cvc: str = Form(""),
    holder: str = Form(""),
    make_default: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Pay with a saved card, or add a new one (tokenised at the gateway) and pay with it."""
    vin = path_vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        await service.buyer_entry(session, caller.account, vin)  # only the main user hands over a card
    method_id = form_number(payment_method_id)
    problem: CarlinkError | None = None
    if number.strip():
        card = typed_card(number, exp_month, exp_year, cvc, holder)
        try:
            method = await service.add_card(platform, caller.account, card, make_default=bool(make_default))
            method_id = method.id
        except CarlinkError as error:
            problem = error
    async with platform.db.transaction() as session:
        if problem is None:
            try:
                view = await service.choose_payment(session, caller.account, vin, method_id)
                return see_other(step_url(vin, view.next_step))
            except CarlinkError as error:
                problem = error
        return await _payment_page(
            request,
            session,
            caller,
            vin,
            status=form_status(problem),
            error=problem.message,
            card_form={"exp_month": exp_month, "exp_year": exp_year, "holder": holder[:120]},
        )


@router.get("/vehicles/{vin}/checkout/review", response_model=None)
async def checkout_review(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        vin = path_vin(vin)
        view = await service.cart_view(session, caller.account, vin)
        if view.next_step != "review":
            return see_other(step_url(vin, view.next_step))
        documents = ["general", *(item.service.code for item in view.items)]
        return render(
            request,
            "store/checkout_review.html",
            caller,
            entry=view.entry,
            view=view,
            rows=await _cart_rows(session, view),
            terms=await catalog.terms_in_force(session, documents, page_language(caller.account)),
            withdrawal_days=WITHDRAWAL_DAYS,
        )


@router.post("/vehicles/{vin}/checkout/confirm", response_model=None)
async def confirm(
    request: Request, vin: str, revision: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """Places the order for the reviewed cart revision, then charges it. A double click or a second tab
    sends the same revision and finds the same order (service.place_order), so there is one order and at
    most one charge."""
    vin = path_vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            order, _ = await service.place_order(
                session, caller.account, vin, form_number(revision), language=page_language(caller.account)
            )
        except CarlinkError as error:
            return await _cart_page(
                request,
                session,
                caller,
                vin,
                **refused(error),
            )
    # A refusal here leaves the order placed: its page says so, and the jobs role settles or fails it.
    with contextlib.suppress(CarlinkError):
        await contracts.settle(platform, order.id)
    return see_other(f"/orders/{order.id}")


# --- orders and the card issuer's challenge ----------------------------------------------------------------


@router.get("/orders/{order_id}", response_model=None)
async def order_page(request: Request, order_id: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _order_page(request, session, caller, form_number(order_id))


async def _order_page(
    request: Request,
    session: AsyncSession,
    caller: Caller,
    order_id: int,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    order = await service.own_order(session, caller.account, order_id)
    vehicle = await garage.vehicle_by_id(session, order.vehicle_id)
    made = []
    if order.state == OrderState.CONFIRMED:
        made = [
            c for c in await service.vehicle_contracts(session, order.vehicle_id) if c.order_id == order.id
        ]
    terms_ids = sorted({tid for line in order.lines for tid in line["terms_ids"]})
    method = await session.get(PaymentMethod, order.payment_method_id) if order.payment_method_id else None
    return render(
        request,
        "store/order.html",
        caller,
        status=status,
        order=order,
        vin=vehicle.vin if vehicle else "",
        contracts=made,
        terms=sorted(
            [await catalog.terms_version(session, tid) for tid in terms_ids],
            key=lambda terms: (terms.document != catalog.GENERAL, terms.id),
        ),
        method=method,
        sandbox_code=SANDBOX_CHALLENGE_CODE,
        **context,
    )


@router.post("/orders/{order_id}/challenge", response_model=None)
async def answer_challenge(
    request: Request, order_id: str, code: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """The one-time code the card issuer asked for (3-D Secure-style)."""
    number = form_number(order_id)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        await contracts.answer_challenge(platform, caller.account, number, code)
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _order_page(
                request,
                session,
                caller,
                number,
                **refused(error),
            )
    return see_other(f"/orders/{number}")
