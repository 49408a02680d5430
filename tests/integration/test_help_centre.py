"""The help centre (HLP-1) on both stacks: every article's portal link opens for the demo owner, the search
finds German, Japanese and English articles by their words (one Japanese character, full- and half-width
forms), hostile and stop-word queries find what their plain words find, the JSON speaks the caller's profile
language, and the pages are public, translated, and lead into the portal (one link per car of the reader)."""

from __future__ import annotations

from typing import Any

import httpx

from carlink.demo import world
from carlink.help.articles import load_articles
from carlink.help.search import normalise
from tests.support.portal import Browser
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack

# A hostile query and the plain words it must mean: the sanitised query finds exactly what the words find,
# and a query with no word in it finds nothing (never "everything").
HOSTILE = {
    "en": [
        ('"', ""),
        ("*", ""),
        ("AND", "and"),
        ("NEAR(", "near"),
        ("NEAR(a b", "near a b"),
        ("(", ""),
        (")", ""),
        ("-", ""),
        ("a OR", "a or"),
        ("^x", "x"),
        ("x" * 300, "x" * 200),
        ("a\x00b", "a b"),
        ("'", ""),
        (":*", ""),
        ("!!!", ""),
        ("  ", ""),
        ('"charging" OR *', "charging or"),
        ("-pairing)", "pairing"),
        ("pairing':* | 'a", "pairing a"),
    ],
    "de": [
        ('"', ""),
        ('"Passwort" OR *', "passwort or"),
        ("NICHT(Passwort", "nicht passwort"),
        ("-Passwort", "passwort"),
        ("Passwort':* | '", "passwort"),
        ("Fahrzeug* NEAR(PIN", "fahrzeug near pin"),
        ("(!)", ""),
    ],
    "ja": [
        ('"', ""),
        ("＊", ""),
        ("「」（）", ""),
        ('"鍵" OR *', "鍵 or"),
        ('ペアリング" AND (', "ペアリング and"),
        ("ＮＥＡＲ（ペアリング", "near ペアリング"),
        ("車*", "車"),
        ("解錠':* & '", "解錠"),
        ("ﾍﾟｱﾘﾝｸﾞ\x00", "ペアリング"),
    ],
}


def _japanese_articles_with(word: str) -> set[str]:
    return {
        article.slug
        for article in load_articles()
        if any(word in normalise(text) for text in vars(article.texts["ja"]).values())
    }


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


async def test_search_finds_articles_in_each_language_by_their_words(stack: Stack) -> None:
    # REQ: HLP-1 — German by a German word, Japanese by a two-character word, English by a stemmed form.
    async def slugs(q: str, lang: str, limit: int = 10) -> list[str]:
        response = await stack.http.get("/api/v1/help/search", params={"q": q, "lang": lang, "limit": limit})
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
    # One Japanese character matches wherever it stands (a prefix of the stored grams), on both databases.
    with_car = _japanese_articles_with("車")
    assert with_car and set(await slugs("車", "ja", limit=50)) == with_car
    # Full-width Latin from a Japanese input method and half-width katakana are read in their normal form.
    assert await slugs("ＰＩＮ", "ja", limit=50) == await slugs("PIN", "ja", limit=50) != []
    assert await slugs("ﾍﾟｱﾘﾝｸﾞ", "ja") == await slugs("ペアリング", "ja")
    assert await slugs("Ｐａｓｓｗｏｒｔ", "de") == await slugs("Passwort", "de")
    hit = (await stack.http.get("/api/v1/help/search", params={"q": "Passwort", "lang": "de"})).json()[
        "results"
    ][0]
    assert hit["url"] == f"/help/{hit['slug']}" and hit["snippet"] and hit["title"]

    assert (await stack.http.get("/api/v1/help/search", params={"q": ""})).json()["results"] == []
    empty = await stack.http.get("/help/search", params={"q": "?!"}, headers={"Accept": "text/html"})
    assert 'id="help-nothing"' in empty.text and 'id="help-topics"' in empty.text


