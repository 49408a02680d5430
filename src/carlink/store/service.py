"""Use cases of the store: the cart, billing and payment choice, placing and settling an order (STO-2..5).

Only the vehicle's main user buys (STO-2); secondary users see the store but cannot buy; anybody else gets
the same 404 as for an unknown VIN. Payment-gateway calls never run inside one of our transactions: the
gateway keeps its own books, and on SQLite our units of work take turns.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.catalog import service as catalog
from carlink.catalog.countries import CardBrand, StoreCountry, store_country
from carlink.catalog.models import Offer, Service
from carlink.catalog.rules import fits
from carlink.db.base import add_unique, utcnow
from carlink.errors import CarlinkError, Conflict, Forbidden, NotFound
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.garage.service import GarageEntry
from carlink.i18n import N_, _
from carlink.identity.models import Account
from carlink.partners import availability
from carlink.platform import Platform
from carlink.security import activations
from carlink.security.rules import PACKAGES
from carlink.store.cards import check_accepted, clean_number, detect_brand
from carlink.store.models import BillingAddress, Cart, CartLine, Contract, Order, PaymentMethod
from carlink.store.payments import CardInput
from carlink.store.rules import OrderState

log = logging.getLogger("carlink.store")
MAX_ID = 2**31 - 1  # ids come from URLs and forms; beyond this no row exists and drivers would fail


def country_of(account: Account) -> StoreCountry:
    country = store_country(account.country)
    if country is None:
        raise CarlinkError(
            "The store is not open in %(country)s yet.",
            code="store_not_in_country",
            status=422,
            country=account.country,
        )
    return country


@dataclass(frozen=True)
class Storefront:
    entry: GarageEntry
    services: list[catalog.ServiceOffers]
    contracts: list[Contract]
    trials_used: frozenset[str]

    @property
    def can_buy(self) -> bool:
        return self.entry.is_main_user


async def storefront(session: AsyncSession, account: Account, vin: str) -> Storefront:
    """REQ: STO-1, STO-2 — the services that fit this car in its country, and the car's contracts."""
    entry = await garage.garage_entry(session, account, vin)
    await availability.require_store_open(session, entry.vehicle.country, account.country)  # CON-6
    services = await catalog.services_for(
        session,
        country=entry.vehicle.country,
        model_key=entry.vehicle.model_key,
        engine=entry.variant.engine.value,
    )
    contracts = await vehicle_contracts(session, entry.vehicle.id)
    return Storefront(entry, services, contracts, frozenset(c.service_code for c in contracts if c.trial))


async def vehicle_contracts(session: AsyncSession, vehicle_id: int) -> list[Contract]:
    return list(
        await session.scalars(
            select(Contract)
            .where(Contract.vehicle_id == vehicle_id)
            .order_by(Contract.starts_at.desc(), Contract.id)
        )
    )


async def buyer_entry(session: AsyncSession, account: Account, vin: str) -> GarageEntry:
    entry = await garage.garage_entry(session, account, vin)
    if not entry.is_main_user:
        raise Forbidden("Only the vehicle's main user can buy services for it.", code="owner_only")
    return entry


# --- the cart ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CartItem:
    line: CartLine
    offer: Offer
    service: Service


@dataclass(frozen=True)
class CartView:
    entry: GarageEntry
    cart: Cart
    items: list[CartItem]
    payment_method: PaymentMethod | None
    currency: str

    @property
    def total_minor(self) -> int:
        return sum(item.offer.price_minor for item in self.items)

    @property
    def next_step(self) -> str:
        """cart -> address -> payment -> review (STO-3)."""
        if not self.items:
            return "cart"
        if not self.cart.billing:
            return "address"
        if self.total_minor and self.payment_method is None:
            return "payment"
        return "review"


async def _cart(session: AsyncSession, account: Account, entry: GarageEntry, *, lock: bool = False) -> Cart:
    query = select(Cart).where(Cart.account_id == account.id, Cart.vehicle_id == entry.vehicle.id)
    cart = await session.scalar(query.with_for_update() if lock else query)
    if cart is None:
        cart = Cart(account_id=account.id, vehicle_id=entry.vehicle.id)
        if not await add_unique(session, cart):  # the same person opened it in another tab just now
            cart = await session.scalar(query)
            assert cart is not None
    return cart


