"""The person's in-car settings in a real browser (VEH-7): favourites added in the portal reach the car at its
next start with the key, and "log out of this car" sends the car back to guest mode."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from carlink.demo import world
from tests.e2e.conftest import SCREENSHOTS, SignIn
from tests.support.stack import TAYCAN, Stack

pytestmark = pytest.mark.e2e


async def test_favourites_from_the_portal_follow_the_id_into_the_car(stack: Stack, sign_in: SignIn) -> None:
    car = stack.fleet[TAYCAN]
    await car.start_with_key("key-1")
    assert (await car.log_in_id(world.OWNER, world.PASSWORD)).ok
    await car.adjust_cabin(seat_position=35, climate_temperature_c=22.0)

    page = await sign_in(world.OWNER)
    await page.goto("/account/in-car")
    await expect(page.get_by_role("heading", name="Your ID in the car")).to_be_visible()
    await expect(page.locator("#incar-profile")).to_contain_text("22.0 °C")
    await page.get_by_label("New favourite").fill("Home")
    await page.locator('[data-kind="favourites"]').get_by_role("button", name="Add").click()
    await expect(page.locator("#incar-notice")).to_contain_text("Added")
    await page.get_by_label("New radio station").fill("SWR3")
    await page.locator('[data-kind="radio_stations"]').get_by_role("button", name="Add").click()
    await expect(page.locator('[data-kind="radio_stations"]')).to_contain_text("SWR3")
    # A duplicate is refused with a message, and the list stays as it was.
    await page.get_by_label("New favourite").fill("home")
    await page.locator('[data-kind="favourites"]').get_by_role("button", name="Add").click()
    await expect(page.locator("#incar-error")).to_contain_text("in your list already")
    await page.screenshot(path=str(SCREENSHOTS / "in-car-settings.png"), full_page=True)

    # REQ: VEH-7 — the key brings the ID's settings, including what changed in the portal.
    occupant = await car.start_with_key("key-1")
    assert occupant.services.favourites == ["Home"] and occupant.services.radio_stations == ["SWR3"]
    assert occupant.cabin.seat_position == 35

    await page.goto("/account/in-car")
    await page.get_by_role("button", name="Remove favourite Home").click()
    await expect(page.locator("#incar-notice")).to_contain_text("Removed")
    cars = page.locator("#incar-cars")
    await expect(cars).to_contain_text("Main user")
    await cars.get_by_role("button", name="Log out of this car").click()
    await expect(page.locator("#incar-notice")).to_contain_text("logged out of that car")
    assert (await car.start_with_key("key-1")).guest
