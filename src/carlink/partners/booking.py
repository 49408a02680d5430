"""Service appointments (PAR-2): a partner's free slots, booking one, cancelling, the confirmation mail.

Slots are stored in UTC and shown in the partner's local time. Two people may click the same slot at the
same moment: booking locks the slot row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite units of work
take turns) and claims it with a conditional UPDATE (``... WHERE appointment_id IS NULL``) checked by its
row count, so exactly one wins. The loser gets 409 `slot_taken`. A recall is claimed the same way
(``... WHERE state = 'open'``) before its appointment is made: 409 `recall_booked` for the second.

The jobs role keeps the slots of the partners in countries that book online (`ensure_slots`, hourly).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import Database, utcnow
from carlink.errors import CarlinkError, Conflict, NotFound, vehicle_not_found
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.garage.service import GarageEntry
from carlink.i18n import BABEL_LOCALES
from carlink.identity.models import Account
from carlink.notify import service as notify
from carlink.partners import dealers, recalls
from carlink.partners import service as partners
from carlink.partners.models import (
    Appointment,
    Country,
    Partner,
    RecallCampaign,
    RecallVehicle,
    ServiceSlot,
)

SERVICE = "service"
RECALL = "recall"
KINDS = (SERVICE, RECALL)
BOOKED = "booked"
CANCELLED = "cancelled"
# An appointment is booked, then perhaps cancelled; a cancelled one stays cancelled (book a new one).
TRANSITIONS: dict[str, frozenset[str]] = {BOOKED: frozenset({CANCELLED}), CANCELLED: frozenset()}
BY_CUSTOMER = "customer"
BY_DEALER = "dealer"
BOOKING_DAYS = 14
NOTE_LENGTH = 500

# The partner's local time for the page and the mail; a country missing here shows UTC.
TIME_ZONES = {
    "AT": "Europe/Vienna", "AU": "Australia/Sydney", "BE": "Europe/Brussels", "BG": "Europe/Sofia",
    "BR": "America/Sao_Paulo", "CA": "America/Toronto", "CH": "Europe/Zurich", "CL": "America/Santiago",
    "CY": "Asia/Nicosia", "CZ": "Europe/Prague", "DE": "Europe/Berlin", "DK": "Europe/Copenhagen",
    "EE": "Europe/Tallinn", "ES": "Europe/Madrid", "FI": "Europe/Helsinki", "FR": "Europe/Paris",
    "GB": "Europe/London", "GR": "Europe/Athens", "HK": "Asia/Hong_Kong", "HR": "Europe/Zagreb",
    "HU": "Europe/Budapest", "IE": "Europe/Dublin", "IL": "Asia/Jerusalem", "IN": "Asia/Kolkata",
    "IS": "Atlantic/Reykjavik", "IT": "Europe/Rome", "JP": "Asia/Tokyo", "KR": "Asia/Seoul",
    "KW": "Asia/Kuwait", "LT": "Europe/Vilnius", "LU": "Europe/Luxembourg", "LV": "Europe/Riga",
    "MT": "Europe/Malta", "MX": "America/Mexico_City", "MY": "Asia/Kuala_Lumpur", "NL": "Europe/Amsterdam",
    "NO": "Europe/Oslo", "NZ": "Pacific/Auckland", "PL": "Europe/Warsaw", "PT": "Europe/Lisbon",
    "QA": "Asia/Qatar", "RO": "Europe/Bucharest", "SA": "Asia/Riyadh", "SE": "Europe/Stockholm",
    "SG": "Asia/Singapore", "SI": "Europe/Ljubljana", "SK": "Europe/Bratislava", "TH": "Asia/Bangkok",
    "TR": "Europe/Istanbul", "TW": "Asia/Taipei", "US": "America/New_York", "AE": "Asia/Dubai",
    "ZA": "Africa/Johannesburg",
}  # fmt: skip


def zone_of(country_code: str) -> ZoneInfo:
    return ZoneInfo(TIME_ZONES.get(country_code.upper(), "UTC"))


def local_time(moment: dt.datetime, country_code: str) -> dt.datetime:
    return moment.astimezone(zone_of(country_code))


def time_label(moment: dt.datetime, country_code: str, language: str = "en") -> str:
    """``25 Nov 2026, 09:00 (Europe/Berlin)``: a slot as the workshop's clock shows it."""
    zone = zone_of(country_code)
    locale = BABEL_LOCALES.get(language, BABEL_LOCALES["en"])
    local = moment.astimezone(zone)
    day = format_date(local.date(), format="medium", locale=locale)
    return f"{day}, {format_time(local.time(), format='short', locale=locale)} ({zone.key})"


