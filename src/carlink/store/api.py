"""/api/v1/store and /api/v1/vehicles/{vin}/store|cart|contracts: the store as a JSON API (STO-1..11)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.catalog import service as catalog
from carlink.catalog.countries import BRAND_NAMES, store_country
from carlink.catalog.rules import recommend_plan
from carlink.db.base import utcnow
from carlink.error_responses import errors
from carlink.errors import NotFound
from carlink.garage import service as garage
from carlink.identity.access import Caller, platform_of, require_caller
from carlink.store import contracts, service
from carlink.store import schemas as s
from carlink.store.payments import CardInput

# Orders, carts and contracts refuse a step their state does not allow with 409.
router = APIRouter(prefix="/api/v1/store", tags=["store"], responses=errors(409))
vehicle_router = APIRouter(prefix="/api/v1/vehicles/{vin}", tags=["store"], responses=errors(409))


def language_of(caller: Caller) -> str:
    return caller.account.locale if caller.account.locale in ("en", "de", "ja") else "en"


async def _caller(request: Request, session: AsyncSession) -> tuple[Caller, str]:
    caller = await require_caller(request, session)
    return caller, language_of(caller)


# --- public: the catalogue and the terms -------------------------------------------------------------------


@router.get("/countries/{country}/services")
async def country_catalogue(
    country: str, request: Request, model: str = "", engine: str = "", language: str = ""
) -> dict[str, Any]:
    """The country's catalogue (STO-1), readable without signing in; narrow it by model key and engine.
    Names and prices in `language`, else the browser's (Accept-Language)."""
    language = i18n.supported(language) or i18n.current()
    shop = store_country(country)
    if shop is None:
        raise NotFound("The store is not open in this country.", code="store_not_in_country")
    async with platform_of(request).db.session() as session:
        items = await catalog.services_for(
            session, country=shop.code, model_key=model or None, engine=engine or None
        )
    return {
        "country": shop.code,
        "currency": shop.currency,
        "accepted_brands": [BRAND_NAMES[b] for b in shop.brands],
        "services": [s.service_out(item, language, frozenset()) for item in items],
    }


@router.get("/terms/{document}")
async def terms(document: str, request: Request, language: str = "") -> dict[str, Any]:
    """The terms in force (STO-6): "general" or a service code; in `language`, else the browser's."""
    language = i18n.supported(language) or i18n.current()
    async with platform_of(request).db.session() as session:
        found = await catalog.terms_in_force(session, [document], language)
    if not found:
        raise NotFound("There are no such terms.", code="terms_not_found")
    return _terms_out(found[0])


@router.get("/terms/versions/{terms_id}")
async def terms_version(terms_id: int, request: Request) -> dict[str, Any]:
    """One terms version, as a contract names it; old versions stay readable."""
    if not 0 < terms_id <= service.MAX_ID:
        raise NotFound("There is no such terms version.", code="terms_not_found")
    async with platform_of(request).db.session() as session:
        return _terms_out(await catalog.terms_version(session, terms_id))


def _terms_out(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "document": row.document,
        "language": row.language,
        "version": row.version,
        "title": row.title,
        "body": row.body,
        "published_at": row.published_at,
    }


@router.get("/data-plan")
async def data_plan(
    request: Request,
    annual_km: int = Query(ge=0, le=1_000_000),
    streaming: bool = False,
    country: str = "DE",
    language: str = "",
) -> dict[str, Any]:
    """REQ: CON-4 — how much hotspot data a month fits, and the smallest package that covers it."""
    language = i18n.supported(language) or i18n.current()
    advice = recommend_plan(annual_km, streaming)
    shop = store_country(country)
    packages: list[Any] = []
    if shop is not None:
        async with platform_of(request).db.session() as session:
            items = await catalog.services_for(session, country=shop.code)
        packages = sorted(
            (i for i in items if i.service.kind == "data_package" and i.service.volume_mb),
            key=lambda i: i.service.volume_mb or 0,
        )
    fitting = next((p for p in packages if (p.service.volume_mb or 0) >= advice.wanted_mb), None)
    return {
        "annual_km": annual_km,
        "streaming": streaming,
        "monthly_mb": {"low": advice.low_mb, "high": advice.high_mb},
        "recommended": s.service_out(fitting, language, frozenset()) if fitting else None,
    }


