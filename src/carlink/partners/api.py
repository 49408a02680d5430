"""/api/v1/partners, /api/v1/countries, /api/v1/me/preferred-partner and a vehicle's slots, appointments and
recalls: after-sales as a JSON API (PAR-1..3, CON-6). The same use cases as the portal pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from carlink.error_responses import errors
from carlink.errors import CarlinkError
from carlink.garage import service as garage
from carlink.identity.access import platform_of, require_caller
from carlink.partners import availability, booking, recalls
from carlink.partners import service as partners
from carlink.partners.models import Appointment, Partner, PartnerStaff, ServiceSlot

router = APIRouter(prefix="/api/v1", tags=["partners"])


class PartnerOut(BaseModel):
    id: int
    code: str
    name: str
    country: str
    city: str
    street: str
    postcode: str
    phone: str
    email: str


class StaffOut(BaseModel):
    name: str
    title: str
    email: str
    phone: str


class CountryOut(BaseModel):
    code: str
    name: str
    connect_available: bool
    store_open: bool
    services: list[str]
    online_booking: bool
    recall_booking: bool
    privacy_contact: str | None = Field(description="none: consent is revoked through the dealer (PRV-3)")
    partners: int


class SlotOut(BaseModel):
    id: int
    starts_at: dt.datetime
    local_time: str
    minutes: int


class AppointmentOut(BaseModel):
    id: int
    starts_at: dt.datetime
    local_time: str
    partner_id: int
    kind: str
    recall_id: int | None
    note: str
    state: str
    booked_by: str


class RecallOut(BaseModel):
    id: int
    code: str
    title: str
    description: str
    remedy: str
    state: str
    bookable: bool


class ChoosePartner(BaseModel):
    # JSON types as declared: no true for 1, no "1" for 1 (a client bug shows, not a guess; issue 9)
    model_config = ConfigDict(strict=True)
    partner_id: int = Field(ge=1, le=2**31 - 1)


class BookAppointment(BaseModel):
    model_config = ConfigDict(strict=True)
    slot_id: int = Field(ge=1, le=2**31 - 1)
    note: str = Field(default="", max_length=booking.NOTE_LENGTH)
    recall_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class DirectoryOut(BaseModel):
    country: str
    partners: list[PartnerOut]


class PartnerDetailOut(BaseModel):
    partner: PartnerOut
    staff: list[StaffOut]


class PreferredOut(BaseModel):
    partner: PartnerOut | None


class CountriesOut(BaseModel):
    countries: list[CountryOut]


class DeskOut(BaseModel):
    partner: PartnerOut | None
    online_booking: bool
    recall_booking: bool
    time_zone: str
    slots: list[SlotOut]


class AppointmentsOut(BaseModel):
    appointments: list[AppointmentOut]


class BookedOut(BaseModel):
    appointment: AppointmentOut


class RecallsOut(BaseModel):
    vin: str
    recalls: list[RecallOut]


def partner_out(row: Partner) -> PartnerOut:
    return PartnerOut(
        id=row.id,
        code=row.code,
        name=row.name,
        country=row.country,
        city=row.city,
        street=row.street,
        postcode=row.postcode,
        phone=row.phone,
        email=row.email,
    )


def staff_out(row: PartnerStaff) -> StaffOut:
    return StaffOut(name=row.name, title=row.title, email=row.email, phone=row.phone)


def country_out(row: availability.CountryAvailability) -> CountryOut:
    return CountryOut(
        code=row.code,
        name=row.name,
        connect_available=row.connect_available,
        store_open=row.store_open,
        services=row.services,
        online_booking=row.online_booking,
        recall_booking=row.recall_booking,
        privacy_contact=row.privacy_contact,
        partners=row.partners,
    )


def slot_out(row: ServiceSlot, country: str) -> SlotOut:
    return SlotOut(
        id=row.id,
        starts_at=row.starts_at,
        local_time=booking.local_time(row.starts_at, country).isoformat(),
        minutes=row.minutes,
    )


def appointment_out(row: Appointment, country: str, *, show_note: bool = True) -> AppointmentOut:
    return AppointmentOut(
        id=row.id,
        starts_at=row.starts_at,
        local_time=booking.local_time(row.starts_at, country).isoformat(),
        partner_id=row.partner_id,
        kind=row.kind,
        recall_id=row.recall_id,
        note=row.note if show_note else "",
        state=row.state,
        booked_by=row.booked_by,
    )


# --- the directory and the person's partner (PAR-1, ACC-8) --------------------------------------------------


@router.get("/partners", response_model=DirectoryOut)
async def partner_directory(request: Request, country: str = "") -> dict[str, Any]:
    """REQ: PAR-1 — the partners of a country (the caller's own without `country`)."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        code = (country or caller.account.country).strip().upper()[:2]
        rows = await partners.partners_in(session, code)
        return {"country": code, "partners": [partner_out(row) for row in rows]}


@router.get("/partners/{partner_id}", response_model=PartnerDetailOut)
async def partner_detail(partner_id: int, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        await require_caller(request, session)
        row = await partners.partner(session, partner_id)
        staff = await partners.staff_of(session, row.id)
        return {"partner": partner_out(row), "staff": [staff_out(person) for person in staff]}


@router.get("/me/preferred-partner", response_model=PreferredOut)
async def preferred_partner(request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        row = await partners.preferred_partner(session, caller.account.id)
        return {"partner": partner_out(row) if row else None}


@router.put("/me/preferred-partner", response_model=PreferredOut)
async def choose_partner(body: ChoosePartner, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        row = await partners.choose_partner(session, caller.account.id, body.partner_id)
        return {"partner": partner_out(row)}


# --- countries (CON-6) --------------------------------------------------------------------------------------


@router.get("/countries", response_model=CountriesOut)
async def countries(request: Request) -> dict[str, Any]:
    """REQ: CON-6 — what exists in each country; readable without signing in."""
    async with platform_of(request).db.session() as session:
        return {"countries": [country_out(row) for row in await availability.overview(session)]}


@router.get("/countries/{code}")
async def country(code: str, request: Request) -> CountryOut:
    async with platform_of(request).db.session() as session:
        return country_out(await availability.detail(session, code))


# --- a vehicle's slots, appointments and recalls (PAR-2, PAR-3) ---------------------------------------------


@router.get("/vehicles/{vin}/slots", response_model=DeskOut)
async def slots(vin: str, request: Request) -> dict[str, Any]:
    """The free times of the person's partner for the next 14 days; none where booking is by phone."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        desk = await booking.service_desk(session, caller.account, vin)
        return _desk_out(desk)


def _desk_out(desk: booking.ServiceDesk) -> dict[str, Any]:
    country = desk.partner.country if desk.partner else "DE"
    return {
        "partner": partner_out(desk.partner) if desk.partner else None,
        "online_booking": desk.online_booking,
        "recall_booking": desk.recall_booking,
        "time_zone": desk.zone,
        "slots": [slot_out(row, country) for row in desk.slots],
    }


@router.get("/vehicles/{vin}/appointments", response_model=AppointmentsOut)
async def appointments(vin: str, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        desk = await booking.service_desk(session, caller.account, vin)
        return {
            "appointments": [
                appointment_out(row, desk.country_of(row), show_note=desk.shows_note(row))
                for row in desk.appointments
            ]
        }


@router.post(
    "/vehicles/{vin}/appointments",
    status_code=201,
    response_model=None,
    # 409 `slot_taken` also carries the fresh free `slots`, so the app can offer another time at once
    responses={201: {"model": BookedOut}, **errors(409)},
)
async def book(vin: str, body: BookAppointment, request: Request) -> dict[str, Any] | JSONResponse:
    """REQ: PAR-2 — books a free slot; a slot someone took a moment ago is 409 `slot_taken` with the fresh
    list of free slots, so the app can offer another time at once."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        try:
            row = await booking.book_for_customer(
                session, caller.account, vin, body.slot_id, note=body.note, recall_id=body.recall_id or 0
            )
        except CarlinkError as error:
            if error.code != "slot_taken":
                raise
            fresh = _desk_out(await booking.service_desk(session, caller.account, vin))
            return JSONResponse(
                {
                    "error": {"code": error.code, "message": error.message},
                    "slots": [slot.model_dump(mode="json") for slot in fresh["slots"]],
                },
                status_code=error.status,
            )
        partner = await partners.partner(session, row.partner_id)
        return {"appointment": appointment_out(row, partner.country)}


@router.delete("/vehicles/{vin}/appointments/{appointment_id}", status_code=204, responses=errors(409))
async def cancel(vin: str, appointment_id: int, request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        await booking.cancel_for_customer(session, caller.account, vin, appointment_id)
    return Response(status_code=204)


@router.get("/vehicles/{vin}/recalls", response_model=RecallsOut)
async def vehicle_recalls(vin: str, request: Request) -> dict[str, Any]:
    """REQ: PAR-3 — the car's recalls that still need doing, and whether each can be booked here."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        desk = await booking.service_desk(session, caller.account, entry.vehicle.vin)
        language = caller.account.locale
        return {
            "vin": entry.vehicle.vin,
            "recalls": [
                RecallOut(
                    id=campaign.id,
                    code=campaign.code,
                    title=recalls.text_in(campaign.titles, language),
                    description=recalls.text_in(campaign.descriptions, language),
                    remedy=campaign.remedy,
                    state=row.state,
                    bookable=desk.recall_booking and row.state == recalls.OPEN,
                )
                for campaign, row in desk.recalls
            ],
        }