@dataclass(frozen=True)
class SlotDay:
    """The free slots of one local day, for the booking page."""

    day: dt.date
    slots: list[ServiceSlot]


def group_by_day(slots: list[ServiceSlot], country_code: str) -> list[SlotDay]:
    days: dict[dt.date, list[ServiceSlot]] = {}
    for slot in sorted(slots, key=lambda row: row.starts_at):
        days.setdefault(local_time(slot.starts_at, country_code).date(), []).append(slot)
    return [SlotDay(day, rows) for day, rows in days.items()]


# --- whose partner, and what the country allows -------------------------------------------------------------


async def partner_for(
    session: AsyncSession, account: Account, vehicle_id: int | None = None
) -> Partner | None:
    """The person's preferred partner (PAR-1), else the dealer of the latest sale of this car (or of any of
    the person's cars)."""
    chosen = await partners.preferred_partner(session, account.id)
    if chosen is not None:
        return chosen
    if vehicle_id is not None:
        vehicle_ids = {vehicle_id}
    else:
        vehicle_ids = {entry.vehicle.id for entry in await garage.garage(session, account)}
    sales = await dealers.latest_sales(session, vehicle_ids)
    if not sales:
        return None
    newest = max(sales.values(), key=lambda sale: (sale.sold_at, sale.id))
    return await session.get(Partner, newest.partner_id)


async def country_of(session: AsyncSession, partner: Partner) -> Country | None:
    return await partners.country(session, partner.country)


# --- slots --------------------------------------------------------------------------------------------------


async def free_slots(
    session: AsyncSession, partner_id: int, *, days: int = BOOKING_DAYS
) -> list[ServiceSlot]:
    """The partner's slots nobody has taken, from now for `days` days; past slots are never offered."""
    now = utcnow()
    rows = await session.scalars(
        select(ServiceSlot)
        .where(
            ServiceSlot.partner_id == partner_id,
            ServiceSlot.appointment_id.is_(None),
            ServiceSlot.starts_at > now,
            ServiceSlot.starts_at < now + dt.timedelta(days=days),
        )
        .order_by(ServiceSlot.starts_at)
    )
    return list(rows)


async def add_slots(
    session: AsyncSession, partner_id: int, starts: list[dt.datetime], minutes: int = 60
) -> int:
    """Adds the slots that are missing (a partner's opening hours); returns how many were added."""
    if not starts:
        return 0
    present = set(
        await session.scalars(
            select(ServiceSlot.starts_at).where(
                ServiceSlot.partner_id == partner_id, ServiceSlot.starts_at.in_(starts)
            )
        )
    )
    added = 0
    for start in starts:
        if start in present:
            continue
        session.add(ServiceSlot(partner_id=partner_id, starts_at=start, minutes=minutes))
        added += 1
    await session.flush()
    return added


def opening_hours(
    first_day: dt.date, days: int, country_code: str, hours: range = range(9, 17)
) -> list[dt.datetime]:
    """Hourly slots on weekdays in the partner's local time, as UTC times."""
    zone = zone_of(country_code)
    starts = []
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for hour in hours:
            starts.append(dt.datetime.combine(day, dt.time(hour), tzinfo=zone).astimezone(dt.UTC))
    return starts


