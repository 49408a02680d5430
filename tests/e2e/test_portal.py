"""The portal in a real browser against the whole stack: sign-in, the garage, status, remote unlock with the
security PIN followed live over the event stream, people on a vehicle, Login & security."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from carlink.clock import clock
from carlink.demo import world
from carlink.protocol.vin import make_vin
from carlink.remote.service import spin_hash
from tests.e2e.conftest import SCREENSHOTS, OpenPage, SignIn
from tests.support.stack import PANAMERA, TAYCAN, Stack
from tests.unit.test_captcha import read_picture

pytestmark = pytest.mark.e2e


async def test_owner_sees_pairing_codes_and_connection_and_unlocks_the_taycan_with_the_pin(
    stack: Stack, sign_in: SignIn
) -> None:
    page = await sign_in(world.OWNER)
    cards = page.locator("li.vehicle")
    await expect(cards).to_have_count(len(world.DEMO_CARS))
    for car in world.DEMO_CARS:
        card = page.locator(f'li.vehicle[data-vin="{car.vin}"]')
        # REQ: VEH-3 — each person's own 8-digit code; VEH-9 — connection status with the network.
        code = world.demo_pairing_code(car.vin, world.OWNER)
        await expect(card.locator("[data-pairing-code]")).to_have_text(code)
        await expect(card.locator("[data-connection]")).to_have_text("Online")
        await expect(card.locator(".connection")).to_contain_text(re.compile(r"via (LTE|3G|EDGE|WiFi)"))
        await expect(card).to_contain_text("Main user")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "portal-vehicles.png", full_page=True)

    await page.get_by_role("link", name="Taycan 4S", exact=True).click()
    await expect(page).to_have_url(f"{stack.base_url}/vehicles/{TAYCAN}")
    lock = page.locator('#status tr[data-key="lock"] .value')
    await expect(lock).to_have_text("Locked")
    pin = page.get_by_label("Security PIN", exact=True)
    unlock = page.get_by_role("button", name="Unlock", exact=True)

    await pin.fill("0000")
    await unlock.click()
    await expect(page.locator("#remote-error")).to_contain_text("wrong security PIN")
    assert stack.fleet[TAYCAN].state.locked is True

    await pin.fill(world.PIN)
    await unlock.click()
    sent = page.locator("#commands li").first
    await expect(sent.locator(".what")).to_have_text("Unlock")
    await expect(sent.locator(".state")).to_have_text("performed")
    await expect(lock).to_have_text("Unlocked")
    await expect(page.locator("#remote-error")).to_be_hidden()
    assert stack.fleet[TAYCAN].state.locked is False
    assert [command.type.value for command in stack.fleet[TAYCAN].executed] == ["UNLOCK"]
    await page.screenshot(path=SCREENSHOTS / "portal-vehicle.png", full_page=True)


async def test_secondary_user_sees_status_live_but_no_remote_services(stack: Stack, sign_in: SignIn) -> None:
    page = await sign_in(world.FAMILY)
    cards = page.locator("li.vehicle")
    await expect(cards).to_have_count(1)
    await expect(cards.first).to_contain_text("Secondary user")
    await expect(cards.first.locator("[data-pairing-code]")).to_have_text(
        world.demo_pairing_code(TAYCAN, world.FAMILY)
    )

    await page.get_by_role("link", name="Taycan 4S", exact=True).click()
    lock = page.locator('#status tr[data-key="lock"] .value')
    await expect(lock).to_have_text("Locked")
    # REQ: VEH-4 — remote access is for the main user only.
    await expect(page.locator("#remote")).to_contain_text("for the vehicle's main user")
    await expect(page.locator("#remote form")).to_have_count(0)
    await expect(page.get_by_role("button", name="Unlock")).to_have_count(0)
    await expect(page.locator("#people")).to_have_count(0)

    # The owner unlocks from the app; the family member's open page follows the car's report.
    async with await stack.as_user(world.OWNER) as owner:
        challenge = (await owner.post(f"/api/v1/vehicles/{TAYCAN}/pin-challenges")).json()["challenge"]
        unlock = {"type": "UNLOCK", "spin": {"challenge": challenge, "hash": spin_hash(world.PIN, challenge)}}
        response = await owner.post(f"/api/v1/vehicles/{TAYCAN}/commands", json=unlock)
        assert response.status_code == 202, response.text
    await expect(lock).to_have_text("Unlocked")

    # REQ: VEH-6, RMT-3 — privacy mode switched on in the car hides the location at once.
    await expect(page.locator('#status tr[data-key="location"]')).to_have_count(1)
    await stack.fleet[TAYCAN].set_privacy_mode(True)
    await expect(page.locator('#status [data-key="privacy"]')).to_contain_text("On")
    await expect(page.locator('#status tr[data-key="location"]')).to_have_count(0)


async def test_stranger_gets_the_same_not_found_page_for_the_owners_vin_as_for_an_unknown_one(
    stack: Stack, sign_in: SignIn
) -> None:
    page = await sign_in(world.STRANGER)
    await expect(page.get_by_role("heading", name="No vehicles in your garage yet")).to_be_visible()

    pages = {}
    unknown = make_vin("WP0", "ZZZY1", "P", "S", 999999)
    for vin in (TAYCAN, unknown):
        response = await page.goto(f"/vehicles/{vin}")
        assert response is not None and response.status == 404
        await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        pages[vin] = (await page.locator("main").inner_text()).replace(vin, "<VIN>")
    assert pages[TAYCAN] == pages[unknown]
    assert "Taycan" not in pages[TAYCAN]
    status = await page.request.get(f"/vehicles/{TAYCAN}/status")
    assert status.status == 404


async def test_wrong_password_pin_change_and_sign_out(stack: Stack, open_page: OpenPage) -> None:
    page = await open_page()
    await page.goto("/vehicles")
    await expect(page).to_have_url(f"{stack.base_url}/signin?next=/vehicles")
    await page.get_by_label("Email address").fill(world.OWNER)
    await page.get_by_label("Password", exact=True).fill("not-the-password")
    assert await _submit_sign_in(page) == 400
    await expect(page.get_by_role("alert")).to_have_text("wrong email address or password")

    await page.get_by_label("Password", exact=True).fill(world.PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{stack.base_url}/vehicles")

    await page.get_by_role("link", name="Login & security").click()
    await page.get_by_label("Your password", exact=True).fill("not-the-password")
    await page.get_by_label("New security PIN").fill("2468")
    await page.get_by_role("button", name="Set PIN").click()
    await expect(page.get_by_role("alert")).to_have_text("the password is not right")
    await page.get_by_label("Your password", exact=True).fill(world.PASSWORD)
    await page.get_by_label("New security PIN").fill("2468")
    await page.get_by_role("button", name="Set PIN").click()
    await expect(page.get_by_role("status")).to_have_text("Your security PIN is set.")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("link", name="Sign in with your ID")).to_be_visible()
    await page.goto("/account")
    await expect(page).to_have_url(f"{stack.base_url}/signin?next=/account")


async def test_main_user_adds_and_removes_a_secondary_user(stack: Stack, sign_in: SignIn) -> None:
    page = await sign_in(world.OWNER)
    await page.goto(f"/vehicles/{PANAMERA}")
    people = page.locator("#people li")
    await expect(people).to_have_count(1)
    email = page.get_by_label("Add a secondary user by the email address of their ID")

    await email.fill("nobody@example.com")
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#people-error")).to_contain_text("no ID with this email address")

    await email.fill(world.FAMILY)
    await page.get_by_role("button", name="Add", exact=True).click()
    family = page.locator(f'#people li[data-email="{world.FAMILY}"]')
    await expect(family).to_contain_text("Secondary user")

    await page.get_by_role("button", name=f"Remove {world.FAMILY}").click()
    await expect(family).to_have_count(0)
    await expect(people).to_have_count(1)


async def test_a_picture_challenge_guards_the_password_after_repeated_failures(
    stack: Stack, open_page: OpenPage
) -> None:
    page = await open_page()
    await page.goto("/signin")
    await page.get_by_label("Email address").fill(world.OWNER)
    picture = page.get_by_role("img", name="Five letters and digits, drawn slightly rotated")
    for _ in range(stack.settings.login_failures_before_delay):
        await expect(picture).to_have_count(0)
        await page.get_by_label("Password", exact=True).fill("not-the-password")
        assert await _submit_sign_in(page) == 400
    # REQ: ACC-7 — from now on the password is checked only with the picture solved.
    await expect(picture).to_be_visible()
    await page.get_by_label("Password", exact=True).fill(world.PASSWORD)
    await page.get_by_label("Type the characters in the picture").fill("-----")
    assert await _submit_sign_in(page) == 400
    await expect(page.get_by_role("alert")).to_have_text("Those characters were not right; try this picture.")

    clock.advance(seconds=5)  # past the short delay that follows repeated wrong passwords
    answer = read_picture(str(await picture.get_attribute("src")))
    await page.get_by_label("Password", exact=True).fill(world.PASSWORD)
    await page.get_by_label("Type the characters in the picture").fill(answer)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{stack.base_url}/vehicles")


async def _submit_sign_in(page: Page) -> int:
    """Sends the sign-in form and answers the status of the page that comes back."""
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name="Sign in").click()
    response = await navigation.value
    assert response is not None
    return response.status
