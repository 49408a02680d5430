"""The store in the portal (STO-1..11, CON-3, CON-4): the services of one car, cart, checkout, orders, the
car's Services, selling the car, and the person's saved cards and billing address.

The pages call the same use cases as the JSON API (store.api). Payment-gateway calls (add_card, settle,
answer_challenge, withdraw, cancel) run outside our own transactions, as there: the gateway keeps its own
books, and on SQLite units of work take turns. Every form carries the session's CSRF token and answers with
a redirect; a refusal shows the form again with the reason. The words live in the templates
(templates/store/); a message from the domain is shown as it comes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from babel.dates import format_date
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.catalog import service as catalog
from carlink.catalog.countries import BRAND_NAMES, store_country
from carlink.catalog.models import Offer
from carlink.catalog.money import SUPPORTED_LOCALES, format_money
from carlink.catalog.rules import PlanAdvice, recommend_plan
from carlink.db.base import utcnow
from carlink.errors import CarlinkError, NotFound, Unauthorised, vehicle_not_found
from carlink.garage import service as garage
from carlink.garage.service import GarageEntry
from carlink.identity.access import Caller, check_csrf, cookie_caller, platform_of
from carlink.identity.models import Account
from carlink.store import contracts, service
from carlink.store.contracts import WITHDRAWAL_DAYS
from carlink.store.models import PaymentMethod
from carlink.store.payments import SANDBOX_CHALLENGE_CODE, CardInput
from carlink.store.rules import ENTITLED, OrderState
from carlink.store.schemas import contract_out
from carlink.store.service import CartItem, CartView
from carlink.telemetry import service as telemetry
from carlink.web.templating import page

router = APIRouter(include_in_schema=False)

BRAND_BY_CODE = {brand.value: name for brand, name in BRAND_NAMES.items()}
MAX_ANNUAL_KM = 1_000_000
_ID = re.compile(r"[0-9]{1,10}")


# --- rendering and the caller ------------------------------------------------------------------------------


def _language(account: Account | None) -> str:
    return account.locale if account is not None and account.locale in SUPPORTED_LOCALES else "en"


def _render(
    request: Request, name: str, caller: Caller | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A store page: the person's language for money and terms, and the card brands of their country for
    the foot of the page (STO-5)."""
    account = caller.account if caller else None
    language = _language(account)
    shop = store_country(account.country) if account else None

    def money(amount_minor: int, currency: str) -> str:
        return format_money(amount_minor, currency, language)

    def term_label(term: str, months: int) -> str:
        return catalog.term_label(term, months, language)

    def day(moment: dt.datetime) -> str:
        return format_date(moment.date(), format="medium", locale=SUPPORTED_LOCALES[language])

    context.setdefault("section", "vehicles")
    return page(
        request,
        name,
        status=status,
        account=account,
        csrf_token=caller.web_session.csrf_token if caller and caller.web_session else "",
        accepted_brands=[BRAND_NAMES[brand] for brand in shop.brands] if shop else [],
        money=money,
        term_label=term_label,
        day=day,
        service_name=lambda row: catalog.service_name(row, language),
        service_description=lambda row: catalog.service_description(row, language),
        brand_name=lambda code: BRAND_BY_CODE.get(code, code),
        **context,
    )


async def _caller(request: Request, session: AsyncSession) -> Caller | None:
    """The signed-in person; remembered on the request so an error page keeps the menu."""
    caller = await cookie_caller(request, session)
    request.state.caller = caller
    return caller


async def _poster(request: Request, session: AsyncSession, csrf_token: str) -> Caller:
    """The person sending a form, which must carry the token of their session."""
    caller = await _caller(request, session)
    if caller is None:
        raise Unauthorised("your session has ended; sign in again", code="unauthorised")
    check_csrf(caller, csrf_token)
    return caller


