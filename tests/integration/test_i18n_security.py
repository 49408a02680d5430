"""Car security in German and Japanese (issue 8): the owner's Car security page, its refusals with their
stable codes on the page and in the app API, the certificate PDF in the owner's language, the insurer's
public check in the browser's language with the activation date in its format, the SOC console and the
dealer's driver cards."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import httpx
import pytest
from babel.dates import format_date
from pypdf import PdfReader
from sqlalchemy import update

from carlink.db.base import utcnow
from carlink.demo import world
from carlink.identity.models import Account
from carlink.protocol.messages import AlarmTrigger
from carlink.security.certificate import cjk_font
from tests.integration.test_security_activation import activate, buy_tracking
from tests.integration.test_soc_console import activate_package, raise_alarm
from tests.support.portal import Browser
from tests.support.stack import TAYCAN, Stack

PAGE = f"/vehicles/{TAYCAN}/security"


async def speaks(stack: Stack, email: str, language: str) -> None:
    """The person's profile language, which the portal and the app API follow."""
    async with stack.db.transaction() as session:
        await session.execute(update(Account).where(Account.email == email).values(locale=language))


@pytest.fixture
async def owner(stack: Stack) -> AsyncIterator[Browser]:
    browser = await Browser(stack).sign_in(world.OWNER)
    try:
        yield browser
    finally:
        await browser.close()


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, str(body["code"]), str(body["message"])


async def test_the_car_security_page_its_refusals_and_the_certificate_speak_the_owners_language(
    stack: Stack, owner: Browser
) -> None:
    await speaks(stack, world.OWNER, "de")
    page = await owner.http.get(PAGE)
    assert page.status_code == 200 and "<h1>Fahrzeugsicherheit Ihres" in page.text
    assert "Unsere Sicherheitszentrale" in page.text and "rund um die Uhr, an jedem Tag" in page.text

    api = await stack.as_user(world.OWNER)
    try:
        await buy_tracking(api, TAYCAN)
        # REQ: SEC-1 — the app API's refusal: the stable code, the message in the profile's language.
        refused = await api.put(f"/api/v1/vehicles/{TAYCAN}/security/phone", json={"phone": "12"})
        assert error_of(refused) == (
            422,
            "invalid_phone",
            "Bitte geben Sie eine Telefonnummer mit 7 bis 15 Ziffern an, zum Beispiel +49 711 555 0100.",
        )
        status = (await api.get(f"/api/v1/vehicles/{TAYCAN}/security")).json()
        assert status["activation"]["package_name"] == "Fahrzeugortung"
        assert status["soc"]["hours"] == "rund um die Uhr, an jedem Tag"
    finally:
        await api.aclose()

    # The same refusals on the page, with their codes.
    phone = await owner.post(f"{PAGE}/phone", {"phone": "12"})
    assert phone.status_code == 422
    assert (
        'data-code="invalid_phone">Bitte geben Sie eine Telefonnummer mit 7 bis 15 Ziffern an' in phone.text
    )
    mode = await owner.post(f"{PAGE}/mode", {"kind": "service", "hours": "999"})
    assert mode.status_code == 400
    assert 'data-code="invalid_mode_duration">Der Servicemodus dauert 1 bis 336 Stunden.' in mode.text
    done = await owner.http.get(f"{PAGE}?done=phone")
    assert "Die Sicherheitszentrale ruft künftig die neue Nummer an." in done.text
    assert "Bestellt" in done.text and "Servicemodus (höchstens 336 Stunden)" in done.text

    # REQ: SEC-4 — the certificate in the owner's language, the activation date in its format.
    confirmed = await activate(stack, TAYCAN)
    assert confirmed.activated_at is not None
    pdf = await owner.http.get(f"{PAGE}/certificate.pdf")
    assert pdf.status_code == 200
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "Aktivierungszertifikat" in text and "Fahrzeugortung" in text and TAYCAN in text
    assert format_date(confirmed.activated_at.date(), format="long", locale="de_DE") in text

    await speaks(stack, world.OWNER, "ja")
    page = await owner.http.get(PAGE)
    assert "のセキュリティ</h1>" in page.text and "アクティベーション証明書をダウンロード（PDF）" in page.text
    pdf = await owner.http.get(f"{PAGE}/certificate.pdf")
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    if cjk_font() is not None:
        assert "アクティベーション証明書" in text and "車両トラッキング" in text
        assert format_date(confirmed.activated_at.date(), format="long", locale="ja_JP") in text
    else:  # no Japanese font on this machine: the certificate is printed in English
        assert "Activation certificate" in text


