"""Which cars and customers a dealer serves: dealers see only their own (issue: dealer console).

A dealer serves a car when it recorded the car's latest sale, or when the car's main user chose it as their
preferred partner (PAR-1). Its customers are the main users of those cars, the people who chose it, and the
buyers of its sales (who may not have an ID yet). Every console page asks here before it shows anything.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.garage import service as garage
from carlink.partners.models import PreferredPartner, Sale


async def latest_sales(session: AsyncSession, vehicle_ids: set[int] | None = None) -> dict[int, Sale]:
    """vehicle id -> its latest sale (of any dealer)."""
    newest = select(Sale.vehicle_id, func.max(Sale.id).label("sale_id")).group_by(Sale.vehicle_id)
    if vehicle_ids is not None:
        newest = newest.where(Sale.vehicle_id.in_(vehicle_ids))
    subquery = newest.subquery()
    rows = await session.scalars(select(Sale).join(subquery, Sale.id == subquery.c.sale_id))
    return {sale.vehicle_id: sale for sale in rows}


async def served_vehicle_ids(session: AsyncSession, partner_id: int) -> set[int]:
    sold = {vid for vid, sale in (await latest_sales(session)).items() if sale.partner_id == partner_id}
    chosen_by = set(
        await session.scalars(
            select(PreferredPartner.account_id).where(PreferredPartner.partner_id == partner_id)
        )
    )
    return sold | await garage.main_user_vehicle_ids(session, chosen_by)


async def serves_vehicle(session: AsyncSession, partner_id: int, vehicle_id: int) -> bool:
    sale = (await latest_sales(session, {vehicle_id})).get(vehicle_id)
    if sale is not None and sale.partner_id == partner_id:
        return True
    owner = (await garage.main_users(session, {vehicle_id})).get(vehicle_id)
    if owner is None:
        return False
    chosen = await session.get(PreferredPartner, owner)
    return chosen is not None and chosen.partner_id == partner_id


async def customer_ids(session: AsyncSession, partner_id: int) -> set[int]:
    """The IDs this dealer may look at: main users of its cars, people who chose it, its buyers."""
    vehicles = await served_vehicle_ids(session, partner_id)
    owners = set((await garage.main_users(session, vehicles)).values())
    chosen_by = set(
        await session.scalars(
            select(PreferredPartner.account_id).where(PreferredPartner.partner_id == partner_id)
        )
    )
    buyers = set(
        await session.scalars(
            select(Sale.buyer_account_id).where(
                Sale.partner_id == partner_id, Sale.buyer_account_id.is_not(None)
            )
        )
    )
    return owners | chosen_by | {buyer for buyer in buyers if buyer is not None}


async def serves_customer(session: AsyncSession, partner_id: int, account_id: int) -> bool:
    return account_id in await customer_ids(session, partner_id)
