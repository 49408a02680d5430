"""After-sales in the portal: the partner directory (PAR-1), the contacts page (ACC-8), a car's service page
with booking and recalls (PAR-2, PAR-3), owner's manuals (PAR-4), what exists per country (CON-6), and the
console pages for them: the dealer's appointments and the operator's recall campaigns.

Pages call the same use cases as the JSON API (partners.api); the words live in templates/partners/.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.errors import CarlinkError
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.i18n import N_, _
from carlink.identity import service as identity
from carlink.identity.access import Caller, platform_of
from carlink.partners import availability, booking, dealers, manuals, recalls
from carlink.partners import service as partners
from carlink.partners.console import dealer_desk
from carlink.partners.models import Partner
from carlink.protocol.catalogue import CATALOGUE
from carlink.store.portal import (
    current_caller,
    form_caller,
    form_number,
    path_vin,
    refused,
    render,
    see_other,
    staff_caller,
    to_signin,
)

router = APIRouter(include_in_schema=False)

# Marked here, translated for the page by `_notices`.
SERVICE_NOTICES = {
    "booked": N_("Your appointment is booked. The confirmation is on its way by email."),
    "cancelled": N_("The appointment is cancelled and the time is free again for others."),
}
DEALER_NOTICES = {
    "booked": N_("The appointment is booked; the customer gets the confirmation by email."),
    "done": N_("The recall is marked as done for this car."),
}
RECALL_NOTICES = {"closed": N_("The campaign is closed; cars no longer show it.")}


def _notices(notices: dict[str, str]) -> dict[str, str]:
    """The notices in the request's language (a template that translates them again changes nothing)."""
    return {key: _(text) for key, text in notices.items()}


def _helpers(language: str) -> dict[str, Any]:
    def local(moment: Any, country: str) -> str:
        return booking.time_label(moment, country, language)

    def hour(moment: Any, country: str) -> str:
        return i18n.time(booking.local_time(moment, country))

    return {
        "day_label": lambda value: i18n.date(value, "full"),
        "local": local,
        "hour": hour,
        "country_name": availability.country_name,
        "title_of": lambda campaign: recalls.text_in(campaign.titles, language),
        "description_of": lambda campaign: recalls.text_in(campaign.descriptions, language),
    }


