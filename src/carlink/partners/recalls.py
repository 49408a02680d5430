"""Recall campaigns (PAR-3): an operator names the affected cars, their main users are told, the car's
service page shows the recall, it is booked (where the country allows) and a dealer marks it done.

The affected cars are found by reading the garage's vehicles and vehicle_users tables (read only): the
garage has no use case for "vehicles of these models and years" or "their main users" yet, and a recall
must not wait for one. A campaign matches its cars with one INSERT ... SELECT; their main users are told in
the operator's request up to `TELL_AT_ONCE` cars, else by the jobs role in batches (`notify_recall_owners`).
A car registered later joins the running campaigns that affect it (`match_new_vehicle`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, Select, func, insert, literal, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.db.base import UTCDateTime, add_unique, utcnow
from carlink.errors import CarlinkError, Conflict, NotFound
from carlink.garage import service as garage
from carlink.garage.models import Vehicle, VehicleUser
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
LANGUAGES = i18n.LANGUAGES  # a recall's title and description in each
_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{1,23}")
MODEL_KEYS = tuple(model.key for model in CATALOGUE)
# Owners told in the operator's request at most; more are told by the jobs role in batches this size.
TELL_AT_ONCE = 500


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
        raise CarlinkError("unknown model %(model)s", code="invalid_model", model=unknown[0])
    vins = []
    for raw in draft.vins or []:
        try:
            vins.append(normalise_vin(raw))
        except InvalidVin as error:
            raise CarlinkError(
                "%(vin)s is not a valid VIN: 17 characters, digits and capital letters except I, O and Q",
                code="invalid_vin",
                vin=raw.strip()[:17],
            ) from error
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


def _matching(campaign: RecallCampaign) -> Select[int]:
    """The ids of the cars the campaign affects, as a select."""
    query = select(Vehicle.id)
    if campaign.vins:
        return query.where(Vehicle.vin.in_(campaign.vins))
    query = query.where(Vehicle.model_key.in_(campaign.model_keys))
    if campaign.year_from is not None:
        query = query.where(Vehicle.model_year >= campaign.year_from)
    if campaign.year_to is not None:
        query = query.where(Vehicle.model_year <= campaign.year_to)
    return query


def affects(campaign: RecallCampaign, vehicle: Vehicle) -> bool:
    """The same rule as `_matching`, for one car."""
    if campaign.vins:
        return vehicle.vin in campaign.vins
    return (
        vehicle.model_key in campaign.model_keys
        and (campaign.year_from is None or vehicle.model_year >= campaign.year_from)
        and (campaign.year_to is None or vehicle.model_year <= campaign.year_to)
    )


async def affected_vehicles(session: AsyncSession, campaign: RecallCampaign) -> list[Vehicle]:
    query = select(Vehicle).where(Vehicle.id.in_(_matching(campaign)))
    return list(await session.scalars(query.order_by(Vehicle.id)))


async def create_campaign(
    session: AsyncSession, draft: RecallDraft, *, created_by: int | None = None, tell_owners: bool = True
) -> tuple[RecallCampaign, int]:
    """Records the campaign, matches the affected cars and tells each car's main user; returns the campaign
    and how many cars it affects.

    The cars are matched with one INSERT ... SELECT. Up to `TELL_AT_ONCE` cars' owners are told in this
    request; beyond that the jobs role tells them in batches (`notify_recall_owners`), so the operator's
    request stays short however many cars a campaign affects.
    """
    draft = checked(draft)
    if await session.scalar(select(RecallCampaign.id).where(RecallCampaign.code == draft.code)) is not None:
        raise Conflict("a campaign %(campaign)s exists already", code="recall_exists", campaign=draft.code)
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
    # Seeded campaigns are not news: their cars count as told, so the jobs role mails nobody.
    told = literal(utcnow(), UTCDateTime()) if not tell_owners else null()
    matching = _matching(campaign).subquery()
    await session.execute(
        insert(RecallVehicle).from_select(
            ["campaign_id", "vehicle_id", "state", "notified_at"],
            select(literal(campaign.id), matching.c.id, literal(OPEN), told),
        )
    )
    count = await session.scalar(
        select(func.count(RecallVehicle.id)).where(RecallVehicle.campaign_id == campaign.id)
    )
    if tell_owners and count is not None and count <= TELL_AT_ONCE:
        await notify_recall_owners(session, limit=TELL_AT_ONCE, campaign_id=campaign.id)
    return campaign, count or 0


async def notify_recall_owners(
    session: AsyncSession, limit: int = TELL_AT_ONCE, *, campaign_id: int | None = None
) -> int:
    """REQ: PAR-3 — tells the main users of up to `limit` affected cars not told yet, by mail and
    notification (one per car and campaign); answers how many cars were handled.

    A car without a main user waits until it has one (a car sold later, `match_new_vehicle`); a deleted
    ID is not written to. Closed campaigns tell nobody. Run by the jobs role; two instances may pick the
    same rows (on SQLite, or PostgreSQL's SKIP LOCKED aside): the mail's event key sends it once.
    """
    query = (
        select(RecallVehicle, RecallCampaign, Vehicle, Account)
        .join(RecallCampaign, RecallCampaign.id == RecallVehicle.campaign_id)
        .join(Vehicle, Vehicle.id == RecallVehicle.vehicle_id)
        .join(
            VehicleUser,
            (VehicleUser.vehicle_id == RecallVehicle.vehicle_id) & (VehicleUser.role == garage.MAIN),
        )
        .join(Account, Account.id == VehicleUser.account_id)
        .where(RecallVehicle.notified_at.is_(None), RecallCampaign.closed_at.is_(None))
        .order_by(RecallVehicle.id)
        .limit(limit)
        .with_for_update(of=RecallVehicle, skip_locked=True)
    )
    if campaign_id is not None:
        query = query.where(RecallVehicle.campaign_id == campaign_id)
    rows = (await session.execute(query)).all()
    for _row, found, vehicle, account in rows:
        if account.deleted_at is None:
            await _tell(session, found, vehicle, account)
    if rows:
        await session.execute(
            update(RecallVehicle)
            .where(RecallVehicle.id.in_([row[0].id for row in rows]))
            .values(notified_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    return len(rows)


async def _tell(session: AsyncSession, campaign: RecallCampaign, vehicle: Vehicle, account: Account) -> None:
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


async def match_new_vehicle(session: AsyncSession, vehicle: Vehicle) -> int:
    """REQ: PAR-3 — a car registered after a campaign started joins every running campaign that affects it;
    its main user is told by the jobs role once the car has one. Answers how many campaigns it joined."""
    running = list(await session.scalars(select(RecallCampaign).where(RecallCampaign.closed_at.is_(None))))
    present = set(
        await session.scalars(select(RecallVehicle.campaign_id).where(RecallVehicle.vehicle_id == vehicle.id))
    )
    joined = 0
    for found in running:
        if found.id in present or not affects(found, vehicle):
            continue
        if await add_unique(session, RecallVehicle(campaign_id=found.id, vehicle_id=vehicle.id)):
            joined += 1
    return joined


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
        if found.id == campaign_id and row.state == BOOKED:
            raise _booked_already()
    raise NotFound("this recall is not open for this vehicle", code="recall_not_found")


def _booked_already() -> Conflict:
    return Conflict(
        "this recall is booked already; you find the appointment on the car's service page",
        code="recall_booked",
    )


async def claim_for_booking(session: AsyncSession, campaign_id: int, vehicle_id: int) -> None:
    """open -> booked for an appointment about to be made; 409 `recall_booked` when it is not open.

    A conditional UPDATE (``... WHERE state = 'open'``) checked by its row count: of two bookings of the
    same recall at once, the second waits for the first's row lock (PostgreSQL) and then finds it booked.
    """
    claimed: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        update(RecallVehicle)
        .where(
            RecallVehicle.campaign_id == campaign_id,
            RecallVehicle.vehicle_id == vehicle_id,
            RecallVehicle.state == OPEN,
        )
        .values(state=BOOKED)
    )
    if claimed.rowcount != 1:
        raise _booked_already()


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
    """Un-books the car's recall as its appointment is cancelled (booking is `claim_for_booking`); done
    stays done."""
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
    rows = await session.execute(
        select(RecallCampaign, RecallVehicle, Vehicle)
        .join(RecallVehicle, RecallVehicle.campaign_id == RecallCampaign.id)
        .join(Vehicle, Vehicle.id == RecallVehicle.vehicle_id)
        .where(
            RecallVehicle.vehicle_id.in_(dealers.served_vehicles(partner_id)),
            RecallVehicle.state != DONE,
            RecallCampaign.closed_at.is_(None),
        )
        .order_by(RecallCampaign.code, Vehicle.vin)
    )
    return [(row[0], row[1], row[2]) for row in rows.all()]