def _to_signin(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/signin?next={quote(request.url.path)}", status_code=303)


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _vin(raw: str) -> str:
    """A malformed VIN in the address is just another vehicle that is not in the garage."""
    try:
        return garage.checked_vin(raw)
    except CarlinkError as error:
        raise vehicle_not_found(raw[:17]) from error


def _number(raw: str) -> int:
    """An id or revision from a form or an address; 0, which no row has, for anything else."""
    raw = raw.strip()
    if not _ID.fullmatch(raw):
        return 0
    value = int(raw)
    return value if value <= service.MAX_ID else 0


def _form_status(error: CarlinkError) -> int:
    # A refused form is a 4xx page of its own, not a missing sign-in or page (as in web.pages).
    return 400 if error.status in (401, 404) else error.status


def _step_url(vin: str, step: str) -> str:
    """Where a cart's next step (CartView.next_step: cart -> address -> payment -> review) is (STO-3)."""
    return f"/vehicles/{vin}/cart" if step == "cart" else f"/vehicles/{vin}/checkout/{step}"


# --- the store of one car (STO-1, STO-2, STO-4) ------------------------------------------------------------


@router.get("/vehicles/{vin}/store", response_model=None)
async def storefront(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        return await _store_page(request, session, caller, _vin(vin))


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
    return _render(
        request,
        "store/storefront.html",
        caller,
        status=status,
        entry=front.entry,
        front=front,
        active_until=active_until,
        in_cart=in_cart,
        **context,
    )


@router.get("/vehicles/{vin}/store/terms/{document}", response_model=None)
async def terms_in_force(request: Request, vin: str, document: str) -> Response:
    """REQ: STO-6 — the general terms ("general") or a service's terms, as they apply today."""
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        entry = await garage.garage_entry(session, caller.account, _vin(vin))
        found = await catalog.terms_in_force(session, [document[:40]], _language(caller.account))
        if not found:
            raise NotFound("There are no such terms.", code="terms_not_found")
        return _render(request, "store/terms.html", caller, entry=entry, terms=found[0], in_force=True)


@router.get("/store/terms/versions/{terms_id}", response_model=None)
async def terms_version(request: Request, terms_id: str) -> Response:
    """Any version of the terms, as an order or contract names it; readable without signing in."""
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        terms = await catalog.terms_version(session, _number(terms_id))
        return _render(request, "store/terms.html", caller, entry=None, terms=terms, in_force=False)


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
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        return await _cart_page(request, session, caller, _vin(vin))


async def _cart_page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    view = await service.cart_view(session, caller.account, vin)
    address = await service.profile_address(session, caller.account)
    default_card = any(m.is_default for m in await service.payment_methods(session, caller.account))
    return _render(
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
    csrf_token: str = Form(""),
) -> Response:
    """Only the offer id counts: the price and the term come from the catalogue, never from the form."""
    vin = _vin(vin)
    async with platform_of(request).db.transaction() as session:
        caller = await _poster(request, session, csrf_token)
        try:
            await service.add_to_cart(
                session, caller.account, vin, _number(offer_id), auto_renew=bool(auto_renew)
            )
        except CarlinkError as error:
            return await _store_page(
                request, session, caller, vin, status=_form_status(error), error=error.message
            )
    return _see(f"/vehicles/{vin}/cart")


@router.post("/vehicles/{vin}/cart/remove", response_model=None)
async def remove_from_cart(
    request: Request, vin: str, service_code: str = Form(""), csrf_token: str = Form("")
) -> Response:
    vin = _vin(vin)
    async with platform_of(request).db.transaction() as session:
        caller = await _poster(request, session, csrf_token)
        await service.remove_from_cart(session, caller.account, vin, service_code[:40])
    return _see(f"/vehicles/{vin}/cart")


@router.post("/vehicles/{vin}/cart/express", response_model=None)
async def express_checkout(request: Request, vin: str, csrf_token: str = Form("")) -> Response:
    """REQ: STO-3 — address and default card from the profile, then the review."""
    vin = _vin(vin)
    async with platform_of(request).db.transaction() as session:
        caller = await _poster(request, session, csrf_token)
        view = await service.express_checkout(session, caller.account, vin)
    return _see(_step_url(vin, view.next_step))


# --- checkout: billing address, payment, review, confirm (STO-3, STO-5) ------------------------------------


@router.get("/vehicles/{vin}/checkout/address", response_model=None)
async def checkout_address(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        return await _address_page(request, session, caller, _vin(vin))


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
        return _see(_step_url(vin, "cart"))
    address = entered or view.cart.billing
    if address is None:
        saved = await service.profile_address(session, caller.account)
        address = (
            saved.as_dict()
            if saved
            else {"name": caller.account.display_name, "country": caller.account.country}
        )
    return _render(
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
    vin = _vin(vin)
    entered = {"name": name, "street": street, "postcode": postcode, "city": city, "country": country}
    async with platform_of(request).db.transaction() as session:
        caller = await _poster(request, session, csrf_token)
        try:
            view = await service.set_billing(session, caller.account, vin, entered, remember=bool(remember))
        except CarlinkError as error:
            return await _address_page(
                request,
                session,
                caller,
                vin,
                status=_form_status(error),
                entered=entered,
                error=error.message,
            )
    return _see(_step_url(vin, view.next_step))


@router.get("/vehicles/{vin}/checkout/payment", response_model=None)
async def checkout_payment(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        return await _payment_page(request, session, caller, _vin(vin))


async def _payment_page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> Response:
    view = await service.cart_view(session, caller.account, vin)
    if not view.items or not view.cart.billing:
        return _see(_step_url(vin, view.next_step))
    methods = await service.payment_methods(session, caller.account)
    chosen = view.payment_method.id if view.payment_method else next((m.id for m in methods), None)
    return _render(
        request,
        "store/checkout_payment.html",
        caller,
        status=status,
        entry=view.entry,
        view=view,
        methods=methods,
        chosen=chosen,
        years=_card_years(),
        **context,
    )


def _card_years() -> list[int]:
    this_year = utcnow().year
    return list(range(this_year, this_year + 16))


def _card(number: str, exp_month: str, exp_year: str, cvc: str, holder: str) -> CardInput:
    """The card as typed; the number goes to the gateway once and is never kept or shown again."""
    return CardInput(number, _number(exp_month), _number(exp_year), cvc.strip(), holder.strip())


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
    vin = _vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await _poster(request, session, csrf_token)
        await service.buyer_entry(session, caller.account, vin)  # only the main user hands over a card
    method_id = _number(payment_method_id)
    problem: CarlinkError | None = None
    if number.strip():
        card = _card(number, exp_month, exp_year, cvc, holder)
        try:
            method = await service.add_card(platform, caller.account, card, make_default=bool(make_default))
            method_id = method.id
        except CarlinkError as error:
            problem = error
    async with platform.db.transaction() as session:
        if problem is None:
            try:
                view = await service.choose_payment(session, caller.account, vin, method_id)
                return _see(_step_url(vin, view.next_step))
            except CarlinkError as error:
                problem = error
        return await _payment_page(
            request,
            session,
            caller,
            vin,
            status=_form_status(problem),
            error=problem.message,
            card_form={"exp_month": exp_month, "exp_year": exp_year, "holder": holder[:120]},
        )


@router.get("/vehicles/{vin}/checkout/review", response_model=None)
async def checkout_review(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        vin = _vin(vin)
        view = await service.cart_view(session, caller.account, vin)
        if view.next_step != "review":
            return _see(_step_url(vin, view.next_step))
        documents = ["general", *(item.service.code for item in view.items)]
        return _render(
            request,
            "store/checkout_review.html",
            caller,
            entry=view.entry,
            view=view,
            rows=await _cart_rows(session, view),
            terms=await catalog.terms_in_force(session, documents, _language(caller.account)),
            withdrawal_days=WITHDRAWAL_DAYS,
        )


@router.post("/vehicles/{vin}/checkout/confirm", response_model=None)
async def confirm(
    request: Request, vin: str, revision: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """Places the order for the reviewed cart revision, then charges it. A double click or a second tab
    sends the same revision and finds the same order (service.place_order), so there is one order and at
    most one charge."""
    vin = _vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await _poster(request, session, csrf_token)
        try:
            order, _ = await service.place_order(
                session, caller.account, vin, _number(revision), language=_language(caller.account)
            )
        except CarlinkError as error:
            return await _cart_page(
                request, session, caller, vin, status=_form_status(error), error=error.message
            )
    # A refusal here leaves the order placed: its page says so, and the jobs role settles or fails it.
    with contextlib.suppress(CarlinkError):
        await contracts.settle(platform, order.id)
    return _see(f"/orders/{order.id}")


# --- orders and the card issuer's challenge ----------------------------------------------------------------


@router.get("/orders/{order_id}", response_model=None)
async def order_page(request: Request, order_id: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        return await _order_page(request, session, caller, _number(order_id))


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
    return _render(
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
    number = _number(order_id)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await _poster(request, session, csrf_token)
    try:
        await contracts.answer_challenge(platform, caller.account, number, code)
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _order_page(
                request, session, caller, number, status=_form_status(error), error=error.message
            )
    return _see(f"/orders/{number}")


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
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        return await _services_page(
            request, session, caller, _vin(vin), annual_km=annual_km, streaming=bool(streaming), done=done
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
    language, now = _language(caller.account), utcnow()
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
    return _render(
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
    vin = _vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await _poster(request, session, csrf_token)
    try:
        await contracts.withdraw(platform, caller.account, _number(contract_id))
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _services_page(
                request, session, caller, vin, status=_form_status(error), error=error.message
            )
    return _see(f"/vehicles/{vin}/services?done=withdrawn")


@router.post("/vehicles/{vin}/services/{contract_id}/cancel", response_model=None)
async def cancel(
    request: Request, vin: str, contract_id: str, back: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """REQ: STO-11 — the subscription stops renewing and runs to the end of the period already paid."""
    vin = _vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await _poster(request, session, csrf_token)
    try:
        await contracts.cancel(platform, caller.account, _number(contract_id))
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            if back == "handover":
                return await _handover_page(
                    request, session, caller, vin, status=_form_status(error), error=error.message
                )
            return await _services_page(
                request, session, caller, vin, status=_form_status(error), error=error.message
            )
    return _see(f"/vehicles/{vin}/{'handover' if back == 'handover' else 'services'}?done=cancelled")


@router.get("/vehicles/{vin}/handover", response_model=None)
async def handover(request: Request, vin: str, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        return await _handover_page(request, session, caller, _vin(vin), done=done)


async def _handover_page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """REQ: STO-9, STO-11 — what stays with the car for the next owner, and what to cancel first."""
    entry = await service.buyer_entry(session, caller.account, vin)
    language, now = _language(caller.account), utcnow()
    renewing = await contracts.renewing_subscriptions(session, entry.vehicle.id)
    passing = [
        c
        for c in await service.vehicle_contracts(session, entry.vehicle.id)
        if c.state in ENTITLED and c.ends_at > now
    ]
    return _render(
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
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
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
    return _render(
        request,
        "store/account_payment.html",
        caller,
        status=status,
        section="account",
        methods=await service.payment_methods(session, caller.account),
        address=entered or (saved.as_dict() if saved else {"country": caller.account.country}),
        years=_card_years(),
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
        caller = await _poster(request, session, csrf_token)
    card = _card(number, exp_month, exp_year, cvc, holder)
    try:
        await service.add_card(platform, caller.account, card, make_default=bool(make_default))
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _account_payment_page(
                request,
                session,
                caller,
                status=_form_status(error),
                card_error=error.message,
                card_form={"exp_month": exp_month, "exp_year": exp_year, "holder": holder[:120]},
            )
    return _see("/account/payment?done=card")


@router.post("/account/payment/remove", response_model=None)
async def remove_card(request: Request, method_id: str = Form(""), csrf_token: str = Form("")) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _poster(request, session, csrf_token)
        try:
            await service.remove_payment_method(session, caller.account, _number(method_id))
        except CarlinkError as error:
            return await _account_payment_page(
                request, session, caller, status=_form_status(error), cards_error=error.message
            )
    return _see("/account/payment?done=removed")


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
        caller = await _poster(request, session, csrf_token)
        try:
            await service.save_profile_address(session, caller.account, service.checked_address(entered))
        except CarlinkError as error:
            return await _account_payment_page(
                request,
                session,
                caller,
                status=_form_status(error),
                entered=entered,
                address_error=error.message,
            )
    return _see("/account/payment?done=address")
