"""After-sales and privacy in German and Japanese (issue 8): the car's service page with its slots by day in
the reader's date format and its refusals with their stable codes on the page and in the app API, the
country pages and API in the browser's language, the privacy page with its dates and the erasure refusal,
the manuals and the export's summary."""

from __future__ import annotations

import io
import zipfile

import httpx
from babel.dates import format_date
from sqlalchemy import select, update

from carlink.db.base import utcnow
from carlink.demo import world
from carlink.identity.models import Account
from carlink.partners import booking
from carlink.partners.models import ServiceSlot
from carlink.privacy.models import PolicyVersion
from tests.integration.test_booking import choose
from tests.support.portal import Browser, partner_id
from tests.support.stack import TAYCAN, Stack

SERVICE = f"/vehicles/{TAYCAN}/service"
JAPAN_SERVICE = f"/vehicles/{world.JAPAN_CAR.vin}/service"


async def speaks(stack: Stack, email: str, language: str) -> None:
    """The person's profile language, which the portal and the app API follow."""
    async with stack.db.transaction() as session:
        await session.execute(update(Account).where(Account.email == email).values(locale=language))


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, str(body["code"]), str(body["message"])


async def first_free_slot(stack: Stack, code: str) -> ServiceSlot:
    async with stack.db.session() as session:
        slot = await session.scalar(
            select(ServiceSlot)
            .where(
                ServiceSlot.partner_id == await partner_id(stack, code),
                ServiceSlot.appointment_id.is_(None),
                ServiceSlot.starts_at > utcnow(),
            )
            .order_by(ServiceSlot.starts_at)
        )
    assert slot is not None, code
    return slot


