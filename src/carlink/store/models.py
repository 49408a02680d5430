"""Tables of the store: carts, saved cards and addresses, orders, contracts, payments, entitlements.

Orders and contracts copy what was sold (service name, term, price, terms versions) so a later change of the
catalogue never changes them (STO-1).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class Cart(Base):
    """One cart per person and vehicle. Every change raises `revision`; an order is placed for one
    revision, which is what makes a double confirmation land on the same order."""

    __tablename__ = "carts"
    __table_args__ = (UniqueConstraint("account_id", "vehicle_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int] = mapped_column(default=1)
    payment_method_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_methods.id", ondelete="SET NULL"), default=None
    )
    billing: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CartLine(Base):
    __tablename__ = "cart_lines"
    __table_args__ = (UniqueConstraint("cart_id", "service_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id", ondelete="CASCADE"), index=True)
    service_code: Mapped[str] = mapped_column(String(40))
    offer_id: Mapped[int] = mapped_column(ForeignKey("catalog_offers.id"))
    auto_renew: Mapped[bool] = mapped_column(default=False)
    # REQ: SEC-1 — a tracking package's number the SOC calls, normalised; copied into the activation.
    soc_phone: Mapped[str | None] = mapped_column(String(20), default=None)


class BillingAddress(Base):
    """The address kept in a person's profile, for express checkout (STO-3)."""

    __tablename__ = "billing_addresses"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    street: Mapped[str] = mapped_column(String(200))
    postcode: Mapped[str] = mapped_column(String(16))
    city: Mapped[str] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2))

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "street": self.street,
            "postcode": self.postcode,
            "city": self.city,
            "country": self.country,
        }


class PaymentMethod(Base):
    """A card as the payment gateway's token: never the number, only brand, last 4 and expiry."""

    __tablename__ = "payment_methods"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    brand: Mapped[str] = mapped_column(String(16))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int]
    exp_year: Mapped[int]
    holder: Mapped[str] = mapped_column(String(120), default="")
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("cart_id", "cart_revision"),
        Index("ix_orders_state_created_at", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id", ondelete="SET NULL"), nullable=True)
    cart_revision: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), default="placed")
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int]
    language: Mapped[str] = mapped_column(String(8), default="en")
    billing: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    payment_method_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_methods.id", ondelete="SET NULL"), default=None
    )
    # What the lines are, as sold: service code and name, offer id and version, term, price, terms ids.
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    charge_id: Mapped[str | None] = mapped_column(String(64), default=None)
    failure_code: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    @property
    def number(self) -> str:
        return f"CL-{self.id:07d}"

    @property
    def idempotency_key(self) -> str:
        """The one key every charge attempt of this order uses, so the gateway charges it at most once."""
        return f"order-{self.id}"


class Contract(Base):
    """A service for one vehicle (VIN) for a term. It belongs to the vehicle, not to the buyer (STO-9)."""

    __tablename__ = "contracts"
    __table_args__ = (
        UniqueConstraint("order_id", "service_code"),
        Index("ix_contracts_state_ends_at", "state", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    buyer_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    service_code: Mapped[str] = mapped_column(String(40))
    service_name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16), default="service")
    offer_id: Mapped[int] = mapped_column(ForeignKey("catalog_offers.id"))
    term: Mapped[str] = mapped_column(String(8))
    term_months: Mapped[int]
    trial: Mapped[bool] = mapped_column(default=False)
    recurring: Mapped[bool] = mapped_column(default=False)
    auto_renew: Mapped[bool] = mapped_column(default=False)
    price_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    volume_mb: Mapped[int | None] = mapped_column(default=None)
    terms_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    payment_method_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_methods.id", ondelete="SET NULL"), default=None
    )
    state: Mapped[str] = mapped_column(String(12), default="active")
    # Paid periods so far minus one: a renewal moves it on by exactly one, once (see store.renewals).
    period: Mapped[int] = mapped_column(default=0)
    starts_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[dt.datetime]
    claimed_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    @property
    def number(self) -> str:
        return f"CT-{self.id:07d}"


class Payment(Base):
    """A charge or refund as the gateway booked it, one row per idempotency key."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # charge | refund
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True, default=None)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"), index=True, default=None)
    gateway_ref: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class VehicleEntitlements(Base):
    """Where the car's entitlements stand: the cloud's revision, what was published, what the car applied."""

    __tablename__ = "vehicle_entitlements"

    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(default=0)
    published_revision: Mapped[int] = mapped_column(default=0)
    applied_revision: Mapped[int] = mapped_column(default=0)
    applied_at: Mapped[dt.datetime | None] = mapped_column(default=None)