def _page(
    request: Request, name: str, caller: Caller | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    # The request's language: the person's profile when signed in, else the browser's (carlink.i18n).
    language = i18n.current()
    return render(request, name, caller, status=status, **_helpers(language), **context)


# --- partner directory (PAR-1) ------------------------------------------------------------------------------


@router.get("/partners", response_model=None)
async def directory(request: Request, country: str = "", done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _directory(request, session, caller, country or caller.account.country, done=done)


async def _directory(
    request: Request,
    session: AsyncSession,
    caller: Caller,
    country: str,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    code = country.strip().upper()[:2]
    known = await partners.countries(session)
    if code not in {row.code for row in known}:
        code = caller.account.country
    rows = await partners.partners_in(session, code)
    chosen = await partners.preferred_partner(session, caller.account.id)
    staff = {row.id: await partners.staff_of(session, row.id) for row in rows}
    return _page(
        request,
        "partners/directory.html",
        caller,
        status=status,
        section="contacts",
        country=code,
        countries=sorted(known, key=lambda row: availability.country_name(row.code)),
        partners=rows,
        staff=staff,
        chosen=chosen,
        **context,
    )


@router.post("/partners/{partner_id}/choose", response_model=None)
async def choose(request: Request, partner_id: str, csrf_token: str = Form("")) -> Response:
    """REQ: PAR-1 — the person's preferred partner."""
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            chosen = await partners.choose_partner(session, caller.account.id, form_number(partner_id))
        except CarlinkError as error:
            return await _directory(
                request,
                session,
                caller,
                "",
                **refused(error),
            )
        return see_other(f"/partners?country={chosen.country}&done=chosen")


# --- contacts (ACC-8) ---------------------------------------------------------------------------------------


@router.get("/contacts", response_model=None)
async def contacts(request: Request) -> Response:
    """REQ: ACC-8 — the person's assigned dealer staff: the preferred partner, else the selling dealer."""
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        chosen = await partners.preferred_partner(session, caller.account.id)
        partner = chosen or await booking.partner_for(session, caller.account)
        staff = await partners.staff_of(session, partner.id) if partner else []
        return _page(
            request,
            "partners/contacts.html",
            caller,
            section="contacts",
            partner=partner,
            chosen=chosen is not None,
            staff=staff,
        )


# --- a car's service page: booking and recalls (PAR-2, PAR-3) -----------------------------------------------


@router.get("/vehicles/{vin}/service", response_model=None)
async def service_page(request: Request, vin: str, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _service_page(request, session, caller, path_vin(vin), done=done)


async def _service_page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    desk = await booking.service_desk(session, caller.account, vin)
    country = desk.partner.country if desk.partner else "DE"
    return _page(
        request,
        "partners/service.html",
        caller,
        status=status,
        desk=desk,
        entry=desk.entry,
        days=booking.group_by_day(desk.slots, country),
        partner_country=country,
        notices=_notices(SERVICE_NOTICES),
        **context,
    )


@router.post("/vehicles/{vin}/service/book", response_model=None)
async def book(
    request: Request,
    vin: str,
    csrf_token: str = Form(""),
    slot_id: str = Form(""),
    note: str = Form(""),
    recall_id: str = Form(""),
) -> Response:
    """REQ: PAR-2 — book a free slot; a slot someone took a moment ago is a 409 with the fresh list."""
    vin = path_vin(vin)
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            await booking.book_for_customer(
                session,
                caller.account,
                vin,
                form_number(slot_id),
                note=note,
                recall_id=form_number(recall_id) if recall_id.strip() else 0,
            )
        except CarlinkError as error:
            if error.code == "vehicle_not_found":
                raise
            return await _service_page(
                request,
                session,
                caller,
                vin,
                **refused(error),
                note=note,
            )
        return see_other(f"/vehicles/{vin}/service?done=booked")


@router.post("/vehicles/{vin}/service/{appointment_id}/cancel", response_model=None)
async def cancel(request: Request, vin: str, appointment_id: str, csrf_token: str = Form("")) -> Response:
    vin = path_vin(vin)
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            await booking.cancel_for_customer(session, caller.account, vin, form_number(appointment_id))
        except CarlinkError as error:
            if error.code == "vehicle_not_found":
                raise
            return await _service_page(
                request,
                session,
                caller,
                vin,
                **refused(error),
            )
        return see_other(f"/vehicles/{vin}/service?done=cancelled")


# --- owner's manuals (PAR-4) --------------------------------------------------------------------------------


@router.get("/vehicles/{vin}/manual", response_model=None)
async def vehicle_manual(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        entry = await garage.garage_entry(session, caller.account, path_vin(vin))
        vehicle = entry.vehicle
        manual = (
            manuals.manual_for(vehicle.model_key, vehicle.variant_code, vehicle.model_year)
            if manuals.has_digital_manual(vehicle.model_year)
            else None
        )
        return _page(request, "partners/manual.html", caller, entry=entry, manual=manual)


@router.get("/manuals", response_model=None)
async def manual_list(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return _page(
            request,
            "partners/manuals.html",
            caller,
            section="",
            cars=await garage.garage(session, caller.account),
            models=manuals.models_with_manual(),
            has_digital_manual=manuals.has_digital_manual,
            digital_years=manuals.digital_years,
        )


@router.get("/manuals/{model_key}", response_model=None)
async def model_manual(request: Request, model_key: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        model = next((m for m in manuals.models_with_manual() if m.key == model_key), None)
        if model is None:
            raise CarlinkError(
                "there is no digital manual for this model", code="manual_not_found", status=404
            )
        return _page(
            request,
            "partners/manual.html",
            caller,
            section="",
            entry=None,
            manual=manuals.manual_for(model.key),
        )


# --- what exists per country (CON-6) ------------------------------------------------------------------------


@router.get("/availability", response_model=None)
async def availability_list(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)  # readable without signing in
        rows = await availability.overview(session)
        return _page(request, "partners/availability.html", caller, section="", rows=rows)


@router.get("/availability/{country}", response_model=None)
async def availability_detail(request: Request, country: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)  # readable without signing in
        row = await availability.detail(session, country)
        return _page(
            request,
            "partners/availability_country.html",
            caller,
            section="",
            row=row,
            partners=await partners.partners_in(session, row.code),
        )


# --- dealer console: appointments and recalls (PAR-2, PAR-3) ------------------------------------------------


async def _dealer(
    request: Request, session: AsyncSession, csrf_token: str | None = None
) -> tuple[Caller, Partner] | None:
    desk = await dealer_desk(request, session, csrf_token)
    return (desk.caller, desk.partner) if desk is not None else None


async def _dealer_page(
    request: Request,
    session: AsyncSession,
    caller: Caller,
    partner: Partner,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    cars = list(
        await session.scalars(
            select(Vehicle).where(Vehicle.id.in_(dealers.served_vehicles(partner.id))).order_by(Vehicle.vin)
        )
    )
    return _page(
        request,
        "dealer/appointments.html",
        caller,
        status=status,
        section="",
        console_section="appointments",
        partner=partner,
        appointments=await booking.upcoming_at_partner(session, partner.id),
        slots=await booking.free_slots(session, partner.id),
        cars=cars,
        open_recalls=await recalls.recalls_at_partner(session, partner.id),
        notices=_notices(DEALER_NOTICES),
        **context,
    )


@router.get("/dealer/appointments", response_model=None)
async def dealer_appointments(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        found = await _dealer(request, session)
        if found is None:
            return to_signin(request)
        return await _dealer_page(request, session, *found, done=done)


@router.post("/dealer/appointments", response_model=None)
async def dealer_book(
    request: Request,
    csrf_token: str = Form(""),
    vin: str = Form(""),
    slot_id: str = Form(""),
    note: str = Form(""),
) -> Response:
    """REQ: PAR-2 — the dealer books for a car it serves; another dealer's car is a 404."""
    async with platform_of(request).db.transaction() as session:
        found = await _dealer(request, session, csrf_token)
        assert found is not None
        caller, partner = found
        try:
            await booking.book_for_dealer(session, partner.id, vin, form_number(slot_id), note=note)
        except CarlinkError as error:
            if error.code == "vehicle_not_found":
                raise
            return await _dealer_page(
                request,
                session,
                caller,
                partner,
                **refused(error),
            )
        return see_other("/dealer/appointments?done=booked")


@router.post("/dealer/appointments/recalls/done", response_model=None)
async def dealer_recall_done(
    request: Request, csrf_token: str = Form(""), vin: str = Form(""), campaign_id: str = Form("")
) -> Response:
    """REQ: PAR-3 — the dealer records the recall work on one of its cars as done."""
    async with platform_of(request).db.transaction() as session:
        found = await _dealer(request, session, csrf_token)
        assert found is not None
        caller, partner = found
        vehicle = await booking.served_vehicle(session, partner.id, vin)
        await recalls.mark_done(
            session,
            partner_id=partner.id,
            vehicle_id=vehicle.id,
            campaign_id=form_number(campaign_id),
            by=caller.account.id,
        )
        return see_other("/dealer/appointments?done=done")


# --- operator console: recall campaigns (PAR-3) -------------------------------------------------------------


async def _operator(request: Request, session: AsyncSession, csrf_token: str | None = None) -> Caller | None:
    found = await staff_caller(request, session, identity.OPERATOR, csrf_token)
    return found[0] if found is not None else None


async def _recalls_page(
    request: Request, session: AsyncSession, caller: Caller, *, status: int = 200, **context: Any
) -> HTMLResponse:
    context.setdefault("form", {})
    return _page(
        request,
        "operator/recalls.html",
        caller,
        status=status,
        section="",
        console_section="recalls",
        campaigns=await recalls.campaigns(session),
        models=CATALOGUE,
        notices=_notices(RECALL_NOTICES),
        **context,
    )


@router.get("/operator/recalls", response_model=None)
async def operator_recalls(request: Request, done: str = "", created: str = "", count: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _operator(request, session)
        if caller is None:
            return to_signin(request)
        return await _recalls_page(
            request, session, caller, done=done, created=created[:24], count=form_number(count)
        )


def _year(raw: str) -> int | None:
    value = form_number(raw)
    return value if 1950 <= value <= 2100 else None


@router.post("/operator/recalls", response_model=None)
async def operator_create_recall(request: Request) -> Response:
    """REQ: PAR-3 — a campaign for model keys and a year range, or for a list of VINs."""
    form = await request.form()
    fields = {key: str(value) for key, value in form.items()}
    async with platform_of(request).db.transaction() as session:
        caller = await _operator(request, session, fields.get("csrf_token", ""))
        assert caller is not None
        draft = recalls.RecallDraft(
            code=fields.get("code", ""),
            titles={lang: fields.get(f"title_{lang}", "") for lang in recalls.LANGUAGES},
            descriptions={lang: fields.get(f"description_{lang}", "") for lang in recalls.LANGUAGES},
            remedy=fields.get("remedy", ""),
            model_keys=[str(value) for value in form.getlist("model_keys") if str(value).strip()],
            year_from=_year(fields.get("year_from", "")),
            year_to=_year(fields.get("year_to", "")),
            vins=[vin for vin in fields.get("vins", "").replace(",", " ").split() if vin],
        )
        try:
            campaign, count = await recalls.create_campaign(session, draft, created_by=caller.account.id)
        except CarlinkError as error:
            return await _recalls_page(
                request,
                session,
                caller,
                **refused(error),
                form=fields,
                chosen_models=draft.model_keys,
            )
        return see_other(f"/operator/recalls?created={campaign.code}&count={count}")


@router.post("/operator/recalls/{campaign_id}/close", response_model=None)
async def operator_close_recall(request: Request, campaign_id: str, csrf_token: str = Form("")) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _operator(request, session, csrf_token)
        assert caller is not None
        await recalls.close_campaign(session, form_number(campaign_id))
        return see_other("/operator/recalls?done=closed")
