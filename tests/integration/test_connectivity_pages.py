"""Connectivity guidance per car in the portal and the JSON API (CON-1, CON-2, CON-5, VEH-9): generated from
the catalogue for each of the person's cars, for the main and secondary users only, in the person's
language, under the live connection status the simulated car reported."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select, update

from carlink import i18n
from carlink.demo import world
from carlink.garage.models import Vehicle
from carlink.protocol.messages import Network
from tests.support.portal import Browser
from tests.support.stack import NINE_ELEVEN, TAYCAN, Stack, eventually


def page_of(vin: str) -> str:
    return f"/vehicles/{vin}/connectivity"


def item_keys(page: httpx.Response, section: str) -> list[str]:
    block = re.search(rf'<section id="{section}".*?</section>', page.text, re.S)
    assert block is not None, page.text
    return re.findall(r'<li class="[^"]*" data-key="([^"]+)"', block.group(0))


def text_of(page: httpx.Response) -> str:
    return html.unescape(re.sub(r"\s+", " ", page.text))


@pytest.fixture
async def browsers(stack: Stack) -> AsyncIterator[dict[str, Browser]]:
    opened: dict[str, Browser] = {}
    for email in (world.OWNER, world.FAMILY, world.STRANGER, world.JAPAN_OWNER):
        opened[email] = await Browser(stack).sign_in(email)
    try:
        yield opened
    finally:
        for browser in opened.values():
            await browser.close()


async def test_the_owner_sees_each_cars_guide_as_the_catalogue_says_and_strangers_see_nothing(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    owner = browsers[world.OWNER]
    vehicle_page = await owner.http.get(f"/vehicles/{TAYCAN}")
    assert f'href="{page_of(TAYCAN)}"' in vehicle_page.text
    assert "How this car goes online" in vehicle_page.text

    taycan = await owner.http.get(page_of(TAYCAN))
    assert taycan.status_code == 200, taycan.text
    assert "<h1>How Taycan 4S goes online</h1>" in taycan.text
    # eSIM only, automatic roaming, privacy mode for all services, symbol top right (catalogue: taycan-1).
    assert "connections.esim_only" in item_keys(taycan, "connections")
    assert "connections.sim_pin" not in item_keys(taycan, "connections")
    assert item_keys(taycan, "roaming")[0] == "roaming.automatic"
    assert "data_off.privacy_all_services" in item_keys(taycan, "data_off")
    assert "The connection symbol sits top right on the centre display." in text_of(taycan)
    # The person's country (DE) decides coverage and roaming.
    assert "Germany: traffic data covers motorways, main roads and larger cities." in text_of(taycan)

    nine_eleven = await owner.http.get(page_of(NINE_ELEVEN))
    assert nine_eleven.status_code == 200
    assert {"connections.sim_pin", "connections.sim_apn", "connections.hotspot_password"} <= set(
        item_keys(nine_eleven, "connections")
    )
    assert item_keys(nine_eleven, "roaming")[0] == "roaming.enable"
    assert "open PHONE > OPT > PHONE settings > Roaming and tick “Enable roaming”" in text_of(nine_eleven)
    assert "The connection symbol sits bottom left on the centre display." in text_of(nine_eleven)
    assert "data_off.privacy_all_services" not in item_keys(nine_eleven, "data_off")

    # At home (DE) roaming is not the question; another country for a trip, and one we know nothing about.
    assert "roaming.trip" in item_keys(nine_eleven, "roaming")
    abroad = await owner.http.get(page_of(NINE_ELEVEN), params={"country": "mx"})
    assert "Mexico: roaming is not available; there, the car goes online only with" in text_of(abroad)
    assert '<option value="MX" selected>Mexico</option>' in abroad.text
    visiting = await owner.http.get(page_of(TAYCAN), params={"country": "PT"})
    assert "Portugal: the eSIM data plan from your home country works here too, through roaming." in text_of(
        visiting
    )
    assert "do not work there" not in visiting.text and "your provider" not in visiting.text
    unknown = await owner.http.get(page_of(NINE_ELEVEN), params={"country": "IS"})
    assert "Iceland: we have no data for this country yet" in text_of(unknown)
    assert '<option value="IS" selected>Iceland (no data yet)</option>' in unknown.text
    wrong = await owner.http.get(page_of(NINE_ELEVEN), params={"country": "Mexico"})
    assert wrong.status_code == 400 and "Mexico is not a country code" in text_of(wrong)

    family = await browsers[world.FAMILY].http.get(page_of(TAYCAN))
    assert family.status_code == 200 and "roaming.automatic" in item_keys(family, "roaming")
    for vin in (TAYCAN, NINE_ELEVEN, "NOT-A-VIN"):
        stranger = await browsers[world.STRANGER].http.get(page_of(vin))
        assert stranger.status_code == 404
    assert (await browsers[world.FAMILY].http.get(page_of(NINE_ELEVEN))).status_code == 404
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Accept": "text/html"}) as anonymous:
        signin = await anonymous.get(page_of(TAYCAN))
    assert signin.status_code == 303 and signin.headers["location"].startswith("/signin")


async def test_the_status_block_shows_the_network_the_car_reported(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    owner = browsers[world.OWNER]
    before = await owner.http.get(page_of(NINE_ELEVEN))
    assert 'data-network="LTE"' in before.text and 'data-connection="online"' in before.text
    assert re.search(r'<li class="state now" data-key="symbol.lte"', before.text)

    car = stack.fleet[NINE_ELEVEN]
    await car.stop()
    car.network = Network.EDGE
    await car.start()

    async def on_edge() -> bool:
        fragment = await owner.http.get(f"{page_of(NINE_ELEVEN)}/status")
        return (
            '<dd data-key="network" data-network="EDGE"' in fragment.text
            and 'data-connection="online"' in (fragment.text)
        )

    await eventually(on_edge, 20)
    # The fragment brings the symbol section along (htmx out of band), so "your car now" moves with it.
    fragment = await owner.http.get(f"{page_of(NINE_ELEVEN)}/status")
    assert '<section id="symbol" class="card" data-section="symbol"' in fragment.text
    assert 'hx-swap-oob="true"' in fragment.text
    assert re.search(r'<li class="state now" data-key="symbol.edge"', fragment.text)
    assert not re.search(r'<li class="state now" data-key="symbol.lte"', fragment.text)
    assert fragment.text.count("now-badge") == 1
    # "Last seen" carries its time zone, like the other pages (carlink.js shows it in the browser's zone).
    assert re.search(r'<dd data-key="last_seen"><time datetime="[^"]+">[^<]+ UTC</time>', fragment.text)
    after = await owner.http.get(page_of(NINE_ELEVEN))
    assert re.search(r'<li class="state now" data-key="symbol.edge"', after.text)
    assert "symbol.lte" in after.text and not re.search(
        r'<li class="state now" data-key="symbol.lte"', after.text
    )
    api = await (await stack.as_user(world.OWNER)).get(f"/api/v1/vehicles/{NINE_ELEVEN}/connectivity")
    assert api.json()["connection"]["network"] == "EDGE"


async def test_the_guide_speaks_german_and_japanese_with_local_dates(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    owner = browsers[world.OWNER]
    assert (await owner.post("/account/language", {"language": "de"})).status_code == 303
    german = await owner.http.get(page_of(TAYCAN))
    assert "So geht dieses Fahrzeug online" in german.text
    assert "Im eigenen Land roamt das Fahrzeug nicht." in text_of(german)
    assert "hx-swap-oob" not in german.text  # only the status fragment sends the symbol section out of band
    france = await owner.http.get(page_of(TAYCAN), params={"country": "FR"})
    assert "Frankreich: Roaming ist verfügbar." in text_of(france)
    # German alphabetical order: Österreich under O, between Norwegen and Polen.
    options = re.findall(r'<option value="([A-Z]{2})"', german.text)
    assert options.index("NO") < options.index("AT") < options.index("PL")
    async with stack.db.session() as session:
        last_seen = await session.scalar(select(Vehicle.last_seen_at).where(Vehicle.vin == TAYCAN))
    assert last_seen is not None
    i18n.use("de")
    expected = i18n._("%(date)s, %(time)s UTC", date=i18n.date(last_seen), time=i18n.time(last_seen))
    i18n.use("en")
    assert f">{expected}</time>" in german.text  # e.g. 26.11.2026, 07:30:00 UTC
    wrong = await owner.http.get(page_of(TAYCAN), params={"country": "Paris"})
    assert wrong.status_code == 400
    assert "Paris ist kein Ländercode; verwenden Sie zwei Buchstaben wie FR" in text_of(wrong)

    # The Japanese owner's profile language is ja; her Macan (from 2018) uses the Mobile data menu.
    japanese = await browsers[world.JAPAN_OWNER].http.get(page_of(world.JAPAN_CAR.vin))
    assert japanese.status_code == 200, japanese.text
    text = text_of(japanese)
    assert '<h2 id="connections-title">この車両のインターネット接続</h2>' in japanese.text
    assert "お住まいの国ではローミングは使いません。" in text
    assert "· 車台番号 <span" in text
    # The car shows its menus in the language set in the car: the paths are translated, and the guide says so.
    assert "「設定 > デバイスマネージャー > オプション > モバイルデータ > ローミング」を開き" in text
    assert "その言語での名称を探してください" in text
    stranger = browsers[world.STRANGER]
    assert (await stranger.post("/account/language", {"language": "ja"})).status_code == 303
    refused = await stranger.http.get(page_of(TAYCAN))
    assert refused.status_code == 404
    i18n.use("ja")
    not_found = i18n._("no vehicle %(vin)s in your garage", vin=TAYCAN)
    i18n.use("en")
    assert not_found in text_of(refused)


async def test_the_api_gives_the_guide_with_its_facts_in_the_callers_language(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    body = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/connectivity")).json()
    assert (body["connections"], body["esim_only"], body["roaming_automatic"]) == (["esim"], True, True)
    assert (body["country"], body["roaming_available"], body["traffic_coverage"]) == ("DE", True, "full")
    assert (body["home_country"], body["abroad"]) == ("DE", False)
    assert body["privacy_scope"] == "all_services" and body["symbol_position"] == "top_right"
    assert body["connection"]["online"] is True and body["connection"]["network"] == "LTE"
    assert [s["key"] for s in body["sections"]] == [
        "connections",
        "roaming",
        "data_off",
        "symbol",
        "privacy",
        "traffic",
    ]
    assert body["sections"][0]["title"] == "How this car goes online"
    states = [i for i in body["sections"][3]["items"] if i["kind"] == "state"]
    assert {i["network"] for i in states} == {"LTE", "3G", "EDGE", "NONE"}

    nine_eleven = (await owner.get(f"/api/v1/vehicles/{NINE_ELEVEN}/connectivity?country=IS")).json()
    assert nine_eleven["roaming_automatic"] is False and nine_eleven["roaming_menu"] == "phone_opt"
    assert nine_eleven["country_known"] is False and nine_eleven["traffic_coverage"] is None
    assert (nine_eleven["home_country"], nine_eleven["abroad"]) == ("DE", True)
    wrong = await owner.get(f"/api/v1/vehicles/{NINE_ELEVEN}/connectivity?country=123")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (400, "invalid_country")

    family = await stack.as_user(world.FAMILY)
    assert (await family.get(f"/api/v1/vehicles/{TAYCAN}/connectivity")).status_code == 200
    stranger = await (await stack.as_user(world.STRANGER)).get(f"/api/v1/vehicles/{TAYCAN}/connectivity")
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (404, "vehicle_not_found")

    hanako = await stack.as_user(world.JAPAN_OWNER)
    japanese = (await hanako.get(f"/api/v1/vehicles/{world.JAPAN_CAR.vin}/connectivity")).json()
    assert japanese["country"] == "JP" and japanese["country_name"] == "日本"
    assert japanese["sections"][1]["title"] == "海外でのローミング"
    wrong = await hanako.get(f"/api/v1/vehicles/{world.JAPAN_CAR.vin}/connectivity?country=nihon")
    assert wrong.json()["error"] == {
        "code": "invalid_country",
        "message": "nihon は国コードではありません。FR のように英字 2 文字で指定してください。",
    }


async def test_a_home_country_without_data_stays_chosen_in_the_country_chooser(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    # "Home" is the car's market (its eSIM plan is sold there), whoever of its people looks.
    async with stack.db.transaction() as session:
        await session.execute(update(Vehicle).where(Vehicle.vin == TAYCAN).values(country="IS"))
    page = await browsers[world.OWNER].http.get(page_of(TAYCAN))
    assert page.status_code == 200, page.text
    assert '<option value="IS" selected>Iceland (no data yet)</option>' in page.text
    assert page.text.count(" selected>") == 1
    assert "Iceland: we have no data for this country yet" in text_of(page)