# --- the person's profile: cards and address ---------------------------------------------------------------


@router.get("/payment-methods")
async def list_payment_methods(request: Request) -> list[dict[str, Any] | None]:
    async with platform_of(request).db.transaction() as session:
        caller, _ = await _caller(request, session)
        return [s.payment_method_out(m) for m in await service.payment_methods(session, caller.account)]


@router.post("/payment-methods", status_code=201)
async def add_payment_method(body: s.CardIn, request: Request) -> dict[str, Any] | None:
    """Hands the card to the payment gateway and keeps its token, brand, last 4 and expiry (STO-5)."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller, _ = await _caller(request, session)
    card = CardInput(body.number, body.exp_month, body.exp_year, body.cvc, body.holder)
    method = await service.add_card(platform, caller.account, card, make_default=body.make_default)
    return s.payment_method_out(method)


@router.delete("/payment-methods/{method_id}", status_code=204)
async def remove_payment_method(method_id: int, request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller, _ = await _caller(request, session)
        await service.remove_payment_method(session, caller.account, method_id)
    return Response(status_code=204)


@router.get("/billing-address")
async def billing_address(request: Request) -> dict[str, str] | None:
    async with platform_of(request).db.transaction() as session:
        caller, _ = await _caller(request, session)
        row = await service.profile_address(session, caller.account)
        return row.as_dict() if row else None


@router.put("/billing-address")
async def put_billing_address(body: s.AddressIn, request: Request) -> dict[str, str]:
    address = service.checked_address(body.model_dump(exclude={"remember"}))
    async with platform_of(request).db.transaction() as session:
        caller, _ = await _caller(request, session)
        await service.save_profile_address(session, caller.account, address)
    return address


# --- orders and contracts ----------------------------------------------------------------------------------


@router.get("/orders")
async def list_orders(request: Request) -> list[dict[str, Any]]:
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        return [s.order_out(o, language) for o in await service.orders_of(session, caller.account)]


@router.get("/orders/{order_id}")
async def get_order(order_id: int, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        return s.order_out(await service.own_order(session, caller.account, order_id), language)


@router.post("/orders/{order_id}/challenge")
async def answer_challenge(order_id: int, body: s.ChallengeIn, request: Request) -> dict[str, Any]:
    """The one-time code the card issuer asked for (3-D Secure-style)."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller, language = await _caller(request, session)
    order = await contracts.answer_challenge(platform, caller.account, order_id, body.code)
    return s.order_out(order, language)


@router.post("/contracts/{contract_id}/withdrawal")
async def withdraw(contract_id: int, request: Request) -> dict[str, Any]:
    """REQ: STO-10 — within 14 days, free of charge: the price goes back to the card."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller, language = await _caller(request, session)
    contract = await contracts.withdraw(platform, caller.account, contract_id)
    return await _contract_out(request, caller, contract.id, language)


@router.post("/contracts/{contract_id}/cancellation")
async def cancel(contract_id: int, request: Request) -> dict[str, Any]:
    """REQ: STO-11 — the subscription stops renewing and runs to the end of the paid period."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller, language = await _caller(request, session)
    contract = await contracts.cancel(platform, caller.account, contract_id)
    return await _contract_out(request, caller, contract.id, language)


async def _contract_out(request: Request, caller: Caller, contract_id: int, language: str) -> dict[str, Any]:
    async with platform_of(request).db.session() as session:
        contract, main = await contracts.vehicle_contract(session, caller.account, contract_id)
        vehicle = await garage.vehicle_by_id(session, contract.vehicle_id)
        vin = vehicle.vin if vehicle else ""
    return s.contract_out(contract, vin, language, utcnow(), main=main, account_id=caller.account.id)


# --- one vehicle: store, cart, checkout, contracts ---------------------------------------------------------


