"""After-sales in a real browser (PAR-1..3): choose a partner, book a service slot, see a recall."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from carlink.demo import world
from carlink.notify.models import OutboxEmail
from tests.e2e.conftest import SCREENSHOTS, SignIn
from tests.support.stack import PANAMERA, TAYCAN, Stack

pytestmark = pytest.mark.e2e


async def test_owner_chooses_a_partner_books_a_service_and_sees_the_panamera_recall(
    stack: Stack, sign_in: SignIn
) -> None:
    # REQ: PAR-1 — the directory of the person's country; choosing marks the partner.
    page = await sign_in(world.OWNER)
    await page.goto("/partners")
    await expect(page.get_by_role("heading", name="Partners in Germany")).to_be_visible()
    await page.get_by_role("button", name="Choose as my partner (Autohaus Example Stuttgart)").click()
    await expect(page.locator("#partners-notice")).to_contain_text(
        "Autohaus Example Stuttgart is now your partner"
    )
    chosen = page.locator('[data-partner="DE-STR-01"]')
    await expect(chosen.get_by_text("Your partner")).to_be_visible()
    await page.get_by_role("link", name="Contacts", exact=True).click()
    await expect(page.get_by_role("heading", name="Mia Beispiel")).to_be_visible()

    # REQ: PAR-2 — a free time of the coming days, a note, the confirmation.
    await page.goto(f"/vehicles/{TAYCAN}/service")
    await expect(
        page.get_by_role("heading", name="Book an appointment at Autohaus Example Stuttgart")
    ).to_be_visible()
    first_day = page.locator("fieldset.slot-day").first
    await first_day.locator("label.slot").first.click()
    await page.get_by_label("A note for the workshop (optional)").fill("Please check the wipers")
    await page.get_by_role("button", name="Book this time").click()
    await expect(page).to_have_url(re.compile(rf"/vehicles/{TAYCAN}/service\?done=booked$"))
    await expect(page.locator("#service-notice")).to_contain_text("Your appointment is booked")
    await expect(page.locator("#appointments")).to_contain_text("Please check the wipers")
    async with stack.db.session() as session:
        mail = await session.scalar(
            select(OutboxEmail).where(
                OutboxEmail.to_address == world.OWNER, OutboxEmail.template == "appointment_booked"
            )
        )
    assert mail is not None and "Please check the wipers" in mail.body_text
    await page.screenshot(path=str(SCREENSHOTS / "after-sales-booking.png"), full_page=True)

    # REQ: PAR-3 — the demo recall of the Panamera, shown first and bookable in Germany.
    await page.goto(f"/vehicles/{PANAMERA}/service")
    recall = page.locator('[data-recall="RC-2025-PA01"]')
    await expect(recall).to_be_visible()
    await expect(recall.get_by_role("heading", name="Rear seat belt buckle")).to_be_visible()
    await expect(page.get_by_role("button", name="Book for this recall (RC-2025-PA01)")).to_be_visible()
    await page.locator("fieldset.slot-day").first.locator("label.slot").first.click()
    await page.get_by_role("button", name="Book for this recall (RC-2025-PA01)").click()
    await expect(page.locator("#service-notice")).to_contain_text("Your appointment is booked")
    await expect(recall.get_by_text("You have booked this recall")).to_be_visible()
