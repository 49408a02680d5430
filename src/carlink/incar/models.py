"""Tables of in-car ID login: logins in cars, the profile per ID, service settings and the code guard."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class InCarLogin(Base):
    """An ID logged into a car (VEH-7, VEH-8). The car's key keeps the token; only its hash is stored here.

    One row per (car, ID): a new login in the same car replaces the token. Deleting the row ends the login,
    and the car learns it at its next resume.
    """

    __tablename__ = "in_car_logins"
    __table_args__ = (UniqueConstraint("vehicle_id", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The role at login: main, secondary or visitor (a visitor entered the car's security code, VEH-8).
    role: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class InCarProfile(Base):
    """The seat, mirror, steering and climate settings of one ID, the same in every car (VEH-7)."""

    __tablename__ = "in_car_profiles"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    seat_position: Mapped[int | None] = mapped_column(default=None)
    mirror_position: Mapped[int | None] = mapped_column(default=None)
    steering_position: Mapped[int | None] = mapped_column(default=None)
    climate_temperature_c: Mapped[float | None] = mapped_column(default=None)
    climate_mode: Mapped[str | None] = mapped_column(String(8), default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class InCarServiceItem(Base):
    """One service setting of an ID: a favourite, a radio station or a weather place (VEH-7)."""

    __tablename__ = "in_car_service_items"
    __table_args__ = (UniqueConstraint("account_id", "kind", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class InCarCodeGuard(Base):
    """Wrong security codes typed into one car by people who are not its users; locks after a few (VEH-8)."""

    __tablename__ = "in_car_code_guards"

    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(default=None)
