"""The portal's functions and updates pages and the operator console's package, key and campaign pages over
HTTP with signed-in browser sessions (issue 6): who may look and who may act, a double submit that stays one
order, and refused forms that show the reason instead of failing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from carlink.catalog.models import Offer
from carlink.demo import world
from carlink.fod.models import Delivery, FunctionOrder, PackageKey, UpdateCampaign, UpdateConsent
from carlink.store.models import PaymentMethod
from tests.support.portal import Browser
from tests.support.stack import TAYCAN, Stack

VISA = {"number": "4242 4242 4242 4242", "exp_month": "12", "exp_year": "2031", "cvc": "123"}
PAGE = f"/vehicles/{TAYCAN}/functions"


@pytest.fixture
async def owner(stack: Stack) -> AsyncIterator[Browser]:
    browser = await Browser(stack).sign_in(world.OWNER)
    try:
        yield browser
    finally:
        await browser.close()


async def signed_in(stack: Stack, email: str) -> Browser:
    return await Browser(stack).sign_in(email)


async def count(stack: Stack, model: type[object]) -> int:
    async with stack.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def permanent_offer(stack: Stack, function: str = "adaptive-cruise") -> int:
    async with stack.db.session() as session:
        found = await session.scalar(
            select(Offer.id).where(
                Offer.service_code == function,
                Offer.country == "DE",
                Offer.term == "LIFE",
                Offer.retired_at.is_(None),
            )
        )
    assert found is not None
    return int(found)


async def saved_card(stack: Stack, browser: Browser) -> int:
    assert (await browser.post("/account/payment", VISA)).status_code == 303
    async with stack.db.session() as session:
        found = await session.scalar(select(PaymentMethod.id).order_by(PaymentMethod.id.desc()).limit(1))
    assert found is not None
    return int(found)


async def test_every_user_of_the_car_sees_its_functions_only_the_main_user_orders_strangers_get_404(
    stack: Stack, owner: Browser
) -> None:
    page = await owner.http.get(PAGE)
    assert page.status_code == 200
    for name in ("Adaptive cruise control", "Matrix LED high beam", "Power boost", "Lane keeping assist"):
        assert name in page.text
    assert 'data-order-form="adaptive-cruise"' in page.text
    assert "Nothing is charged now" in page.text and "within 28 days" in page.text
    assert "privacy mode off" in page.text
    assert 'href="/account/payment">Add a card</a>' in page.text  # no saved card yet
    assert f'href="/vehicles/{TAYCAN}/store/terms/adaptive-cruise"' in page.text
    assert "Allow online software updates for this car" in page.text
    assert (await owner.http.get(f"/vehicles/{TAYCAN}")).text.count(f'href="{PAGE}"') == 1

    family = await signed_in(stack, world.FAMILY)
    stranger = await signed_in(stack, world.STRANGER)
    try:
        seen = await family.http.get(PAGE)
        assert seen.status_code == 200 and "Adaptive cruise control" in seen.text
        assert "data-order-form" not in seen.text and 'id="main-user-note"' in seen.text
        assert "Allow online software updates" not in seen.text
        assert (await stranger.http.get(PAGE)).status_code == 404
        assert (await stranger.http.get("/vehicles/NOT-A-VIN/functions")).status_code == 404
    finally:
        await family.close()
        await stranger.close()
    anonymous = await stack.http.get(PAGE, headers={"Accept": "text/html"})
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin?next=")


async def test_a_double_submitted_order_is_one_order_and_it_can_be_cancelled_before_install(
    stack: Stack, owner: Browser
) -> None:
    card = await saved_card(stack, owner)
    form = {
        "offer_id": str(await permanent_offer(stack)),
        "payment_method_id": str(card),
        "accept_terms": "1",
        "function": "adaptive-cruise",
    }
    first = await owner.post(f"{PAGE}/order", form)
    second = await owner.post(f"{PAGE}/order", form)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == f"{PAGE}?done=ordered"
    assert second.headers["location"] == f"{PAGE}?done=already_ordered"
    assert await count(stack, FunctionOrder) == 1

    page = await owner.http.get(first.headers["location"])
    assert "The function is ordered. Nothing is charged until the car activates it." in page.text
    assert "data-download-by" in page.text or 'data-state="downloaded"' in page.text
    async with stack.db.session() as session:
        order = await session.scalar(select(FunctionOrder))
    assert order is not None

    family = await signed_in(stack, world.FAMILY)
    try:
        refused = await family.post(f"{PAGE}/orders/{order.id}/cancel")
        assert refused.status_code == 403 and "Only the person who ordered it" in refused.text
    finally:
        await family.close()
    cancelled = await owner.post(f"{PAGE}/orders/{order.id}/cancel")
    assert cancelled.status_code == 303 and cancelled.headers["location"] == f"{PAGE}?done=cancelled"
    async with stack.db.session() as session:
        assert (await session.get(FunctionOrder, order.id)).state == "cancelled"  # type: ignore[union-attr]
    assert (await owner.post(f"{PAGE}/orders/99999/cancel")).status_code == 400


async def test_refused_orders_show_the_reason_on_the_page_and_order_nothing(
    stack: Stack, owner: Browser
) -> None:
    card = await saved_card(stack, owner)
    offer = str(await permanent_offer(stack))
    base = {"offer_id": offer, "payment_method_id": str(card), "function": "adaptive-cruise"}

    no_terms = await owner.post(f"{PAGE}/order", base)
    assert no_terms.status_code == 422
    assert "Please accept the terms of the function to order it." in no_terms.text
    no_card = await owner.post(f"{PAGE}/order", {**base, "accept_terms": "1", "payment_method_id": ""})
    assert no_card.status_code in (400, 422) and 'id="functions-error"' in no_card.text
    bad_offer = await owner.post(f"{PAGE}/order", {**base, "accept_terms": "1", "offer_id": "x"})
    assert bad_offer.status_code in (400, 422) and 'id="functions-error"' in bad_offer.text
    stale = await owner.http.post(f"{PAGE}/order", data={**base, "accept_terms": "1", "csrf_token": "old"})
    assert stale.status_code == 403

    family = await signed_in(stack, world.FAMILY)
    stranger = await signed_in(stack, world.STRANGER)
    try:
        as_family = await family.post(f"{PAGE}/order", {**base, "accept_terms": "1"})
        assert as_family.status_code == 403
        as_stranger = await stranger.post(f"{PAGE}/order", {**base, "accept_terms": "1"})
        assert as_stranger.status_code == 404
    finally:
        await family.close()
        await stranger.close()
    assert await count(stack, FunctionOrder) == 0


async def test_the_main_user_switches_updates_on_and_the_page_shows_when_and_under_which_policy(
    stack: Stack, owner: Browser
) -> None:
    switched = await owner.post(f"/vehicles/{TAYCAN}/updates/consent", {"enabled": "1"})
    assert switched.status_code == 303 and switched.headers["location"] == f"{PAGE}?done=updates_on#updates"
    again = await owner.post(f"/vehicles/{TAYCAN}/updates/consent", {"enabled": "1"})
    assert again.status_code == 303
    assert await count(stack, UpdateConsent) == 1  # a repeated click records nothing new
    page = await owner.http.get(PAGE)
    assert 'data-consent="on"' in page.text and "On since" in page.text
    assert (await owner.http.get(f"/vehicles/{TAYCAN}/updates")).headers["location"] == f"{PAGE}#updates"

    family = await signed_in(stack, world.FAMILY)
    stranger = await signed_in(stack, world.STRANGER)
    try:
        refused = await family.post(f"/vehicles/{TAYCAN}/updates/consent", {"enabled": ""})
        assert refused.status_code == 403
        assert "Only the vehicle&#39;s main user can switch online updates." in refused.text
        assert (
            await stranger.post(f"/vehicles/{TAYCAN}/updates/consent", {"enabled": ""})
        ).status_code == 404
    finally:
        await family.close()
        await stranger.close()
    off = await owner.post(f"/vehicles/{TAYCAN}/updates/consent", {"enabled": ""})
    assert off.headers["location"] == f"{PAGE}?done=updates_off#updates"
    assert 'data-consent="off"' in (await owner.http.get(PAGE)).text


CONSOLE = ["/operator/functions", "/operator/packages", "/operator/keys", "/operator/campaigns"]


async def test_the_console_pages_are_for_operators_only(stack: Stack, owner: Browser) -> None:
    for path in CONSOLE:
        anonymous = await stack.http.get(path, headers={"Accept": "text/html"})
        assert anonymous.status_code == 303, path
        assert (await owner.http.get(path)).status_code == 403, path
    assert (await owner.post("/operator/keys/rotate", {"role": "targets"})).status_code == 403
    assert (await owner.post("/operator/campaigns/1/pause")).status_code == 403

    operator = await signed_in(stack, world.OPERATOR)
    try:
        for path in CONSOLE:
            page = await operator.http.get(path)
            assert page.status_code == 200, path
        functions = (await operator.http.get("/operator/functions")).text
        assert "Adaptive cruise control" in functions and "€1,190.00" in functions
        packages = (await operator.http.get("/operator/packages")).text
        assert "function-adaptive-cruise" in packages and "Targets version" in packages
        assert (await operator.http.get("/operator/campaigns/99999")).status_code == 404
        assert (await operator.http.get("/operator/campaigns/abc")).status_code == 404
    finally:
        await operator.close()


async def test_operator_uploads_a_package_rotates_a_key_and_runs_a_campaign_from_the_forms(
    stack: Stack, owner: Browser
) -> None:
    assert (await owner.post(f"/vehicles/{TAYCAN}/updates/consent", {"enabled": "1"})).status_code == 303
    operator = await signed_in(stack, world.OPERATOR)
    try:
        upload = await operator.http.post(
            "/operator/packages",
            data={"csrf_token": operator.csrf, "name": "update-taycan-2.0.0"},
            files={"file": ("update.bin", b"new software" * 1000, "application/octet-stream")},
        )
        assert upload.status_code == 303 and upload.headers["location"] == "/operator/packages?done=package"
        bad_name = await operator.http.post(
            "/operator/packages",
            data={"csrf_token": operator.csrf, "name": "../etc"},
            files={"file": ("x.bin", b"x", "application/octet-stream")},
        )
        assert bad_name.status_code == 400 and 'id="package-error"' in bad_name.text
        no_file = await operator.post("/operator/packages", {"name": "empty"})
        assert no_file.status_code == 422 and "Choose the package file" in no_file.text

        keys = await count(stack, PackageKey)
        rotated = await operator.post("/operator/keys/rotate", {"role": "targets"})
        assert rotated.headers["location"] == "/operator/keys?done=rotated"
        assert await count(stack, PackageKey) == keys + 1
        assert (await operator.post("/operator/keys/rotate", {"role": "nobody"})).status_code == 400

        campaign = {
            "name": "Taycan 2.0",
            "package": "update-taycan-2.0.0",
            "model_key": "taycan-1",
            "variants": "",
            "version_from": "1.0.0",
            "version_below": "2.0.0",
            "to_version": "2.0.0",
            "waves": "10, 50, 100",
            "success_threshold": "90",
            "error_threshold": "10",
        }
        nobody = await operator.post(
            "/operator/campaigns",
            {**campaign, "version_from": "9.0", "version_below": "9.5", "to_version": "9.5"},
        )
        assert nobody.status_code == 422 and 'data-code="campaign_targets_no_car"' in nobody.text
        assert "No car matches this model" in nobody.text
        bad_waves = await operator.post("/operator/campaigns", {**campaign, "waves": "50, 10"})
        assert bad_waves.status_code == 422 and 'data-code="invalid_waves"' in bad_waves.text
        bad_version = await operator.post("/operator/campaigns", {**campaign, "to_version": "new"})
        assert bad_version.status_code == 422 and 'data-code="invalid_version"' in bad_version.text
        assert await count(stack, UpdateCampaign) == 0

        created = await operator.post("/operator/campaigns", campaign)
        assert created.status_code == 303
        page = await operator.http.get(created.headers["location"])
        assert page.status_code == 200 and f'data-vin="{TAYCAN}"' in page.text
        assert "1 car matches; 1 with online updates switched on." in page.text
        campaign_path = created.headers["location"].split("?")[0]
        paused = await operator.post(f"{campaign_path}/pause")
        assert paused.headers["location"] == f"{campaign_path}?done=paused"
        assert (await operator.post(f"{campaign_path}/explode")).status_code == 404
        assert (await operator.post(f"{campaign_path}/cancel")).status_code == 303
        refused = await operator.post(f"{campaign_path}/resume")
        assert refused.status_code == 409 and "A cancelled campaign cannot become running." in refused.text
        listed = (await operator.http.get("/operator/campaigns")).text
        assert "Taycan 2.0" in listed and 'data-state="cancelled"' in listed
    finally:
        await operator.close()

    owner_page = (await owner.http.get(PAGE)).text
    assert "Taycan 2.0" in owner_page


async def test_a_failed_install_shows_the_recovery_and_after_three_failures_points_to_the_dealer(
    stack: Stack, owner: Browser
) -> None:
    await stack.fleet[TAYCAN].set_privacy_mode(True)  # the car fetches nothing: the test moves the delivery
    card = await saved_card(stack, owner)
    form = {
        "offer_id": str(await permanent_offer(stack)),
        "payment_method_id": str(card),
        "accept_terms": "1",
    }
    assert (await owner.post(f"{PAGE}/order", form)).status_code == 303
    for failures, advice in ((1, 'data-recovery="restart"'), (3, 'data-recovery="dealer"')):
        async with stack.db.transaction() as session:
            delivery = await session.scalar(select(Delivery))
            assert delivery is not None
            delivery.state, delivery.reason, delivery.failures = "failed", "install_precondition", failures
        page = await owner.http.get(PAGE)
        assert 'data-function="adaptive-cruise" data-state="failed"' in page.text
        assert "The install failed (install_precondition)." in page.text and advice in page.text
    assert "please see your dealer" in page.text