async def test_the_insurers_check_speaks_the_browsers_language_with_the_date_in_its_format(
    stack: Stack,
) -> None:
    api = await stack.as_user(world.OWNER)
    try:
        await buy_tracking(api, TAYCAN)
    finally:
        await api.aclose()
    confirmed = await activate(stack, TAYCAN)
    assert confirmed.activated_at is not None
    pair = {"number": str(confirmed.certificate_number), "code": str(confirmed.verification_code)}
    day = confirmed.activated_at.date()

    german = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
    form = await stack.http.get("/certificates/verify", headers=german)
    assert "<h1>Aktivierungszertifikat prüfen</h1>" in form.text
    valid = await stack.http.post("/certificates/verify", data=pair, headers=german)
    assert "Das Zertifikat ist gültig" in valid.text and "Fahrzeugortung" in valid.text
    assert f">{format_date(day, format='long', locale='de_DE')}</span>" in valid.text

    japanese = {"Accept-Language": "ja"}
    valid = await stack.http.post("/certificates/verify", data=pair, headers=japanese)
    assert "<h1>アクティベーション証明書の確認</h1>" in valid.text and "証明書は有効です" in valid.text
    assert f">{day.year}年{day.month}月{day.day}日</span>" in valid.text
    wrong = await stack.http.post("/certificates/verify", data={**pair, "code": "X"}, headers=japanese)
    assert "証明書を確認できませんでした" in wrong.text

    # The throttle's refusal, with its code, in the browser's language.
    for _ in range(9):
        await stack.http.post("/certificates/verify", data={**pair, "code": "X"})
    slowed = await stack.http.post("/certificates/verify", data=pair, headers=japanese)
    assert slowed.status_code == 429
    assert 'data-code="too_many_verifications">お使いのネットワークから' in slowed.text


async def test_the_soc_console_speaks_the_operators_language(stack: Stack) -> None:
    await speaks(stack, world.SOC_OPERATOR, "de")
    soc = await Browser(stack).sign_in(world.SOC_OPERATOR)
    try:
        await activate_package(stack, TAYCAN)
        alarm_id = await raise_alarm(stack, TAYCAN, AlarmTrigger.IGNITION_WITHOUT_KEY, utcnow())
        queue = await soc.http.get("/soc")
        assert "<h1>Live-Warteschlange</h1>" in queue.text and "Kritisch" in queue.text
        assert "Zündung ohne Schlüssel" in queue.text and "Begrüßungsanrufe" in queue.text
        case = await soc.http.get(f"/soc/alarms/{alarm_id}")
        assert f"<h1>Fall {alarm_id}: Zündung ohne Schlüssel</h1>" in case.text
        assert 'data-move="acknowledged">Übernehmen</button>' in case.text

        # A move on a stale page: the refusal's code and its words on the page.
        form = {"to_state": "acknowledged", "version": "1", "state": "new"}
        assert (await soc.post(f"/soc/alarms/{alarm_id}/move", form)).status_code == 303
        stale = await soc.post(f"/soc/alarms/{alarm_id}/move", form)
        assert stale.status_code == 409
        assert 'data-code="alarm_changed">Jemand anderes hat diesen Fall geändert' in stale.text
        assert ">Übernommen</span>" in stale.text

        await speaks(stack, world.SOC_OPERATOR, "ja")
        case = await soc.http.get(f"/soc/alarms/{alarm_id}")
        assert f"<h1>ケース {alarm_id}：キーなしでのエンジン始動</h1>" in case.text
        call = await soc.post(f"/soc/alarms/{alarm_id}/calls", {"number": "12", "outcome": "reached"})
        assert call.status_code == 422
        assert 'data-code="invalid_phone">発信した番号を3～15桁で入力してください' in call.text
    finally:
        await soc.close()


async def test_the_dealers_driver_cards_speak_the_dealers_language(stack: Stack) -> None:
    await speaks(stack, world.DEALER, "ja")
    dealer = await Browser(stack).sign_in(world.DEALER)
    try:
        page = await dealer.http.get("/dealer/driver-cards")
        assert page.status_code == 200 and "<h1>ドライバーカード</h1>" in page.text
        modes = await dealer.http.get("/dealer/security-modes")
        assert "<h1>サービスモードと輸送モード</h1>" in modes.text and "最長336時間" in modes.text
    finally:
        await dealer.close()