async def cart_view(session: AsyncSession, account: Account, vin: str) -> CartView:
    entry = await buyer_entry(session, account, vin)
    cart = await _cart(session, account, entry)
    rows = await session.execute(
        select(CartLine, Offer, Service)
        .join(Offer, Offer.id == CartLine.offer_id)
        .join(Service, Service.code == CartLine.service_code)
        .where(CartLine.cart_id == cart.id)
        .order_by(Service.sort_order)
    )
    items = [CartItem(line, offer, service) for line, offer, service in rows.all()]
    method = await session.get(PaymentMethod, cart.payment_method_id) if cart.payment_method_id else None
    if method is not None and method.removed_at is not None:
        method = None
    currency = (
        items[0].offer.currency
        if items
        else (store_country(entry.vehicle.country) or country_of(account)).currency
    )
    return CartView(entry, cart, items, method, currency)


def _changed(cart: Cart) -> None:
    cart.revision += 1
    cart.updated_at = utcnow()


async def _trial_used(session: AsyncSession, vehicle_id: int, service_code: str) -> bool:
    return (
        await session.scalar(
            select(Contract.id).where(
                Contract.vehicle_id == vehicle_id,
                Contract.service_code == service_code,
                Contract.trial.is_(True),
            )
        )
    ) is not None


async def check_offer(
    session: AsyncSession, entry: GarageEntry, offer: Offer | None
) -> tuple[Offer, Service]:
    """The offer is in force, sold in the car's country, fits its model, and (for a trial) was not used."""
    if offer is None:
        raise NotFound("This offer is not in the store.", code="offer_not_found")
    if offer.retired_at is not None:
        raise Conflict(
            "The store changed since you chose this: please look at the new price and add it again.",
            code="offer_changed",
        )
    service = await catalog.service(session, offer.service_code)
    vehicle = entry.vehicle
    if offer.country != vehicle.country or not fits(service, vehicle.model_key, entry.variant.engine.value):
        raise CarlinkError(
            "This service is not available for this vehicle in its country.",
            code="service_not_available",
            status=422,
        )
    if offer.trial and await _trial_used(session, vehicle.id, service.code):
        raise Conflict("The trial of this service was already used for this vehicle.", code="trial_used")
    if service.carrier_run and not offer.trial and vehicle.network == "NONE":
        # REQ: STO-12 — the carrier's paid service needs the car's data connection.
        raise CarlinkError(
            "This service needs the car's data connection. Switch it on in the car and try again.",
            code="no_data_connection",
            status=422,
        )
    return offer, service


async def add_to_cart(
    session: AsyncSession,
    account: Account,
    vin: str,
    offer_id: int,
    *,
    auto_renew: bool = False,
    phone: str | None = None,
) -> CartView:
    """One term per service in the cart. A tracking package needs the number the SOC calls (SEC-1):
    given here, or kept from the line when another term of it is chosen."""
    entry = await buyer_entry(session, account, vin)
    await availability.require_store_open(session, entry.vehicle.country, account.country)  # CON-6
    offer, service = await check_offer(
        session, entry, await catalog.offer(session, offer_id) if 0 < offer_id <= MAX_ID else None
    )
    if service.kind == "function":  # REQ: FOD-2 — charged on activation, so never through the cart
        raise CarlinkError(
            "Functions are ordered on the vehicle's Functions page: they are charged when the car "
            "activates them.",
            code="function_not_in_cart",
            status=422,
        )
    cart = await _cart(session, account, entry, lock=True)
    line = await session.scalar(
        select(CartLine).where(CartLine.cart_id == cart.id, CartLine.service_code == service.code)
    )
    if activations.needs_phone(service.code):
        await _one_tracking_package(session, entry.vehicle.id, cart.id, service.code)
    renews = offer.recurring or (auto_renew and service.kind == "data_package" and not offer.trial)
    soc_phone = _soc_phone(service.code, phone, line.soc_phone if line is not None else None)
    if line is None:
        session.add(
            CartLine(
                cart_id=cart.id,
                service_code=service.code,
                offer_id=offer.id,
                auto_renew=renews,
                soc_phone=soc_phone,
            )
        )
    else:  # one term per service: choosing another replaces the first
        line.offer_id, line.auto_renew, line.soc_phone = offer.id, renews, soc_phone
    _changed(cart)
    await session.flush()
    return await cart_view(session, account, vin)


