"""Privacy and the notification centre in a real browser (PRV-2, PRV-5, ACC-8): withdrawing consent on the
privacy page, downloading one's data as a ZIP, and reading notifications with the badge in the top bar."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from carlink.demo import world
from carlink.identity.models import Account
from carlink.notify.service import notify
from carlink.privacy import service as privacy
from carlink.privacy.models import ConsentEvent
from tests.e2e.conftest import SCREENSHOTS, SignIn
from tests.support.stack import TAYCAN, Stack

pytestmark = pytest.mark.e2e


async def test_person_withdraws_consent_downloads_data_and_reads_notifications(
    stack: Stack, sign_in: SignIn
) -> None:
    async with stack.db.transaction() as session:
        owner = await session.scalar(select(Account).where(Account.email == world.OWNER))
        assert owner is not None
        await privacy.record_registration_choices(
            session, owner.id, policy_version=None, partner_id=None, consent=True
        )
        for n in (1, 2):
            await notify(
                session,
                account_id=owner.id,
                kind="test",
                title=f"Message {n} about your Taycan",
                link=f"/vehicles/{TAYCAN}",
                dedupe_key=f"journey-{n}",
            )
    page = await sign_in(world.OWNER)

    # REQ: ACC-8 — the badge in the top bar, the list, one marked read and then all.
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.locator(".badge")).to_have_text("2")
    await nav.get_by_role("link", name="Notifications").click()
    await expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    await expect(page.locator("#unread-summary")).to_have_text("2 unread notifications.")
    await page.get_by_role("button", name="Mark as read: Message 2 about your Taycan").click()
    await expect(page.locator("#unread-summary")).to_have_text("1 unread notification.")
    await expect(nav.locator(".badge")).to_have_text("1")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "notifications.png"), full_page=True)
    await page.get_by_role("button", name="Mark all as read").click()
    await expect(page.locator("#unread-summary")).to_have_text("Nothing unread.")
    await expect(nav.locator(".badge")).to_have_count(0)
    await page.get_by_role("link", name="Message 1 about your Taycan").click()
    await expect(page).to_have_url(f"{stack.base_url}/vehicles/{TAYCAN}")

    # REQ: PRV-2 — consent withdrawn on the privacy page, with the history kept.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Privacy").click()
    await expect(page.locator("#consent-state")).to_contain_text("You consent to data exchange")
    await page.get_by_role("button", name="Withdraw my consent").click()
    await expect(page.locator("#privacy-notice")).to_contain_text("Your consent is withdrawn")
    await expect(page.locator("#consent-state")).to_contain_text("You do not consent")
    await expect(page.get_by_role("button", name="Give my consent")).to_be_visible()
    await expect(page.locator("#privacy-contact")).to_be_visible()
    async with stack.db.session() as session:
        events = list(await session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)))
    assert [(e.granted, e.channel) for e in events] == [(True, "registration"), (False, "portal")]

    # REQ: PRV-5 — the download is a ZIP with the person's cars in data.json and a readable summary.
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download my data").click()
    download = await downloading.value
    assert download.suggested_filename.startswith("carlink-data-") and download.suggested_filename.endswith(
        ".zip"
    )
    path = await download.path()
    archive = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    data = json.loads(archive.read("data.json"))
    assert TAYCAN in {car["vin"] for car in data["garage"]["vehicles"]}
    assert [c["granted"] for c in data["privacy"]["consents"]] == [True, False]
    assert "Your data at carlink" in archive.read("summary.html").decode()
    await page.screenshot(path=str(SCREENSHOTS / "privacy.png"), full_page=True)
