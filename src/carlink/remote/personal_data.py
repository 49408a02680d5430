"""The remote domain's data about a person, for the export and the erasure of an ID (PRV-5): the remote
commands they sent and their security PIN challenges.

The export names each command's type, state, times and car, never its parameters, its signed envelope or
anything of the PIN. On erasure the PIN challenges go; commands and the vehicle audit log stay with the car
(what was done to it, and when) but no longer name the person: both keep `account_id` nullable for that.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.garage.models import Vehicle
from carlink.remote.models import AuditEntry, PinChallenge, RemoteCommand


async def export(session: AsyncSession, account_id: int) -> dict[str, Any]:
    rows = await session.execute(
        select(RemoteCommand, Vehicle.vin)
        .join(Vehicle, Vehicle.id == RemoteCommand.vehicle_id)
        .where(RemoteCommand.account_id == account_id)
        .order_by(RemoteCommand.created_at.desc(), RemoteCommand.id)
    )
    return {
        "commands": [
            {
                "vin": vin,
                "type": command.type,
                "state": command.state,
                "reason": command.reason,
                "channel": command.channel,
                "created_at": command.created_at.isoformat(),
                "delivered_at": command.delivered_at.isoformat() if command.delivered_at else None,
                "finished_at": command.finished_at.isoformat() if command.finished_at else None,
            }
            for command, vin in rows
        ]
    }


async def erase(session: AsyncSession, account_id: int) -> None:
    await session.execute(delete(PinChallenge).where(PinChallenge.account_id == account_id))
    for table in (RemoteCommand, AuditEntry):
        await session.execute(update(table).where(table.account_id == account_id).values(account_id=None))
    await session.flush()
