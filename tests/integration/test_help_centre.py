"""The help centre (HLP-1) on both stacks: every article's portal link opens for the demo owner, the search
finds German, Japanese and English articles by their words and survives hostile queries, and the pages are
public, translated, and lead into the portal (one link per car of the reader)."""

from __future__ import annotations

from carlink.demo import world
from carlink.help.articles import load_articles
from tests.support.portal import Browser
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack

HOSTILE = [
    '"',
    "*",
    "AND",
    "NEAR(",
    "NEAR(a b",
    "(",
    ")",
    "-",
    "a OR",
    "^x",
    "x" * 300,
    "a\x00b",
    "'",
    ":*",
    "!!!",
    "  ",
]


async def test_every_articles_portal_link_opens_for_the_owner(stack: Stack) -> None:
    # REQ: HLP-1 — each answer leads to a page that exists; "{vin}" is filled with the owner's car.
    browser = await Browser(stack).sign_in(world.OWNER)
    try:
        for article in load_articles():
            link = article.link.replace("{vin}", TAYCAN)
            response = await browser.http.get(link)
            assert response.status_code == 200, (article.slug, link, response.status_code)
    finally:
        await browser.close()


async def test_search_finds_articles_in_each_language_and_survives_hostile_queries(stack: Stack) -> None:
    # REQ: HLP-1 — German by a German word, Japanese by a two-character word, English by a stemmed form.
    async def slugs(q: str, lang: str) -> list[str]:
        response = await stack.http.get("/api/v1/help/search", params={"q": q, "lang": lang})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["language"] == lang
        return [hit["slug"] for hit in body["results"]]

    assert "your-carlink-id" in await slugs("Passwort", "de")
    assert "your-carlink-id" in await slugs("画像", "ja")
    assert "pairing-code" in await slugs("ペアリング", "ja")
    assert "your-carlink-id" in await slugs("guesses", "en")  # the text says "guessing"
    assert "remote-services" in await slugs("charging", "en")
    assert "your-carlink-id" not in await slugs("Passwort", "ja")  # each language searches its own texts
    hit = (await stack.http.get("/api/v1/help/search", params={"q": "Passwort", "lang": "de"})).json()[
        "results"
    ][0]
    assert hit["url"] == f"/help/{hit['slug']}" and hit["snippet"] and hit["title"]

    for query in HOSTILE:
        response = await stack.http.get("/api/v1/help/search", params={"q": query, "lang": "en"})
        assert response.status_code == 200, (query, response.text)
        page = await stack.http.get("/help/search", params={"q": query}, headers={"Accept": "text/html"})
        assert page.status_code == 200, (query, page.text)
    assert (await stack.http.get("/api/v1/help/search", params={"q": ""})).json()["results"] == []
    empty = await stack.http.get("/help/search", params={"q": "?!"}, headers={"Accept": "text/html"})
    assert 'id="help-nothing"' in empty.text and 'id="help-topics"' in empty.text


