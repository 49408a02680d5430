"""Recall campaigns (PAR-3): an operator names the affected cars, their main users are told, the car's
service page shows the recall, it is booked (where the country allows) and a dealer marks it done.

The affected cars are found by reading the garage's vehicles table (read only): the garage has no use case
for "vehicles of these models and years" yet, and a recall must not wait for one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.errors import CarlinkError, Conflict, NotFound
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.identity.models import Account
from carlink.notify import service as notify
from carlink.partners import dealers
from carlink.partners.models import RecallCampaign, RecallVehicle
from carlink.protocol.catalogue import CATALOGUE
from carlink.protocol.vin import InvalidVin, normalise_vin

OPEN = "open"
BOOKED = "booked"
DONE = "done"
# A car's way through a recall (PAR-3): booked and un-booked by appointments, done by its dealer.
TRANSITIONS: dict[str, frozenset[str]] = {
    OPEN: frozenset({BOOKED, DONE}),
    BOOKED: frozenset({OPEN, DONE}),
    DONE: frozenset(),
}
LANGUAGES = ("en", "de", "ja")
_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{1,23}")
MODEL_KEYS = tuple(model.key for model in CATALOGUE)


@dataclass(frozen=True)
class RecallDraft:
    """What an operator typed for a new campaign."""

    code: str
    titles: dict[str, str]
    descriptions: dict[str, str]
    remedy: str
    model_keys: list[str]
    year_from: int | None = None
    year_to: int | None = None
    vins: list[str] | None = None


def may_move(current: str, wanted: str) -> bool:
    return wanted in TRANSITIONS.get(current, frozenset())


def text_in(texts: dict[str, str], language: str) -> str:
    """A campaign's title or description in the person's language, else in English."""
    return texts.get(language) or texts.get("en") or next(iter(texts.values()), "")


def checked(draft: RecallDraft) -> RecallDraft:
    """The draft as it will be stored, or a refusal naming what is missing."""
    code = draft.code.strip().upper()
    if not _CODE.fullmatch(code):
        raise CarlinkError(
            "give the campaign a code of 2 to 24 letters, digits or dashes", code="invalid_recall_code"
        )
    titles = {lang: text.strip()[:200] for lang, text in draft.titles.items() if lang in LANGUAGES and text}
    descriptions = {
        lang: text.strip() for lang, text in draft.descriptions.items() if lang in LANGUAGES and text
    }
    if not titles.get("en"):
        raise CarlinkError("give the campaign an English title", code="recall_title_missing")
    unknown = [key for key in draft.model_keys if key not in MODEL_KEYS]
    if unknown:
        raise CarlinkError(f"unknown model {unknown[0]}", code="invalid_model")
    vins = []
    for raw in draft.vins or []:
        try:
            vins.append(normalise_vin(raw))
        except InvalidVin as error:
            raise CarlinkError(f"{raw.strip()[:17]}: {error}", code="invalid_vin") from error
    if not draft.model_keys and not vins:
        raise CarlinkError("choose the affected models or list the VINs", code="recall_scope_missing")
    if draft.year_from and draft.year_to and draft.year_from > draft.year_to:
        raise CarlinkError("the first model year comes after the last", code="invalid_year")
    return RecallDraft(
        code,
        titles,
        descriptions,
        draft.remedy.strip(),
        sorted(set(draft.model_keys)),
        draft.year_from or None,
        draft.year_to or None,
        sorted(set(vins)),
    )


async def affected_vehicles(session: AsyncSession, campaign: RecallCampaign) -> list[Vehicle]:
    if campaign.vins:
        query = select(Vehicle).where(Vehicle.vin.in_(campaign.vins))
    else:
        query = select(Vehicle).where(Vehicle.model_key.in_(campaign.model_keys))
        if campaign.year_from is not None:
            query = query.where(Vehicle.model_year >= campaign.year_from)
        if campaign.year_to is not None:
            query = query.where(Vehicle.model_year <= campaign.year_to)
    return list(await session.scalars(query.order_by(Vehicle.id)))


async def create_campaign(
    session: AsyncSession, draft: RecallDraft, *, created_by: int | None = None, tell_owners: bool = True
) -> tuple[RecallCampaign, int]:
    """Records the campaign, matches the affected cars and tells each car's main user; returns the campaign
    and how many cars it affects."""
    draft = checked(draft)
    if await session.scalar(select(RecallCampaign.id).where(RecallCampaign.code == draft.code)) is not None:
        raise Conflict(f"a campaign {draft.code} exists already", code="recall_exists")
    campaign = RecallCampaign(
        code=draft.code,
        titles=draft.titles,
        descriptions=draft.descriptions,
        remedy=draft.remedy,
        model_keys=[] if draft.vins else draft.model_keys,
        year_from=None if draft.vins else draft.year_from,
        year_to=None if draft.vins else draft.year_to,
        vins=draft.vins or [],
        created_by=created_by,
    )
    session.add(campaign)
    await session.flush()
    vehicles = await affected_vehicles(session, campaign)
    for vehicle in vehicles:
        session.add(RecallVehicle(campaign_id=campaign.id, vehicle_id=vehicle.id))
    await session.flush()
    if tell_owners:
        await _tell_main_users(session, campaign, vehicles)
    return campaign, len(vehicles)


async def _tell_main_users(session: AsyncSession, campaign: RecallCampaign, vehicles: list[Vehicle]) -> None:

    owners = await garage.main_users(session, {vehicle.id for vehicle in vehicles})
    for vehicle in vehicles:
        account = await session.get(Account, owners[vehicle.id]) if vehicle.id in owners else None
        if account is None or account.deleted_at is not None:
            continue
        await notify.send_email(
            session,
            to=account.email,
            language=account.locale,
            template="recall_notice",
            context={
                "name": account.display_name or account.email,
                "vin": vehicle.vin,
                "code": campaign.code,
                "title": text_in(campaign.titles, account.locale),
                "description": text_in(campaign.descriptions, account.locale),
                "remedy": campaign.remedy,
            },
            dedupe_key=f"recall-{campaign.id}-vehicle-{vehicle.id}",
            account_id=account.id,
            link=f"/vehicles/{vehicle.vin}/service",
        )


async def campaigns(session: AsyncSession) -> list[tuple[RecallCampaign, int, int]]:
    """Every campaign, newest first, with how many cars it affects and how many are done."""
    rows = await session.execute(
        select(
            RecallCampaign,
            func.count(RecallVehicle.id),
            func.count(RecallVehicle.id).filter(RecallVehicle.state == DONE),
        )
        .outerjoin(RecallVehicle, RecallVehicle.campaign_id == RecallCampaign.id)
        .group_by(RecallCampaign.id)
        .order_by(RecallCampaign.created_at.desc(), RecallCampaign.id.desc())
    )
    return [(row[0], row[1], row[2]) for row in rows.all()]


async def campaign(session: AsyncSession, campaign_id: int) -> RecallCampaign:
    found = await session.get(RecallCampaign, campaign_id) if 0 < campaign_id < 2**31 else None
    if found is None:
        raise NotFound("no such recall campaign", code="recall_not_found")
    return found


async def close_campaign(session: AsyncSession, campaign_id: int) -> RecallCampaign:
    found = await campaign(session, campaign_id)
    if found.closed_at is None:
        found.closed_at = utcnow()
    return found


async def recalls_of_vehicle(
    session: AsyncSession, vehicle_id: int, *, include_done: bool = False
) -> list[tuple[RecallCampaign, RecallVehicle]]:
    """The car's recalls of campaigns still running; without `include_done` only those not yet remedied."""
    query = (
        select(RecallCampaign, RecallVehicle)
        .join(RecallVehicle, RecallVehicle.campaign_id == RecallCampaign.id)
        .where(RecallVehicle.vehicle_id == vehicle_id, RecallCampaign.closed_at.is_(None))
        .order_by(RecallCampaign.created_at, RecallCampaign.id)
    )
    if not include_done:
        query = query.where(RecallVehicle.state != DONE)
    rows = await session.execute(query)
    return [(row[0], row[1]) for row in rows.all()]


