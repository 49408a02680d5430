"""Use cases of the catalogue: what a car can be given in its country, terms in force, revisions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.catalog.models import Offer, Service, TermsVersion
from carlink.catalog.rules import fits
from carlink.db.base import utcnow
from carlink.errors import NotFound

GENERAL = "general"


@dataclass(frozen=True)
class ServiceOffers:
    service: Service
    offers: list[Offer]

    def name(self, language: str) -> str:
        return service_name(self.service, language)


def service_name(service: Service, language: str) -> str:
    return service.names.get(language) or service.names["en"]


def service_description(service: Service, language: str) -> str:
    return service.descriptions.get(language) or service.descriptions["en"]


_TERM_LABELS = {
    "en": {
        "trial": "Free trial, {n} months",
        "P1M": "Monthly",
        "P1Y": "1 year",
        "P3Y": "3 years",
        "LIFE": "Permanent, for the car's life",
    },
    "de": {
        "trial": "Kostenlos testen, {n} Monate",
        "P1M": "Monatlich",
        "P1Y": "1 Jahr",
        "P3Y": "3 Jahre",
        "LIFE": "Dauerhaft, für das ganze Fahrzeugleben",
    },
    "ja": {
        "trial": "無料体験 {n}か月",
        "P1M": "月額",
        "P1Y": "1年",
        "P3Y": "3年",
        "LIFE": "買い切り（車両の生涯）",
    },
}


def term_label(term: str, months: int, language: str) -> str:
    labels = _TERM_LABELS.get(language, _TERM_LABELS["en"])
    return labels.get(term, f"{months} months").format(n=months)


async def services_for(
    session: AsyncSession,
    *,
    country: str,
    model_key: str | None = None,
    engine: str | None = None,
    functions: bool = False,
) -> list[ServiceOffers]:
    """The services a car of this model and engine can be given in its country, with their offers in force;
    without a model (or engine), every service of the country. The store sells services and data
    packages; with `functions`, only the functions on demand (FOD-1), ordered on the car's Functions page."""
    offers = list(await session.scalars(_offers_in_force().where(Offer.country == country.upper())))
    services = list(await session.scalars(select(Service).order_by(Service.sort_order)))
    return _with_offers(services, offers, model_key=model_key, engine=engine, functions=functions)


async def services_by_country(session: AsyncSession) -> dict[str, list[ServiceOffers]]:
    """Every country's store services (no model given), in two queries: the countries overview (CON-6)
    would otherwise ask twice per country."""
    offers = list(await session.scalars(_offers_in_force()))
    services = list(await session.scalars(select(Service).order_by(Service.sort_order)))
    by_country: dict[str, list[Offer]] = {}
    for row in offers:
        by_country.setdefault(row.country, []).append(row)
    return {country: _with_offers(services, mine) for country, mine in by_country.items()}


def _offers_in_force() -> Select[Offer]:
    return select(Offer).where(Offer.retired_at.is_(None)).order_by(Offer.trial.desc(), Offer.term_months)


def _with_offers(
    services: list[Service],
    offers: list[Offer],
    *,
    model_key: str | None = None,
    engine: str | None = None,
    functions: bool = False,
) -> list[ServiceOffers]:
    result = []
    for service in services:
        if (service.kind == "function") != functions:
            continue
        mine = [o for o in offers if o.service_code == service.code]
        if mine and (model_key is None or engine is None or fits(service, model_key, engine)):
            result.append(ServiceOffers(service, mine))
    return result


async def service(session: AsyncSession, code: str) -> Service:
    row = await session.get(Service, code)
    if row is None:
        raise NotFound("There is no such service in the store.", code="service_not_found")
    return row


async def offer(session: AsyncSession, offer_id: int) -> Offer | None:
    return await session.get(Offer, offer_id)


async def terms_in_force(session: AsyncSession, documents: list[str], language: str) -> list[TermsVersion]:
    """The latest version of each document in the language (English where a translation is missing)."""
    rows = list(
        await session.scalars(
            select(TermsVersion)
            .where(TermsVersion.document.in_(documents), TermsVersion.retired_at.is_(None))
            .order_by(TermsVersion.version)
        )
    )
    chosen: dict[str, TermsVersion] = {}
    for row in rows:  # later versions replace earlier ones; the person's language wins over English
        current = chosen.get(row.document)
        if row.language == language or (
            row.language == "en" and (current is None or current.language != language)
        ):
            chosen[row.document] = row
    return [chosen[d] for d in documents if d in chosen]


async def terms_version(session: AsyncSession, terms_id: int) -> TermsVersion:
    row = await session.get(TermsVersion, terms_id)
    if row is None:
        raise NotFound("There is no such terms version.", code="terms_not_found")
    return row


async def revise_offer(session: AsyncSession, offer_id: int, *, price_minor: int) -> Offer:
    """A new price: retires the offer and adds its next version. Orders and contracts keep the old one."""
    old = await session.get(Offer, offer_id, with_for_update=True)
    if old is None or old.retired_at is not None:
        raise NotFound("This offer is not in force.", code="offer_not_found")
    if price_minor < 0 or (old.trial and price_minor != 0):
        raise ValueError("a price is a non-negative amount, and a trial is free")
    old.retired_at = utcnow()
    new = Offer(
        service_code=old.service_code,
        country=old.country,
        term=old.term,
        term_months=old.term_months,
        recurring=old.recurring,
        trial=old.trial,
        price_minor=price_minor,
        currency=old.currency,
        version=old.version + 1,
    )
    session.add(new)
    await session.flush()
    return new


async def publish_terms(
    session: AsyncSession, document: str, language: str, *, title: str, body: str
) -> TermsVersion:
    """The next version of a terms document; the previous one stays readable for the contracts under it."""
    latest = await session.scalar(
        select(TermsVersion)
        .where(TermsVersion.document == document, TermsVersion.language == language)
        .order_by(TermsVersion.version.desc())
        .limit(1)
    )
    row = TermsVersion(
        document=document,
        language=language,
        version=(latest.version + 1) if latest else 1,
        title=title,
        body=body,
    )
    session.add(row)
    await session.flush()
    return row
