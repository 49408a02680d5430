"""Service appointments (PAR-2): free slots, booking with a confirmation mail, cancelling, a slot two people
click at once, countries that book by phone, and the dealer booking for a customer."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select, update

from carlink.clock import clock
from carlink.demo import world
from carlink.notify.models import OutboxEmail
from carlink.partners.models import Appointment, Country, ServiceSlot
from tests.integration.test_partners import signed_in
from tests.support.portal import partner_id
from tests.support.stack import TAYCAN, Stack


async def choose(stack: Stack, email: str, code: str) -> None:
    client = await stack.as_user(email)
    response = await client.put(
        "/api/v1/me/preferred-partner", json={"partner_id": await partner_id(stack, code)}
    )
    assert response.status_code == 200, response.text
    await client.aclose()


async def mails_to(stack: Stack, address: str, template: str) -> list[OutboxEmail]:
    async with stack.db.session() as session:
        rows = await session.scalars(
            select(OutboxEmail).where(OutboxEmail.to_address == address, OutboxEmail.template == template)
        )
        return list(rows)


async def test_booking_listing_mail_cancel_past_and_a_slot_taken_by_two_at_once(stack: Stack) -> None:
    # REQ: PAR-2
    await choose(stack, world.OWNER, "DE-STR-01")
    await choose(stack, world.FAMILY, "DE-STR-01")
    owner = await stack.as_user(world.OWNER)
    family = await stack.as_user(world.FAMILY)
    try:
        listing = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/slots")).json()
        assert listing["online_booking"] is True and listing["time_zone"] == "Europe/Berlin"
        slots = listing["slots"]
        assert slots and all(
            slot["local_time"][11:13] in {f"{h:02d}" for h in range(9, 17)} for slot in slots
        )
        first = slots[0]

        booked = await owner.post(
            f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": first["id"], "note": "Brakes squeak"}
        )
        assert booked.status_code == 201, booked.text
        appointment = booked.json()["appointment"]
        assert appointment["kind"] == "service" and appointment["state"] == "booked"
        after = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/slots")).json()["slots"]
        assert first["id"] not in {slot["id"] for slot in after}
        mails = await mails_to(stack, world.OWNER, "appointment_booked")
        assert len(mails) == 1 and "Autohaus Example Stuttgart" in mails[0].subject
        assert "Brakes squeak" in mails[0].body_text and "Europe/Berlin" in mails[0].body_text

        # The secondary user sees the car's appointments; the same slot again is taken.
        seen = (await family.get(f"/api/v1/vehicles/{TAYCAN}/appointments")).json()["appointments"]
        assert [row["id"] for row in seen] == [appointment["id"]]
        again = await family.post(f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": first["id"]})
        assert again.status_code == 409 and again.json()["error"]["code"] == "slot_taken"

        # Cancelling frees the slot for others.
        cancelled = await owner.delete(f"/api/v1/vehicles/{TAYCAN}/appointments/{appointment['id']}")
        assert cancelled.status_code == 204
        free = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/slots")).json()["slots"]
        assert first["id"] in {slot["id"] for slot in free}
        twice = await owner.delete(f"/api/v1/vehicles/{TAYCAN}/appointments/{appointment['id']}")
        assert twice.status_code == 409

        # Two people click the same slot at the same moment: exactly one wins.
        contested = free[3]["id"]
        answers = await asyncio.gather(
            owner.post(f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": contested}),
            family.post(f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": contested}),
        )
        assert sorted(answer.status_code for answer in answers) == [201, 409]
        loser = next(answer for answer in answers if answer.status_code == 409).json()
        assert loser["error"]["code"] == "slot_taken"
        assert loser["slots"] and contested not in {slot["id"] for slot in loser["slots"]}
        async with stack.db.session() as session:
            holders = await session.scalars(
                select(Appointment).where(Appointment.slot_id == contested, Appointment.state == "booked")
            )
            assert len(list(holders)) == 1
            slot = await session.get(ServiceSlot, contested)
            assert slot is not None and slot.appointment_id is not None

        # A past slot is not bookable, nor listed.
        async with stack.db.transaction() as session:
            gone = ServiceSlot(
                partner_id=await partner_id(stack, "DE-STR-01"),
                starts_at=(clock.now() - dt.timedelta(hours=2)).replace(minute=7, second=0, microsecond=0),
            )
            session.add(gone)
        past = await owner.post(f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": gone.id})
        assert past.status_code == 400 and past.json()["error"]["code"] == "slot_past"
        listed = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/slots")).json()["slots"]
        assert gone.id not in {slot["id"] for slot in listed}
    finally:
        clock.reset()
        await owner.aclose()
        await family.aclose()


async def test_service_page_booking_phone_countries_strangers_and_the_dealer(stack: Stack) -> None:
    # REQ: PAR-2 — the page: free slots by day, book with a note, see and cancel.
    await choose(stack, world.OWNER, "DE-STR-01")
    browser = await signed_in(stack, world.OWNER)
    stranger = await signed_in(stack, world.STRANGER)
    hanako = await signed_in(stack, world.JAPAN_OWNER)
    dealer = await signed_in(stack, world.DEALER)
    other_dealer = await signed_in(stack, world.OTHER_DEALER)
    try:
        page = await browser.http.get(f"/vehicles/{TAYCAN}/service")
        assert page.status_code == 200 and "Book an appointment at Autohaus Example Stuttgart" in page.text
        assert "Europe/Berlin" in page.text and 'name="slot_id"' in page.text
        async with stack.db.session() as session:
            slot_id = await session.scalar(
                select(ServiceSlot.id)
                .where(
                    ServiceSlot.partner_id == await partner_id(stack, "DE-STR-01"),
                    ServiceSlot.appointment_id.is_(None),
                    ServiceSlot.starts_at > clock.now(),
                )
                .order_by(ServiceSlot.starts_at)
            )
        booked = await browser.post(
            f"/vehicles/{TAYCAN}/service/book", {"slot_id": str(slot_id), "note": "Tyre change"}
        )
        assert booked.status_code == 303 and booked.headers["location"].endswith("/service?done=booked")
        shown = await browser.http.get(booked.headers["location"])
        assert "Your appointment is booked" in shown.text and "Tyre change" in shown.text
        again = await browser.post(f"/vehicles/{TAYCAN}/service/book", {"slot_id": str(slot_id)})
        assert again.status_code == 409 and "someone has just booked this time" in again.text
        async with stack.db.session() as session:
            appointment_id = await session.scalar(
                select(Appointment.id).where(Appointment.slot_id == slot_id)
            )
        cancelled = await browser.post(f"/vehicles/{TAYCAN}/service/{appointment_id}/cancel")
        assert cancelled.status_code == 303
        assert "The appointment is cancelled" in (await browser.http.get(cancelled.headers["location"])).text

        # Strangers get the same 404 as for an unknown VIN.
        assert (await stranger.http.get(f"/vehicles/{TAYCAN}/service")).status_code == 404
        assert (
            await stranger.post(f"/vehicles/{TAYCAN}/service/book", {"slot_id": str(slot_id)})
        ).status_code == 404

        # A country without online booking: the partner's phone and email instead of slots.
        async with stack.db.transaction() as session:
            await session.execute(update(Country).where(Country.code == "JP").values(online_booking=False))
        await choose(stack, world.JAPAN_OWNER, "JP-YOK-01")
        phone = await hanako.http.get(f"/vehicles/{world.JAPAN_CAR.vin}/service")
        assert 'id="book-by-phone"' in phone.text and 'name="slot_id"' not in phone.text
        assert "+81 45 555 0300" in phone.text and "service.yokohama@example.com" in phone.text
        api = await stack.as_user(world.JAPAN_OWNER)
        refused = await api.post(f"/api/v1/vehicles/{world.JAPAN_CAR.vin}/appointments", json={"slot_id": 1})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "booking_not_available"
        await api.aclose()

        # The dealer books for a car it serves; the customer gets the mail; another dealer gets a 404.
        console = await dealer.http.get("/dealer/appointments")
        assert console.status_code == 200 and 'aria-current="page">Appointments' in console.text
        by_dealer = await dealer.post(
            "/dealer/appointments", {"vin": TAYCAN, "slot_id": str(slot_id), "note": "Software update"}
        )
        assert by_dealer.status_code == 303, by_dealer.text
        listed = await dealer.http.get("/dealer/appointments")
        assert TAYCAN in listed.text and "Software update" in listed.text
        mails = await mails_to(stack, world.OWNER, "appointment_booked")
        assert any("has booked an appointment" in mail.body_text for mail in mails)
        foreign = await other_dealer.post("/dealer/appointments", {"vin": TAYCAN, "slot_id": str(slot_id)})
        assert foreign.status_code == 404
        assert (await browser.http.get("/dealer/appointments")).status_code == 403
    finally:
        for client in (browser, stranger, hanako, dealer, other_dealer):
            await client.close()
