"""What exists in each country (CON-6): the availability pages and API, and the store that refuses where
connected services are not offered instead of showing an empty shelf."""

from __future__ import annotations

from sqlalchemy import select, update

from carlink.catalog.models import Offer
from carlink.demo import world
from carlink.garage.models import Vehicle
from carlink.identity.models import Account
from carlink.partners.seed import COUNTRIES
from tests.integration.test_partners import signed_in
from tests.support.stack import TAYCAN, Stack


async def test_availability_pages_and_api_and_the_store_refusing_where_nothing_is_offered(
    stack: Stack,
) -> None:
    # REQ: CON-6
    anonymous = await stack.http.get("/api/v1/countries")
    assert anonymous.status_code == 200
    rows = {row["code"]: row for row in anonymous.json()["countries"]}
    assert set(rows) == {seed.code for seed in COUNTRIES} and len(rows) >= 30
    assert rows["DE"]["store_open"] and rows["DE"]["online_booking"] and rows["DE"]["partners"] >= 2
    assert rows["JP"]["name"] == "Japan" and rows["JP"]["services"]
    assert rows["IN"]["connect_available"] is False and rows["IN"]["store_open"] is False
    assert rows["AE"]["store_open"] is False and rows["AE"]["privacy_contact"] is None
    austria = (await stack.http.get("/api/v1/countries/at")).json()
    assert austria["name"] == "Austria" and austria["store_open"] and austria["partners"] == 1
    public = await stack.http.get("/availability/JP", headers={"Accept": "text/html"})
    assert public.status_code == 200 and "carlink in Japan" in public.text
    unknown = await stack.http.get("/api/v1/countries/ZZ")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "country_not_found"

    browser = await signed_in(stack, world.OWNER)
    try:
        page = await browser.http.get("/availability")
        assert page.status_code == 200 and 'data-country="AE"' in page.text
        assert "United Arab Emirates" in page.text and "Through your dealer" in page.text
        india = await browser.http.get("/availability/IN")
        assert 'id="not-available"' in india.text
        emirates = await browser.http.get("/availability/AE")
        assert 'id="no-store"' in emirates.text
        germany = await browser.http.get("/availability/DE")
        assert "Booked online in the portal" in germany.text and 'href="/partners?country=DE"' in germany.text

        # The store today: open for a person in Austria (offers exist there)...
        async with stack.db.session() as session:
            assert await session.scalar(select(Offer.id).where(Offer.country == "AT")) is not None
            assert await session.scalar(select(Offer.id).where(Offer.country == "AE")) is None
        async with stack.db.transaction() as session:
            await session.execute(update(Account).where(Account.email == world.OWNER).values(country="AT"))
        api = await stack.as_user(world.OWNER)
        assert (await api.get(f"/api/v1/vehicles/{TAYCAN}/store")).status_code == 200
        assert (await browser.http.get(f"/vehicles/{TAYCAN}/store")).status_code == 200

        # ... and a clear refusal for a person in the Emirates, on the API and on the page.
        async with stack.db.transaction() as session:
            await session.execute(update(Account).where(Account.email == world.OWNER).values(country="AE"))
        refused = await api.get(f"/api/v1/vehicles/{TAYCAN}/store")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_available_in_country"
        assert "United Arab Emirates" in refused.json()["error"]["message"]
        async with stack.db.session() as session:
            offer_id = await session.scalar(select(Offer.id).where(Offer.country == "DE"))
        adding = await api.post(f"/api/v1/vehicles/{TAYCAN}/cart/lines", json={"offer_id": offer_id})
        assert adding.status_code == 403 and adding.json()["error"]["code"] == "not_available_in_country"
        store_page = await browser.http.get(f"/vehicles/{TAYCAN}/store")
        assert store_page.status_code == 403 and "Connected services are not available in" in store_page.text

        # A car registered where connected services do not exist at all.
        async with stack.db.transaction() as session:
            await session.execute(update(Account).where(Account.email == world.OWNER).values(country="DE"))
            await session.execute(update(Vehicle).where(Vehicle.vin == TAYCAN).values(country="IN"))
        india_car = await api.get(f"/api/v1/vehicles/{TAYCAN}/store")
        assert india_car.status_code == 403 and "India" in india_car.json()["error"]["message"]
        await api.aclose()
    finally:
        await browser.close()
