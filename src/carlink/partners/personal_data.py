"""The partners domain's data about a person, for the export and the erasure (PRV-5) of an ID: the preferred
partner (PAR-1), the person's service and recall appointments (PAR-2, PAR-3) and the sales recorded to them
(ACC-2)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.garage.models import Vehicle
from carlink.identity.models import Account
from carlink.partners import booking
from carlink.partners.models import Partner, PreferredPartner, Sale


async def _sales_to(session: AsyncSession, account_id: int) -> ColumnElement[bool]:
    """The sales of the person: linked to the ID, or recorded to its address and never linked (the buyer
    never used the invitation). The erasure runs this before the identity rewrites the address."""
    account = await session.get(Account, account_id)
    if account is None:
        return Sale.buyer_account_id == account_id
    return (Sale.buyer_account_id == account_id) | (func.lower(Sale.buyer_email) == account.email.lower())


async def export(session: AsyncSession, account_id: int) -> dict[str, Any]:
    chosen = await session.get(PreferredPartner, account_id)
    preferred: dict[str, Any] | None = None
    if chosen is not None:
        partner = await session.get(Partner, chosen.partner_id)
        preferred = {
            "code": partner.code if partner else None,
            "name": partner.name if partner else None,
            "country": partner.country if partner else None,
            "chosen_at": chosen.chosen_at.isoformat(),
        }
    appointments = []
    for appointment in await booking.appointments_of_account(session, account_id):
        partner = await session.get(Partner, appointment.partner_id)
        vehicle = await session.get(Vehicle, appointment.vehicle_id)
        appointments.append(
            {
                "id": appointment.id,
                "vin": vehicle.vin if vehicle else None,
                "partner": partner.name if partner else None,
                "starts_at": appointment.starts_at.isoformat(),
                "kind": appointment.kind,
                "state": appointment.state,
                "booked_by": appointment.booked_by,
                "note": appointment.note,
                "phone": appointment.phone,
                "created_at": appointment.created_at.isoformat(),
            }
        )
    sales = []
    for sale in await session.scalars(
        select(Sale).where(await _sales_to(session, account_id)).order_by(Sale.sold_at, Sale.id)
    ):
        partner = await session.get(Partner, sale.partner_id)
        vehicle = await session.get(Vehicle, sale.vehicle_id)
        sales.append(
            {
                "vin": vehicle.vin if vehicle else None,
                "partner": partner.name if partner else None,
                "buyer_email": sale.buyer_email,
                "buyer_name": sale.buyer_name,
                "sold_at": sale.sold_at.isoformat(),
                "delivery_date": sale.delivery_date.isoformat() if sale.delivery_date else None,
            }
        )
    return {"preferred_partner": preferred, "appointments": appointments, "purchases": sales}


async def erase(session: AsyncSession, account_id: int) -> None:
    """Forgets the chosen partner; future appointments are cancelled (their slots freed for others), past
    ones keep the workshop's record of the visit but lose the person's note and phone number."""
    chosen = await session.get(PreferredPartner, account_id)
    if chosen is not None:
        await session.delete(chosen)
    now = utcnow()
    for appointment in await booking.appointments_of_account(session, account_id):
        if appointment.state == booking.BOOKED and appointment.starts_at > now:
            await booking.release(session, appointment)
        appointment.note = ""
        appointment.phone = ""
    # The dealer's record of the sale stays (which car it sold when), without who bought it.
    await session.execute(
        update(Sale)
        .where(await _sales_to(session, account_id))
        .values(buyer_email=f"erased-{account_id}@erased.invalid", buyer_name="")
    )
    await session.flush()
