"""The help centre's pages (HLP-1): the topics, the search and each article, in the reader's language.

Help is public: a signed-out reader sees everything, and a link into the portal becomes a sign-in that leads
there. A signed-in reader gets the navigation, and a link that names a car (``{vin}``) once per car of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.garage import service as garage
from carlink.help import service
from carlink.help.articles import VIN_PLACEHOLDER, blocks
from carlink.help.models import HelpArticle
from carlink.help.search import MAX_QUERY, search
from carlink.identity.access import Caller, platform_of
from carlink.store.portal import current_caller
from carlink.web.templating import page

router = APIRouter(include_in_schema=False)
# Portal pages anyone may open without signing in: their links need no sign-in first.
PUBLIC_PATHS = ("/help", "/availability", "/register", "/signin", "/certificates/verify", "/docs")


@dataclass(frozen=True)
class PortalLink:
    href: str
    label: str
    vehicle: str = ""  # the car's name and VIN for a per-car link
    signin: bool = False


def _render(request: Request, name: str, caller: Caller | None, **context: Any) -> HTMLResponse:
    csrf = caller.web_session.csrf_token if caller and caller.web_session else ""
    account = caller.account if caller else None
    return page(request, name, account=account, csrf_token=csrf, section="help", **context)


@router.get("/help", response_model=None)
async def index(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        listed = await service.topics(session, i18n.current())
    return _render(request, "help/index.html", caller, topics=listed, query="", max_query=MAX_QUERY)


@router.get("/help/search", response_model=None)
async def search_page(request: Request, q: str = "") -> Response:
    query = q[:MAX_QUERY].replace("\x00", "")
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        hits = await search(session, i18n.current(), query, limit=20)
        listed = [] if hits else await service.topics(session, i18n.current())
    return _render(
        request, "help/search.html", caller, query=query, hits=hits, topics=listed, max_query=MAX_QUERY
    )


@router.get("/help/{slug}", response_model=None)
async def article_page(request: Request, slug: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        row = await service.article(session, slug, i18n.current())
        links = await portal_links(session, row, caller)
        others = await service.related(session, row)
    return _render(
        request,
        "help/article.html",
        caller,
        article=row,
        blocks=blocks(row.body),
        links=links,
        related=others,
        query="",
        max_query=MAX_QUERY,
    )


async def portal_links(session: AsyncSession, row: HelpArticle, caller: Caller | None) -> list[PortalLink]:
    """Where the article's portal page is for this reader: one link per car for a "{vin}" page, a sign-in
    that leads there for a signed-out reader (back to the article for a per-car page, to pick the car)."""
    public = any(row.link == path or row.link.startswith(path + "/") for path in PUBLIC_PATHS)
    if VIN_PLACEHOLDER not in row.link:
        if caller is None and not public:
            return [PortalLink(f"/signin?next={quote(row.link)}", row.link_label, signin=True)]
        return [PortalLink(row.link, row.link_label)]
    if caller is None:
        return [PortalLink(f"/signin?next={quote('/help/' + row.slug)}", row.link_label, signin=True)]
    links = []
    for entry in await garage.garage(session, caller.account):
        vehicle = entry.vehicle
        name = vehicle.custom_name or entry.variant.name
        links.append(
            PortalLink(
                row.link.replace(VIN_PLACEHOLDER, vehicle.vin), row.link_label, f"{name} · {vehicle.vin}"
            )
        )
    return links