async def _one_tracking_package(
    session: AsyncSession, vehicle_id: int, cart_id: int, service_code: str
) -> None:
    """REQ: SEC-1 — a car has one tracking package at a time (`tracking_package_running`): none while one
    runs, and one per cart (another term of the same package replaces its line, as for any service)."""
    await activations.refuse_while_running(session, vehicle_id)
    other = await session.scalar(
        select(CartLine.id).where(
            CartLine.cart_id == cart_id,
            CartLine.service_code.in_(PACKAGES),
            CartLine.service_code != service_code,
        )
    )
    if other is not None:
        raise activations.package_running(in_cart=True)


async def _checked_tracking(session: AsyncSession, vehicle_id: int, items: list[CartItem]) -> None:
    """REQ: SEC-1 — at checkout, in case a package was bought meanwhile (another tab, another user of the
    car) or the cart was filled before the rule: refused before anything is charged."""
    tracking = [item for item in items if activations.needs_phone(item.service.code)]
    if len(tracking) > 1:
        raise activations.package_running(in_cart=True)
    if tracking:
        await activations.refuse_while_running(session, vehicle_id)


def _soc_phone(service_code: str, given: str | None, kept: str | None) -> str | None:
    """REQ: SEC-1 — the normalised number for a tracking package (`phone_required`, `invalid_phone`);
    None for every other service."""
    if not activations.needs_phone(service_code):
        return None
    if given is not None and given.strip():
        return activations.checked_phone(given)
    if kept:
        return kept
    raise CarlinkError(
        "Please give the phone number our security centre calls if your car may have been stolen.",
        code="phone_required",
        status=422,
    )


async def remove_from_cart(session: AsyncSession, account: Account, vin: str, service_code: str) -> CartView:
    entry = await buyer_entry(session, account, vin)
    cart = await _cart(session, account, entry, lock=True)
    line = await session.scalar(
        select(CartLine).where(CartLine.cart_id == cart.id, CartLine.service_code == service_code)
    )
    if line is not None:
        await session.delete(line)
        _changed(cart)
        await session.flush()
    return await cart_view(session, account, vin)


# --- billing address and payment ---------------------------------------------------------------------------

_POSTCODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,14}$")
ADDRESS_FIELDS = ("name", "street", "postcode", "city", "country")
# The fields as the address form names them, for the messages about them.
ADDRESS_LABELS = {
    "name": N_("name"),
    "street": N_("street and house number"),
    "postcode": N_("postcode"),
    "city": N_("city"),
    "country": N_("country"),
}


def checked_address(raw: dict[str, str]) -> dict[str, str]:
    address = {key: str(raw.get(key, "")).strip() for key in ADDRESS_FIELDS}
    missing = [key for key in ADDRESS_FIELDS if not address[key]]
    if missing:
        raise CarlinkError(
            "Please fill in: %(fields)s.",
            code="address_incomplete",
            status=422,
            fields=", ".join(_(ADDRESS_LABELS[key]) for key in missing),
        )
    limits = {"name": 120, "street": 200, "postcode": 16, "city": 100}
    for key, limit in limits.items():
        if len(address[key]) > limit:
            raise CarlinkError(
                "This is too long: %(field)s.",
                code="address_invalid",
                status=422,
                field=_(ADDRESS_LABELS[key]),
            )
    if not _POSTCODE.match(address["postcode"]):
        raise CarlinkError("The postcode is not valid.", code="address_invalid", status=422)
    address["country"] = address["country"].upper()
    if not re.fullmatch(r"[A-Z]{2}", address["country"]):
        raise CarlinkError(
            "The country is a two-letter ISO code, like DE or JP.", code="address_invalid", status=422
        )
    return address


