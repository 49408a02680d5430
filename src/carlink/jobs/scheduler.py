"""Periodic work: expire commands the car never answered, re-send commands lost with the broker; finish
orders a crash left half-way, renew and end contracts, publish entitlements and security sets (ending the
service and transport modes that ran out), deliver the email outbox.

Safe to run in several instances: each step is one transaction over rows whose state decides the work,
and the car executes a command id at most once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from carlink import metrics
from carlink.fod import functions
from carlink.fod import service as packages
from carlink.garage import service as garage
from carlink.notify.delivery import deliver_due
from carlink.partners import booking  # fixA: after-sales jobs (slots hourly, recall mails)
from carlink.platform import Platform
from carlink.remote import service as remote
from carlink.security import config as security_config
from carlink.store import contracts, entitlements

log = logging.getLogger("carlink.jobs")
RESEND_AFTER = dt.timedelta(seconds=3)


async def run_once(platform: Platform) -> None:
    await run_commands(platform)
    await run_store(platform)
    await deliver_due(platform.db, platform.settings)
    await packages.renew_due(platform.db, platform.settings)  # issue 6: re-sign metadata before it expires
    await functions.run_due(platform)  # FOD-3 windows, charges of activations, OTA rollouts, delivery sets
    await booking.run_due(platform.db)  # fixA: slots for online booking (hourly), recall owners' mails


async def run_store(platform: Platform) -> None:
    await contracts.recover_orders(platform)
    await contracts.renew_due(platform)
    await contracts.expire_due(platform)
    await entitlements.publish_due(platform)
    await security_config.publish_due(platform)  # issue 7: the car's security set, also when a mode ran out


async def run_commands(platform: Platform) -> None:
    async with platform.db.transaction() as session:
        expired = await remote.expire_due(session)
        for row in expired:
            metrics.COMMANDS.labels(row.type, row.state).inc()
        events = [
            (
                row.vehicle_id,
                {
                    "type": "command",
                    "id": row.id,
                    "command": row.type,
                    "state": row.state,
                    "reason": row.reason,
                },
            )
            for row in expired
        ]
    for vehicle_id, event in events:
        await platform.emit(vehicle_id, event)
    if platform.link is None or not platform.link.connected.is_set():
        return
    async with platform.db.transaction() as session:
        pending = await remote.due_for_resend(session, RESEND_AFTER)
        resets = await remote.send_remote_access_resets(
            session,
            platform.settings,
            platform.signer,
            await garage.vehicles_awaiting_remote_access_reset(session),
        )
    for row in [*pending, *resets]:
        await platform.dispatch(row)


async def run_forever(platform: Platform, interval: float = 1.0) -> None:
    while True:
        try:
            await run_once(platform)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database may be restarting; try again next round
            log.exception("jobs round failed")
        await asyncio.sleep(interval)
