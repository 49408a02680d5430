"""Tables of signed data packages (keys, every metadata version ever signed, the files) and of what travels
in them: function orders, software update campaigns and the deliveries into each car."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class PackageKey(Base):
    """An Ed25519 key of the `root` or `targets` role. A retired key signs nothing new; cars stop trusting
    it once they have the root version that no longer lists it."""

    __tablename__ = "package_keys"

    keyid: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    # PKCS#8 PEM, like identity.models.SigningKey keeps the JWT keys.
    private_key: Mapped[str] = mapped_column(String(4000))
    # Raw public key, hex (the `public` of the key document in root metadata).
    public: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class MetadataVersion(Base):
    """One signed root or targets document, kept for ever: cars walk the root chain version by version."""

    __tablename__ = "package_metadata"
    __table_args__ = (UniqueConstraint("role", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    version: Mapped[int]
    expires_at: Mapped[dt.datetime]
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PackageFile(Base):
    """A file the targets metadata names; its bytes live under settings.package_dir, named by SHA-256."""

    __tablename__ = "package_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    length: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_path: Mapped[str] = mapped_column(String(1000))
    content_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    custom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- functions on demand and software updates (FOD-1..8, OTA-1..4; docs/fod.md) ----------------------------


class FunctionOrder(Base):
    """An order for a function of one vehicle: what was chosen at what price, until the car activates it.

    Nothing is charged when ordering (FOD-2): the activation the car reports is charged once (key
    `fod-{id}`) and becomes a store order with its contract, which then lives like any contract (monthly
    renewals, cancel, withdrawal, it stays with the VIN). One open order per car and function.
    """

    __tablename__ = "function_orders"
    __table_args__ = (
        Index("ix_function_orders_state_download_by", "state", "download_by"),
        Index(
            "uq_function_orders_one_open",
            "vehicle_id",
            "service_code",
            unique=True,
            sqlite_where=text("state IN ('ordered', 'activated')"),
            postgresql_where=text("state IN ('ordered', 'activated')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    service_code: Mapped[str] = mapped_column(String(40))
    service_name: Mapped[str] = mapped_column(String(120))
    offer_id: Mapped[int] = mapped_column(ForeignKey("catalog_offers.id"))
    term: Mapped[str] = mapped_column(String(8))
    price_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # The store order line as it will be concluded (service, offer, term, price, terms ids).
    line: Mapped[dict[str, Any]] = mapped_column(JSON)
    payment_method_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_methods.id", ondelete="SET NULL"), default=None
    )
    language: Mapped[str] = mapped_column(String(8), default="en")
    # ordered -> activated (the car said so; the charge is due) -> active | payment_failed; or cancelled
    state: Mapped[str] = mapped_column(String(16), default="ordered")
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    download_by: Mapped[dt.datetime]
    store_order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), default=None)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    @property
    def number(self) -> str:
        return f"FD-{self.id:07d}"

    @property
    def idempotency_key(self) -> str:
        return f"fod-{self.id}"


class UpdateCampaign(Base):
    """A software update for cars of one model (some variants, an installed version range), rolled out in
    waves: a wave opens when the one before reached its success threshold; too many failures pause it."""

    __tablename__ = "update_campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    package: Mapped[str] = mapped_column(String(200))
    model_key: Mapped[str] = mapped_column(String(32))
    variants: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every variant
    version_from: Mapped[str] = mapped_column(String(32))  # installed version >= this ...
    version_below: Mapped[str] = mapped_column(String(32))  # ... and < this
    to_version: Mapped[str] = mapped_column(String(32))
    # Cumulative share of the eligible cars per wave, in percent, e.g. [10, 50, 100].
    waves: Mapped[list[int]] = mapped_column(JSON)
    success_threshold: Mapped[int] = mapped_column(default=90)  # % installed to open the next wave
    error_threshold: Mapped[int] = mapped_column(default=10)  # % failed that pauses the campaign
    state: Mapped[str] = mapped_column(String(12), default="running")
    wave: Mapped[int] = mapped_column(default=0)
    paused_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    # Failures before this moment do not count against the error threshold (an operator resumed after a fix).
    resumed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Delivery(Base):
    """One package on its way into one car, with the state the car last reported (OTA per-car status)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "vehicle_id"),
        Index("ix_deliveries_vehicle_id_state", "vehicle_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # function | update
    package: Mapped[str] = mapped_column(String(200))
    function_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("function_orders.id", ondelete="CASCADE"), unique=True, default=None
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("update_campaigns.id", ondelete="CASCADE"), default=None
    )
    wave: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(12), default="offered")
    reason: Mapped[str | None] = mapped_column(String(200), default=None)
    have: Mapped[int | None] = mapped_column(BigInteger, default=None)
    length: Mapped[int | None] = mapped_column(BigInteger, default=None)
    failures: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # When the car first had the verified file (FOD-3's window waits for this, whatever came after).
    downloaded_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class VehicleDeliveries(Base):
    """Where the car's delivery set stands: the cloud's revision and what was published (as entitlements)."""

    __tablename__ = "vehicle_deliveries"

    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(default=0)
    published_revision: Mapped[int] = mapped_column(default=0)


class UpdateConsent(Base):
    """OTA-1: a person switched online updates on or off for one vehicle; the latest row counts."""

    __tablename__ = "update_consents"
    __table_args__ = (Index("ix_update_consents_vehicle_id_at", "vehicle_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    enabled: Mapped[bool]
    policy_version: Mapped[int | None] = mapped_column(default=None)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