async def open_recall(session: AsyncSession, vehicle_id: int, campaign_id: int) -> RecallCampaign:
    """A running campaign this car still needs; the same 404 otherwise."""
    for found, row in await recalls_of_vehicle(session, vehicle_id):
        if found.id == campaign_id and row.state == OPEN:
            return found
    raise NotFound("this recall is not open for this vehicle", code="recall_not_found")


async def mark_done(
    session: AsyncSession, *, partner_id: int, vehicle_id: int, campaign_id: int, by: int
) -> None:
    """A dealer records that the recall work on one of its cars is done (PAR-3)."""
    if not await dealers.serves_vehicle(session, partner_id, vehicle_id):
        raise NotFound("no such vehicle among your customers' cars", code="vehicle_not_found")
    row = await session.scalar(
        select(RecallVehicle).where(
            RecallVehicle.campaign_id == campaign_id, RecallVehicle.vehicle_id == vehicle_id
        )
    )
    if row is None:
        raise NotFound("this recall does not affect this vehicle", code="recall_not_found")
    if row.state == DONE:
        return  # a second click on "Mark as done" changes nothing
    row.state = DONE
    row.done_at = utcnow()
    row.done_by = by
    await session.flush()


async def move(session: AsyncSession, campaign_id: int, vehicle_id: int, wanted: str) -> None:
    """Books or un-books the car's recall as its appointment is made or cancelled; done stays done."""
    row = await session.scalar(
        select(RecallVehicle).where(
            RecallVehicle.campaign_id == campaign_id, RecallVehicle.vehicle_id == vehicle_id
        )
    )
    if row is not None and may_move(row.state, wanted):
        row.state = wanted


async def recalls_at_partner(
    session: AsyncSession, partner_id: int
) -> list[tuple[RecallCampaign, RecallVehicle, Vehicle]]:
    """The open or booked recalls of the cars this dealer serves."""
    served = await dealers.served_vehicle_ids(session, partner_id)
    if not served:
        return []
    rows = await session.execute(
        select(RecallCampaign, RecallVehicle, Vehicle)
        .join(RecallVehicle, RecallVehicle.campaign_id == RecallCampaign.id)
        .join(Vehicle, Vehicle.id == RecallVehicle.vehicle_id)
        .where(
            RecallVehicle.vehicle_id.in_(served),
            RecallVehicle.state != DONE,
            RecallCampaign.closed_at.is_(None),
        )
        .order_by(RecallCampaign.code, Vehicle.vin)
    )
    return [(row[0], row[1], row[2]) for row in rows.all()]
