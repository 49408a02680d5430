"""Tables of the garage domain."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class Vehicle(Base):
    __tablename__ = "vehicles"

    id: Mapped[int] = mapped_column(primary_key=True)
    vin: Mapped[str] = mapped_column(String(17), unique=True)
    model_key: Mapped[str] = mapped_column(String(32))
    variant_code: Mapped[str] = mapped_column(String(16))
    model_year: Mapped[int]
    custom_name: Mapped[str] = mapped_column(String(60), default="")
    color: Mapped[str] = mapped_column(String(40), default="")
    color_hex: Mapped[str] = mapped_column(String(6), default="c3cdd3")
    country: Mapped[str] = mapped_column(String(2), default="DE")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # What the car reports (VEH-5, VEH-6, VEH-9); the cloud enforces it.
    online: Mapped[bool] = mapped_column(default=False)
    network: Mapped[str] = mapped_column(String(8), default="NONE")
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    privacy_mode: Mapped[bool] = mapped_column(default=False)
    remote_access_authorised: Mapped[bool] = mapped_column(default=False)
    # Set when the main user's security code was reset, until the car confirms it switched remote access off.
    remote_access_reset_pending: Mapped[bool] = mapped_column(default=False)
    # The installed software version, as the car last reported it (OTA-2).
    software_version: Mapped[str] = mapped_column(String(32), default="1.0.0", server_default="1.0.0")


class VehicleUser(Base):
    """A person's place on a vehicle: the one main user or a secondary user, with their pairing code."""

    __tablename__ = "vehicle_users"
    __table_args__ = (
        UniqueConstraint("vehicle_id", "account_id"),
        UniqueConstraint("vehicle_id", "pairing_code"),
        # One main user per vehicle (VEH-2), whatever two units of work try at once.
        Index(
            "uq_vehicle_users_one_main",
            "vehicle_id",
            unique=True,
            sqlite_where=text("role = 'main'"),
            postgresql_where=text("role = 'main'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(10))
    pairing_code: Mapped[str] = mapped_column(String(8))
    paired_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
