"""Which cars and customers a dealer serves: dealers see only their own (issue: dealer console).

A dealer serves a car when it recorded the car's latest sale, or when the car's main user chose it as their
preferred partner (PAR-1). Its customers are the main users of those cars, the people who chose it, and the
buyers of its sales (who may not have an ID yet). Every console page asks here before it shows anything.

Every question is answered by the database (one query each): a console request must not read every sale.
The "latest sale" of a car is the sale with no later one of the same car (index sales (vehicle_id, id)).
`served_vehicles` and `customers` are the same questions as selects, for callers that filter by them
(``Vehicle.id.in_(dealers.served_vehicles(partner_id))``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, exists, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from carlink.garage.models import VehicleUser
from carlink.garage.service import MAIN
from carlink.partners.models import PreferredPartner, Sale


def is_latest_sale() -> ColumnElement[bool]:
    """True for a sale no later sale of the same car follows (correlated to `Sale`)."""
    later = aliased(Sale)
    return ~exists().where(later.vehicle_id == Sale.vehicle_id, later.id > Sale.id)


async def latest_sales(session: AsyncSession, vehicle_ids: set[int] | None = None) -> dict[int, Sale]:
    """vehicle id -> its latest sale (of any dealer)."""
    query = select(Sale).where(is_latest_sale())
    if vehicle_ids is not None:
        if not vehicle_ids:
            return {}
        query = query.where(Sale.vehicle_id.in_(vehicle_ids))
    return {sale.vehicle_id: sale for sale in await session.scalars(query)}


def _sold_by(partner_id: int) -> Any:
    return select(Sale.vehicle_id).where(Sale.partner_id == partner_id, is_latest_sale())


def _chosen_by_main_user(partner_id: int) -> Any:
    return (
        select(VehicleUser.vehicle_id)
        .join(PreferredPartner, PreferredPartner.account_id == VehicleUser.account_id)
        .where(VehicleUser.role == MAIN, PreferredPartner.partner_id == partner_id)
    )


def served_vehicles(partner_id: int) -> CompoundSelect[Any]:
    """The ids of the cars the dealer serves, as a select: its latest sales and the cars whose main user
    chose it."""
    return union(_sold_by(partner_id), _chosen_by_main_user(partner_id))


async def served_vehicle_ids(session: AsyncSession, partner_id: int) -> set[int]:
    return set(await session.scalars(served_vehicles(partner_id)))


async def serves_vehicle(session: AsyncSession, partner_id: int, vehicle_id: int) -> bool:
    sold = _sold_by(partner_id).where(Sale.vehicle_id == vehicle_id).exists()
    chosen = _chosen_by_main_user(partner_id).where(VehicleUser.vehicle_id == vehicle_id).exists()
    return bool(await session.scalar(select(or_(sold, chosen))))


def _owners_of_sold_cars(partner_id: int) -> Any:
    # Main users of the cars the dealer sold last; the main users who chose it are among `_choosers`.
    return (
        select(VehicleUser.account_id)
        .join(Sale, Sale.vehicle_id == VehicleUser.vehicle_id)
        .where(VehicleUser.role == MAIN, Sale.partner_id == partner_id, is_latest_sale())
    )


def _choosers(partner_id: int) -> Any:
    return select(PreferredPartner.account_id).where(PreferredPartner.partner_id == partner_id)


def _buyers(partner_id: int) -> Any:
    return select(Sale.buyer_account_id).where(
        Sale.partner_id == partner_id, Sale.buyer_account_id.is_not(None)
    )


def customers(partner_id: int) -> CompoundSelect[Any]:
    """The account ids of the dealer's customers, as a select (``Account.id.in_(customers(partner_id))``)."""
    return union(_owners_of_sold_cars(partner_id), _choosers(partner_id), _buyers(partner_id))


async def customer_ids(session: AsyncSession, partner_id: int) -> set[int]:
    """The IDs this dealer may look at: main users of its cars, people who chose it, its buyers."""
    return set(await session.scalars(customers(partner_id)))


async def serves_customer(session: AsyncSession, partner_id: int, account_id: int) -> bool:
    owner = _owners_of_sold_cars(partner_id).where(VehicleUser.account_id == account_id).exists()
    chose = _choosers(partner_id).where(PreferredPartner.account_id == account_id).exists()
    bought = _buyers(partner_id).where(Sale.buyer_account_id == account_id).exists()
    return bool(await session.scalar(select(or_(owner, chose, bought))))
