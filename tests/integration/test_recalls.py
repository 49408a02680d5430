"""Recall campaigns (PAR-3): the operator's campaign matches the affected cars and tells their main users,
the car's service page and API show the recall, it is booked where the country allows, the dealer marks it
done."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from sqlalchemy import func, select, update

from carlink.clock import clock
from carlink.demo import world
from carlink.errors import CarlinkError
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.identity.models import Account
from carlink.notify.models import Notification, OutboxEmail
from carlink.partners import booking, recalls
from carlink.partners.models import (
    Appointment,
    Country,
    Partner,
    RecallCampaign,
    RecallVehicle,
    ServiceSlot,
)
from carlink.protocol.vin import make_vin
from tests.integration.test_booking import choose
from tests.integration.test_partners import signed_in
from tests.support.portal import account_id
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack

LATE_TAYCAN = make_vin("WP0", "ZZZY1", "P", "S", 100777)

CAMPAIGN = {
    "code": "rc-2026-007",
    "title_en": "Fuel pump relay",
    "title_de": "Relais der Kraftstoffpumpe",
    "description_en": "The relay may wear early.",
    "remedy": "The workshop replaces the relay (about 30 minutes).",
    "model_keys": "panamera-2",
    "year_from": "2018",
    "year_to": "2018",
}


async def test_operator_campaign_matches_the_panamera_tells_the_owner_and_is_booked_and_done(
    stack: Stack,
) -> None:
    # REQ: PAR-3
    operator = await signed_in(stack, world.OPERATOR)
    owner = await signed_in(stack, world.OWNER)
    dealer = await signed_in(stack, world.DEALER)
    try:
        assert (await owner.http.get("/operator/recalls")).status_code == 403
        assert (await owner.post("/operator/recalls", CAMPAIGN)).status_code == 403
        console = await operator.http.get("/operator/recalls")
        assert console.status_code == 200 and 'aria-current="page">Recall campaigns' in console.text

        missing = await operator.post("/operator/recalls", {**CAMPAIGN, "model_keys": "", "vins": ""})
        assert missing.status_code == 400 and "choose the affected models or list the VINs" in missing.text
        created = await operator.post("/operator/recalls", CAMPAIGN)
        assert created.status_code == 303, created.text
        shown = await operator.http.get(created.headers["location"])
        affected = re.search(r"Campaign RC-2026-007 is recorded\. It affects ([0-9]+) cars?", shown.text)
        assert affected is not None
        twice = await operator.post("/operator/recalls", CAMPAIGN)
        assert twice.status_code == 409

        async with stack.db.session() as session:
            campaign = await session.scalar(
                select(RecallCampaign).where(RecallCampaign.code == "RC-2026-007")
            )
            assert campaign is not None
            matched = await session.scalars(
                select(Vehicle.vin)
                .join(RecallVehicle, RecallVehicle.vehicle_id == Vehicle.id)
                .where(RecallVehicle.campaign_id == campaign.id)
            )
            vins = set(matched)
            assert PANAMERA in vins and TAYCAN not in vins and len(vins) == int(affected.group(1))
            mails = list(
                await session.scalars(
                    select(OutboxEmail).where(
                        OutboxEmail.template == "recall_notice", OutboxEmail.to_address == world.OWNER
                    )
                )
            )
            assert (
                len(mails) == 1 and PANAMERA in mails[0].body_text and "Fuel pump relay" in mails[0].subject
            )
            notified = await session.scalar(
                select(Notification).where(
                    Notification.account_id == await account_id(stack, world.OWNER),
                    Notification.kind == "recall_notice",
                )
            )
            assert notified is not None and notified.link == f"/vehicles/{PANAMERA}/service"

        # The car's page shows it prominently; with a partner in Germany it is booked directly.
        await choose(stack, world.OWNER, "DE-STR-01")
        page = await owner.http.get(f"/vehicles/{PANAMERA}/service")
        assert 'data-recall="RC-2026-007"' in page.text and "Fuel pump relay" in page.text
        assert "Book for this recall (RC-2026-007)" in page.text
        assert 'data-recall="RC-2026-007"' not in (await owner.http.get(f"/vehicles/{TAYCAN}/service")).text
        api = await stack.as_user(world.OWNER)
        listed = (await api.get(f"/api/v1/vehicles/{PANAMERA}/recalls")).json()["recalls"]
        ours = next(row for row in listed if row["code"] == "RC-2026-007")
        assert ours["bookable"] is True and ours["state"] == "open"
        slot = (await api.get(f"/api/v1/vehicles/{PANAMERA}/slots")).json()["slots"][0]
        booked = await api.post(
            f"/api/v1/vehicles/{PANAMERA}/appointments",
            json={"slot_id": slot["id"], "recall_id": campaign.id},
        )
        assert booked.status_code == 201, booked.text
        assert booked.json()["appointment"]["kind"] == "recall"
        listed = (await api.get(f"/api/v1/vehicles/{PANAMERA}/recalls")).json()["recalls"]
        assert next(row for row in listed if row["code"] == "RC-2026-007")["state"] == "booked"
        twice = await api.post(
            f"/api/v1/vehicles/{PANAMERA}/appointments",
            json={"slot_id": slot["id"] + 1, "recall_id": campaign.id},
        )
        assert twice.status_code == 409 and twice.json()["error"]["code"] == "recall_booked"
        # Cancelling the appointment opens the recall again; it is booked anew.
        first = booked.json()["appointment"]["id"]
        assert (await api.delete(f"/api/v1/vehicles/{PANAMERA}/appointments/{first}")).status_code == 204
        listed = (await api.get(f"/api/v1/vehicles/{PANAMERA}/recalls")).json()["recalls"]
        assert next(row for row in listed if row["code"] == "RC-2026-007")["state"] == "open"
        rebooked = await api.post(
            f"/api/v1/vehicles/{PANAMERA}/appointments",
            json={"slot_id": slot["id"], "recall_id": campaign.id},
        )
        assert rebooked.status_code == 201, rebooked.text
        stranger = await stack.as_user(world.STRANGER)
        assert (await stranger.get(f"/api/v1/vehicles/{PANAMERA}/recalls")).status_code == 404
        await stranger.aclose()

        # The dealer sees the recall of its customer's car and marks it done.
        console = await dealer.http.get("/dealer/appointments")
        assert 'data-recall="RC-2026-007"' in console.text
        done = await dealer.post(
            "/dealer/appointments/recalls/done", {"vin": PANAMERA, "campaign_id": str(campaign.id)}
        )
        assert done.status_code == 303
        listed = (await api.get(f"/api/v1/vehicles/{PANAMERA}/recalls")).json()["recalls"]
        assert "RC-2026-007" not in {row["code"] for row in listed}
        async with stack.db.session() as session:
            row = await session.scalar(select(RecallVehicle).where(RecallVehicle.campaign_id == campaign.id))
            assert row is not None and row.state == "done"
            assert await session.scalar(select(Appointment.kind).where(Appointment.recall_id == campaign.id))
        await api.aclose()
    finally:
        for client in (operator, owner, dealer):
            await client.close()


async def test_recall_by_vin_list_and_by_phone_where_the_country_books_no_recalls(stack: Stack) -> None:
    # REQ: PAR-3 — a campaign for listed VINs; Japan's recalls go through the partner here.
    async with stack.db.transaction() as session:
        await session.execute(update(Country).where(Country.code == "JP").values(recall_booking=False))
    await choose(stack, world.JAPAN_OWNER, "JP-YOK-01")
    operator = await signed_in(stack, world.OPERATOR)
    hanako = await signed_in(stack, world.JAPAN_OWNER)
    other_dealer = await signed_in(stack, world.OTHER_DEALER)
    try:
        created = await operator.post(
            "/operator/recalls",
            {
                "code": "RC-2026-JP1",
                "title_en": "Tailgate strut",
                "title_ja": "テールゲートのダンパー",
                "remedy": "Replace both struts.",
                "vins": f"{world.JAPAN_CAR.vin}\n",
            },
        )
        assert created.status_code == 303, created.text
        page = await hanako.http.get(f"/vehicles/{world.JAPAN_CAR.vin}/service")
        assert "テールゲートのダンパー" in page.text  # her language
        assert "Book for this recall" not in page.text and "+81 45 555 0300" in page.text
        api = await stack.as_user(world.JAPAN_OWNER)
        listed = (await api.get(f"/api/v1/vehicles/{world.JAPAN_CAR.vin}/recalls")).json()["recalls"]
        assert [(row["code"], row["bookable"]) for row in listed] == [("RC-2026-JP1", False)]
        await api.aclose()
        async with stack.db.session() as session:
            campaign_id = await session.scalar(
                select(RecallCampaign.id).where(RecallCampaign.code == "RC-2026-JP1")
            )
        foreign = await other_dealer.post(
            "/dealer/appointments/recalls/done", {"vin": world.JAPAN_CAR.vin, "campaign_id": str(campaign_id)}
        )
        assert foreign.status_code == 404
    finally:
        for client in (operator, hanako, other_dealer):
            await client.close()


def test_a_cars_recall_and_an_appointment_move_only_along_their_allowed_transitions() -> None:
    # REQ: PAR-3 — open -> booked -> done; a cancelled booking goes back to open; done stays done.
    assert recalls.may_move(recalls.OPEN, recalls.BOOKED)
    assert recalls.may_move(recalls.OPEN, recalls.DONE)
    assert recalls.may_move(recalls.BOOKED, recalls.OPEN)
    assert recalls.may_move(recalls.BOOKED, recalls.DONE)
    assert not recalls.may_move(recalls.DONE, recalls.OPEN)
    assert not recalls.may_move(recalls.DONE, recalls.BOOKED)
    assert not recalls.may_move(recalls.OPEN, recalls.OPEN)
    assert not recalls.may_move("unknown", recalls.OPEN)
    # REQ: PAR-2 — an appointment is booked, then perhaps cancelled, never booked again.
    assert booking.TRANSITIONS[booking.BOOKED] == {booking.CANCELLED}
    assert booking.TRANSITIONS[booking.CANCELLED] == frozenset()


def _draft(code: str, **scope: Any) -> recalls.RecallDraft:
    return recalls.RecallDraft(
        code=code, titles={"en": f"Recall {code}"}, descriptions={}, remedy="", **{"model_keys": [], **scope}
    )


async def test_a_recall_is_booked_once_even_when_two_users_book_it_at_the_same_moment(stack: Stack) -> None:
    # REQ: PAR-3 — open -> booked is claimed before the appointment exists: the second booking gets 409
    # `recall_booked`, its slot stays free and no second appointment is made.
    await choose(stack, world.OWNER, "DE-STR-01")
    await choose(stack, world.FAMILY, "DE-STR-01")
    async with stack.db.transaction() as session:
        campaign, _ = await recalls.create_campaign(session, _draft("RC-TWICE", vins=[TAYCAN]))
    owner = await stack.as_user(world.OWNER)
    family = await stack.as_user(world.FAMILY)
    try:
        slots = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/slots")).json()["slots"]
        answers = await asyncio.gather(
            owner.post(
                f"/api/v1/vehicles/{TAYCAN}/appointments",
                json={"slot_id": slots[0]["id"], "recall_id": campaign.id},
            ),
            family.post(
                f"/api/v1/vehicles/{TAYCAN}/appointments",
                json={"slot_id": slots[1]["id"], "recall_id": campaign.id},
            ),
        )
        assert sorted(answer.status_code for answer in answers) == [201, 409]
        loser = next(answer for answer in answers if answer.status_code == 409)
        assert loser.json()["error"]["code"] == "recall_booked"
        async with stack.db.session() as session:
            booked = list(
                await session.scalars(
                    select(Appointment).where(
                        Appointment.recall_id == campaign.id, Appointment.state == "booked"
                    )
                )
            )
            assert len(booked) == 1
            free = await session.scalars(
                select(ServiceSlot.appointment_id).where(ServiceSlot.id.in_([slots[0]["id"], slots[1]["id"]]))
            )
            assert sorted(free, key=lambda value: value is None) == [booked[0].id, None]

        # Past the page's check (a booking that read "open" a moment before): the claim still refuses.
        async with stack.db.transaction() as session:
            vehicle = await session.scalar(select(Vehicle).where(Vehicle.vin == TAYCAN))
            account = await session.scalar(select(Account).where(Account.email == world.FAMILY))
            partner = await session.scalar(select(Partner).where(Partner.code == "DE-STR-01"))
            assert vehicle is not None and account is not None and partner is not None
            with pytest.raises(CarlinkError) as refused:
                await booking.book(
                    session,
                    partner=partner,
                    vehicle=vehicle,
                    account=account,
                    slot_id=slots[2]["id"],
                    kind=booking.RECALL,
                    recall_id=campaign.id,
                )
            assert refused.value.code == "recall_booked" and refused.value.status == 409
        async with stack.db.session() as session:
            slot = await session.get(ServiceSlot, slots[2]["id"])
            assert slot is not None and slot.appointment_id is None
    finally:
        await owner.aclose()
        await family.aclose()


async def test_a_large_campaign_tells_the_owners_from_the_jobs_in_batches(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # REQ: PAR-3 — above the limit the operator's request tells nobody; the jobs role tells each car's main
    # user once, a batch at a time; cars without a main user wait; seeded campaigns tell nobody.
    monkeypatch.setattr(recalls, "TELL_AT_ONCE", 1)
    # One unit of work, so the jobs running beside the test see the campaign only once it is committed.
    async with stack.db.transaction() as session:
        ownerless = await garage.register_vehicle(
            session, vin=LATE_TAYCAN, model_key="taycan-1", variant_code="Y1ADB1", model_year=2023
        )
        campaign, count = await recalls.create_campaign(
            session, _draft("RC-MANY", vins=[TAYCAN, PANAMERA, NINE_ELEVEN, LATE_TAYCAN])
        )
        assert count == 4
        sent = await session.scalar(
            select(func.count(OutboxEmail.id)).where(OutboxEmail.template == "recall_notice")
        )
        assert sent == 0
        assert await recalls.notify_recall_owners(session, limit=2) == 2
    await booking.run_due(stack.db)
    async with stack.db.transaction() as session:
        assert await recalls.notify_recall_owners(session) == 0
    mails = await _recall_mails(stack, campaign.id)
    assert sorted(mail.to_address for mail in mails) == [world.OWNER] * 3
    assert {vin for mail in mails for vin in (TAYCAN, PANAMERA, NINE_ELEVEN) if vin in mail.body_text} == {
        TAYCAN,
        PANAMERA,
        NINE_ELEVEN,
    }
    async with stack.db.session() as session:
        waiting = await session.scalar(
            select(RecallVehicle).where(
                RecallVehicle.campaign_id == campaign.id, RecallVehicle.vehicle_id == ownerless.id
            )
        )
        assert waiting is not None and waiting.notified_at is None
        # The demo's seeded campaign counts as told: the jobs role mails nobody about it.
        seeded = await session.scalars(
            select(RecallVehicle.notified_at)
            .join(RecallCampaign, RecallCampaign.id == RecallVehicle.campaign_id)
            .where(RecallCampaign.code == "RC-2025-PA01")
        )
        assert all(moment is not None for moment in seeded)

    # A small campaign tells its owners at once.
    async with stack.db.transaction() as session:
        small, _ = await recalls.create_campaign(session, _draft("RC-FEW", vins=[PANAMERA]))
    assert [mail.to_address for mail in await _recall_mails(stack, small.id)] == [world.OWNER]


async def test_a_car_registered_later_joins_the_running_campaigns_that_affect_it(stack: Stack) -> None:
    # REQ: PAR-3 — matched by model and year or VIN while the campaign runs; not by a closed one; its
    # owner is told by the jobs role once the car has one.
    async with stack.db.transaction() as session:
        running, _ = await recalls.create_campaign(
            session, _draft("RC-LATER", model_keys=["taycan-1"], year_from=2023, year_to=2023)
        )
        other_year, _ = await recalls.create_campaign(
            session, _draft("RC-OLDER", model_keys=["taycan-1"], year_from=2020, year_to=2021)
        )
        closed, _ = await recalls.create_campaign(session, _draft("RC-SHUT", model_keys=["taycan-1"]))
        closed.closed_at = clock.now()
        by_vin, _ = await recalls.create_campaign(session, _draft("RC-BYVIN", vins=[LATE_TAYCAN]))
    async with stack.db.transaction() as session:
        car = await garage.register_vehicle(
            session, vin=LATE_TAYCAN, model_key="taycan-1", variant_code="Y1ADB1", model_year=2023
        )
        assert await recalls.match_new_vehicle(session, car) == 2
        assert await recalls.match_new_vehicle(session, car) == 0  # a second call changes nothing
        stranger = await session.scalar(select(Account).where(Account.email == world.STRANGER))
        assert stranger is not None
        await garage.assign_user(session, car, stranger, garage.MAIN)
    async with stack.db.session() as session:
        joined = set(
            await session.scalars(select(RecallVehicle.campaign_id).where(RecallVehicle.vehicle_id == car.id))
        )
    assert joined == {running.id, by_vin.id} and other_year.id not in joined
    await booking.run_due(stack.db)
    async with stack.db.session() as session:
        told = await session.scalars(
            select(OutboxEmail.to_address).where(
                OutboxEmail.template == "recall_notice", OutboxEmail.body_text.contains(LATE_TAYCAN)
            )
        )
        assert list(told) == [world.STRANGER, world.STRANGER]


async def _recall_mails(stack: Stack, campaign_id: int) -> list[OutboxEmail]:
    async with stack.db.session() as session:
        codes = await session.scalar(select(RecallCampaign.code).where(RecallCampaign.id == campaign_id))
        rows = await session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "recall_notice").order_by(OutboxEmail.id)
        )
        return [mail for mail in rows if codes and codes in mail.body_text + mail.subject]
