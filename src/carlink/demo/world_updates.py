"""Demo software update (OTA-1..4): a package for the Taycan and a running campaign from 1.0.0 to 1.1.0.

Nobody has switched updates on yet: the owner does it on the car's Functions and updates page, and the next
round of the jobs role offers the update to the car, which downloads it and installs it when parked and
locked (the demo car console has the buttons).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.fod import service as packages
from carlink.fod import updates
from carlink.fod.models import UpdateCampaign
from carlink.identity.models import Account
from carlink.settings import Settings

PACKAGE = "taycan-sw-1.1.0.bin"
PACKAGE_BYTES = 2 * 1024 * 1024


def _software() -> bytes:
    block = hashlib.sha256(PACKAGE.encode()).digest()
    return block * (PACKAGE_BYTES // len(block))


async def ensure_demo_update(session: AsyncSession, settings: Settings, operator_email: str) -> None:
    if await session.scalar(select(UpdateCampaign.id).limit(1)) is not None:
        return
    await packages.add_package(
        session, settings, PACKAGE, _software(), {"model": "taycan-1", "version": "1.1.0"}
    )
    operator = await session.scalar(select(Account).where(Account.email == operator_email))
    assert operator is not None
    await updates.create_campaign(
        session,
        operator,
        updates.CampaignInput(
            name="Taycan infotainment 1.1 (faster route planning)",
            package=PACKAGE,
            model_key="taycan-1",
            variants=[],
            version_from="1.0.0",
            version_below="1.1.0",
            to_version="1.1.0",
            waves=[50, 100],
            success_threshold=50,
            error_threshold=25,
        ),
    )
