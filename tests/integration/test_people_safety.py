"""What keeps people's cars and IDs safe from the people around them: a dealer sells only the cars it serves,
a car goes straight into an ID only when that ID has proven it reads the mailbox, a change of hands ends the
previous owner's logins in the car and driver cards, and bad input is refused, never a 500."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import func, select

from carlink.demo import world
from carlink.garage import service as garage
from carlink.identity import service as identity
from carlink.identity.models import Invitation
from carlink.incar.models import InCarLogin
from carlink.partners.models import Sale
from carlink.privacy.models import ErasureRequest
from carlink.protocol.vin import make_vin
from carlink.security.models import DriverCard
from tests.integration.test_invitations import (
    browsers,
    form_token_of,
    latest_link,
    record_sale,
    sale_form,
    signed_in,
)
from tests.support.portal import Browser
from tests.support.stack import TAYCAN, Stack

__all__ = ["browsers"]  # the fixture, shared with test_invitations

NEW_CAR = make_vin("WP0", "ZZZY1", "R", "S", 910001)


async def main_user_email(stack: Stack, vin: str) -> str | None:
    async with stack.db.session() as session:
        vehicle = await garage.vehicle_by_vin(session, vin)
        assert vehicle is not None
        owner = (await garage.main_users(session, {vehicle.id})).get(vehicle.id)
        account = await session.get(identity.Account, owner) if owner else None
    return account.email if account else None


async def test_a_dealer_sells_only_cars_it_serves_and_a_double_submit_records_one_sale(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    # Another dealer cannot take the owner's car by recording a sale of it: the car is unknown to it.
    berlin = await signed_in(stack, browsers, world.OTHER_DEALER)
    taken = await berlin.post("/dealer/sales", sale_form(TAYCAN, world.STRANGER, model_year="2023"))
    assert taken.status_code == 400 and "among the cars you serve" in taken.text
    assert await main_user_email(stack, TAYCAN) == world.OWNER

    # The same sale form sent twice (a double click) records one sale.
    stuttgart = await signed_in(stack, browsers, world.DEALER)
    await record_sale(stuttgart, NEW_CAR, "nora@example.org")
    again = await stuttgart.post("/dealer/sales", sale_form(NEW_CAR, "nora@example.org"))
    assert again.status_code == 409 and "a moment ago" in again.text
    async with stack.db.session() as session:
        vehicle = await garage.vehicle_by_vin(session, NEW_CAR)
        assert vehicle is not None
        sales = await session.scalar(
            select(func.count()).select_from(Sale).where(Sale.vehicle_id == vehicle.id)
        )
        # The refused second submit changed nothing: the buyer's first link still works.
        invitation = await session.scalar(select(Invitation).where(Invitation.email == "nora@example.org"))
        assert invitation is not None and invitation.cancelled_at is None
    assert sales == 1

    # A country that is not an ISO code, or a model year far ahead, is refused with the reason.
    odd = await stuttgart.post(
        "/dealer/sales",
        sale_form(make_vin("WP0", "ZZZY1", "R", "S", 910002), "x@example.org", buyer_country="DEU"),
    )
    assert odd.status_code == 400 and "country" in odd.text
    future = await stuttgart.post(
        "/dealer/sales",
        sale_form(make_vin("WP0", "ZZZY1", "R", "S", 910003), "x@example.org", model_year="2999"),
    )
    assert future.status_code == 400 and "was not built in 2999" in future.text


async def test_a_car_goes_into_a_self_registered_id_only_through_the_mailed_link(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    # Someone registers an address they may not own: a sale to it must not hand them the car.
    address = "newbuyer@example.org"
    created = await stack.http.post(
        "/api/v1/accounts", json={"email": address, "password": "attacker-pass-1", "country": "DE"}
    )
    assert created.status_code == 201
    dealer = await signed_in(stack, browsers, world.DEALER)
    _, outcome = await record_sale(dealer, NEW_CAR, address)
    assert outcome == "invited"
    assert await main_user_email(stack, NEW_CAR) is None
    link = await latest_link(stack, address)
    token = link.rsplit("/", 1)[1]

    # The link does not make a second ID for the address: it asks the ID to sign in and add the car.
    signed_out = httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers={"Accept": "text/html"})
    try:
        page = await signed_out.get(f"/register/{token}")
        assert page.status_code == 200 and "Sign in to add the car" in page.text
        refused = await stack.http.post(
            f"/api/v1/invitations/{token}/accept",
            json={"password": "another-pass-1", "partner_id": 1, "accept_privacy_policy": True},
        )
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "sign_in_to_add_car"
    finally:
        await signed_out.aclose()

    # Another ID signed in cannot use it; the ID of the address can, which proves it reads the mailbox.
    stranger = await signed_in(stack, browsers, world.STRANGER)
    wrong = await stranger.post(f"/register/{token}/add-car")
    assert wrong.status_code == 403
    buyer = await Browser(stack).sign_in(address, "attacker-pass-1")
    try:
        page = await buyer.http.get(f"/register/{token}")
        assert re.search(r'action="/register/[^"]+/add-car"', page.text)
        added = await buyer.post(f"/register/{token}/add-car")
        assert added.status_code == 303 and added.headers["location"] == f"/vehicles/{NEW_CAR}"
        again = await buyer.post(f"/register/{token}/add-car")
        assert again.status_code == 410
    finally:
        await buyer.close()
    assert await main_user_email(stack, NEW_CAR) == address
    async with stack.db.session() as session:
        account = await identity.find_account(session, address)
        assert account is not None and account.email_verified_at is not None


async def test_a_change_of_hands_ends_logins_in_the_car_and_its_driver_cards(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    # A visitor logged in with the owner's security code (VEH-8), and a driver card for the car.
    car = stack.fleet[TAYCAN]
    await car.start_with_key("key-3")
    visitor = await car.log_in_id(world.STRANGER, world.PASSWORD, security_code=world.PIN)
    assert visitor.ok and visitor.role == "visitor"
    dealer = await signed_in(stack, browsers, world.DEALER)
    card = {"vin": TAYCAN, "serial": "CARD0001", "label": "Spare"}
    assert (await dealer.post("/dealer/driver-cards", card)).status_code == 303

    # The owner removes the sold car from the profile (ACC-6).
    owner = await signed_in(stack, browsers, world.OWNER)
    assert (await owner.post(f"/vehicles/{TAYCAN}/remove")).status_code == 303
    async with stack.db.session() as session:
        vehicle = await garage.vehicle_by_vin(session, TAYCAN)
        assert vehicle is not None
        logins = await session.scalar(
            select(func.count()).select_from(InCarLogin).where(InCarLogin.vehicle_id == vehicle.id)
        )
        cards = list(await session.scalars(select(DriverCard).where(DriverCard.vehicle_id == vehicle.id)))
    assert logins == 0
    assert cards and all(card.revoked_at is not None for card in cards)
    # The visitor's key no longer opens the ID in the car: it falls back to guest.
    resumed = await car.start_with_key("key-3")
    assert resumed.guest


async def test_input_the_database_cannot_keep_is_refused_not_a_server_error(stack: Stack) -> None:
    response = await stack.http.post(
        "/api/v1/accounts",
        json={
            "email": "nul@example.org",
            "password": "a-long-password",
            "country": "DE",
            "display_name": "a\u0000b",
        },
    )
    if stack.settings.database_url.startswith("postgresql"):
        # PostgreSQL cannot keep a NUL character in text: a clear refusal, and no ID was created.
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_input"
        async with stack.db.session() as session:
            assert await identity.find_account(session, "nul@example.org") is None
    else:
        assert response.status_code == 201


async def test_deleting_the_id_can_file_the_erasure_request_in_the_same_step(stack: Stack) -> None:
    # REQ: ACC-5, PRV-5 — a deleted ID can no longer sign in to ask for erasure, so it asks while deleting.
    family = await stack.as_user(world.FAMILY)
    try:
        response = await family.request(
            "DELETE", "/api/v1/me", json={"password": world.PASSWORD, "erase": True}
        )
        assert response.status_code == 204
    finally:
        await family.aclose()
    async with stack.db.session() as session:
        account = await identity.find_account(session, world.FAMILY)
        assert account is None  # deleted: no longer found for sign-in
        requests = list(await session.scalars(select(ErasureRequest)))
    assert [(r.state, r.account_id is not None) for r in requests] == [("requested", True)]


async def test_password_confirmations_cannot_be_guessed_with_a_stolen_session(stack: Stack) -> None:
    # ACC-7: confirming an action with the password (here a new security PIN) counts wrong answers; after
    # five within ten minutes even the right one waits, so a stolen session cannot guess the password.
    owner = await stack.as_user(world.OWNER)
    try:
        for _ in range(5):
            wrong = await owner.put("/api/v1/me/pin", json={"password": "not-it-at-all", "pin": "4321"})
            assert wrong.status_code == 401
        waiting = await owner.put("/api/v1/me/pin", json={"password": world.PASSWORD, "pin": "4321"})
        assert waiting.status_code == 429 and waiting.json()["error"]["code"] == "slow_down"
        assert int(waiting.headers["Retry-After"]) > 0
    finally:
        await owner.aclose()


async def test_registration_records_the_policy_version_the_form_showed(stack: Stack) -> None:
    # REQ: PRV-1 — a version published while the form was open: the person reads it first.
    person = httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers={"Accept": "text/html"})
    try:
        form = await person.get("/register")
        shown = re.search(r'name="policy_version" value="([0-9]+)"', form.text)
        assert shown is not None
        stuttgart = re.search(r'<option value="([0-9]+)"[^>]*>Autohaus Example Stuttgart', form.text)
        assert stuttgart is not None
        data = {
            "email": "vera@example.org",
            "country": "DE",
            "display_name": "Vera",
            "password": "a-new-secret-1",
            "password_again": "a-new-secret-1",
            "partner_id": stuttgart.group(1),
            "policy": "1",
            "form_token": form_token_of(form.text),
        }
        stale = await person.post("/register", data=data | {"policy_version": str(int(shown.group(1)) + 1)})
        assert stale.status_code == 400 and "privacy policy changed" in stale.text
        done = await person.post("/register", data=data | {"policy_version": shown.group(1)})
        assert done.status_code == 303
    finally:
        await person.aclose()
    async with stack.db.session() as session:
        assert await identity.find_account(session, "vera@example.org") is not None