async def ensure_slots(session: AsyncSession, now: dt.datetime) -> int:
    """REQ: PAR-2 — every partner in a country that books online gets its opening hours as free slots for
    the next BOOKING_DAYS + 1 local days; answers how many were added.

    Idempotent and safe when two jobs instances run it at once: only missing slots are inserted, and the
    unique (partner_id, starts_at) turns a slot the other instance just added into nothing
    (``ON CONFLICT DO NOTHING``).
    """
    workshops = (
        await session.execute(
            select(Partner.id, Partner.country)
            .join(Country, Country.code == Partner.country)
            .where(Country.online_booking.is_(True))
        )
    ).all()
    if not workshops:
        return 0
    horizon = now + dt.timedelta(days=BOOKING_DAYS + 2)
    present = set(
        (
            await session.execute(
                select(ServiceSlot.partner_id, ServiceSlot.starts_at).where(
                    ServiceSlot.partner_id.in_([partner_id for partner_id, _ in workshops]),
                    ServiceSlot.starts_at > now,
                    ServiceSlot.starts_at < horizon,
                )
            )
        ).all()
    )
    missing = [
        {"partner_id": partner_id, "starts_at": start, "minutes": 60}
        for partner_id, country in workshops
        for start in opening_hours(local_time(now, country).date(), BOOKING_DAYS + 1, country)
        if start > now and (partner_id, start) not in present
    ]
    added = 0
    for first in range(0, len(missing), _SLOTS_PER_INSERT):
        statement = _insert_slots(session).values(missing[first : first + _SLOTS_PER_INSERT])
        result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
            statement.on_conflict_do_nothing(index_elements=["partner_id", "starts_at"])
        )
        added += max(result.rowcount, 0)
    return added


_SLOTS_PER_INSERT = 1000  # well below SQLite's limit of bound parameters per statement


