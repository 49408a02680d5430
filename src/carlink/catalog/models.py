"""Tables of the catalogue: services, their offers (a price for a term in a country) and terms versions.

Offers and terms are never edited in place: a change retires the row and adds the next version, so an
order or contract that points at the old one keeps exactly what was sold (STO-1).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class Service(Base):
    __tablename__ = "catalog_services"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    # service | data_package (CON-3)
    kind: Mapped[str] = mapped_column(String(16), default="service")
    category: Mapped[str] = mapped_column(String(24))
    # Per language: {"en": ..., "de": ..., "ja": ...}
    names: Mapped[dict[str, str]] = mapped_column(JSON)
    descriptions: Mapped[dict[str, str]] = mapped_column(JSON)
    # Model keys of the model catalogue it fits; empty means every model.
    model_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Engines it fits (BEV, PHEV, COMBUSTION); empty means every engine.
    engines: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Run by the mobile carrier; the paid offer needs the car's data connection (STO-12).
    carrier_run: Mapped[bool] = mapped_column(default=False)
    volume_mb: Mapped[int | None] = mapped_column(default=None)
    sort_order: Mapped[int] = mapped_column(default=0)


class Offer(Base):
    """One way to buy a service in one country: a term, a price and whether it is a trial or recurring."""

    __tablename__ = "catalog_offers"
    __table_args__ = (UniqueConstraint("service_code", "country", "term", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_code: Mapped[str] = mapped_column(ForeignKey("catalog_services.code"), index=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    # trial | P1M (monthly, renews) | P1Y | P3Y …: the term's name; term_months says its length.
    term: Mapped[str] = mapped_column(String(8))
    term_months: Mapped[int]
    recurring: Mapped[bool] = mapped_column(default=False)
    trial: Mapped[bool] = mapped_column(default=False)
    price_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class TermsVersion(Base):
    """A version of the general terms (document "general") or of one service's terms, per language."""

    __tablename__ = "catalog_terms"
    __table_args__ = (UniqueConstraint("document", "language", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(8))
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    published_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(default=None)
