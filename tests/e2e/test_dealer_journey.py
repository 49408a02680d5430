"""The dealer console and the buyer's registration in a real browser (ACC-2, ACC-3): the dealer records a
sale, the invitation mail's link opens the registration form in the buyer's own browser, and the new ID
finds the car on My vehicles."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from carlink.demo import world
from carlink.notify.models import OutboxEmail
from carlink.protocol.vin import make_vin
from tests.e2e.conftest import SCREENSHOTS, OpenPage, SignIn
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

VIN = make_vin("WP0", "ZZZY1", "R", "S", 820002)
BUYER = "lena.kauf@example.com"


async def invitation_link(stack: Stack) -> str:
    async with stack.db.session() as session:
        mail = await session.scalar(
            select(OutboxEmail).where(OutboxEmail.to_address == BUYER, OutboxEmail.template == "invitation")
        )
    assert mail is not None
    found = re.search(re.escape(stack.base_url) + r"(/register/[A-Za-z0-9_-]+)", mail.body_text)
    assert found is not None
    return found.group(1)


async def test_a_dealer_records_a_sale_and_the_buyer_registers_from_the_mail(
    stack: Stack, sign_in: SignIn, open_page: OpenPage
) -> None:
    dealer = await sign_in(world.DEALER)
    await dealer.get_by_role("link", name="Open the dealer console").click()
    await expect(
        dealer.get_by_role("heading", name="Customers of Autohaus Example Stuttgart")
    ).to_be_visible()
    await (
        dealer.get_by_role("navigation", name="Dealer console")
        .get_by_role("link", name="Record a sale")
        .click()
    )
    await dealer.get_by_label("VIN").fill(VIN)
    await dealer.get_by_label("Model", exact=True).select_option("taycan-1")
    await dealer.get_by_label("Variant").select_option("Y1ADB1")
    await dealer.get_by_label("Model year").fill("2024")
    await dealer.get_by_label("Colour").fill("Ice Grey")
    await dealer.get_by_label("Buyer's name").fill("Lena Kauf")
    await dealer.get_by_label("Buyer's email address").fill(BUYER)
    await expect(dealer.get_by_label("Buyer's country")).to_have_value("DE")
    await dealer.get_by_label("Planned delivery").fill("2030-06-01")
    await dealer.screenshot(path=SCREENSHOTS / "dealer-record-sale.png", full_page=True)
    await dealer.get_by_role("button", name="Record the sale").click()
    await expect(dealer.locator("#sale-notice")).to_contain_text("invitation is on its way")
    await expect(dealer.locator("#sale-state")).to_have_attribute("data-state", "invited")

    # The buyer opens the link from the mail in a browser of their own.
    buyer = await open_page()
    await buyer.goto(await invitation_link(stack))
    await expect(buyer.get_by_role("heading", name="Set up your carlink ID")).to_be_visible()
    await expect(buyer.get_by_label("Email address")).to_have_value(BUYER)
    partner = buyer.get_by_label("Preferred partner", exact=True)
    await expect(partner.locator("option:checked")).to_contain_text("Autohaus Example Stuttgart")
    await buyer.get_by_label("Password", exact=True).fill("lena-secret-42")
    await buyer.get_by_label("Password again").fill("lena-secret-42")
    await buyer.get_by_label("I have read and accept the privacy policy").check()
    await buyer.get_by_role(
        "checkbox", name=re.compile("I agree that carlink and my preferred partner")
    ).check()
    await buyer.screenshot(path=SCREENSHOTS / "register-from-invitation.png", full_page=True)
    await buyer.get_by_role("button", name="Create my ID").click()
    await expect(buyer).to_have_url(f"{stack.base_url}/vehicles/{VIN}")
    # The mail went out in German (the Stuttgart dealer's default), and the new ID speaks the mail's language.
    await buyer.get_by_role("link", name="Meine Fahrzeuge").first.click()
    await expect(buyer.locator(f'[data-vin="{VIN}"]')).to_be_visible()

    # The dealer now finds the buyer among the customers, with the consent given at registration.
    await dealer.goto("/dealer")
    row = dealer.locator(f'[data-customer="{BUYER}"]')
    await expect(row).to_contain_text(VIN)
    await expect(row.locator("[data-consent]")).to_have_attribute("data-consent", "granted")
    await dealer.screenshot(path=SCREENSHOTS / "dealer-customers.png", full_page=True)
