"""Request and response bodies of the store API (/api/v1/store, /api/v1/vehicles/{vin}/...)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from carlink.catalog import service as catalog
from carlink.catalog.models import Offer
from carlink.catalog.money import format_money
from carlink.store.contracts import WITHDRAWAL_DAYS, withdrawal_open
from carlink.store.models import Contract, Order, PaymentMethod
from carlink.store.rules import ENTITLED
from carlink.store.service import CartView


class Strict(BaseModel):
    # No unknown fields, and JSON types as declared: no true for 1, no "1" for 1 (issue 9)
    model_config = ConfigDict(extra="forbid", strict=True)


class CartLineIn(Strict):
    offer_id: int = Field(ge=1, le=2**31 - 1)
    auto_renew: bool = False
    # REQ: SEC-1 — required for the tracking packages: the number the SOC calls.
    phone: str | None = Field(default=None, max_length=40)


class AddressIn(Strict):
    name: str = Field(min_length=1, max_length=120)
    street: str = Field(min_length=1, max_length=200)
    postcode: str = Field(min_length=2, max_length=16)
    city: str = Field(min_length=1, max_length=100)
    country: str = Field(min_length=2, max_length=2)
    remember: bool = True


class PaymentChoiceIn(Strict):
    payment_method_id: int = Field(ge=1, le=2**31 - 1)


class CardIn(Strict):
    """Sent once, straight on to the payment gateway; carlink keeps only its token."""

    number: str = Field(min_length=12, max_length=23)
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvc: str = Field(min_length=3, max_length=4)
    holder: str = Field(default="", max_length=120)
    make_default: bool = False


class CheckoutIn(Strict):
    """The cart revision the person reviewed: confirming it twice gives the same order."""

    revision: int = Field(ge=1, le=2**31 - 1)


class ChallengeIn(Strict):
    code: str = Field(min_length=1, max_length=32)


def money(amount_minor: int, currency: str, language: str) -> dict[str, Any]:
    return {
        "amount_minor": amount_minor,
        "currency": currency,
        "formatted": format_money(amount_minor, currency, language),
    }


def offer_out(offer: Offer, language: str) -> dict[str, Any]:
    return {
        "id": offer.id,
        "term": offer.term,
        "term_label": catalog.term_label(offer.term, offer.term_months, language),
        "term_months": offer.term_months,
        "trial": offer.trial,
        "recurring": offer.recurring,
        "price": money(offer.price_minor, offer.currency, language),
        "version": offer.version,
    }


def service_out(item: catalog.ServiceOffers, language: str, trials_used: frozenset[str]) -> dict[str, Any]:
    service = item.service
    return {
        "code": service.code,
        "kind": service.kind,
        "category": service.category,
        "name": catalog.service_name(service, language),
        "description": catalog.service_description(service, language),
        "carrier_run": service.carrier_run,
        "volume_mb": service.volume_mb,
        "offers": [
            offer_out(o, language) for o in item.offers if not (o.trial and service.code in trials_used)
        ],
    }


def payment_method_out(method: PaymentMethod | None) -> dict[str, Any] | None:
    if method is None:
        return None
    return {
        "id": method.id,
        "brand": method.brand,
        "last4": method.last4,
        "exp_month": method.exp_month,
        "exp_year": method.exp_year,
        "is_default": method.is_default,
    }


def cart_out(view: CartView, language: str) -> dict[str, Any]:
    return {
        "vin": view.entry.vehicle.vin,
        "revision": view.cart.revision,
        "lines": [
            {
                "service_code": item.service.code,
                "service_name": catalog.service_name(item.service, language),
                "offer": offer_out(item.offer, language),
                "auto_renew": item.line.auto_renew,
                "soc_phone": item.line.soc_phone,
            }
            for item in view.items
        ],
        "total": money(view.total_minor, view.currency, language),
        "billing": view.cart.billing,
        "payment_method": payment_method_out(view.payment_method),
        "next_step": view.next_step,
    }


def order_out(order: Order, language: str) -> dict[str, Any]:
    return {
        "id": order.id,
        "number": order.number,
        "state": order.state,
        "total": money(order.total_minor, order.currency, language),
        "lines": [
            {
                "service_code": line["service_code"],
                "service_name": line["service_name"],
                "term": line["term"],
                "trial": line["trial"],
                "price": money(line["price_minor"], line["currency"], language),
            }
            for line in order.lines
        ],
        "failure_code": order.failure_code,
        "created_at": order.created_at,
        "confirmed_at": order.confirmed_at,
    }


def contract_out(
    contract: Contract, vin: str, language: str, now: dt.datetime, *, main: bool, account_id: int
) -> dict[str, Any]:
    """`can_withdraw` only for the buyer (STO-10); `can_cancel` for whoever is the main user now."""
    running = contract.state in ENTITLED and contract.ends_at > now
    remaining = (contract.ends_at - now).total_seconds() / 86400 if running else 0
    can_withdraw = main and contract.buyer_account_id == account_id and withdrawal_open(contract, now)
    return {
        "id": contract.id,
        "number": contract.number,
        "vin": vin,
        "service_code": contract.service_code,
        "service_name": contract.service_name,
        "kind": contract.kind,
        "term": contract.term,
        "term_label": catalog.term_label(contract.term, contract.term_months, language),
        "trial": contract.trial,
        "recurring": contract.recurring,
        "auto_renew": contract.auto_renew,
        "price": money(contract.price_minor, contract.currency, language),
        "state": contract.state,
        "starts_at": contract.starts_at,
        "ends_at": contract.ends_at,
        "remaining_days": math.ceil(remaining),
        "volume_mb": contract.volume_mb,
        "withdrawal_until": contract.starts_at + dt.timedelta(days=WITHDRAWAL_DAYS) if can_withdraw else None,
        "can_withdraw": can_withdraw,
        "can_cancel": main and contract.auto_renew and contract.state == "active",
    }
