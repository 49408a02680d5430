"""Tables of the partners domain: countries, partners (dealers) and their staff, a person's chosen partner."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class Country(Base):
    """What differs per country (CON-6, PRV-2, PRV-3, PAR-2, PAR-3); operators edit it, a start never does."""

    __tablename__ = "countries"

    code: Mapped[str] = mapped_column(String(2), primary_key=True)  # ISO 3166-1 alpha-2
    # Where a person revokes their consent by email (PRV-2); none: through the dealer (PRV-3).
    privacy_contact: Mapped[str | None] = mapped_column(String(254), default=None)
    # Appointments booked in the portal (PAR-2) and recalls booked directly (PAR-3); otherwise phone/email.
    online_booking: Mapped[bool] = mapped_column(default=False)
    recall_booking: Mapped[bool] = mapped_column(default=False)
    # Connected services are offered here at all (the store's offers say which, CON-6).
    connect_available: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Partner(Base):
    """A dealer or service partner (PAR-1); its staff sign in to the dealer console."""

    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2), index=True)
    city: Mapped[str] = mapped_column(String(80), default="")
    street: Mapped[str] = mapped_column(String(120), default="")
    postcode: Mapped[str] = mapped_column(String(16), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PartnerStaff(Base):
    """A named contact at a partner, shown on a customer's contacts page (ACC-8)."""

    __tablename__ = "partner_staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(80), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")


class PreferredPartner(Base):
    """The partner a person chose (PAR-1); consent to data exchange refers to it (PRV-2)."""

    __tablename__ = "preferred_partners"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    chosen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Sale(Base):
    """A dealer recorded the sale of a car to a buyer (ACC-2); the latest sale of a VIN names its dealer."""

    __tablename__ = "sales"
    # The latest sale of a car is the one no later sale of it follows (partners.dealers): a lookup here.
    __table_args__ = (Index("ix_sales_vehicle_id_id", "vehicle_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    buyer_email: Mapped[str] = mapped_column(String(254))
    buyer_name: Mapped[str] = mapped_column(String(120), default="")
    # Set once the buyer has an ID (registered from the invitation, or already had one).
    buyer_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True, default=None
    )
    delivery_date: Mapped[dt.date | None] = mapped_column(default=None)
    recorded_by: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    sold_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- after-sales: service booking (PAR-2) and recalls (PAR-3) -----------------------------------------------


class ServiceSlot(Base):
    """A time a partner's workshop can take a car (PAR-2); taken when `appointment_id` is set.

    Booking locks the row and sets `appointment_id` with a conditional UPDATE (``WHERE appointment_id IS
    NULL``), so of two people who click the same slot at once exactly one wins (partners.booking).
    """

    __tablename__ = "service_slots"
    __table_args__ = (UniqueConstraint("partner_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(index=True)  # UTC; the page shows the partner's local time
    minutes: Mapped[int] = mapped_column(default=60)
    # Not a foreign key: appointments point at their slot, and the two would make a cycle.
    appointment_id: Mapped[int | None] = mapped_column(default=None, unique=True)


class Appointment(Base):
    """A booked visit of a car at a partner (PAR-2), for service or to remedy a recall (PAR-3)."""

    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("service_slots.id", ondelete="CASCADE"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True, default=None
    )
    kind: Mapped[str] = mapped_column(String(10), default="service")  # service | recall
    recall_id: Mapped[int | None] = mapped_column(
        ForeignKey("recall_campaigns.id", ondelete="SET NULL"), default=None
    )
    note: Mapped[str] = mapped_column(String(500), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    state: Mapped[str] = mapped_column(String(10), default="booked")  # booked -> cancelled
    booked_by: Mapped[str] = mapped_column(String(10), default="customer")  # customer | dealer
    starts_at: Mapped[dt.datetime]  # a copy of the slot's time, kept when the slot is freed
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class RecallCampaign(Base):
    """A recall (PAR-3): which cars it affects (model keys and years, or a list of VINs) and its texts."""

    __tablename__ = "recall_campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    # Titles and descriptions per language: {"en": "...", "de": "...", "ja": "..."}.
    titles: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    descriptions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    remedy: Mapped[str] = mapped_column(Text, default="")
    model_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    year_from: Mapped[int | None] = mapped_column(default=None)
    year_to: Mapped[int | None] = mapped_column(default=None)
    vins: Mapped[list[str]] = mapped_column(JSON, default=list)  # instead of models and years
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class RecallVehicle(Base):
    """A car a recall affects and how far its remedy is: open -> booked -> done (PAR-3)."""

    __tablename__ = "recall_vehicles"
    __table_args__ = (UniqueConstraint("campaign_id", "vehicle_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("recall_campaigns.id", ondelete="CASCADE"), index=True
    )
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(8), default="open")
    done_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    done_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    # When the car's main user was told by mail (or was gone); None: the jobs role still tells them.
    notified_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
