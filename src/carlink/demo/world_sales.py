"""Demo data of the people issue: the sales behind the demo cars (ACC-2), so each dealer has customers.

The three German cars were sold by DE-STR-01 to owner@example.com, the Macan by JP-YOK-01 to
hanako@example.com. Both buyers have their IDs already, so no invitation and no mail.
"""

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.garage import service as garage
from carlink.identity import service as identity
from carlink.partners.models import Partner, Sale

SALES = (
    ("DE-STR-01", "owner@example.com", "Alex Example", 0),
    ("DE-STR-01", "owner@example.com", "Alex Example", 1),
    ("DE-STR-01", "owner@example.com", "Alex Example", 2),
    ("JP-YOK-01", "hanako@example.com", "Hanako Example", None),
)


async def seed(session: AsyncSession) -> None:
    """Adds what is missing; safe to run on every start."""
    from carlink.demo import world  # world calls this module

    for partner_code, email, name, car_index in SALES:
        car = world.JAPAN_CAR if car_index is None else world.DEMO_CARS[car_index]
        vehicle = await garage.vehicle_by_vin(session, car.vin)
        partner = await session.scalar(select(Partner).where(Partner.code == partner_code))
        buyer = await identity.find_account(session, email)
        if vehicle is None or partner is None or buyer is None:
            continue
        if await session.scalar(select(Sale.id).where(Sale.vehicle_id == vehicle.id)) is not None:
            continue
        session.add(
            Sale(
                partner_id=partner.id,
                vehicle_id=vehicle.id,
                buyer_email=email,
                buyer_name=name,
                buyer_account_id=buyer.id,
                # Sold when new: in spring of the model year.
                sold_at=dt.datetime(car.year, 3, 15, 10, 0, tzinfo=dt.UTC),
                delivery_date=dt.date(car.year, 4, 1),
            )
        )
    await session.flush()
