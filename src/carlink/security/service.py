"""Use cases of car security: the driver cards a dealer registers for the cars it serves.

A driver card names who may drive the car (SEC-2: with tracking plus, a car that moves without one raises
a silent alarm). A dealer sees and revokes only its own cards, and registers cards only for cars it serves.
Each change is a change of the car's security set (`config.bump`), which the jobs role publishes if the
caller does not publish it after its commit (`config.publish`).
"""

from __future__ import annotations

import re

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.errors import CarlinkError, Conflict, NotFound, vehicle_not_found
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.partners import dealers
from carlink.security import config
from carlink.security.models import DriverCard

_SERIAL = re.compile(r"^[A-Z0-9]{8,16}$")
LABEL_LENGTH = 60


def checked_serial(raw: str) -> str:
    serial = re.sub(r"[\s-]", "", raw).upper()
    if not _SERIAL.match(serial):
        raise CarlinkError("a card serial has 8 to 16 letters and digits", code="invalid_serial")
    return serial


async def register_card(
    session: AsyncSession, partner_id: int, *, vin: str, serial: str, label: str, registered_by: int | None
) -> DriverCard:
    vehicle = await garage.vehicle_by_vin(session, garage.checked_vin(vin))
    if vehicle is None or not await dealers.serves_vehicle(session, partner_id, vehicle.id):
        # A car the dealer does not serve is as unknown as one that does not exist.
        raise vehicle_not_found(vin.strip().upper()[:17])
    serial = checked_serial(serial)
    label = label.strip()
    if len(label) > LABEL_LENGTH:
        raise CarlinkError(
            "a label has at most %(length)s characters", code="invalid_label", length=LABEL_LENGTH
        )
    taken = await session.scalar(
        select(DriverCard.id).where(DriverCard.serial == serial, DriverCard.revoked_at.is_(None))
    )
    if taken is not None:
        raise Conflict(
            "a card with this serial is registered already; revoke it first", code="card_registered"
        )
    card = DriverCard(
        vehicle_id=vehicle.id, partner_id=partner_id, serial=serial, label=label, registered_by=registered_by
    )
    session.add(card)
    await session.flush()
    await config.bump(session, vehicle.id)  # REQ: SEC-2 — the car learns the card
    return card


async def cards_of(session: AsyncSession, partner_id: int) -> list[tuple[DriverCard, Vehicle]]:
    """The dealer's cards of the cars it serves now, the active ones first."""
    served = await dealers.served_vehicle_ids(session, partner_id)
    rows = await session.execute(
        select(DriverCard, Vehicle)
        .join(Vehicle, Vehicle.id == DriverCard.vehicle_id)
        .where(DriverCard.partner_id == partner_id, DriverCard.vehicle_id.in_(served))
        .order_by(DriverCard.revoked_at.is_not(None), DriverCard.registered_at.desc(), DriverCard.id.desc())
    )
    return [(card, vehicle) for card, vehicle in rows.all()]


async def revoke_card(session: AsyncSession, partner_id: int, card_id: int) -> DriverCard:
    card = await session.get(DriverCard, card_id) if 0 < card_id < 2**31 else None
    if card is None or card.partner_id != partner_id:
        raise NotFound("there is no such card of yours", code="card_not_found")
    if card.revoked_at is None:
        card.revoked_at = utcnow()
        await config.bump(session, card.vehicle_id)  # REQ: SEC-2 — the card no longer counts in the car
    return card


async def active_cards(session: AsyncSession, vehicle_id: int) -> list[DriverCard]:
    """The cards that count for a car (SEC-2: their hashes go into its security set)."""
    rows = await session.scalars(
        select(DriverCard).where(DriverCard.vehicle_id == vehicle_id, DriverCard.revoked_at.is_(None))
    )
    return list(rows)


async def revoke_cards_of_vehicle(session: AsyncSession, vehicle_id: int) -> None:
    """The car changed hands: the previous owner's drivers' cards no longer count (SEC-2)."""
    await session.execute(
        update(DriverCard)
        .where(DriverCard.vehicle_id == vehicle_id, DriverCard.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await config.bump(session, vehicle_id)  # the new owner's car holds none of them
