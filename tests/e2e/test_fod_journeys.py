"""Functions on demand and software updates in a real browser (FOD-1..3, OTA-1..2): the owner orders a
permanent function with a saved card and switches online updates on; the operator uploads a package and
rolls out an update campaign to the Taycan, and a campaign that matches no car is refused on its form."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import FilePayload, expect
from sqlalchemy import func, select

from carlink.demo import world
from carlink.fod.models import FunctionOrder
from tests.e2e.conftest import SCREENSHOTS, SignIn
from tests.e2e.test_store_journeys import VISA, fill_card
from tests.support.stack import TAYCAN, Stack

pytestmark = pytest.mark.e2e


async def test_owner_orders_a_permanent_function_and_switches_online_updates_on(
    stack: Stack, sign_in: SignIn
) -> None:
    page = await sign_in(world.OWNER)
    await page.goto("/account/payment")
    await fill_card(page, VISA)
    await page.get_by_role("button", name="Save card").click()
    await expect(page.locator("#payment-notice")).to_have_text("Your card is saved.")

    # Privacy mode on: the car downloads nothing (FOD-3), so the order stays "ordered" for this test.
    await stack.fleet[TAYCAN].set_privacy_mode(True)

    # REQ: FOD-1 — the functions of the car's model in its country, from the vehicle page.
    await page.goto(f"/vehicles/{TAYCAN}")
    await page.locator(".vehicle-links").get_by_role("link", name="Functions and updates").click()
    await expect(
        page.get_by_role("heading", name=re.compile(r"^Functions and updates of your"))
    ).to_be_visible()
    cruise = page.locator('[data-function="adaptive-cruise"]')
    await expect(cruise).to_have_attribute("data-state", "available")
    await expect(cruise.locator('[data-term="LIFE"]')).to_contain_text("€1,190.00 once")
    await expect(cruise.locator('[data-term="P1M"]')).to_contain_text("€19.00 a month")
    # REQ: FOD-2, FOD-3 — nothing charged now; 28 days to download with data on and privacy mode off.
    await expect(cruise.locator(".hint")).to_contain_text("Nothing is charged now")
    await expect(cruise.locator(".hint")).to_contain_text(
        "within 28 days, with its data connection on and privacy"
    )
    await expect(cruise.get_by_role("link", name="terms of Adaptive cruise control")).to_be_visible()

    await cruise.get_by_label("For the car's life").check()
    await cruise.get_by_label("Card").select_option(label="VISA •••• 4242")
    await cruise.get_by_label("I accept the").check()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "functions-order.png", full_page=True)
    await cruise.get_by_role("button", name="Order Adaptive cruise control").click()

    await expect(page).to_have_url(re.compile(rf"/vehicles/{TAYCAN}/functions\?done=ordered$"))
    await expect(page.locator("#functions-notice")).to_have_text(
        "The function is ordered. Nothing is charged until the car activates it."
    )
    cruise = page.locator('[data-function="adaptive-cruise"]')
    await expect(cruise).to_have_attribute("data-state", "ordered")
    await expect(cruise.locator("[data-function-state]")).to_have_text("Ordered")
    await expect(cruise.locator("[data-order]")).to_contain_text("the car downloads it by")
    await expect(cruise.locator("[data-download-by]")).to_be_visible()
    await expect(cruise.get_by_role("button", name="Cancel order: Adaptive cruise control")).to_be_visible()
    async with stack.db.session() as session:
        orders = list(await session.scalars(select(FunctionOrder)))
    assert [(o.service_code, o.term, o.price_minor) for o in orders] == [("adaptive-cruise", "LIFE", 119000)]
    assert orders[0].download_by.date() > orders[0].created_at.date()

    # REQ: OTA-1 — switched on per car, recorded with the time and the privacy policy version accepted.
    await page.goto("/privacy")
    await page.locator("#accept-policy").click()
    await expect(page.locator("#accepted-version")).to_contain_text("You accepted version 1")
    await page.goto(f"/vehicles/{TAYCAN}/functions")
    updates = page.locator("#updates")
    await expect(updates.locator("[data-consent]")).to_have_attribute("data-consent", "off")
    await updates.get_by_label("Allow online software updates for this car").check()
    await updates.get_by_role("button", name="Save update setting").click()
    await expect(page.locator("#functions-notice")).to_have_text(
        "Online software updates are switched on for this car."
    )
    await expect(page.locator('#updates [data-consent="on"]')).to_contain_text(
        re.compile(r"^On since .+, recorded under privacy policy version 1$")
    )
    await expect(page.locator("#updates [data-software-version]")).to_have_text(re.compile(r"^\d+\.\d+"))
    await page.screenshot(path=SCREENSHOTS / "functions-and-updates.png", full_page=True)


async def test_operator_rolls_out_an_update_to_the_taycan_and_a_campaign_for_no_car_is_refused(
    stack: Stack, sign_in: SignIn
) -> None:
    owner = await stack.as_user(world.OWNER)
    async with owner:
        switched = await owner.put(
            f"/api/v1/vehicles/{TAYCAN}/software-updates/consent", json={"enabled": True}
        )
        assert switched.status_code == 200, switched.text

    page = await sign_in(world.OPERATOR)
    await page.goto("/operator")
    await page.get_by_role("navigation", name="Operator console").get_by_role("link", name="Packages").click()
    await page.get_by_label("Name", exact=True).fill("update-taycan-2.0.0")
    await page.get_by_label("File", exact=True).set_input_files(
        files=FilePayload(name="update.bin", mimeType="application/octet-stream", buffer=b"2.0.0" * 4096)
    )
    await page.get_by_role("button", name="Add and sign").click()
    await expect(page.locator("#console-notice")).to_have_text(
        "The package is stored and a new targets version is signed."
    )
    await expect(page.locator('[data-package="update-taycan-2.0.0"]')).to_contain_text("20,480 bytes")

    # REQ: OTA-2 — model, variants and installed version range.
    await page.get_by_role("link", name="Update campaigns").click()
    await page.get_by_label("Name", exact=True).fill("Taycan 2.0")
    await page.get_by_label("Package", exact=True).select_option("update-taycan-2.0.0")
    await page.get_by_label("Model", exact=True).select_option("taycan-1")
    await page.get_by_label("Installed version from", exact=True).fill("1.0.0")
    await page.get_by_label("below", exact=True).fill("2.0.0")
    await page.get_by_label("New version", exact=True).fill("2.0.0")
    await page.get_by_label("Waves").fill("100")
    await page.get_by_role("button", name="Create campaign").click()

    await expect(page).to_have_url(re.compile(r"/operator/campaigns/[0-9]+\?done=created"))
    await expect(page.get_by_role("heading", name="Taycan 2.0")).to_be_visible()
    await expect(page.locator("#console-notice")).to_contain_text(
        "1 car matches; 1 with online updates switched on."
    )
    car = page.locator(f'[data-vin="{TAYCAN}"]')
    await expect(car).to_be_visible()
    await expect(car).to_have_attribute(
        "data-state", re.compile(r"^(offered|downloading|downloaded|installing|installed)$")
    )
    await page.screenshot(path=SCREENSHOTS / "operator-campaign.png", full_page=True)

    await page.get_by_role("link", name="Update campaigns").first.click()
    await expect(page.locator(".campaigns").get_by_role("link", name="Taycan 2.0")).to_be_visible()
    # A version range no car has: refused on the form, which keeps what was typed.
    await page.get_by_label("Name", exact=True).fill("Taycan 9.5")
    await page.get_by_label("Package", exact=True).select_option("update-taycan-2.0.0")
    await page.get_by_label("Model", exact=True).select_option("taycan-1")
    await page.get_by_label("Installed version from", exact=True).fill("9.0.0")
    await page.get_by_label("below", exact=True).fill("9.5.0")
    await page.get_by_label("New version", exact=True).fill("9.5.0")
    await page.get_by_role("button", name="Create campaign").click()
    await expect(page.locator("#campaign-error")).to_have_text(
        "No car matches this model, these variants and this version range: nothing to roll out."
    )
    await expect(page.locator("#campaign-error")).to_have_attribute("data-code", "campaign_targets_no_car")
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Taycan 9.5")
    await page.screenshot(path=SCREENSHOTS / "operator-campaign-refused.png", full_page=True)
    async with stack.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(FunctionOrder)) == 0
