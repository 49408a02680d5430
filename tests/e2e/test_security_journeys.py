"""A theft from the car's sensor to the SOC console, in a real browser (SEC-1, SEC-4; issue 7).

The owner has bought vehicle tracking with the number the SOC calls; the simulated Taycan applies its
security set and raises its test alarm, and the SOC operator confirms the activation on the welcome-call
list. Then the car is stolen: its alarm appears in the SOC's live queue without a reload, the operator opens
the case (map, customer, number), works it to a confirmed theft, and the car — now in privacy mode — keeps
sending its track, which the case shows marked as a privacy override. The owner sees the package active, the
SOC's contacts and the certificate."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from carlink.demo import world
from carlink.security.models import SocAccess, TrackingActivation
from tests.e2e.conftest import SCREENSHOTS, SignIn
from tests.integration.test_security_activation import buy_tracking
from tests.support.stack import TAYCAN, Stack, eventually

pytestmark = pytest.mark.e2e


async def activation_state(stack: Stack, contract_id: int) -> str:
    async with stack.db.session() as session:
        state = await session.scalar(
            select(TrackingActivation.state).where(TrackingActivation.contract_id == contract_id)
        )
    return str(state)


async def test_a_stolen_car_reaches_the_soc_which_tracks_it_through_privacy_mode(
    stack: Stack, sign_in: SignIn
) -> None:
    car = stack.fleet[TAYCAN]
    owner_api = await stack.as_user(world.OWNER)
    try:
        contract_id = await buy_tracking(owner_api, TAYCAN)
    finally:
        await owner_api.aclose()

    # REQ: SEC-4 — the car installs the package and its test alarm reaches the SOC.
    async def test_alarm_passed() -> bool:
        return await activation_state(stack, contract_id) == "test_passed"

    await eventually(test_alarm_passed, timeout=20)
    soc_page = await sign_in(world.SOC_OPERATOR)
    await soc_page.goto("/soc")
    await expect(soc_page.locator("#soc-live")).to_have_attribute("data-live", "live")
    welcome = soc_page.locator(f'#welcome-calls tr[data-vin="{TAYCAN}"]')
    await welcome.get_by_role("button", name="Confirm activation").click()
    await expect(soc_page.locator(f'#welcome-calls tr[data-vin="{TAYCAN}"]')).to_have_count(0)
    assert await activation_state(stack, contract_id) == "active"

    # The theft: started without a key and driven off. The queue shows it without a reload (SSE).
    await expect(soc_page.locator("#soc-live")).to_have_attribute("data-live", "live")
    await car.steal(km=5.0)
    row = soc_page.locator("#soc-queue-rows tr[data-alarm-id]").first
    await expect(row).to_have_attribute("data-state", "new")
    await expect(row).to_contain_text(TAYCAN)
    await soc_page.screenshot(path=str(SCREENSHOTS / "soc-live-queue.png"), full_page=True)

    # REQ: SEC-1 — the case: map (no tile server reachable here: the track is drawn anyway), the customer
    # and the number given when buying; worked to a confirmed theft.
    await row.get_by_role("link").first.click()
    await expect(soc_page.locator("#case-map")).to_have_attribute("data-map", "ready")
    await expect(soc_page.locator("#customer-phone")).to_contain_text("+49")
    for move in ("acknowledged", "customer_contacted"):
        await soc_page.locator(f'button[data-move="{move}"]').click()
        await expect(soc_page.locator("#case-state")).to_have_attribute("data-state", move)
    await soc_page.locator("#call-outcome").select_option("reached")
    await soc_page.locator("#call-note").fill("The owner has the keys at home: the car is stolen.")
    await soc_page.locator("#log-call").click()
    await expect(soc_page.locator('#call-log li[data-outcome="reached"]')).to_have_count(1)
    await soc_page.locator('button[data-move="theft_confirmed"]').click()
    await expect(soc_page.locator("#case-state")).to_have_attribute("data-state", "theft_confirmed")
    await expect(soc_page.locator("#case-tracking")).to_have_attribute("data-tracking", "theft")

    # The thief switches privacy mode on: the car still tracks for the confirmed theft, and the SOC's view
    # of those points is marked and logged.
    async def tracking_theft() -> bool:
        return car.security.tracking == "theft"

    await eventually(tracking_theft, timeout=15)
    await car.set_privacy_mode(True)
    sent = len(car.track_points_sent)
    await car.pass_time(60)

    async def more_points() -> bool:
        return len(car.track_points_sent) > sent

    await eventually(more_points, timeout=15)

    async def privacy_point_shown() -> bool:
        await soc_page.reload()
        return await soc_page.locator('#track-points tr[data-privacy="yes"]').count() > 0

    await eventually(privacy_point_shown, timeout=15, interval=0.5)
    await expect(soc_page.locator("#privacy-override")).to_be_visible()
    await expect(soc_page.locator("#case-map")).to_have_attribute("data-map", "ready")
    await soc_page.screenshot(path=str(SCREENSHOTS / "soc-theft-case.png"), full_page=True)
    async with stack.db.session() as session:
        overrides = await session.scalar(
            select(SocAccess.id).where(SocAccess.what == "track", SocAccess.privacy_override.is_(True))
        )
    assert overrides is not None

    # The owner: package active, the SOC's contacts, the certificate for the insurer.
    owner = await sign_in(world.OWNER)
    await owner.goto(f"/vehicles/{TAYCAN}")
    await owner.locator(".vehicle-links").get_by_role("link", name="Car security").click()
    await expect(owner.locator("#package")).to_have_attribute("data-state", "active")
    await expect(owner.locator("[data-soc-phone]")).to_be_visible()
    await expect(owner.locator("#certificate-link")).to_be_visible()
    await owner.screenshot(path=str(SCREENSHOTS / "car-security.png"), full_page=True)