async def set_billing(
    session: AsyncSession, account: Account, vin: str, raw: dict[str, str], *, remember: bool = True
) -> CartView:
    address = checked_address(raw)
    entry = await buyer_entry(session, account, vin)
    cart = await _cart(session, account, entry, lock=True)
    cart.billing = address
    _changed(cart)
    if remember:
        await save_profile_address(session, account, address)
    await session.flush()
    return await cart_view(session, account, vin)


async def save_profile_address(session: AsyncSession, account: Account, address: dict[str, str]) -> None:
    row = await session.get(BillingAddress, account.id)
    if row is None:
        session.add(BillingAddress(account_id=account.id, **address))
    else:
        for key, value in address.items():
            setattr(row, key, value)


async def profile_address(session: AsyncSession, account: Account) -> BillingAddress | None:
    return await session.get(BillingAddress, account.id)


def check_card_brand(account: Account, card: CardInput) -> CardBrand:
    """Before the number leaves for the gateway: is the brand accepted in the person's country (STO-5)?"""
    country = country_of(account)
    return check_accepted(detect_brand(clean_number(card.number)), country.brands, country.code)


async def add_card(
    platform: Platform, account: Account, card: CardInput, *, make_default: bool
) -> PaymentMethod:
    """Tokenises the card at the gateway and keeps only the token, brand, last 4 and expiry."""
    check_card_brand(account, card)
    token = await platform.payments.tokenise(card)
    async with platform.db.transaction() as session:
        methods = await payment_methods(session, account)
        method = PaymentMethod(
            account_id=account.id,
            token=token.token,
            brand=token.brand.value,
            last4=token.last4,
            exp_month=token.exp_month,
            exp_year=token.exp_year,
            holder=card.holder[:120],
            is_default=make_default or not methods,
        )
        if method.is_default:
            for other in methods:
                other.is_default = False
        session.add(method)
        await session.flush()
        return method


async def payment_methods(session: AsyncSession, account: Account) -> list[PaymentMethod]:
    return list(
        await session.scalars(
            select(PaymentMethod)
            .where(PaymentMethod.account_id == account.id, PaymentMethod.removed_at.is_(None))
            .order_by(PaymentMethod.is_default.desc(), PaymentMethod.id)
        )
    )


async def own_payment_method(session: AsyncSession, account: Account, method_id: int) -> PaymentMethod:
    method = await session.get(PaymentMethod, method_id) if 0 < method_id <= MAX_ID else None
    if method is None or method.account_id != account.id or method.removed_at is not None:
        raise NotFound("There is no such card in your profile.", code="payment_method_not_found")
    return method


async def remove_payment_method(session: AsyncSession, account: Account, method_id: int) -> None:
    method = await own_payment_method(session, account, method_id)
    method.removed_at, method.is_default = utcnow(), False


async def choose_payment(session: AsyncSession, account: Account, vin: str, method_id: int) -> CartView:
    method = await own_payment_method(session, account, method_id)
    check_accepted(CardBrand(method.brand), country_of(account).brands, account.country)
    entry = await buyer_entry(session, account, vin)
    cart = await _cart(session, account, entry, lock=True)
    cart.payment_method_id = method.id
    _changed(cart)
    await session.flush()
    return await cart_view(session, account, vin)


async def express_checkout(session: AsyncSession, account: Account, vin: str) -> CartView:
    """REQ: STO-3 — with an address and a default card in the profile, go straight to the review."""
    view = await cart_view(session, account, vin)
    if not view.items:
        return view
    address = await profile_address(session, account)
    default = next((m for m in await payment_methods(session, account) if m.is_default), None)
    cart = await _cart(session, account, view.entry, lock=True)
    changed = False
    if not cart.billing and address is not None:
        cart.billing, changed = address.as_dict(), True
    if cart.payment_method_id is None and default is not None:
        cart.payment_method_id, changed = default.id, True
    if changed:
        _changed(cart)
        await session.flush()
    return await cart_view(session, account, vin)


# --- placing an order --------------------------------------------------------------------------------------