async def test_the_service_page_and_its_refusals_speak_german(stack: Stack) -> None:
    # REQ: PAR-2 — in the owner's profile language: heading, days of the slots, the refusal with its code.
    await choose(stack, world.OWNER, "DE-STR-01")
    await speaks(stack, world.OWNER, "de")
    slot = await first_free_slot(stack, "DE-STR-01")
    day = booking.local_time(slot.starts_at, "DE").date()
    owner = await Browser(stack).sign_in(world.OWNER)
    api = await stack.as_user(world.OWNER)
    try:
        page = await owner.http.get(SERVICE)
        assert page.status_code == 200 and "<h1>Service für Ihren" in page.text
        assert "Termin bei Autohaus Example Stuttgart buchen" in page.text
        # The slots' days in German, e.g. "Montag, 30. November 2026".
        assert format_date(day, format="full", locale="de_DE") in page.text

        booked = await owner.post(f"{SERVICE}/book", {"slot_id": str(slot.id)})
        assert booked.status_code == 303
        shown = await owner.http.get(booked.headers["location"])
        assert "Ihr Termin ist gebucht." in shown.text and "Ihre Termine" in shown.text

        again = await owner.post(f"{SERVICE}/book", {"slot_id": str(slot.id)})
        assert again.status_code == 409
        assert (
            'data-code="slot_taken">Dieser Termin wurde gerade vergeben. Bitte wählen Sie einen anderen.'
            in again.text
        )
        refused = await api.post(f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": slot.id})
        assert error_of(refused) == (
            409,
            "slot_taken",
            "Dieser Termin wurde gerade vergeben. Bitte wählen Sie einen anderen.",
        )
        missing = await api.put("/api/v1/me/preferred-partner", json={"partner_id": 999999})
        assert error_of(missing) == (404, "partner_not_found", "Diesen Partner gibt es nicht")
    finally:
        await owner.close()
        await api.aclose()


async def test_the_service_page_contacts_and_manuals_speak_japanese(stack: Stack) -> None:
    # Hanako's profile language is Japanese.
    await choose(stack, world.JAPAN_OWNER, "JP-YOK-01")
    slot = await first_free_slot(stack, "JP-YOK-01")
    day = booking.local_time(slot.starts_at, "JP").date()
    hanako = await Browser(stack).sign_in(world.JAPAN_OWNER)
    api = await stack.as_user(world.JAPAN_OWNER)
    try:
        page = await hanako.http.get(JAPAN_SERVICE)
        assert page.status_code == 200 and "の点検・整備</h1>" in page.text
        # The slots' days in Japanese, e.g. "2026年11月30日月曜日".
        assert format_date(day, format="full", locale="ja_JP") in page.text
        assert "この時間で予約" in page.text

        unknown = await hanako.post(f"{JAPAN_SERVICE}/book", {"slot_id": "999999"})
        assert unknown.status_code == 400
        assert 'data-code="slot_not_found">この予約枠は存在しません' in unknown.text
        refused = await api.post(
            f"/api/v1/vehicles/{world.JAPAN_CAR.vin}/appointments", json={"slot_id": 999999}
        )
        assert error_of(refused) == (404, "slot_not_found", "この予約枠は存在しません。")

        contacts = await hanako.http.get("/contacts")
        assert "<h1>担当窓口</h1>" in contacts.text and "お客様はパートナーが担当します" in contacts.text
        manuals = await hanako.http.get("/manuals")
        assert "<h1>取扱説明書</h1>" in manuals.text and "年モデル以降" in manuals.text
        manual = await hanako.http.get(f"/vehicles/{world.JAPAN_CAR.vin}/manual")
        assert manual.status_code == 200 and "目次" in manual.text
    finally:
        await hanako.close()
        await api.aclose()


async def test_the_country_pages_and_api_speak_the_browsers_language(stack: Stack) -> None:
    # REQ: CON-6 — readable without signing in, in the language the browser asks for.
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as anonymous:
        german = await anonymous.get("/availability", headers={"Accept-Language": "de-DE,de;q=0.9"})
        assert "<h1>Was es in welchem Land gibt</h1>" in german.text
        assert "Vereinigte Arabische Emirate" in german.text and "Über Ihr Autohaus" in german.text
        japan = await anonymous.get("/availability/JP", headers={"Accept-Language": "ja"})
        assert "<h1>日本のcarlink</h1>" in japan.text and "ポータルでオンライン予約" in japan.text

        countries = await anonymous.get("/api/v1/countries", headers={"Accept-Language": "de"})
        names = {row["code"]: row["name"] for row in countries.json()["countries"]}
        assert names["JP"] == "Japan" and names["AT"] == "Österreich"
        unknown = await anonymous.get("/api/v1/countries/ZZ", headers={"Accept-Language": "ja"})
        assert error_of(unknown) == (404, "country_not_found", "carlinkではこの国を扱っていません。")


async def test_the_privacy_page_its_dates_and_the_erasure_refusal_speak_german_and_japanese(
    stack: Stack,
) -> None:
    # REQ: PRV-1, PRV-5
    await speaks(stack, world.OWNER, "de")
    async with stack.db.session() as session:
        policy = await session.scalar(select(PolicyVersion).order_by(PolicyVersion.version.desc()))
    assert policy is not None
    owner = await Browser(stack).sign_in(world.OWNER)
    hanako = await stack.as_user(world.JAPAN_OWNER)
    try:
        page = await owner.http.get("/privacy")
        assert "<h1>Datenschutz</h1>" in page.text and "Ihre Daten herunterladen" in page.text
        published = format_date(policy.published_at.date(), format="medium", locale="de_DE")
        assert f"Datenschutzerklärung Version {policy.version}, veröffentlicht am" in page.text
        assert published in page.text  # e.g. "26.11.2026"

        wrong = await owner.post("/privacy/erasure", {"password": "not-the-password"})
        assert wrong.status_code == 403
        assert 'data-code="password_wrong">Das ist nicht Ihr Passwort' in wrong.text

        refused = await hanako.post("/api/v1/me/privacy/erasure", json={"password": "not-the-password"})
        assert error_of(refused) == (403, "password_wrong", "パスワードが正しくありません。")
        exported = await hanako.get("/api/v1/me/export")
        summary = zipfile.ZipFile(io.BytesIO(exported.content)).read("summary.html").decode()
        assert '<html lang="ja">' in summary and "<h1>carlinkが保有するお客様のデータ</h1>" in summary
    finally:
        await owner.close()
        await hanako.aclose()
