"""/vehicles/{vin}/connectivity in the portal: the car's live connection status, then its guide."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from carlink.connectivity.countries import country_choices, country_name
from carlink.connectivity.service import connectivity_of
from carlink.errors import Unauthorised
from carlink.identity.access import platform_of
from carlink.store.portal import current_caller, render, to_signin

router = APIRouter(include_in_schema=False)


@router.get("/vehicles/{vin}/connectivity", response_model=None)
async def connectivity_page(request: Request, vin: str, country: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        view = await connectivity_of(session, caller.account, vin, country or None)
        return render(
            request,
            "connectivity/page.html",
            caller,
            entry=view.entry,
            guide=view.guide,
            home_country=view.home_country,
            # The home country and the chosen one stay in the chooser even when we have no data for them.
            countries=country_choices(view.home_country, view.guide.country_code),
            country_name=country_name,
        )


@router.get("/vehicles/{vin}/connectivity/status", response_class=HTMLResponse)
async def connectivity_status(request: Request, vin: str) -> HTMLResponse:
    """The status block alone, fetched again by htmx when the car's event stream reports a change (VEH-9),
    with the guide's symbol section out of band, so that "your car now" follows the reported network."""
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            raise Unauthorised("your session has ended; sign in again", code="unauthorised")
        view = await connectivity_of(session, caller.account, vin)
    return render(request, "connectivity/_status.html", caller, entry=view.entry, guide=view.guide, oob=True)
