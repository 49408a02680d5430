"""The store in a real browser against the whole stack (STO-1..11): checkout with a double click on Confirm,
express checkout from two tabs, the card issuer's one-time code, withdrawal, and who may buy at all."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.async_api import Locator, Page, expect
from sqlalchemy import func, select

from carlink.demo import world
from carlink.protocol.vin import make_vin
from carlink.store.models import Contract, Order
from carlink.store.payments import SandboxCharge, SandboxRefund
from tests.e2e.conftest import SCREENSHOTS, SignIn
from tests.support.stack import TAYCAN, Stack

pytestmark = pytest.mark.e2e

VISA = "4242 4242 4242 4242"
VISA_3DS = "4000 0000 0000 3220"
EXPIRY_YEAR = str(dt.date.today().year + 3)


async def count(stack: Stack, model: type[object]) -> int:
    async with stack.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def add_to_cart(page: Page, label: str) -> None:
    await page.goto(f"/vehicles/{TAYCAN}/store")
    await page.get_by_role("button", name=f"Add to cart: {label}").click()
    await expect(page).to_have_url(re.compile(rf"/vehicles/{TAYCAN}/cart$"))


async def enter_address(page: Page) -> None:
    await page.get_by_role("link", name="Go to checkout").click()
    await expect(page.get_by_role("heading", name="Billing address")).to_be_visible()
    await expect(page.get_by_label("Full name", exact=True)).to_have_value("Alex Example")
    await page.get_by_label("Street and house number").fill("Beispielweg 1")
    await page.get_by_label("Postcode").fill("70173")
    await page.get_by_label("City").fill("Stuttgart")
    await expect(page.get_by_label("Country")).to_have_value("DE")
    await page.get_by_role("button", name="Continue").click()


async def fill_card(page: Page, number: str) -> None:
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Expiry month").select_option("12")
    await page.get_by_label("Expiry year").select_option(EXPIRY_YEAR)
    await page.get_by_label("Security code").fill("123")
    await page.get_by_label("Name on the card").fill("Alex Example")


async def pay_with_new_card(page: Page, number: str) -> None:
    await expect(page.get_by_role("heading", name="Payment", exact=True)).to_be_visible()
    await fill_card(page, number)
    await page.get_by_role("button", name="Add card and continue").click()
    await expect(page.get_by_role("heading", name="Review and confirm")).to_be_visible()


def confirm_button(page: Page) -> Locator:
    return page.get_by_role("button", name=re.compile(r"^Confirm (and pay|the free order)"))


async def test_owner_buys_a_year_of_remote_services_and_a_double_click_makes_one_order(
    stack: Stack, sign_in: SignIn
) -> None:
    page = await sign_in(world.OWNER)
    await page.goto(f"/vehicles/{TAYCAN}")
    await page.locator(".vehicle-links").get_by_role("link", name="Store").click()
    await expect(page.get_by_role("heading", name="Store for your Taycan 4S")).to_be_visible()
    remote = page.locator('[data-service="remote-services"]')
    await expect(remote.locator('[data-term="trial"]')).to_contain_text("Free trial")
    await expect(remote.locator('[data-term="P1Y"]')).to_contain_text("€99.00")
    await expect(page.get_by_role("link", name="General terms of the store")).to_be_visible()
    await expect(page.locator("[data-accepted-brands]")).to_have_text("We accept VISA · Mastercard")

    await page.get_by_role("button", name="Add to cart: Remote services, 1 year").click()
    await expect(page.locator("[data-total]")).to_have_text("€99.00")
    await enter_address(page)
    await pay_with_new_card(page, VISA)

    # REQ: STO-6 — the terms that apply, readable from the review; STO-10 — the withdrawal right.
    terms = page.locator("#terms")
    await expect(terms.get_by_role("link", name="carlink general terms")).to_be_visible()
    await expect(terms.get_by_role("link", name="Service terms: Remote services")).to_be_visible()
    await expect(page.locator("#withdrawal")).to_contain_text("within 14 days")
    await expect(page.locator("[data-card]")).to_contain_text("VISA •••• 4242")
    await expect(page.locator("[data-accepted-brands]")).to_have_text("We accept VISA · Mastercard")
    assert VISA.replace(" ", "") not in await page.content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "store-review.png", full_page=True)

    form = page.locator("form.confirm")
    sent: dict[str, str | float | bool] = {
        "csrf_token": str(await form.locator('[name="csrf_token"]').get_attribute("value")),
        "revision": str(await form.locator('[name="revision"]').get_attribute("value")),
    }
    await confirm_button(page).dblclick()
    await expect(page).to_have_url(re.compile(r"/orders/[0-9]+$"))
    await expect(page.get_by_role("heading", name="Thank you for your order")).to_be_visible()
    await expect(page.locator("#confirmation")).to_contain_text(
        "The confirmation with your terms is on its way by email."
    )
    # The browser sending the same confirmation once more (a retry) lands on the same order.
    retry = await page.request.post(f"/vehicles/{TAYCAN}/checkout/confirm", form=sent, max_redirects=0)
    assert retry.status == 303 and page.url.endswith(retry.headers["location"])
    assert await count(stack, Order) == 1
    assert await count(stack, SandboxCharge) == 1
    assert await count(stack, Contract) == 1

    # REQ: STO-8 — the remaining term under Services.
    await page.get_by_role("link", name="See all services of this car").click()
    contract = page.locator('.contract[data-service="remote-services"]')
    await expect(contract).to_have_attribute("data-state", "active")
    await expect(contract.locator(".remaining")).to_have_text(re.compile(r"^36[4-6] days, until "))
    await expect(contract.get_by_role("button", name="Cancel subscription: Remote services")).to_have_count(0)
    await expect(contract.locator("summary", has_text="Withdraw")).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "store-services.png", full_page=True)


async def test_express_checkout_from_the_profile_and_two_tabs_confirm_one_order(
    stack: Stack, sign_in: SignIn
) -> None:
    page = await sign_in(world.OWNER)
    await page.get_by_role("link", name="Login & security").click()
    await page.get_by_role("link", name="Payment & address").click()
    await fill_card(page, VISA)
    await page.get_by_role("button", name="Save card").click()
    await expect(page.locator("#payment-notice")).to_have_text("Your card is saved.")
    await expect(page.locator('.saved-cards [data-card="4242"]')).to_contain_text("Default")
    await page.get_by_label("Full name", exact=True).fill("Alex Example")
    await page.get_by_label("Street and house number").fill("Beispielweg 1")
    await page.get_by_label("Postcode").fill("70173")
    await page.get_by_label("City").fill("Stuttgart")
    await page.get_by_label("Country").fill("DE")
    await page.get_by_role("button", name="Save address").click()
    await expect(page.locator("#payment-notice")).to_have_text("Your billing address is saved.")

    await add_to_cart(page, "Car security alerts, 1 year")
    await page.get_by_role("button", name="Express checkout").click()
    await expect(page).to_have_url(re.compile(rf"/vehicles/{TAYCAN}/checkout/review$"))
    await expect(page.locator("[data-card]")).to_contain_text("VISA •••• 4242")
    await expect(page.locator(".postal")).to_contain_text("Beispielweg 1")

    # A second tab on the same review: both confirm the same cart revision.
    other = await page.context.new_page()
    await other.goto(f"/vehicles/{TAYCAN}/checkout/review")
    await confirm_button(page).click()
    await expect(page.get_by_role("heading", name="Thank you for your order")).to_be_visible()
    await confirm_button(other).click()
    await expect(other.get_by_role("heading", name="Thank you for your order")).to_be_visible()
    assert other.url == page.url
    assert await count(stack, Order) == 1 and await count(stack, SandboxCharge) == 1


async def test_the_card_issuers_one_time_code_fails_when_wrong_and_confirms_when_right(
    stack: Stack, sign_in: SignIn
) -> None:
    page = await sign_in(world.OWNER)
    await add_to_cart(page, "Navigation Plus with live traffic, 1 year")
    await enter_address(page)
    await pay_with_new_card(page, VISA_3DS)
    await confirm_button(page).click()

    challenge = page.locator("#challenge")
    await expect(challenge).to_contain_text("In the sandbox the code is 123456.")
    await page.get_by_label("One-time code").fill("000000")
    await page.get_by_role("button", name="Confirm payment").click()
    await expect(page.locator("#failure-reason")).to_have_text(
        "The one-time code was not right, so your card issuer did not allow the payment."
    )
    first_order = page.url

    await page.get_by_role("link", name="Back to your cart").click()
    await enter_address(page)  # the card stays chosen: straight on to the review
    await expect(page.get_by_role("heading", name="Review and confirm")).to_be_visible()
    await confirm_button(page).click()
    await page.get_by_label("One-time code").fill("123456")
    await page.get_by_role("button", name="Confirm payment").click()
    await expect(page.get_by_role("heading", name="Thank you for your order")).to_be_visible()
    assert page.url != first_order
    async with stack.db.session() as session:
        states = sorted(await session.scalars(select(Order.state)))
    assert states == ["confirmed", "failed"]


async def test_owner_withdraws_a_fresh_contract_and_the_price_is_refunded(
    stack: Stack, sign_in: SignIn
) -> None:
    page = await sign_in(world.OWNER)
    await add_to_cart(page, "Charging planner, 1 year")
    await enter_address(page)
    await pay_with_new_card(page, VISA)
    await confirm_button(page).click()
    await expect(page.get_by_role("heading", name="Thank you for your order")).to_be_visible()

    await page.goto(f"/vehicles/{TAYCAN}/services")
    contract = page.locator('.contract[data-service="charging-planner"]')
    await contract.locator("summary", has_text="Withdraw").click()
    await expect(contract.locator(".confirm-body")).to_contain_text("we refund €49.00 to your card")
    await contract.get_by_role("button", name="Yes, withdraw").click()
    await expect(page.locator("#services-notice")).to_contain_text("You withdrew from the contract.")
    await expect(contract).to_have_attribute("data-state", "withdrawn")
    await expect(contract.locator(".badge.state")).to_have_text("Withdrawn")
    await expect(contract.locator("summary", has_text="Withdraw")).to_have_count(0)
    async with stack.db.session() as session:
        refunds = list(await session.scalars(select(SandboxRefund.amount_minor)))
    assert refunds == [4900]


async def test_a_secondary_user_sees_the_store_without_buying_and_a_stranger_finds_nothing(
    stack: Stack, sign_in: SignIn
) -> None:
    family = await sign_in(world.FAMILY)
    await family.goto(f"/vehicles/{TAYCAN}")
    await family.locator(".vehicle-links").get_by_role("link", name="Store").click()
    await expect(family.locator("#buyer-note")).to_contain_text("only its main user can buy them")
    await expect(family.locator('[data-service="remote-services"]')).to_be_visible()
    await expect(family.get_by_role("button", name=re.compile("Add to cart"))).to_have_count(0)
    await expect(family.locator("[data-accepted-brands]")).to_have_text("We accept VISA · Mastercard")
    response = await family.goto(f"/vehicles/{TAYCAN}/cart")
    assert response is not None and response.status == 403

    stranger = await sign_in(world.STRANGER)
    texts = {}
    unknown = make_vin("WP0", "ZZZY1", "P", "S", 999999)
    for vin in (TAYCAN, unknown):
        response = await stranger.goto(f"/vehicles/{vin}/store")
        assert response is not None and response.status == 404
        await expect(stranger.get_by_role("heading", name="Not found")).to_be_visible()
        texts[vin] = (await stranger.locator("main").inner_text()).replace(vin, "<VIN>")
    assert texts[TAYCAN] == texts[unknown]
    assert "Taycan" not in texts[TAYCAN]