async def order_for(session: AsyncSession, cart_id: int, revision: int) -> Order | None:
    return await session.scalar(
        select(Order).where(Order.cart_id == cart_id, Order.cart_revision == revision)
    )


async def settled_order(session: AsyncSession, account: Account, vin: str, revision: int) -> Order | None:
    """The person's order for this revision of their cart for this car, if it is settled: a repeated
    confirmation is answered from this one read, without taking a turn as a writer."""
    order = await session.scalar(
        select(Order)
        .join(Cart, Cart.id == Order.cart_id)
        .join(Vehicle, Vehicle.id == Cart.vehicle_id)
        .where(Cart.account_id == account.id, Vehicle.vin == vin, Order.cart_revision == revision)
    )
    return order if order is not None and order_done(order) else None


async def place_order(
    session: AsyncSession, account: Account, vin: str, revision: int, *, language: str = "en"
) -> tuple[Order, bool]:
    """Records the order for exactly this revision of the cart; (order, created).

    The cart revision is the idempotency key of a confirmation: a double click, a retried request or a second
    tab that confirms the same cart all find the order the first one placed (STO-3, issue 4: one order).
    """
    view = await cart_view(session, account, vin)
    cart = view.cart
    existing = await order_for(session, cart.id, revision)
    if existing is not None:
        return existing, False
    if revision != cart.revision:
        raise Conflict(
            "Your cart changed in the meantime (another tab?). Please check it and confirm again.",
            code="cart_changed",
        )
    if not view.items:
        raise CarlinkError("Your cart is empty.", code="cart_empty", status=422)
    await _checked_tracking(session, view.entry.vehicle.id, view.items)
    lines = []
    for item in view.items:
        offer, service = await check_offer(session, view.entry, item.offer)
        terms = await catalog.terms_in_force(session, ["general", service.code], language)
        lines.append(
            {
                "service_code": service.code,
                "service_name": catalog.service_name(service, language),
                "kind": service.kind,
                "offer_id": offer.id,
                "offer_version": offer.version,
                "term": offer.term,
                "term_months": offer.term_months,
                "trial": offer.trial,
                "recurring": offer.recurring,
                "auto_renew": item.line.auto_renew,
                "price_minor": offer.price_minor,
                "currency": offer.currency,
                "volume_mb": service.volume_mb,
                "terms_ids": [t.id for t in terms],
                "soc_phone": _soc_phone(service.code, None, item.line.soc_phone),
            }
        )
    if view.next_step != "review":
        raise CarlinkError(
            "Please give a billing address and a card before confirming.",
            code="checkout_incomplete",
            status=422,
        )
    if view.payment_method is not None:
        check_accepted(CardBrand(view.payment_method.brand), country_of(account).brands, account.country)
    order = Order(
        account_id=account.id,
        vehicle_id=view.entry.vehicle.id,
        cart_id=cart.id,
        cart_revision=revision,
        currency=view.currency,
        total_minor=view.total_minor,
        language=language,
        billing=cart.billing,
        payment_method_id=view.payment_method.id if view.total_minor and view.payment_method else None,
        lines=lines,
    )
    if not await add_unique(session, order):  # another confirmation of this revision won: it is the order
        winner = await order_for(session, cart.id, revision)
        assert winner is not None
        return winner, False
    return order, True


async def own_order(session: AsyncSession, account: Account, order_id: int) -> Order:
    order = await session.get(Order, order_id) if 0 < order_id <= MAX_ID else None
    if order is None or order.account_id != account.id:
        raise NotFound("There is no such order.", code="order_not_found")
    return order


async def orders_of(session: AsyncSession, account: Account, limit: int = 50) -> list[Order]:
    return list(
        await session.scalars(
            select(Order).where(Order.account_id == account.id).order_by(Order.id.desc()).limit(limit)
        )
    )


def order_done(order: Order) -> bool:
    return order.state in (OrderState.CONFIRMED, OrderState.FAILED, OrderState.REFUNDED)


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    """The same day `months` later, or the month's last day when that month is shorter."""
    month_index = when.month - 1 + months
    year, month = when.year + month_index // 12, month_index % 12 + 1
    for day in (when.day, 30, 29, 28):
        try:
            return when.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")
