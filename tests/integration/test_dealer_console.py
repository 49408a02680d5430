"""The dealer console (issue 5): only dealers get in, each sees only its own customers with their cars and
consent; a sale to a buyer who has an ID links the car at once (ACC-2), and a used car changes owner with
its contracts staying on the car (STO-9); driver cards are registered and revoked for served cars only."""

from __future__ import annotations

from sqlalchemy import select

from carlink.demo import world
from carlink.garage.models import Vehicle
from carlink.notify.models import Notification
from carlink.security.models import DriverCard
from tests.integration.test_invitations import (
    browsers,
    mails_to,
    record_sale,
    sale_form,
    signed_in,
)
from tests.integration.test_store_contracts import buy
from tests.support.portal import Browser, account_id
from tests.support.stack import NINE_ELEVEN, TAYCAN, Stack

__all__ = ["browsers"]  # fixtures shared with test_invitations


async def test_dealers_see_only_their_customers_and_a_sale_to_an_id_changes_the_owner(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    # Only the dealer role opens the console; everyone else gets the staff-only page.
    owner = await signed_in(stack, browsers, world.OWNER)
    refused = await owner.http.get("/dealer")
    assert refused.status_code == 403 and "staff" in refused.text
    assert (await owner.http.get("/dealer/sales/new")).status_code == 403
    assert (await owner.http.get("/dealer/driver-cards")).status_code == 403
    anonymous = await stack.http.get("/dealer", headers={"Accept": "text/html"})
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")

    # The Stuttgart dealer sold the German demo cars: their owner is its customer, with consent state.
    dealer = await signed_in(stack, browsers, world.DEALER)
    customers = await dealer.http.get("/dealer")
    assert customers.status_code == 200
    assert f'data-customer="{world.OWNER}"' in customers.text and TAYCAN in customers.text
    assert f'data-customer="{world.JAPAN_OWNER}"' not in customers.text
    assert "data-consent=" in customers.text
    owner_id = await account_id(stack, world.OWNER)
    detail = await dealer.http.get(f"/dealer/customers/{owner_id}")
    assert detail.status_code == 200 and world.OWNER in detail.text and 'id="consent"' in detail.text
    # Another dealer learns nothing about this customer: the same 404 as for nobody.
    berlin = await signed_in(stack, browsers, world.OTHER_DEALER)
    assert (await berlin.http.get(f"/dealer/customers/{owner_id}")).status_code == 404
    assert (await berlin.http.get("/dealer/customers/999999")).status_code == 404
    assert world.OWNER not in (await berlin.http.get("/dealer")).text

    # The owner bought a service for the Taycan (remote services, renewing) before selling it.
    owner_api = await stack.as_user(world.OWNER)
    family_api = await stack.as_user(world.FAMILY)
    try:
        contract = await buy(owner_api, TAYCAN, "remote-services", "P1Y")

        # A dealer that does not serve the used Taycan cannot sell it away from its owner.
        refused = await berlin.post(
            "/dealer/sales",
            sale_form(TAYCAN, world.STRANGER, model="taycan-1", variant="Y1ADB1", model_year="2023"),
        )
        assert refused.status_code == 400 and "among the cars you serve" in refused.text

        # REQ: ACC-2 — the buyer has an ID already: no invitation, the car is theirs at once.
        # Stuttgart, which serves the Taycan, sells it used.
        sale_id, done = await record_sale(
            dealer, TAYCAN, world.STRANGER, model="taycan-1", variant="Y1ADB1", model_year="2023"
        )
        assert done == "linked"
        assert await mails_to(stack, world.STRANGER, "invitation") == []
        [added] = await mails_to(stack, world.STRANGER, "vehicle_added")
        assert TAYCAN in added.body_text and "Autohaus Example Stuttgart" in added.body_text
        stranger_id = await account_id(stack, world.STRANGER)
        assert added.account_id == stranger_id
        page = await dealer.http.get(f"/dealer/sales/{sale_id}")
        assert 'data-state="registered"' in page.text

        # REQ: STO-9 — the previous owner and the family leave the car; its contracts stay for the new owner.
        assert TAYCAN not in {car["vin"] for car in (await owner_api.get("/api/v1/vehicles")).json()}
        assert (await owner_api.get(f"/api/v1/vehicles/{TAYCAN}")).status_code == 404
        assert (await family_api.get("/api/v1/vehicles")).json() == []
        new_owner = await stack.as_user(world.STRANGER)
        try:
            [car] = (await new_owner.get("/api/v1/vehicles")).json()
            assert car["vin"] == TAYCAN and car["role"] == "main"
            detail_json = (await new_owner.get(f"/api/v1/vehicles/{TAYCAN}")).json()
            assert [u["email"] for u in detail_json["users"]] == [world.STRANGER]
            contracts = (await new_owner.get(f"/api/v1/vehicles/{TAYCAN}/contracts")).json()
            assert contract["id"] in {c["id"] for c in contracts}
        finally:
            await new_owner.aclose()
        async with stack.db.session() as session:
            taycan = await session.scalar(select(Vehicle).where(Vehicle.vin == TAYCAN))
            assert taycan is not None and not taycan.remote_access_authorised
            told = await session.scalar(
                select(Notification).where(
                    Notification.account_id == owner_id, Notification.kind == "vehicle_left"
                )
            )
            assert told is not None and TAYCAN in told.title

        # Stuttgart serves the Taycan still and the stranger is its customer; Berlin sees neither.
        assert f'data-customer="{world.STRANGER}"' in (await dealer.http.get("/dealer")).text
        assert (await dealer.http.get(f"/dealer/customers/{stranger_id}")).status_code == 200
        assert (await berlin.http.get(f"/dealer/customers/{stranger_id}")).status_code == 404

        # Bad input in the sale form: a clear message, nothing recorded.
        wrong_model = await dealer.post(
            "/dealer/sales",
            {
                "vin": NINE_ELEVEN,
                "model": "taycan-1",
                "variant": "Y1ADB1",
                "model_year": "2023",
                "buyer_email": "someone@example.com",
                "buyer_name": "Some One",
                "buyer_country": "DE",
                "language": "en",
            },
        )
        assert wrong_model.status_code == 409 and 'id="sale-error"' in wrong_model.text
        assert await mails_to(stack, "someone@example.com", "invitation") == []
    finally:
        await owner_api.aclose()
        await family_api.aclose()


async def test_dealers_register_and_revoke_driver_cards_for_the_cars_they_serve(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    dealer = await signed_in(stack, browsers, world.DEALER)
    page = await dealer.http.get("/dealer/driver-cards")
    assert page.status_code == 200 and TAYCAN in page.text  # a car it serves is offered
    card = {"vin": TAYCAN, "serial": "ab12-cd34-ef", "label": "Second key, Sam"}
    assert (await dealer.post("/dealer/driver-cards", card)).status_code == 303
    listed = await dealer.http.get("/dealer/driver-cards?done=registered")
    assert 'data-card="AB12CD34EF" data-state="active"' in listed.text
    # The serial is unique among active cards; a malformed one is refused with the reason.
    twice = await dealer.post("/dealer/driver-cards", card)
    assert twice.status_code == 409 and 'id="cards-error"' in twice.text
    short = await dealer.post("/dealer/driver-cards", card | {"serial": "AB12"})
    assert short.status_code == 400 and "8 to 16" in short.text

    # Another dealer cannot register for a car it does not serve, nor see or revoke this card.
    berlin = await signed_in(stack, browsers, world.OTHER_DEALER)
    foreign = await berlin.post("/dealer/driver-cards", card | {"serial": "ZZ99ZZ99"})
    assert foreign.status_code == 400 and 'id="cards-error"' in foreign.text
    assert "AB12CD34EF" not in (await berlin.http.get("/dealer/driver-cards")).text
    async with stack.db.session() as session:
        row = await session.scalar(select(DriverCard).where(DriverCard.serial == "AB12CD34EF"))
    assert row is not None
    assert (await berlin.post(f"/dealer/driver-cards/{row.id}/revoke")).status_code == 404

    # Revoked, the card no longer counts, and its serial may be registered again.
    assert (await dealer.post(f"/dealer/driver-cards/{row.id}/revoke")).status_code == 303
    revoked = await dealer.http.get("/dealer/driver-cards")
    assert 'data-card="AB12CD34EF" data-state="revoked"' in revoked.text
    assert (await dealer.post("/dealer/driver-cards", card)).status_code == 303
    async with stack.db.session() as session:
        states = list(
            await session.scalars(select(DriverCard.revoked_at).where(DriverCard.serial == "AB12CD34EF"))
        )
    assert sorted(state is None for state in states) == [False, True]
