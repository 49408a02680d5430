"""The help centre over JSON (public): search and one article, in a language of ours (HLP-1).

The language is the `lang` parameter when it names one of ours (an app shows help in the language of its
own screen); else the caller's profile language when a bearer token or a portal session comes with the
request, as everywhere in /api/v1 (identity.access); else Accept-Language. The articles are public: a bad or
expired token is no reason to refuse them, so it counts as no caller.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.errors import Unauthorised
from carlink.help import service
from carlink.help.articles import blocks
from carlink.help.search import MAX_LIMIT, MAX_QUERY, search
from carlink.identity.access import bearer_caller, cookie_caller, platform_of

router = APIRouter(prefix="/api/v1/help", tags=["help"])


class HitOut(BaseModel):
    slug: str
    topic: str
    title: str
    summary: str
    snippet: str
    link: str
    url: str
    rank: float


class SearchOut(BaseModel):
    language: str
    query: str
    results: list[HitOut]


class ArticleOut(BaseModel):
    slug: str
    language: str
    topic: str
    order: int
    covers: list[str]
    title: str
    summary: str
    body: str
    blocks: list[dict[str, Any]]  # {"paragraph": text} or {"list": [items]}
    link: str
    link_label: str
    url: str


async def _language(request: Request, session: AsyncSession, lang: str | None) -> str:
    """The language of the answer, also made the language of its error messages."""
    asked = i18n.supported(lang)
    if asked is not None:
        return i18n.use(asked)
    try:
        caller = await bearer_caller(request, session) or await cookie_caller(request, session)
    except Unauthorised:
        caller = None
    return i18n.use(caller.account.locale if caller is not None else i18n.current())


@router.get("/search", response_model=SearchOut)
async def search_articles(
    request: Request,
    # Far above the MAX_QUERY characters read, and short enough that a request line of 4-byte characters,
    # percent-encoded, stays within what the HTTP server accepts (a longer one never reaches us).
    q: str = Query("", max_length=1_000),
    lang: str | None = None,
    limit: int = Query(10, ge=1, le=MAX_LIMIT),
) -> dict[str, Any]:
    """Articles matching `q` (at most 200 characters are read), best first, each with a snippet."""
    async with platform_of(request).db.session() as session:
        language = await _language(request, session, lang)
        hits = await search(session, language, q, limit=limit)
    return {
        "language": language,
        "query": q[:MAX_QUERY],
        "results": [
            {
                "slug": hit.slug,
                "topic": hit.topic,
                "title": hit.title,
                "summary": hit.summary,
                "snippet": hit.snippet_text,
                "link": hit.link,
                "url": f"/help/{hit.slug}",
                "rank": hit.rank,
            }
            for hit in hits
        ],
    }


@router.get("/articles/{slug}", response_model=ArticleOut)
async def get_article(request: Request, slug: str, lang: str | None = None) -> dict[str, Any]:
    async with platform_of(request).db.session() as session:
        language = await _language(request, session, lang)
        row = await service.article(session, slug, language)
    return {
        "slug": row.slug,
        "language": row.language,
        "topic": row.topic,
        "order": row.order,
        "covers": row.covers,
        "title": row.title,
        "summary": row.summary,
        "body": row.body,
        "blocks": [{"paragraph": b.text} if b.text else {"list": list(b.items)} for b in blocks(row.body)],
        "link": row.link,
        "link_label": row.link_label,
        "url": f"/help/{row.slug}",
    }