async def test_help_pages_are_public_translated_and_lead_into_the_portal(stack: Stack) -> None:
    # REQ: HLP-1 — public, in the reader's language, with the portal links of the reader's cars.
    html = {"Accept": "text/html"}
    index = await stack.http.get("/help", headers=html)
    assert (
        index.status_code == 200 and "Help centre" in index.text and 'data-slug="pairing-code"' in index.text
    )
    german = await stack.http.get("/help", headers={**html, "Accept-Language": "de-DE,de;q=0.9"})
    assert "Hilfe-Center" in german.text and "Ihre ID und Ihr Konto" in german.text
    japanese = await stack.http.get("/help", headers={**html, "Accept-Language": "ja"})
    assert "ヘルプセンター" in japanese.text and "ペアリングコード" in japanese.text

    found = await stack.http.get(
        "/help/search", params={"q": "Sicherheits-PIN"}, headers={**html, "Accept-Language": "de"}
    )
    assert found.status_code == 200 and "<mark>" in found.text
    nothing = await stack.http.get(
        "/help/search", params={"q": "zzzqqq"}, headers={**html, "Accept-Language": "ja"}
    )
    assert "「zzzqqq」に一致する記事は見つかりませんでした" in nothing.text

    # Signed out: a per-car page is reached by signing in and coming back to the article.
    signed_out = await stack.http.get("/help/pairing-code", headers=html)
    assert signed_out.status_code == 200
    assert 'href="/signin?next=/help/pairing-code"' in signed_out.text
    plain = await stack.http.get("/help/your-carlink-id", headers=html)
    assert 'href="/signin?next=/account"' in plain.text

    missing = await stack.http.get("/help/no-such-article", headers=html)
    assert missing.status_code == 404
    as_json = await stack.http.get("/api/v1/help/articles/no-such-article", headers={"Accept-Language": "de"})
    assert as_json.status_code == 404 and as_json.json()["error"]["code"] == "help_article_not_found"
    assert "Hilfeartikel" in as_json.json()["error"]["message"]
    article = (await stack.http.get("/api/v1/help/articles/pairing-code", params={"lang": "ja"})).json()
    assert (
        article["language"] == "ja" and "VEH-3" in article["covers"] and article["link"] == "/vehicles/{vin}"
    )

    owner = await Browser(stack).sign_in(world.OWNER)
    hanako = await Browser(stack).sign_in(world.JAPAN_OWNER)
    try:
        page = await owner.http.get("/help/pairing-code")
        assert 'href="/signout"' in page.text or 'action="/signout"' in page.text  # the navigation shows
        for vin in (TAYCAN, PANAMERA, NINE_ELEVEN):
            assert f'href="/vehicles/{vin}"' in page.text
        # Hanako's profile says Japanese: the article and the page around it are in Japanese.
        mine = await hanako.http.get("/help/pairing-code")
        assert 'lang="ja"' in mine.text and "ペアリングコード" in mine.text
        assert f'href="/vehicles/{world.JAPAN_CAR.vin}"' in mine.text and TAYCAN not in mine.text
        assert "ポータルで操作する" in mine.text
        # Someone with no car yet is told where cars come from instead of getting no link at all.
        stranger = await Browser(stack).sign_in(world.STRANGER)
        assert 'id="help-no-cars"' in (await stranger.http.get("/help/pairing-code")).text
        await stranger.close()
    finally:
        await owner.close()
        await hanako.close()


async def test_articles_are_synced_by_their_hash_and_the_index_follows(database_url: str) -> None:
    # REQ: HLP-1 — start-up writes only what changed; an edited or removed article leaves no stale hit.
    import asyncio
    import dataclasses

    from sqlalchemy.exc import IntegrityError

    from carlink.db.base import Database
    from carlink.help.articles import ArticleText
    from carlink.help.search import search
    from carlink.help.service import ensure_help_articles

    articles = load_articles()
    db = Database(database_url)
    try:

        async def start_once() -> None:
            # Two instances starting at once: the loser of the insert race retries, as carlink.app does.
            for attempt in range(2):
                try:
                    async with db.transaction() as session:
                        await ensure_help_articles(session, articles)
                    return
                except IntegrityError:
                    if attempt:
                        raise

        await asyncio.gather(start_once(), start_once())
        async with db.transaction() as session:
            assert await ensure_help_articles(session, articles) == 0
            assert [hit.slug for hit in await search(session, "en", "pairing")][:1] == ["pairing-code"]

        first = articles[0]
        text = first.texts["en"]
        edited = dataclasses.replace(
            first,
            texts={
                **first.texts,
                "en": ArticleText(text.title, text.summary, "Quokka habitats.", text.link_label),
            },
        )
        async with db.transaction() as session:
            assert await ensure_help_articles(session, (edited, *articles[1:])) == 1
            assert [hit.slug for hit in await search(session, "en", "quokka")] == [first.slug]
        async with db.transaction() as session:
            assert await ensure_help_articles(session, articles[1:]) == 3  # all three languages go
            assert await search(session, "en", "quokka") == []
            assert first.slug not in [
                hit.slug for hit in await search(session, "de", first.texts["de"].title)
            ]
    finally:
        await db.dispose()
