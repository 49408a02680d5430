"""The life of an ID (ACC-5, ACC-6): deleting it ends every way in at once, stops running services and keeps
the master data; removing a sold car from the profile keeps the ID, which can get new cars."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from carlink.demo import world
from carlink.garage import service as garage
from carlink.garage.models import VehicleUser
from carlink.identity.models import Account, RefreshToken, WebSession
from carlink.protocol.vin import make_vin
from carlink.store.models import Contract
from tests.integration.test_invitations import (
    browsers,
    mails_to,
    record_sale,
    sale_form,
    signed_in,
)
from tests.integration.test_store_contracts import buy
from tests.support.portal import Browser, account_id
from tests.support.stack import PANAMERA, TAYCAN, Stack, oidc_login

__all__ = ["browsers"]  # fixtures shared with test_invitations


async def test_deleting_the_id_ends_access_at_once_stops_services_and_keeps_master_data(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    owner_api = await stack.as_user(world.OWNER)
    try:
        contract = await buy(owner_api, TAYCAN, "wifi-1gb", "P1M", auto_renew=True)
    finally:
        await owner_api.aclose()
    app = await oidc_login(stack.http, world.OWNER, world.PASSWORD)
    owner_id = await account_id(stack, world.OWNER)
    browser = await signed_in(stack, browsers, world.OWNER)
    other_tab = await Browser(stack).sign_in(world.OWNER)
    try:
        # REQ: ACC-5 — the password confirms it; a wrong one changes nothing.
        wrong = await browser.post("/account/delete", {"password": "not-my-password"})
        assert wrong.status_code == 400 and 'id="delete-error"' in wrong.text
        deleted = await browser.post("/account/delete", {"password": world.PASSWORD})
        assert deleted.status_code == 200 and "Your ID is deleted" in deleted.text

        # Online access ends at once: every browser, the app's access and refresh tokens.
        for tab in (browser, other_tab):
            gone = await tab.http.get("/vehicles")
            assert gone.status_code == 303 and gone.headers["location"].startswith("/signin")
        bearer = {"Authorization": f"Bearer {app['access_token']}"}
        assert (await stack.http.get("/api/v1/me", headers=bearer)).status_code == 401
        refreshed = await stack.http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "client_id": "carlink-app",
                "refresh_token": app["refresh_token"],
            },
        )
        assert refreshed.status_code == 403 and refreshed.json()["error"] == "invalid_grant"
        # Signing in again gets the ordinary wrong-credentials answer.
        again = await Browser(stack).http.get("/signin")
        assert again.status_code == 200
        login = await oidc_login_refused(stack)
        assert login == "wrong email address or password"
    finally:
        await other_tab.http.aclose()

    async with stack.db.session() as session:
        account = await session.get(Account, owner_id)
        assert account is not None and account.deleted_at is not None and account.email == world.OWNER
        assert list(await session.scalars(select(WebSession).where(WebSession.account_id == owner_id))) == []
        tokens = list(await session.scalars(select(RefreshToken).where(RefreshToken.account_id == owner_id)))
        assert tokens and all(token.revoked_at is not None for token in tokens)
        memberships = await session.scalars(select(VehicleUser).where(VehicleUser.account_id == owner_id))
        assert list(memberships) == []
        row = await session.get(Contract, contract["id"])
        # Running services stop: nothing renews any more; the contract stays with the car (STO-9).
        assert row is not None and row.state == "cancelled" and not row.auto_renew
    assert len(await mails_to(stack, world.OWNER, "account_deleted")) == 1
    assert len(await mails_to(stack, world.OWNER, "subscription_cancelled")) == 1

    # The address cannot register again until an erasure request is completed: a clear reason.
    response = await stack.http.post(
        "/api/v1/accounts",
        json={"email": world.OWNER, "password": "another-secret-1", "country": "DE"},
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "id_deleted"
    # A dealer selling a car to that address is told the same at once, and nothing is recorded.
    dealer = await signed_in(stack, browsers, world.DEALER)
    refused = await dealer.post(
        "/dealer/sales", sale_form(make_vin("WP0", "ZZZY1", "R", "S", 777001), world.OWNER)
    )
    assert refused.status_code == 409 and "was deleted" in refused.text
    async with stack.db.session() as session:
        assert await garage.vehicle_by_vin(session, make_vin("WP0", "ZZZY1", "R", "S", 777001)) is None


async def oidc_login_refused(stack: Stack) -> str:
    """The error an app's sign-in shows for the deleted ID."""
    http = httpx.AsyncClient(base_url=stack.base_url, timeout=30)
    try:
        await oidc_login(http, world.OWNER, world.PASSWORD)
    except AssertionError as refused:
        text = str(refused)
        return "wrong email address or password" if "wrong email address or password" in text else text
    finally:
        await http.aclose()
    return "signed in"


async def test_removing_a_sold_car_keeps_the_id_which_gets_the_next_car_directly(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    # REQ: ACC-6 — a secondary user removes only themself (API); the main user keeps the car.
    family = await stack.as_user(world.FAMILY)
    owner_api = await stack.as_user(world.OWNER)
    try:
        assert (await family.delete(f"/api/v1/vehicles/{TAYCAN}/membership")).status_code == 204
        assert (await family.get("/api/v1/vehicles")).json() == []
        users = (await owner_api.get(f"/api/v1/vehicles/{TAYCAN}")).json()["users"]
        assert [u["email"] for u in users] == [world.OWNER]

        # The main user removes the sold Panamera in the portal; the page points to the handover first.
        owner = await signed_in(stack, browsers, world.OWNER)
        page = await owner.http.get(f"/vehicles/{PANAMERA}")
        assert f'href="/vehicles/{PANAMERA}/handover"' in page.text
        assert f'action="/vehicles/{PANAMERA}/remove"' in page.text
        removed = await owner.post(f"/vehicles/{PANAMERA}/remove")
        assert removed.status_code == 303 and removed.headers["location"] == "/vehicles?done=removed"
        assert PANAMERA not in {car["vin"] for car in (await owner_api.get("/api/v1/vehicles")).json()}
        assert (await owner_api.get("/api/v1/me")).status_code == 200  # the ID stays

        # A new sale to the same address links the car directly: no invitation.
        dealer = await signed_in(stack, browsers, world.DEALER)
        _, done = await record_sale(
            dealer, PANAMERA, world.OWNER, model="panamera-2", variant="971AE1", model_year="2018"
        )
        assert done == "linked"
        cars = {car["vin"]: car["role"] for car in (await owner_api.get("/api/v1/vehicles")).json()}
        assert cars[PANAMERA] == "main"
        assert await mails_to(stack, world.OWNER, "invitation") == []
    finally:
        await family.aclose()
        await owner_api.aclose()