@vehicle_router.get("/store")
async def storefront(vin: str, request: Request) -> dict[str, Any]:
    """REQ: STO-1, STO-2 — what this car can be given; `can_buy` is true for its main user only."""
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        front = await service.storefront(session, caller.account, vin)
        shop = store_country(caller.account.country)
        return {
            "vin": front.entry.vehicle.vin,
            "country": front.entry.vehicle.country,
            "can_buy": front.can_buy,
            "services": [s.service_out(item, language, front.trials_used) for item in front.services],
            "accepted_brands": [BRAND_NAMES[b] for b in shop.brands] if shop else [],
        }


@vehicle_router.get("/cart")
async def get_cart(vin: str, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        return s.cart_out(await service.cart_view(session, caller.account, vin), language)


@vehicle_router.post("/cart/lines")
async def add_line(vin: str, body: s.CartLineIn, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        view = await service.add_to_cart(
            session, caller.account, vin, body.offer_id, auto_renew=body.auto_renew, phone=body.phone
        )
        return s.cart_out(view, language)


@vehicle_router.delete("/cart/lines/{service_code}")
async def remove_line(vin: str, service_code: str, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        return s.cart_out(
            await service.remove_from_cart(session, caller.account, vin, service_code), language
        )


@vehicle_router.put("/cart/billing")
async def set_billing(vin: str, body: s.AddressIn, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        view = await service.set_billing(
            session, caller.account, vin, body.model_dump(exclude={"remember"}), remember=body.remember
        )
        return s.cart_out(view, language)


@vehicle_router.put("/cart/payment-method")
async def set_payment(vin: str, body: s.PaymentChoiceIn, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        view = await service.choose_payment(session, caller.account, vin, body.payment_method_id)
        return s.cart_out(view, language)


@vehicle_router.post("/cart/express")
async def express(vin: str, request: Request) -> dict[str, Any]:
    """REQ: STO-3 — fill address and card from the profile, so the next step is the review."""
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        return s.cart_out(await service.express_checkout(session, caller.account, vin), language)


@vehicle_router.post(
    "/cart/checkout",
    responses={201: {"description": "this confirmation placed the order"}},
)
async def checkout(vin: str, body: s.CheckoutIn, request: Request, response: Response) -> dict[str, Any]:
    """Confirms the reviewed cart revision: one order and at most one charge however often it is sent.
    201 for the confirmation that placed the order, 200 for any repeat; the state says what became of it:
    confirmed, requires_action (answer the card issuer's challenge), or failed with a failure_code."""
    platform = platform_of(request)
    async with platform.db.session() as session:  # a repeat of a settled order needs one read, no write turn
        caller, language = await _caller(request, session)
        repeat = await service.settled_order(session, caller.account, garage.checked_vin(vin), body.revision)
    if repeat is not None:
        return s.order_out(repeat, language)
    async with platform.db.transaction() as session:  # the caller is known: no second token check
        order, created = await service.place_order(
            session, caller.account, vin, body.revision, language=language
        )
    response.status_code = 201 if created else 200
    return s.order_out(await contracts.settle(platform, order.id), language)


@vehicle_router.get("/contracts")
async def vehicle_contracts(vin: str, request: Request) -> list[dict[str, Any]]:
    """REQ: STO-8, STO-9 — the car's contracts with their remaining term, whoever bought them."""
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        now = utcnow()
        return [
            s.contract_out(
                c, entry.vehicle.vin, language, now, main=entry.is_main_user, account_id=caller.account.id
            )
            for c in await service.vehicle_contracts(session, entry.vehicle.id)
        ]


@vehicle_router.get("/handover")
async def handover(vin: str, request: Request) -> dict[str, Any]:
    """REQ: STO-11, STO-9 — before selling: the subscriptions to cancel; the rest passes to the buyer."""
    async with platform_of(request).db.transaction() as session:
        caller, language = await _caller(request, session)
        entry = await service.buyer_entry(session, caller.account, vin)
        now = utcnow()
        renewing = await contracts.renewing_subscriptions(session, entry.vehicle.id)
        return {
            "vin": entry.vehicle.vin,
            "ready": not renewing,
            "cancel_first": [
                s.contract_out(c, entry.vehicle.vin, language, now, main=True, account_id=caller.account.id)
                for c in renewing
            ],
        }