async def test_hostile_and_stop_word_queries_find_what_their_plain_words_find(stack: Stack) -> None:
    # REQ: HLP-1 — in every language the query syntax of neither database gets through: a hostile query finds
    # exactly what its plain words find, and a query without words finds nothing on both databases.
    async def slugs(q: str, lang: str) -> list[str]:
        response = await stack.http.get("/api/v1/help/search", params={"q": q, "lang": lang, "limit": 50})
        assert response.status_code == 200, (q, lang, response.text)
        return [hit["slug"] for hit in response.json()["results"]]

    everything = len(load_articles())
    found_something = 0
    for lang, queries in HOSTILE.items():
        for query, words in queries:
            hits = await slugs(query, lang)
            assert hits == await slugs(words, lang), (lang, query)
            assert len(hits) < everything, (lang, query)
            if not words:
                assert hits == [], (lang, query)
            found_something += bool(hits)
            page = await stack.http.get(
                "/help/search", params={"q": query}, headers={"Accept": "text/html", "Accept-Language": lang}
            )
            assert page.status_code == 200, (lang, query, page.text)
    assert found_something >= 10  # the comparisons are not all between empty lists

    # Stop words: PostgreSQL's English and German configurations leave them out of the index, so they are
    # left out of every query on both databases: only stop words find nothing, and they change no result.
    for query, lang in [("it", "en"), ("the of and", "en"), ("die", "de"), ("der und für", "de")]:
        assert await slugs(query, lang) == [], (query, lang)
    assert await slugs("the charging", "en") == await slugs("charging", "en") != []
    assert await slugs("die Passwort", "de") == await slugs("Passwort", "de") != []
    assert await slugs("die", "en") == []  # not an English stop word, and in no English article
    assert await slugs("の", "ja") != []  # Japanese keeps every word, particles too
    nothing = await stack.http.get(
        "/help/search", params={"q": "die"}, headers={"Accept": "text/html", "Accept-Language": "de"}
    )
    assert 'id="help-nothing"' in nothing.text


async def test_the_json_api_speaks_lang_then_the_callers_profile_language_then_the_browsers(
    stack: Stack,
) -> None:
    # REQ: HLP-1 — an app asks for the language of its own screen; without `lang`, as on the rest of
    # /api/v1: the profile of a bearer token or a session, then the browser's language.
    async def language(client: httpx.AsyncClient | None = None, **request: Any) -> str:
        response = await (client or stack.http).get("/api/v1/help/search", **request)
        assert response.status_code == 200, response.text
        return str(response.json()["language"])

    query = {"q": "ペアリング"}
    assert await language(params=query) == "en"
    assert await language(params=query, headers={"Accept-Language": "de"}) == "de"
    assert await language(params={**query, "lang": "ja"}, headers={"Accept-Language": "de"}) == "ja"

    hanako = f"Bearer {await stack.token(world.JAPAN_OWNER)}"
    owner = f"Bearer {await stack.token(world.OWNER)}"
    assert await language(params={**query, "lang": "de"}, headers={"Authorization": hanako}) == "de"
    assert await language(params=query, headers={"Authorization": hanako, "Accept-Language": "de"}) == "ja"
    assert await language(params=query, headers={"Authorization": owner, "Accept-Language": "ja"}) == "en"
    found = await stack.http.get("/api/v1/help/search", params=query, headers={"Authorization": hanako})
    assert "pairing-code" in [hit["slug"] for hit in found.json()["results"]]
    article = await stack.http.get("/api/v1/help/articles/pairing-code", headers={"Authorization": hanako})
    assert article.json()["language"] == "ja" and "ペアリングコード" in article.json()["title"]
    missing = await stack.http.get(
        "/api/v1/help/articles/no-such-article",
        headers={"Authorization": hanako, "Accept-Language": "de"},
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "help_article_not_found"
    assert "ヘルプ記事" in missing.json()["error"]["message"]
    # The articles are public: a token that is not valid (an app's expired one) is no reason to refuse.
    expired = await stack.http.get(
        "/api/v1/help/search",
        params=query,
        headers={"Authorization": "Bearer x.y.z", "Accept-Language": "de"},
    )
    assert expired.status_code == 200 and expired.json()["language"] == "de"

    browser = await Browser(stack).sign_in(world.JAPAN_OWNER)  # a portal session, no token
    try:
        assert await language(browser.http, params=query) == "ja"
        assert await language(browser.http, params={**query, "lang": "en"}) == "en"
    finally:
        await browser.close()


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


async def test_a_single_character_and_other_widths_are_found_where_an_article_holds_them(
    database_url: str,
) -> None:
    # REQ: HLP-1 — "鍵" at the end of a run (no bigram starts with it), and an article written with
    # half-width katakana and full-width Latin, on both databases.
    import dataclasses

    from carlink.db.base import Database
    from carlink.help.articles import ArticleText
    from carlink.help.search import search
    from carlink.help.service import ensure_help_articles

    articles = load_articles()
    first = articles[0]
    text = first.texts["ja"]
    edited = dataclasses.replace(
        first,
        texts={
            **first.texts,
            "ja": ArticleText(text.title, text.summary, "車の鍵。ﾛｰﾐﾝｸﾞのＰＩＮ。", text.link_label),
        },
    )
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await ensure_help_articles(session, (edited, *articles[1:]))
        async with db.transaction() as session:
            for query in ("鍵", "の鍵", "ローミング", "ﾛｰﾐﾝｸﾞ", "ミ", "pin", "ＰＩＮ"):
                assert first.slug in [hit.slug for hit in await search(session, "ja", query, 50)], query
            [hit] = [hit for hit in await search(session, "ja", "鍵") if hit.slug == first.slug]
            assert ("鍵", True) in hit.snippet
    finally:
        await db.dispose()


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
