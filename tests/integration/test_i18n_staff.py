"""The dealer and operator consoles in German and Japanese (issue 8): headings and menus in the staff
member's profile language, refusals with their stable codes in JSON and on the page, and dates and amounts
in the reader's format."""

from __future__ import annotations

import datetime as dt
import re

import httpx
from babel.dates import format_date
from sqlalchemy import update

from carlink.demo import world
from carlink.identity.models import Account
from tests.integration.test_invitations import BUYER, NEW_VIN, sale_form
from tests.support.portal import Browser
from tests.support.stack import Stack

DELIVERY = dt.date(2030, 5, 1)
JSON = {"Accept": "application/json"}
OPERATOR_PAGES = {
    "/operator/privacy-contacts": "<h1>プライバシー窓口</h1>",
    "/operator/erasure-requests": "<h1>削除リクエスト</h1>",
    "/operator/recalls": "<h1>リコールキャンペーン</h1>",
    "/operator/functions": '<h2 id="orders-title">最新の注文</h2>',
    "/operator/keys": "<h1>署名鍵</h1>",
    "/operator/campaigns": "<h1>ソフトウェアアップデートキャンペーン</h1>",
}
DEALER_PAGES = {
    "/dealer/sales/new": "<h1>販売を登録</h1>",
    "/dealer/appointments": "の予約</h1>",
    "/dealer/erasure-requests": "<h1>削除リクエスト</h1>",
}


async def speaks(stack: Stack, email: str, language: str) -> None:
    """The staff member's profile language, which the consoles follow."""
    async with stack.db.transaction() as session:
        await session.execute(update(Account).where(Account.email == email).values(locale=language))


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, str(body["code"]), str(body["message"])


async def test_the_dealer_console_speaks_german_with_its_refusals_and_dates(stack: Stack) -> None:
    await speaks(stack, world.DEALER, "de")
    dealer = await Browser(stack).sign_in(world.DEALER)
    try:
        customers = await dealer.http.get("/dealer")
        assert customers.status_code == 200
        assert "<h1>Kunden von Autohaus Example Stuttgart</h1>" in customers.text
        assert ">Verkauf erfassen</a>" in customers.text and 'aria-label="Händlerkonsole"' in customers.text

        # An unknown customer: the same stable code in JSON and on the page, the words in German.
        unknown = await dealer.http.get("/dealer/customers/999999", headers=JSON)
        assert error_of(unknown) == (404, "customer_not_found", "Diesen Kunden gibt es bei Ihnen nicht.")
        page = await dealer.http.get("/dealer/customers/999999")
        assert page.status_code == 404 and 'data-code="customer_not_found"' in page.text
        assert "Diesen Kunden gibt es bei Ihnen nicht." in page.text

        # A refused form shows the reason in German and keeps what was typed.
        refused = await dealer.post("/dealer/sales", sale_form(NEW_VIN, BUYER, delivery_date="bald"))
        assert refused.status_code == 400
        assert 'id="sale-error">Geben Sie das Lieferdatum als Datum ein.</p>' in refused.text
        assert "<h1>Verkauf erfassen</h1>" in refused.text and 'value="Nora Neu"' in refused.text

        # The sale page: the notice in German and the planned delivery in the German date format.
        recorded = await dealer.post("/dealer/sales", sale_form(NEW_VIN, BUYER))
        assert recorded.status_code == 303
        sale = await dealer.http.get(recorded.headers["location"])
        assert "Der Verkauf ist erfasst und die Einladung an den Käufer ist unterwegs." in sale.text
        assert format_date(DELIVERY, format="medium", locale="de_DE") == "01.05.2030"
        assert '<time datetime="2030-05-01">01.05.2030</time>' in sale.text
        assert "Einladung erneut senden" in sale.text
    finally:
        await dealer.close()

    # The operator console in German: prices of the functions in the German money format.
    await speaks(stack, world.OPERATOR, "de")
    operator = await Browser(stack).sign_in(world.OPERATOR)
    try:
        functions = await operator.http.get("/operator/functions")
        assert functions.status_code == 200
        assert '<h2 id="orders-title">Neueste Bestellungen</h2>' in functions.text
        assert "1.190,00\xa0€" in functions.text
    finally:
        await operator.close()


async def test_the_operator_and_dealer_consoles_speak_japanese(stack: Stack) -> None:
    await speaks(stack, world.OPERATOR, "ja")
    operator = await Browser(stack).sign_in(world.OPERATOR)
    try:
        overview = await operator.http.get("/operator")
        assert overview.status_code == 200 and "<h1>概要</h1>" in overview.text
        assert 'aria-label="運営コンソール"' in overview.text
        assert ">アップデートキャンペーン</a>" in overview.text

        # The policy in force since a date and time in the Japanese format (2026/11/26 7:24:19).
        policy = await operator.http.get("/operator/policy")
        assert "<h1>プライバシーポリシー</h1>" in policy.text
        assert re.search(r"バージョン 1 が\d{4}/\d{2}/\d{2} \d{1,2}:\d{2}:\d{2}から有効です。", policy.text)

        # Every page of the console opens in Japanese.
        for path, heading in OPERATOR_PAGES.items():
            shown = await operator.http.get(path)
            assert shown.status_code == 200 and heading in shown.text, path

        # A refused form: the reason in Japanese on the page.
        no_file = await operator.post("/operator/packages", {"name": "empty"})
        assert no_file.status_code == 422
        assert 'id="package-error">アップロードするパッケージファイルを選択してください。</p>' in no_file.text
        assert "<h1>署名済みデータパッケージ</h1>" in no_file.text
    finally:
        await operator.close()

    await speaks(stack, world.JAPAN_DEALER, "ja")
    dealer = await Browser(stack).sign_in(world.JAPAN_DEALER)
    try:
        customers = await dealer.http.get("/dealer")
        assert customers.status_code == 200 and "のお客様</h1>" in customers.text
        assert ">販売を登録</a>" in customers.text
        unknown = await dealer.http.get("/dealer/customers/999999", headers=JSON)
        assert error_of(unknown) == (404, "customer_not_found", "該当するお客様は見つかりません。")
        page = await dealer.http.get("/dealer/customers/999999")
        assert page.status_code == 404 and 'data-code="customer_not_found"' in page.text
        assert "該当するお客様は見つかりません。" in page.text

        for path, heading in DEALER_PAGES.items():
            shown = await dealer.http.get(path)
            assert shown.status_code == 200 and heading in shown.text, path

        # The Yokohama dealer's sale: the planned delivery in the Japanese date format.
        form = sale_form(NEW_VIN, BUYER, buyer_country="JP", language="ja")
        recorded = await dealer.post("/dealer/sales", form)
        assert recorded.status_code == 303, recorded.text
        sale = await dealer.http.get(recorded.headers["location"])
        assert "販売を登録し、購入者への招待メールを送信しました。" in sale.text
        assert '<time datetime="2030-05-01">2030/05/01</time>' in sale.text
    finally:
        await dealer.close()
