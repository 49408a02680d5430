"""The portal speaks German and Japanese (issue 8): the browser's language before sign-in, the profile's
language after it, a stable error code with a translated message in JSON and on a page, and dates in the
language's own format. The language is chosen under Login & security (POST /account/language)."""

from __future__ import annotations

import re

import httpx

from carlink import i18n
from carlink.demo import world
from carlink.remote.rules import CommandState
from carlink.web import pages
from tests.support.portal import Browser
from tests.support.stack import TAYCAN, Stack

GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
JAPANESE = {"Accept-Language": "ja-JP,ja;q=0.9"}
# Babel's medium date and short time, as the pages write a moment (26.11.2026, 07:05 UTC / 2026/11/26 7:05).
GERMAN_MOMENT = re.compile(r"\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2} UTC")
JAPANESE_MOMENT = re.compile(r"\d{4}/\d{1,2}/\d{1,2} \d{1,2}:\d{2}（UTC）")


async def wrong_password(stack: Stack, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Accept": "text/html", **headers}) as http:
        form = await http.get("/signin")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        data = {"email": world.OWNER, "password": "not-the-password", "login_token": token.group(1)}
        return await http.post("/signin", data=data)


async def test_the_signin_page_and_its_error_follow_the_browsers_language(stack: Stack) -> None:
    german = await stack.http.get("/signin", headers={"Accept": "text/html", **GERMAN})
    assert german.status_code == 200 and "<h1>Mit Ihrer ID anmelden</h1>" in german.text
    assert '<html lang="de">' in german.text
    japanese = await stack.http.get("/", headers={"Accept": "text/html", **JAPANESE})
    assert "<h1>愛車を、もっとつながる車に</h1>" in japanese.text

    refused = await wrong_password(stack, GERMAN)
    assert refused.status_code == 400 and "E-Mail-Adresse oder Passwort falsch" in refused.text
    refused = await wrong_password(stack, JAPANESE)
    assert refused.status_code == 400 and "メールアドレスまたはパスワードが正しくありません" in refused.text


async def test_a_json_error_keeps_its_code_and_speaks_the_callers_language(stack: Stack) -> None:
    body = {"email": "not-an-address", "password": "long-enough-1", "country": "DE"}
    german = await stack.http.post("/api/v1/accounts", json=body, headers=GERMAN)
    assert german.status_code == 400
    assert german.json()["error"] == {
        "code": "invalid_email",
        "message": "Geben Sie eine gültige E-Mail-Adresse ein",
    }
    english = await stack.http.post("/api/v1/accounts", json=body)
    assert english.json()["error"]["message"] == "enter a valid email address"

    # Signed in, the profile's language wins over the browser's: Hanako's profile says Japanese.
    async with await stack.as_user(world.JAPAN_OWNER) as hanako:
        missing = await hanako.get(f"/api/v1/vehicles/{TAYCAN}", headers=GERMAN)
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "vehicle_not_found",
        "message": f"ガレージに車両 {TAYCAN} はありません。",
    }


async def test_japanese_pages_for_a_japanese_profile_with_its_dates_and_an_error_page(stack: Stack) -> None:
    hanako = await Browser(stack).sign_in(world.JAPAN_OWNER)
    try:
        garage = await hanako.http.get("/vehicles")
        assert garage.status_code == 200 and "<h1>マイ車両</h1>" in garage.text
        assert "メインユーザー" in garage.text

        car = await hanako.http.get(f"/vehicles/{world.JAPAN_CAR.vin}")
        assert car.status_code == 200
        assert "リモートサービス" in car.text and "この車種でできること" in car.text
        linked = re.search(r"車両との連携：済み（(.*?) から）", car.text)
        assert linked is not None and JAPANESE_MOMENT.search(linked.group(1)), car.text

        # Someone else's car: the error page names its stable code and says why in Japanese.
        stranger = await hanako.http.get(f"/vehicles/{TAYCAN}")
        assert stranger.status_code == 404
        assert 'data-code="vehicle_not_found"' in stranger.text
        assert "<h1>見つかりません</h1>" in stranger.text
        assert f"ガレージに車両 {TAYCAN} はありません" in stranger.text
    finally:
        await hanako.close()


async def test_choosing_german_under_login_and_security_changes_the_next_pages(stack: Stack) -> None:
    owner = await Browser(stack).sign_in(world.OWNER)
    try:
        english = await owner.http.get("/account")
        assert "<h1>Login & security</h1>" in english.text

        chosen = await owner.post("/account/language", {"language": "de"})
        assert chosen.status_code == 303 and chosen.headers["location"] == "/account?done=language"
        account = await owner.http.get(chosen.headers["location"])
        assert "<h1>Anmeldung & Sicherheit</h1>" in account.text
        assert "Die Sprache wurde geändert." in account.text
        assert re.search(r'<option value="de" lang="de" selected>', account.text)

        car = await owner.http.get(f"/vehicles/{TAYCAN}")
        assert car.status_code == 200 and "Ferndienste" in car.text
        seen = re.search(r'class="seen">zuletzt gesehen <time datetime="[^"]+">([^<]+)</time>', car.text)
        assert seen is not None and GERMAN_MOMENT.fullmatch(seen.group(1)), car.text

        # A language the portal does not speak is refused with its code, in the language already chosen.
        refused = await owner.post("/account/language", {"language": "xx"})
        assert refused.status_code == 400
        assert 'data-code="unsupported_language"' in refused.text
        assert "Wählen Sie eine der aufgeführten Sprachen" in refused.text

        back = await owner.post("/account/language", {"language": "en"})
        assert back.status_code == 303
        assert "<h1>My vehicles</h1>" in (await owner.http.get("/vehicles")).text
    finally:
        await owner.close()


def test_a_stored_notification_speaks_its_readers_profile_language() -> None:
    title = "Wrong security codes were typed into %(vin)s"
    german = i18n.translate("de", title, vin=TAYCAN)
    assert german == f"In {TAYCAN} wurden falsche Sicherheitscodes eingegeben"
    assert i18n.translate("ja", title, vin=TAYCAN) == f"{TAYCAN} で誤ったセキュリティコードが入力されました"
    assert i18n.translate(None, title, vin=TAYCAN) == f"Wrong security codes were typed into {TAYCAN}"


def test_every_state_of_a_remote_command_has_words_in_every_language() -> None:
    assert set(pages.COMMAND_STATES) == {state.value for state in CommandState}
    for language in ("de", "ja"):
        catalogue = i18n.translations(language)
        labels = [
            *pages.COMMAND_STATES.values(),
            *pages.COMMAND_LABELS.values(),
            *pages.ERROR_TITLES.values(),
        ]
        assert [label for label in labels if catalogue.ugettext(label) == label] == []
