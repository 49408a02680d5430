"""Recall campaigns (PAR-3): the operator's campaign matches the affected cars and tells their main users,
the car's service page and API show the recall, it is booked where the country allows, the dealer marks it
done."""

from __future__ import annotations

import re

from sqlalchemy import select, update

from carlink.demo import world
from carlink.garage.models import Vehicle
from carlink.notify.models import Notification, OutboxEmail
from carlink.partners import booking, recalls
from carlink.partners.models import Appointment, Country, RecallCampaign, RecallVehicle
from tests.integration.test_booking import choose
from tests.integration.test_partners import signed_in
from tests.support.portal import account_id
from tests.support.stack import PANAMERA, TAYCAN, Stack

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
        assert twice.status_code == 404 and twice.json()["error"]["code"] == "recall_not_found"
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
