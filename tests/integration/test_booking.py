"""Service appointments (PAR-2): free slots, booking with a confirmation mail, cancelling, a slot two people
click at once, countries that book by phone, and the dealer booking for a customer."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

from sqlalchemy import delete, select, update

from carlink.clock import clock
from carlink.demo import world
from carlink.garage.models import Vehicle
from carlink.notify.models import OutboxEmail
from carlink.partners import booking, recalls
from carlink.partners.models import Appointment, Country, RecallVehicle, ServiceSlot
from tests.integration.test_partners import signed_in
from tests.support.portal import account_id, partner_id
from tests.support.stack import PANAMERA, TAYCAN, Stack


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


async def _first_free_slots(stack: Stack, code: str, count: int) -> list[int]:
    async with stack.db.session() as session:
        rows = await session.scalars(
            select(ServiceSlot.id)
            .where(
                ServiceSlot.partner_id == await partner_id(stack, code),
                ServiceSlot.appointment_id.is_(None),
                ServiceSlot.starts_at > clock.now(),
            )
            .order_by(ServiceSlot.starts_at)
            .limit(count)
        )
        return list(rows)


async def test_only_the_booker_reads_the_note_and_only_booker_or_main_user_cancel(stack: Stack) -> None:
    # REQ: PAR-2 — the family member sees the owner's appointment without its note and cannot cancel it;
    # the main user may cancel the family member's.
    await choose(stack, world.OWNER, "DE-STR-01")
    await choose(stack, world.FAMILY, "DE-STR-01")
    owner = await stack.as_user(world.OWNER)
    family = await stack.as_user(world.FAMILY)
    family_page = await signed_in(stack, world.FAMILY)
    try:
        first, second = await _first_free_slots(stack, "DE-STR-01", 2)
        mine = await owner.post(
            f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": first, "note": "Private matter"}
        )
        theirs = await family.post(
            f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": second, "note": "Wipers"}
        )
        assert mine.status_code == 201 and theirs.status_code == 201
        mine_id, theirs_id = mine.json()["appointment"]["id"], theirs.json()["appointment"]["id"]

        seen = {
            row["id"]: row["note"]
            for row in (await family.get(f"/api/v1/vehicles/{TAYCAN}/appointments")).json()["appointments"]
        }
        assert seen == {mine_id: "", theirs_id: "Wipers"}
        seen = {
            row["id"]: row["note"]
            for row in (await owner.get(f"/api/v1/vehicles/{TAYCAN}/appointments")).json()["appointments"]
        }
        assert seen == {mine_id: "Private matter", theirs_id: ""}
        page = (await family_page.http.get(f"/vehicles/{TAYCAN}/service")).text
        assert "Private matter" not in page and "Wipers" in page
        assert f"/service/{mine_id}/cancel" not in page and f"/service/{theirs_id}/cancel" in page

        refused = await family.delete(f"/api/v1/vehicles/{TAYCAN}/appointments/{mine_id}")
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "appointment_not_found"
        # The page answers as for an appointment that does not exist.
        by_form = await family_page.post(f"/vehicles/{TAYCAN}/service/{mine_id}/cancel")
        unknown = await family_page.post(f"/vehicles/{TAYCAN}/service/999999/cancel")
        assert by_form.status_code == unknown.status_code == 400 and "no such appointment" in by_form.text
        async with stack.db.session() as session:
            kept = await session.get(Appointment, mine_id)
            assert kept is not None and kept.state == "booked"
        assert (await owner.delete(f"/api/v1/vehicles/{TAYCAN}/appointments/{theirs_id}")).status_code == 204
        assert (await owner.delete(f"/api/v1/vehicles/{TAYCAN}/appointments/{mine_id}")).status_code == 204
    finally:
        await owner.aclose()
        await family.aclose()
        await family_page.close()


async def test_appointments_show_in_their_own_workshops_time_zone(stack: Stack) -> None:
    # REQ: PAR-2 — booked in Stuttgart, then the owner chose London: the appointment stays in Berlin time.
    async with stack.db.transaction() as session:
        await session.execute(update(Country).where(Country.code == "GB").values(online_booking=True))
    await choose(stack, world.OWNER, "DE-STR-01")
    owner = await stack.as_user(world.OWNER)
    browser = await signed_in(stack, world.OWNER)
    try:
        (slot,) = await _first_free_slots(stack, "DE-STR-01", 1)
        booked = await owner.post(f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": slot})
        assert booked.status_code == 201
        berlin_time = booked.json()["appointment"]["local_time"]
        await choose(stack, world.OWNER, "GB-LON-01")
        listed = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/appointments")).json()["appointments"]
        assert [row["local_time"] for row in listed] == [berlin_time]
        page = await browser.http.get(f"/vehicles/{TAYCAN}/service")
        assert "(Europe/London)" in page.text  # the new partner's free times
        shown = re.search(r'data-appointment="[0-9]+">\s*<span class="what">([^<]+)</span>', page.text)
        assert shown is not None and "(Europe/Berlin)" in shown.group(1)
    finally:
        await owner.aclose()
        await browser.close()


async def test_the_previous_owners_future_appointments_end_with_the_change_of_owner(stack: Stack) -> None:
    # REQ: PAR-2, PAR-3 — the leavers' appointments on the car are cancelled, their slots free again and a
    # booked recall open again; appointments of people who stay, and on other cars, are kept.
    await choose(stack, world.OWNER, "DE-STR-01")
    await choose(stack, world.FAMILY, "DE-STR-01")
    async with stack.db.transaction() as session:
        campaign, _ = await recalls.create_campaign(
            session,
            recalls.RecallDraft(
                code="RC-LEAVE",
                titles={"en": "Seat rail"},
                descriptions={},
                remedy="",
                model_keys=[],
                vins=[TAYCAN],
            ),
            tell_owners=False,
        )
    owner = await stack.as_user(world.OWNER)
    family = await stack.as_user(world.FAMILY)
    try:
        first, second, third, fourth = await _first_free_slots(stack, "DE-STR-01", 4)
        service = await owner.post(f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": first})
        recall = await owner.post(
            f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": second, "recall_id": campaign.id}
        )
        other_car = await owner.post(f"/api/v1/vehicles/{PANAMERA}/appointments", json={"slot_id": third})
        staying = await family.post(f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": fourth})
        assert {r.status_code for r in (service, recall, other_car, staying)} == {201}
        owner_id = await account_id(stack, world.OWNER)
        async with stack.db.transaction() as session:
            taycan = await session.scalar(select(Vehicle).where(Vehicle.vin == TAYCAN))
            assert taycan is not None
            await booking.release_for_leavers(session, taycan.id, [owner_id])
            await booking.release_for_leavers(session, taycan.id, [])
        async with stack.db.session() as session:
            states = {row.slot_id: row.state for row in await session.scalars(select(Appointment))}
            assert states == {first: "cancelled", second: "cancelled", third: "booked", fourth: "booked"}
            freed = await session.scalars(
                select(ServiceSlot.appointment_id).where(ServiceSlot.id.in_([first, second]))
            )
            assert list(freed) == [None, None]
            row = await session.scalar(select(RecallVehicle).where(RecallVehicle.campaign_id == campaign.id))
            assert row is not None and row.state == "open"
    finally:
        await owner.aclose()
        await family.aclose()


async def test_jobs_keep_two_weeks_of_slots_for_countries_that_book_online(stack: Stack) -> None:
    # REQ: PAR-2 — missing slots are added in the workshop's local opening hours, never twice, also when
    # two jobs instances run at once; countries booking by phone get none.
    stuttgart = await partner_id(stack, "DE-STR-01")
    yokohama = await partner_id(stack, "JP-YOK-01")
    async with stack.db.transaction() as session:
        await session.execute(update(Country).where(Country.code == "JP").values(online_booking=False))
        await session.execute(delete(ServiceSlot).where(ServiceSlot.partner_id.in_([stuttgart, yokohama])))
    now = clock.now()
    async with stack.db.transaction() as session:
        added = await booking.ensure_slots(session, now)
    assert added > 0
    async with stack.db.session() as session:
        starts = list(
            await session.scalars(select(ServiceSlot.starts_at).where(ServiceSlot.partner_id == stuttgart))
        )
        assert await session.scalar(select(ServiceSlot.id).where(ServiceSlot.partner_id == yokohama)) is None
    expected = [
        start
        for start in booking.opening_hours(
            booking.local_time(now, "DE").date(), booking.BOOKING_DAYS + 1, "DE"
        )
        if start > now
    ]
    assert sorted(starts) == expected
    assert all(booking.local_time(start, "DE").hour in range(9, 17) for start in starts)
    assert all(booking.local_time(start, "DE").weekday() < 5 for start in starts)
    assert max(starts) - now < dt.timedelta(days=booking.BOOKING_DAYS + 1)

    async with stack.db.transaction() as session:
        assert await booking.ensure_slots(session, now) == 0

    # Two instances a day later, at once: each slot exists once.
    async with stack.db.transaction() as session:
        await session.execute(delete(ServiceSlot).where(ServiceSlot.partner_id == stuttgart))
    later = now + dt.timedelta(days=1)

    async def one_instance() -> int:
        async with stack.db.transaction() as session:
            return await booking.ensure_slots(session, later)

    await asyncio.gather(one_instance(), one_instance())
    async with stack.db.session() as session:
        starts = list(
            await session.scalars(select(ServiceSlot.starts_at).where(ServiceSlot.partner_id == stuttgart))
        )
    assert len(starts) == len(set(starts)) > 0

    # The jobs round adds them too (at most once an hour).
    async with stack.db.transaction() as session:
        await session.execute(delete(ServiceSlot).where(ServiceSlot.partner_id == stuttgart))
    booking._slots_checked.clear()
    await booking.run_due(stack.db)
    async with stack.db.session() as session:
        assert await session.scalar(select(ServiceSlot.id).where(ServiceSlot.partner_id == stuttgart))