def _insert_slots(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql_insert(ServiceSlot)
    return sqlite_insert(ServiceSlot)


SLOTS_EVERY = dt.timedelta(hours=1)
_slots_checked: dict[str, dt.datetime] = {}  # when this process last added slots ("at")


async def run_due(db: Database) -> None:
    """The jobs role's after-sales work (one line in jobs.scheduler.run_once): slots at most once an hour,
    and the owners of recalled cars not told yet, a batch per round."""
    now = utcnow()
    last = _slots_checked.get("at")
    if last is None or not last <= now < last + SLOTS_EVERY:
        async with db.transaction() as session:
            await ensure_slots(session, now)
        _slots_checked["at"] = now
    async with db.transaction() as session:
        await recalls.notify_recall_owners(session)


# --- appointments -------------------------------------------------------------------------------------------


async def book(
    session: AsyncSession,
    *,
    partner: Partner,
    vehicle: Vehicle,
    account: Account,
    slot_id: int,
    note: str = "",
    phone: str = "",
    kind: str = SERVICE,
    recall_id: int | None = None,
    booked_by: str = BY_CUSTOMER,
) -> Appointment:
    """Books a free slot of `partner` for the car; 409 `slot_taken` when someone was quicker (PAR-2), 409
    `recall_booked` when the car's recall was booked a moment ago (PAR-3)."""
    # Locked first (PostgreSQL): the second of two clicks waits here and then finds the slot taken. Without
    # the lock both would insert an appointment (whose foreign key share-locks the slot) and deadlock.
    slot = (
        await session.get(ServiceSlot, slot_id, with_for_update=True, populate_existing=True)
        if 0 < slot_id < 2**31
        else None
    )
    if slot is None or slot.partner_id != partner.id:
        raise NotFound("this appointment time does not exist", code="slot_not_found")
    if slot.appointment_id is not None:
        raise Conflict("someone has just booked this time; please choose another one", code="slot_taken")
    if slot.starts_at <= utcnow():
        raise CarlinkError("this time has passed; please choose another one", code="slot_past")
    if kind not in KINDS:
        raise CarlinkError("unknown kind of appointment", code="invalid_kind")
    recall = recall_id if kind == RECALL else None
    if kind == RECALL:
        if recall is None:
            raise CarlinkError("name the recall to book", code="recall_not_found", status=404)
        # Claimed before the appointment exists: a recall booked twice at once is refused, not doubled.
        await recalls.claim_for_booking(session, recall, vehicle.id)
    appointment = Appointment(
        slot_id=slot.id,
        partner_id=partner.id,
        vehicle_id=vehicle.id,
        account_id=account.id,
        kind=kind,
        recall_id=recall,
        note=note.strip()[:NOTE_LENGTH],
        phone=phone.strip()[:40],
        booked_by=booked_by,
        starts_at=slot.starts_at,
    )
    session.add(appointment)
    await session.flush()
    claimed: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        update(ServiceSlot)
        .where(ServiceSlot.id == slot.id, ServiceSlot.appointment_id.is_(None))
        .values(appointment_id=appointment.id)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        # A refusal commits the unit of work: take back the appointment (and the recall) that lost the race.
        await session.delete(appointment)
        if recall is not None:
            await recalls.move(session, recall, vehicle.id, recalls.OPEN)
        await session.flush()
        raise Conflict("someone has just booked this time; please choose another one", code="slot_taken")
    await session.refresh(slot)
    await _confirm(session, appointment, partner, vehicle, account)
    return appointment


async def _confirm(
    session: AsyncSession, appointment: Appointment, partner: Partner, vehicle: Vehicle, account: Account
) -> None:
    await notify.send_email(
        session,
        to=account.email,
        language=account.locale,
        template="appointment_booked",
        context={
            "name": account.display_name or account.email,
            "vin": vehicle.vin,
            "partner_name": partner.name,
            "partner_address": ", ".join(
                part for part in (partner.street, f"{partner.postcode} {partner.city}".strip()) if part
            ),
            "partner_phone": partner.phone,
            "partner_email": partner.email,
            "when": time_label(appointment.starts_at, partner.country, account.locale),
            "kind": appointment.kind,
            "booked_by": appointment.booked_by,
            "note": appointment.note,
        },
        dedupe_key=f"appointment-{appointment.id}-booked",
        account_id=account.id,
        link=f"/vehicles/{vehicle.vin}/service",
    )


async def cancel(session: AsyncSession, appointment: Appointment) -> None:
    """Cancels a future appointment and frees its slot for others."""
    if CANCELLED not in TRANSITIONS.get(appointment.state, frozenset()):
        raise Conflict("this appointment is cancelled already", code="appointment_cancelled")
    if appointment.starts_at <= utcnow():
        raise CarlinkError("this appointment has passed", code="appointment_past")
    await release(session, appointment)


async def release(session: AsyncSession, appointment: Appointment) -> None:
    """Marks the appointment cancelled and frees its slot (also used when an ID is erased)."""
    appointment.state = CANCELLED
    appointment.cancelled_at = utcnow()
    await session.execute(
        update(ServiceSlot)
        .where(ServiceSlot.appointment_id == appointment.id)
        .values(appointment_id=None)
        .execution_options(synchronize_session=False)
    )
    if appointment.kind == RECALL and appointment.recall_id is not None:
        await recalls.move(session, appointment.recall_id, appointment.vehicle_id, recalls.OPEN)
    await session.flush()


async def release_for_leavers(session: AsyncSession, vehicle_id: int, account_ids: list[int]) -> None:
    """People who left the car (a change of owner) keep no future appointments on it: each is cancelled,
    its slot freed for others and its recall open again for the new owner to book."""
    if not account_ids:
        return
    rows = await session.scalars(
        select(Appointment).where(
            Appointment.vehicle_id == vehicle_id,
            Appointment.account_id.in_(account_ids),
            Appointment.state == BOOKED,
            Appointment.starts_at > utcnow(),
        )
    )
    for appointment in list(rows):
        await release(session, appointment)


def may_see_note(appointment: Appointment, account_id: int) -> bool:
    """An appointment's note is its booker's words (or the dealer's to them): other users of the car don't
    read it."""
    return appointment.account_id == account_id


async def appointment_of(session: AsyncSession, vehicle_id: int, appointment_id: int) -> Appointment:
    found = await session.get(Appointment, appointment_id) if 0 < appointment_id < 2**31 else None
    if found is None or found.vehicle_id != vehicle_id:
        raise NotFound("no such appointment", code="appointment_not_found")
    return found


async def appointments_of_vehicle(session: AsyncSession, vehicle_id: int) -> list[Appointment]:
    """The car's booked appointments from today on, soonest first."""
    rows = await session.scalars(
        select(Appointment)
        .where(
            Appointment.vehicle_id == vehicle_id,
            Appointment.state == BOOKED,
            Appointment.starts_at > utcnow() - dt.timedelta(hours=12),
        )
        .order_by(Appointment.starts_at)
    )
    return list(rows)


async def appointments_of_account(session: AsyncSession, account_id: int) -> list[Appointment]:
    rows = await session.scalars(
        select(Appointment).where(Appointment.account_id == account_id).order_by(Appointment.starts_at)
    )
    return list(rows)


async def upcoming_at_partner(session: AsyncSession, partner_id: int) -> list[tuple[Appointment, Vehicle]]:
    """The partner's booked appointments from today on, for the dealer console."""
    rows = await session.execute(
        select(Appointment, Vehicle)
        .join(Vehicle, Vehicle.id == Appointment.vehicle_id)
        .where(
            Appointment.partner_id == partner_id,
            Appointment.state == BOOKED,
            Appointment.starts_at > utcnow() - dt.timedelta(hours=12),
        )
        .order_by(Appointment.starts_at)
    )
    return [(row[0], row[1]) for row in rows.all()]


# --- the car's service page and the dealer console, as use cases ------------------------------------------


@dataclass(frozen=True)
class ServiceDesk:
    """What a person sees for one car (PAR-2, PAR-3): their partner, whether the country books online, the
    free slots, the car's appointments and its recalls."""

    entry: GarageEntry
    partner: Partner | None
    country: Country | None
    slots: list[ServiceSlot]
    appointments: list[Appointment]
    recalls: list[tuple[RecallCampaign, RecallVehicle]]
    # partner id -> its country, for each appointment's partner (a person may have changed partner since).
    partner_countries: dict[int, str] = field(default_factory=dict)

    def country_of(self, appointment: Appointment) -> str:
        """Where the appointment takes place: its time is shown in that workshop's zone."""
        fallback = self.partner.country if self.partner else "DE"
        return self.partner_countries.get(appointment.partner_id, fallback)

    def shows_note(self, appointment: Appointment) -> bool:
        return may_see_note(appointment, self.entry.membership.account_id)

    def can_cancel(self, appointment: Appointment) -> bool:
        return may_cancel(appointment, self.entry)

    @property
    def online_booking(self) -> bool:
        return self.partner is not None and self.country is not None and self.country.online_booking

    @property
    def recall_booking(self) -> bool:
        return self.partner is not None and self.country is not None and self.country.recall_booking

    @property
    def zone(self) -> str:
        return zone_of(self.partner.country).key if self.partner else "UTC"


async def service_desk(session: AsyncSession, account: Account, vin: str) -> ServiceDesk:
    """For the car's main and secondary users; anybody else gets the same 404 as for an unknown VIN."""
    entry = await garage.garage_entry(session, account, vin)
    partner = await partner_for(session, account, entry.vehicle.id)
    country = await country_of(session, partner) if partner else None
    active = await recalls.recalls_of_vehicle(session, entry.vehicle.id)
    wants_slots = country is not None and (
        country.online_booking
        or (country.recall_booking and any(row.state == recalls.OPEN for _, row in active))
    )
    slots = await free_slots(session, partner.id) if partner and wants_slots else []
    appointments = await appointments_of_vehicle(session, entry.vehicle.id)
    partner_ids = {appointment.partner_id for appointment in appointments}
    located = select(Partner.id, Partner.country).where(Partner.id.in_(partner_ids))
    countries = {row[0]: row[1] for row in (await session.execute(located)).all()} if partner_ids else {}
    return ServiceDesk(entry, partner, country, slots, appointments, active, countries)


async def book_for_customer(
    session: AsyncSession, account: Account, vin: str, slot_id: int, *, note: str = "", recall_id: int = 0
) -> Appointment:
    """REQ: PAR-2, PAR-3 — a user of the car books a free slot of their partner, for service or a recall."""
    desk = await service_desk(session, account, vin)
    if desk.partner is None:
        raise CarlinkError(
            "choose your partner first; then you can book with them", code="no_partner", status=409
        )
    vehicle = desk.entry.vehicle
    if recall_id:
        campaign = await recalls.open_recall(session, vehicle.id, recall_id)
        if not desk.recall_booking:
            raise CarlinkError(
                "recalls are booked through your partner in this country: call %(phone)s or write to "
                "%(email)s",
                code="booking_not_available",
                status=409,
                phone=desk.partner.phone,
                email=desk.partner.email,
            )
        return await book(
            session,
            partner=desk.partner,
            vehicle=vehicle,
            account=account,
            slot_id=slot_id,
            note=note,
            kind=RECALL,
            recall_id=campaign.id,
        )
    if not desk.online_booking:
        raise CarlinkError(
            "appointments are booked through your partner in this country: call %(phone)s or write to "
            "%(email)s",
            code="booking_not_available",
            status=409,
            phone=desk.partner.phone,
            email=desk.partner.email,
        )
    return await book(
        session, partner=desk.partner, vehicle=vehicle, account=account, slot_id=slot_id, note=note
    )


async def cancel_for_customer(session: AsyncSession, account: Account, vin: str, appointment_id: int) -> None:
    """The booker or the car's main user cancels; for another user of the car it does not exist (404)."""
    entry = await garage.garage_entry(session, account, vin)
    appointment = await appointment_of(session, entry.vehicle.id, appointment_id)
    if not may_cancel(appointment, entry):
        raise NotFound("no such appointment", code="appointment_not_found")
    await cancel(session, appointment)


def may_cancel(appointment: Appointment, entry: GarageEntry) -> bool:
    return appointment.account_id == entry.membership.account_id or entry.is_main_user


async def served_vehicle(session: AsyncSession, partner_id: int, raw_vin: str) -> Vehicle:
    """A car this dealer serves; another dealer's car is the same 404 as an unknown VIN."""
    try:
        vin = garage.checked_vin(raw_vin)
    except CarlinkError as error:
        raise vehicle_not_found(raw_vin.strip()[:17]) from error
    vehicle = await garage.vehicle_by_vin(session, vin)
    if vehicle is None or not await dealers.serves_vehicle(session, partner_id, vehicle.id):
        raise vehicle_not_found(vin)
    return vehicle


async def book_for_dealer(
    session: AsyncSession, partner_id: int, raw_vin: str, slot_id: int, *, note: str = ""
) -> Appointment:
    """REQ: PAR-2 — the dealer books one of its slots for a car it serves; the main user is told."""
    vehicle = await served_vehicle(session, partner_id, raw_vin)
    owner_id = (await garage.main_users(session, {vehicle.id})).get(vehicle.id)
    owner = await session.get(Account, owner_id) if owner_id is not None else None
    if owner is None:
        raise CarlinkError("this car has no main user to book for yet", code="no_main_user", status=409)
    return await book(
        session,
        partner=await partners.partner(session, partner_id),
        vehicle=vehicle,
        account=owner,
        slot_id=slot_id,
        note=note,
        booked_by=BY_DEALER,
    )
