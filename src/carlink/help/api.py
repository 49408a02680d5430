"""The help centre over JSON (public): search and one article, in a language of ours (HLP-1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from carlink import i18n
from carlink.help import service
from carlink.help.articles import blocks
from carlink.help.search import MAX_LIMIT, MAX_QUERY, search
from carlink.identity.access import platform_of

router = APIRouter(prefix="/api/v1/help", tags=["help"])


def _language(lang: str | None) -> str:
    return i18n.supported(lang) or i18n.current()


@router.get("/search")
async def search_articles(
    request: Request,
    q: str = Query("", max_length=10_000),
    lang: str | None = None,
    limit: int = Query(10, ge=1, le=MAX_LIMIT),
) -> dict[str, Any]:
    """Articles matching `q` (at most 200 characters are read), best first, each with a snippet."""
    language = _language(lang)
    async with platform_of(request).db.session() as session:
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


@router.get("/articles/{slug}")
async def get_article(request: Request, slug: str, lang: str | None = None) -> dict[str, Any]:
    language = _language(lang)
    async with platform_of(request).db.session() as session:
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
