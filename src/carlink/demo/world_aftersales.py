"""Demo after-sales (PAR-1..3): two more partners (Vienna, London) so their countries' directories are not
empty, free workshop slots for the next weeks, and a recall of the demo Panamera (plus a closed one)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.partners import booking, recalls
from carlink.partners.models import Partner, PartnerStaff, RecallCampaign

SLOT_DAYS = 21
# code, name, country, city, street, postcode, phone, email, staff (name, title, email, phone)
MORE_PARTNERS = (
    (
        "AT-VIE-01",
        "Autohaus Beispiel Wien",
        "AT",
        "Wien",
        "Beispielgasse 7",
        "1010",
        "+43 1 555 0400",
        "service.wien@example.com",
        (("Anna Huber", "Service advisor", "anna.huber@example.com", "+43 1 555 0401"),),
    ),
    (
        "GB-LON-01",
        "Example Motors London",
        "GB",
        "London",
        "1 Example Road",
        "SW1A 1AA",
        "+44 20 5550 0500",
        "service.london@example.com",
        (("Oliver Smith", "Service advisor", "oliver.smith@example.com", "+44 20 5550 0501"),),
    ),
)
PANAMERA_RECALL = "RC-2025-PA01"
CLOSED_RECALL = "RC-2024-TY01"


async def seed(session: AsyncSession) -> None:
    """Adds what is missing; safe to run on every start."""
    await _seed_partners(session)
    today = utcnow().date()
    for partner in await session.scalars(select(Partner).order_by(Partner.id)):
        starts = booking.opening_hours(today, SLOT_DAYS, partner.country)
        await booking.add_slots(session, partner.id, starts)
    await _seed_recalls(session)


async def _seed_partners(session: AsyncSession) -> None:
    present = set(await session.scalars(select(Partner.code)))
    for code, name, country, city, street, postcode, phone, email, staff in MORE_PARTNERS:
        if code in present:
            continue
        partner = Partner(
            code=code,
            name=name,
            country=country,
            city=city,
            street=street,
            postcode=postcode,
            phone=phone,
            email=email,
        )
        session.add(partner)
        await session.flush()
        for staff_name, title, staff_email, staff_phone in staff:
            session.add(
                PartnerStaff(
                    partner_id=partner.id, name=staff_name, title=title, email=staff_email, phone=staff_phone
                )
            )
    await session.flush()


async def _seed_recalls(session: AsyncSession) -> None:
    present = set(await session.scalars(select(RecallCampaign.code)))
    if PANAMERA_RECALL not in present:
        # Seeded data, not news: no mail, so the demo mailbox starts empty.
        await recalls.create_campaign(
            session,
            recalls.RecallDraft(
                code=PANAMERA_RECALL,
                titles={
                    "en": "Rear seat belt buckle",
                    "de": "Gurtschloss hinten",
                    "ja": "後席シートベルトのバックル",
                },
                descriptions={
                    "en": "On some cars the rear seat belt buckle may not latch firmly.",
                    "de": "Bei einigen Fahrzeugen rastet das hintere Gurtschloss eventuell nicht fest ein.",
                    "ja": "一部の車両で、後席シートベルトのバックルがしっかり固定されないおそれがあります。",
                },
                remedy="The workshop checks both rear buckles and replaces them if needed (about 1 hour).",
                model_keys=["panamera-2"],
                year_from=2017,
                year_to=2019,
            ),
            tell_owners=False,
        )
    if CLOSED_RECALL not in present:
        campaign, _ = await recalls.create_campaign(
            session,
            recalls.RecallDraft(
                code=CLOSED_RECALL,
                titles={"en": "Charging flap software", "de": "Software der Ladeklappe"},
                descriptions={"en": "The charging flap could stay closed after unlocking."},
                remedy="A software update, done at the last service.",
                model_keys=["taycan-1"],
                year_from=2019,
                year_to=2021,
            ),
            tell_owners=False,
        )
        campaign.closed_at = utcnow() - dt.timedelta(days=90)
    await session.flush()
