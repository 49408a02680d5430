"""The partner directory (PAR-1), the contacts page (ACC-8), owner's manuals (PAR-4) and the partners
domain's part of a person's export and erasure, over HTTP with real sessions on both stacks."""

from __future__ import annotations

from sqlalchemy import delete, select

from carlink.demo import world
from carlink.garage.models import Vehicle
from carlink.partners import personal_data
from carlink.partners.models import PreferredPartner, Sale
from carlink.protocol.vin import normalise_vin
from tests.support.portal import Browser, account_id, partner_id
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack


async def signed_in(stack: Stack, email: str) -> Browser:
    return await Browser(stack).sign_in(email)


async def test_directory_per_country_and_choosing_a_partner_by_api_and_page(stack: Stack) -> None:
    # REQ: PAR-1
    owner = await stack.as_user(world.OWNER)
    german = (await owner.get("/api/v1/partners")).json()
    assert german["country"] == "DE"
    assert {row["code"] for row in german["partners"]} >= {"DE-STR-01", "DE-BER-01"}
    assert all(row["country"] == "DE" for row in german["partners"])
    austrian = (await owner.get("/api/v1/partners", params={"country": "at"})).json()
    assert [row["code"] for row in austrian["partners"]] == ["AT-VIE-01"]
    assert (await owner.get("/api/v1/partners", params={"country": "IN"})).json()["partners"] == []

    berlin = await partner_id(stack, "DE-BER-01")
    chosen = await owner.put("/api/v1/me/preferred-partner", json={"partner_id": berlin})
    assert chosen.status_code == 200 and chosen.json()["partner"]["code"] == "DE-BER-01"
    assert (await owner.get("/api/v1/me/preferred-partner")).json()["partner"]["code"] == "DE-BER-01"
    missing = await owner.put("/api/v1/me/preferred-partner", json={"partner_id": 999999})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "partner_not_found"
    await owner.aclose()

    browser = await signed_in(stack, world.OWNER)
    try:
        page = await browser.http.get("/partners")
        assert page.status_code == 200
        assert "Autohaus Example Stuttgart" in page.text and "Autohaus Muster Berlin" in page.text
        assert 'data-partner="DE-BER-01"' in page.text and "Your partner" in page.text
        other = await browser.http.get("/partners", params={"country": "GB"})
        assert "Example Motors London" in other.text and "United Kingdom" in other.text
        stuttgart = await partner_id(stack, "DE-STR-01")
        response = await browser.post(f"/partners/{stuttgart}/choose")
        assert response.status_code == 303
        assert response.headers["location"] == "/partners?country=DE&done=chosen"
        done = await browser.http.get(response.headers["location"])
        assert "Autohaus Example Stuttgart is now your partner." in done.text
        refused = await browser.post("/partners/0/choose")
        assert refused.status_code == 400 and "no such partner" in refused.text
        without_token = await browser.http.post(f"/partners/{stuttgart}/choose", data={})
        assert without_token.status_code == 403
    finally:
        await browser.close()
    async with stack.db.session() as session:
        row = await session.get(PreferredPartner, await account_id(stack, world.OWNER))
        assert row is not None and row.partner_id == stuttgart


async def test_contacts_name_the_preferred_or_selling_partners_staff(stack: Stack) -> None:
    # REQ: ACC-8 — nobody yet: an empty state that leads to the directory.
    stranger = await signed_in(stack, world.STRANGER)
    hanako = await signed_in(stack, world.JAPAN_OWNER)
    try:
        empty = await stranger.http.get("/contacts")
        assert empty.status_code == 200 and 'id="no-contacts"' in empty.text
        assert 'href="/partners"' in empty.text

        # The selling dealer, while the person has chosen none.
        hanako_id = await account_id(stack, world.JAPAN_OWNER)
        async with stack.db.transaction() as session:
            await session.execute(delete(PreferredPartner).where(PreferredPartner.account_id == hanako_id))
            vehicle_id = await session.scalar(select(Vehicle.id).where(Vehicle.vin == world.JAPAN_CAR.vin))
            assert vehicle_id is not None
            session.add(
                Sale(
                    partner_id=await partner_id(stack, "JP-YOK-01"),
                    vehicle_id=vehicle_id,
                    buyer_email=world.JAPAN_OWNER,
                    buyer_account_id=hanako_id,
                )
            )
        sold = await hanako.http.get("/contacts")
        assert "Example Motors Yokohama" in sold.text and "Taro Yamada" in sold.text
        assert "taro.yamada@example.com" in sold.text and "+81 45 555 0300" in sold.text
        # Hanako's profile language is Japanese.
        assert "お客様はお車を購入された販売店が担当します" in sold.text

        # The chosen partner comes first.
        vienna = await partner_id(stack, "AT-VIE-01")
        assert (await stranger.post(f"/partners/{vienna}/choose")).status_code == 303
        chosen = await stranger.http.get("/contacts")
        assert "Autohaus Beispiel Wien" in chosen.text and "Anna Huber" in chosen.text
        assert "Service advisor" in chosen.text and "anna.huber@example.com" in chosen.text
        assert "+43 1 555 0401" in chosen.text and "service.wien@example.com" in chosen.text
        assert 'id="no-contacts"' not in chosen.text
    finally:
        await stranger.close()
        await hanako.close()


async def test_manual_for_newer_cars_printed_manual_for_older_ones_and_personal_data(stack: Stack) -> None:
    # REQ: PAR-4 — written from the model catalogue, with a table of contents.
    browser = await signed_in(stack, world.OWNER)
    try:
        panamera = await browser.http.get(f"/vehicles/{PANAMERA}/manual")
        assert panamera.status_code == 200
        assert "Contents" in panamera.text and 'href="#roaming"' in panamera.text
        assert "Device manager &gt; Options &gt; Data connection" in panamera.text
        assert "at the top right of the infotainment screen" in panamera.text
        assert "8-digit pairing code" in panamera.text and "Start climate control" in panamera.text
        taycan = await browser.http.get(f"/vehicles/{TAYCAN}/manual")
        assert "Roaming abroad needs no setting" in taycan.text and "No pairing code is needed" in taycan.text
        assert "Privacy mode pauses every connected service" in taycan.text
        assert "Start charging at once" in taycan.text
        older = await browser.http.get(f"/vehicles/{NINE_ELEVEN}/manual")
        assert older.status_code == 200 and 'id="printed-manual"' in older.text
        assert "printed manual that came with it applies" in older.text
        listing = await browser.http.get("/manuals")
        assert f'href="/vehicles/{NINE_ELEVEN}/manual"' in listing.text and "printed manual" in listing.text
        assert 'href="/manuals/taycan-1"' in listing.text and 'href="/manuals/cayenne-2"' not in listing.text
        model = await browser.http.get("/manuals/cayenne-3")
        assert model.status_code == 200 and "plug-in hybrid cars" in model.text
        assert (await browser.http.get("/manuals/cayenne-2")).status_code == 404
    finally:
        await browser.close()
    stranger = await signed_in(stack, world.STRANGER)
    try:
        assert (await stranger.http.get(f"/vehicles/{PANAMERA}/manual")).status_code == 404
        assert (await stranger.http.get(f"/vehicles/{normalise_vin(PANAMERA)}/manual")).status_code == 404
    finally:
        await stranger.close()

    # REQ: PRV-4, PRV-5 — the partners domain's part of the export and of the erasure.
    owner_id = await account_id(stack, world.OWNER)
    async with stack.db.transaction() as session:
        session.add(PreferredPartner(account_id=owner_id, partner_id=await partner_id(stack, "DE-STR-01")))
    async with stack.db.transaction() as session:
        exported = await personal_data.export(session, owner_id)
        assert exported["preferred_partner"]["code"] == "DE-STR-01"
        assert exported["appointments"] == []
        await personal_data.erase(session, owner_id)
    async with stack.db.session() as session:
        assert await session.get(PreferredPartner, owner_id) is None
        assert (await personal_data.export(session, owner_id))["preferred_partner"] is None
