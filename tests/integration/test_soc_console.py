"""The SOC console (issue 7; SEC-1, SEC-4): only SOC operators get in; the live queue orders cases (cars
with a package first, most severe, newest) and hears new alarms over server-sent events; a storming car is
one row; a case is worked through forms — the workflow refuses forbidden moves and moves on a stale page
without overwriting anything, calls are logged, every view of a customer's data is in the access log
(privacy_override for theft tracking in privacy mode), and welcome calls confirm activations."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, func, inspect, select

from carlink.db.base import utcnow
from carlink.demo import world
from carlink.garage.models import Vehicle, VehicleUser
from carlink.identity import service as identity
from carlink.identity.models import Account, StaffRole
from carlink.protocol.messages import AlarmSignal, AlarmTrigger, Position, TrackPoint
from carlink.security import activations, alarms, config, console
from carlink.security import soc as soc_service
from carlink.security.models import (
    Alarm,
    AlarmCall,
    AlarmEvent,
    AlarmSignalRecord,
    SocAccess,
    TrackingActivation,
    VehicleSecurity,
)
from tests.conftest import POSTGRES_STACK
from tests.integration.test_store_contracts import buy
from tests.support.portal import Browser, account_id
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack, eventually

MACAN = world.JAPAN_CAR.vin
SOC_PHONE = "+49 711 555 0100"
STUTTGART = (48.7758, 9.1829)


@pytest.fixture
async def soc(stack: Stack) -> AsyncIterator[Browser]:
    browser = await Browser(stack).sign_in(world.SOC_OPERATOR)
    try:
        yield browser
    finally:
        await browser.close()


async def activate_package(stack: Stack, vin: str) -> int:
    """A tracking activation for the car, on a contract bought in the store (SEC-1)."""
    owner = await stack.as_user(world.OWNER)
    try:
        contract = await buy(owner, vin, "remote-services", "P1Y")
    finally:
        await owner.aclose()
    async with stack.db.transaction() as session:
        vehicle_id = await vehicle_id_of(session, vin)
        activation = await activations.order(
            session, vehicle_id=vehicle_id, contract_id=contract["id"], package="tracking", phone=SOC_PHONE
        )
        return activation.id


async def vehicle_id_of(session: Any, vin: str) -> int:
    found = await session.scalar(select(Vehicle.id).where(Vehicle.vin == vin))
    assert found is not None
    return int(found)


async def file_alarm(
    stack: Stack, vin: str, trigger: AlarmTrigger, at: dt.datetime, position: tuple[float, float] = STUTTGART
) -> dict[str, Any] | None:
    """The car's alarm as the gateway files it: stored in one unit of work, then told to the live queues;
    the queue's event, or None when it opened no case (a test alarm)."""
    signal = AlarmSignal(
        id=secrets.token_hex(8),
        trigger=trigger,
        at=at,
        location=Position(lat=position[0], lon=position[1]),
    )
    async with stack.db.transaction() as session:
        vehicle = await session.scalar(select(Vehicle).where(Vehicle.vin == vin))
        assert vehicle is not None
        outcome = await alarms.ingest(session, vehicle, signal)
        await session.flush()
        event = alarms.event_of(outcome.alarm, vin) if outcome.alarm is not None else None
    if event is not None:
        await stack.platform.emit(alarms.SOC_CHANNEL, event)
    return event


async def raise_alarm(stack: Stack, vin: str, trigger: AlarmTrigger, at: dt.datetime) -> int:
    """A theft alarm; the id of the case it opened or joined."""
    event = await file_alarm(stack, vin, trigger, at)
    assert event is not None
    return int(event["id"])


def queue_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-alarm-id="(\d+)"', html)]


def row_of(html: str, alarm_id: int) -> str:
    found = re.search(rf'<tr[^>]*data-alarm-id="{alarm_id}"[^>]*>', html)
    assert found is not None, f"no queue row for case {alarm_id}"
    return found.group(0)


async def case(stack: Stack, alarm_id: int) -> Alarm:
    async with stack.db.session() as session:
        found = await session.get(Alarm, alarm_id)
    assert found is not None
    return found


async def access_rows(stack: Stack, alarm_id: int) -> list[SocAccess]:
    async with stack.db.session() as session:
        return list(
            await session.scalars(
                select(SocAccess).where(SocAccess.alarm_id == alarm_id).order_by(SocAccess.id)
            )
        )


async def next_event(lines: AsyncIterator[str], alarm_id: int) -> dict[str, Any]:
    """Reads the stream until the event about this case comes."""
    kind = ""
    async for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind == "alarm":
            event: dict[str, Any] = json.loads(line.removeprefix("data: "))
            if event["id"] == alarm_id:
                return event
    raise AssertionError("the stream ended")


async def test_only_soc_operators_see_the_live_queue_in_order_with_new_alarms_streamed(
    stack: Stack, soc: Browser
) -> None:
    now = utcnow()
    await activate_package(stack, TAYCAN)
    # Four cars alarm: the Taycan has a tracking package, the others none (flagged, at the end).
    tilt = await raise_alarm(stack, TAYCAN, AlarmTrigger.TILT, now - dt.timedelta(minutes=9))
    ignition = await raise_alarm(
        stack, PANAMERA, AlarmTrigger.IGNITION_WITHOUT_KEY, now - dt.timedelta(minutes=8)
    )
    older_towing = await raise_alarm(stack, MACAN, AlarmTrigger.TOWING, now - dt.timedelta(minutes=7))
    newer_glass = await raise_alarm(
        stack, NINE_ELEVEN, AlarmTrigger.GLASS_BREAK, now - dt.timedelta(minutes=6)
    )

    # Who: signed out, the sign-in page; owners, dealers, operators and strangers get the staff-only page.
    anonymous = await stack.http.get("/soc", headers={"Accept": "text/html"})
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")
    for email in (world.OWNER, world.DEALER, world.OPERATOR, world.STRANGER):
        other = await Browser(stack).sign_in(email)
        try:
            for path in (
                "/soc",
                "/soc/queue",
                f"/soc/alarms/{tilt}",
                "/soc/alarms/stream",
                "/soc/welcome-calls",
            ):
                refused = await other.http.get(path)
                assert refused.status_code == 403 and "staff" in refused.text, (email, path)
            moved = await other.post(f"/soc/alarms/{tilt}/move", {"to_state": "acknowledged", "version": "1"})
            assert moved.status_code == 403
        finally:
            await other.close()
    assert (await case(stack, tilt)).state == "new"

    # The queue: the packaged car first, then most severe, then newest; no customer data in it.
    page = await soc.http.get("/soc")
    assert page.status_code == 200
    assert queue_ids(page.text)[:4] == [tilt, ignition, newer_glass, older_towing]
    assert 'data-stream-url="/soc/alarms/stream"' in page.text
    assert 'data-without-package="yes"' in row_of(page.text, ignition)
    assert world.OWNER not in page.text
    fragment = await soc.http.get("/soc/queue")
    assert fragment.status_code == 200 and queue_ids(fragment.text)[:4] == queue_ids(page.text)[:4]

    # The stream delivers a new case at once, and a storming car stays one row whose counter rises.
    async with soc.http.stream("GET", "/soc/alarms/stream") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        async with asyncio.timeout(10):
            assert (await anext(lines)).startswith("retry:")  # listening from here on
            towing_now = await raise_alarm(stack, NINE_ELEVEN, AlarmTrigger.TOWING, utcnow())
            assert towing_now == newer_glass  # the 911's open case takes the alarm
            event = await next_event(lines, newer_glass)
            assert event["signals"] == 2 and event["severity"] == 3 and event["vin"] == NINE_ELEVEN
            for _ in range(40):
                await raise_alarm(stack, NINE_ELEVEN, AlarmTrigger.TILT, utcnow())
            while (event := await next_event(lines, newer_glass))["signals"] < 42:
                pass
            assert event["triggers"] == ["glass_break", "towing", "tilt"]
    page = await soc.http.get("/soc/queue")
    assert queue_ids(page.text).count(newer_glass) == 1
    assert 'data-signals="42"' in row_of(page.text, newer_glass)
    # Newest among the severity-3 cases now, and still after the ignition case (severity 4).
    assert queue_ids(page.text)[:4] == [tilt, ignition, newer_glass, older_towing]


async def test_soc_works_a_theft_through_the_case_page_with_calls_conflicts_and_access_log(
    stack: Stack, soc: Browser
) -> None:
    activation_id = await activate_package(stack, TAYCAN)
    soc_id = await account_id(stack, world.SOC_OPERATOR)
    async with stack.db.session() as session:
        owner_name = await session.scalar(select(Account.display_name).where(Account.email == world.OWNER))
    alarm_id = await raise_alarm(stack, TAYCAN, AlarmTrigger.IGNITION_WITHOUT_KEY, utcnow())

    # The case: car, position as text and on the map, the customer's name and SOC number; one move allowed.
    page = await soc.http.get(f"/soc/alarms/{alarm_id}")
    assert page.status_code == 200
    assert TAYCAN in page.text and "Taycan 4S" in page.text and 'id="case-map"' in page.text
    assert f"{STUTTGART[0]:.5f}, {STUTTGART[1]:.5f}" in page.text
    assert str(owner_name) in page.text and SOC_PHONE in page.text
    assert re.findall(r'data-move="([a-z_]+)"', page.text) == ["acknowledged"]
    assert 'name="version" value="1"' in page.text
    seen = await access_rows(stack, alarm_id)
    assert {row.what for row in seen} >= {"alarm", "customer"}
    assert all(row.account_id == soc_id and not row.privacy_override for row in seen)
    assert (await soc.http.get("/soc/alarms/999999")).status_code == 404

    # A move the workflow does not allow is refused and changes nothing.
    refused = await soc.post(
        f"/soc/alarms/{alarm_id}/move", {"to_state": "theft_confirmed", "version": "1", "state": "new"}
    )
    assert refused.status_code == 409 and "cannot become theft_confirmed" in refused.text
    assert (await case(stack, alarm_id)).state == "new"

    # Two operators on one page: the first move wins, the second (a stale page) is refused and overwrites
    # nothing; the page shows the case as it is now.
    form = {"to_state": "acknowledged", "version": "1", "state": "new", "note": "taking it"}
    assert (await soc.post(f"/soc/alarms/{alarm_id}/move", form)).status_code == 303
    stale = await soc.post(f"/soc/alarms/{alarm_id}/move", {**form, "note": "me too"})
    assert stale.status_code == 409 and "Someone else changed this case" in stale.text
    assert 'id="case-state" data-state="acknowledged" data-version="2"' in stale.text
    acknowledged = await case(stack, alarm_id)
    assert (acknowledged.state, acknowledged.version) == ("acknowledged", 2)
    async with stack.db.session() as session:
        notes = list(await session.scalars(select(AlarmEvent.note).where(AlarmEvent.alarm_id == alarm_id)))
    assert notes == ["taking it"]

    # The car alarms on meanwhile: merged, the version rises. A page that saw the same state and severity may
    # still move (the merge does not change the decision); a form that names no state is held to the exact
    # version.
    await raise_alarm(stack, TAYCAN, AlarmTrigger.MOVING_WHILE_LOCKED, utcnow())
    assert (await case(stack, alarm_id)).version == 3
    strict = await soc.post(
        f"/soc/alarms/{alarm_id}/move", {"to_state": "customer_contacted", "version": "2"}
    )
    assert strict.status_code == 409 and "Someone else changed" in strict.text

    # The SOC calls the customer: the number defaults to the one given when buying.
    bad_call = await soc.post(f"/soc/alarms/{alarm_id}/calls", {"outcome": "shouting", "number": ""})
    assert bad_call.status_code == 400 and 'id="call-error"' in bad_call.text
    called = await soc.post(f"/soc/alarms/{alarm_id}/calls", {"outcome": "reached", "note": "not the owner"})
    assert called.status_code == 303
    # A typed number is checked and normalised (soc.dialled_number); review N9: the log records what was
    # dialled, so an emergency number counts, but not a typing error or two digits.
    for typo in ("11(0)/", "12"):
        short = await soc.post(f"/soc/alarms/{alarm_id}/calls", {"outcome": "police", "number": typo})
        assert short.status_code == 422 and 'id="call-error"' in short.text
    police = await soc.post(
        f"/soc/alarms/{alarm_id}/calls", {"outcome": "police", "number": "+49 711 8990-0"}
    )
    assert police.status_code == 303
    emergency = await soc.post(f"/soc/alarms/{alarm_id}/calls", {"outcome": "police", "number": " 110 "})
    assert emergency.status_code == 303
    async with stack.db.session() as session:
        calls = list(await session.scalars(select(AlarmCall).where(AlarmCall.alarm_id == alarm_id)))
    assert [(c.number, c.outcome, c.account_id) for c in calls] == [
        (SOC_PHONE, "reached", soc_id),
        ("+4971189900", "police", soc_id),
        ("110", "police", soc_id),
    ]

    contacted = await soc.post(
        f"/soc/alarms/{alarm_id}/move",
        {"to_state": "customer_contacted", "version": "2", "state": "acknowledged", "severity": "4"},
    )
    assert contacted.status_code == 303

    # The customer did not move the car: theft confirmed. The car's set changes (tracking `theft`).
    async with stack.db.session() as session:
        taycan_id = await vehicle_id_of(session, TAYCAN)
        before = await session.get(VehicleSecurity, taycan_id)
        revision_before = before.revision if before is not None else 0
    page = await soc.http.get(f"/soc/alarms/{alarm_id}")
    assert re.findall(r'data-move="([a-z_]+)"', page.text) == ["false_alarm", "theft_confirmed"]
    version = int(re.search(r'name="version" value="(\d+)"', page.text).group(1))  # type: ignore[union-attr]
    theft = await soc.post(
        f"/soc/alarms/{alarm_id}/move",
        {"to_state": "theft_confirmed", "version": str(version), "state": "customer_contacted"},
    )
    assert theft.status_code == 303
    async with stack.db.session() as session:
        after = await session.get(VehicleSecurity, taycan_id, populate_existing=True)
    assert after is not None and after.revision > revision_before

    # The thief drives on with privacy mode switched on: for a confirmed theft the car is still tracked
    # (SEC-1), the page says so, and the view is logged as a privacy override.
    await stack.fleet[TAYCAN].set_privacy_mode(True)

    async def privacy_on() -> bool:
        async with stack.db.session() as session:
            return bool(await session.scalar(select(Vehicle.privacy_mode).where(Vehicle.id == taycan_id)))

    await eventually(privacy_on)
    async with stack.db.transaction() as session:
        vehicle = await session.get(Vehicle, taycan_id)
        assert vehicle is not None
        point = TrackPoint(at=utcnow(), location=Position(lat=48.80, lon=9.21, speed_kmh=62.0, heading=40))
        stored = await alarms.record_track(session, vehicle, point)
        assert stored is not None and stored.privacy
    marked = await soc.http.get(f"/soc/alarms/{alarm_id}")
    assert 'id="privacy-override"' in marked.text and 'data-privacy="yes"' in marked.text
    assert "48.80000" in marked.text and 'id="track-points"' in marked.text
    latest = await access_rows(stack, alarm_id)
    assert [row.privacy_override for row in latest if row.what == "track"][-1] is True

    # Police informed, then closed: the case leaves the queue and takes no more moves.
    for target in ("police_informed", "closed"):
        current = await case(stack, alarm_id)
        moved = await soc.post(
            f"/soc/alarms/{alarm_id}/move",
            {"to_state": target, "version": str(current.version), "state": current.state},
        )
        assert moved.status_code == 303, moved.text
    closed = await case(stack, alarm_id)
    assert closed.state == "closed" and closed.closed_at is not None
    page = await soc.http.get(f"/soc/alarms/{alarm_id}")
    assert 'id="workflow-done"' in page.text and "data-move=" not in page.text
    assert [e for e in re.findall(r'data-event="([a-z_]+)"', page.text)] == [
        "opened",
        "acknowledged",
        "customer_contacted",
        "theft_confirmed",
        "police_informed",
        "closed",
    ]
    assert alarm_id not in queue_ids((await soc.http.get("/soc/queue")).text)
    async with stack.db.session() as session:
        views = await session.scalar(
            select(func.count()).select_from(SocAccess).where(SocAccess.alarm_id == alarm_id)
        )
    assert views is not None and views >= 2 * 4  # alarm and customer on each of the four views at least

    # SEC-4: the car's test alarm reached the SOC; the welcome call confirms the activation from /soc.
    assert await file_alarm(stack, TAYCAN, AlarmTrigger.TEST, utcnow()) is None
    queue_page = await soc.http.get("/soc")
    assert f'data-activation-id="{activation_id}"' in queue_page.text and SOC_PHONE in queue_page.text
    confirmed = await soc.post(f"/soc/activations/{activation_id}/confirm")
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/soc?done=confirmed"
    async with stack.db.session() as session:
        activation = await session.get(TrackingActivation, activation_id)
        logged = await session.scalar(
            select(func.count())
            .select_from(SocAccess)
            .where(SocAccess.what == "activation", SocAccess.vehicle_id == taycan_id)
        )
    assert activation is not None and activation.state == "active" and activation.activated_by == soc_id
    assert logged == 1
    assert f'data-activation-id="{activation_id}"' not in (await soc.http.get("/soc")).text


# --- the review's findings (F2, F4, F9, F10, F13) ---------------------------------------------------------


def workflow_form(html: str) -> dict[str, str]:
    """The hidden fields of a case page's workflow form: what the operator saw (version, state, severity,
    the number of kinds of trigger)."""
    form = html[html.index('id="workflow-form"') :]
    form = form[: form.index("</form>")]
    return dict(
        re.findall(r'<input type="hidden" name="(version|state|severity|triggers)" value="([^"]*)"', form)
    )


async def test_a_stale_page_never_judges_a_case_on_alarms_it_did_not_show(stack: Stack, soc: Browser) -> None:
    # REQ: SEC-1 — review F2: a merge may not slip evidence past the operator's decision.
    await activate_package(stack, TAYCAN)
    alarm_id = await raise_alarm(stack, TAYCAN, AlarmTrigger.TILT, utcnow())
    url = f"/soc/alarms/{alarm_id}"
    for target in ("acknowledged", "customer_contacted"):
        page = await soc.http.get(url)
        assert (
            await soc.post(f"{url}/move", {"to_state": target, **workflow_form(page.text)})
        ).status_code == 303
    seen = workflow_form((await soc.http.get(url)).text)
    assert (seen["state"], seen["severity"], seen["triggers"]) == ("customer_contacted", "1", "1")

    # The ignition without key raises the severity: no move at all from the old page.
    await raise_alarm(stack, TAYCAN, AlarmTrigger.IGNITION_WITHOUT_KEY, utcnow())
    for target in ("theft_confirmed", "false_alarm"):
        stale = await soc.post(f"{url}/move", {"to_state": target, **seen})
        assert stale.status_code == 409 and "Someone else changed this case" in stale.text
    assert 'data-signals="2"' in stale.text  # the page shows the case as it is now
    current = await case(stack, alarm_id)
    assert (current.state, current.closed_at) == ("customer_contacted", None)

    # A move that ends nothing goes ahead over a merge that changes no severity (a storm stays workable).
    fresh = workflow_form((await soc.http.get(url)).text)
    assert (fresh["severity"], fresh["triggers"]) == ("4", "2")
    await raise_alarm(stack, TAYCAN, AlarmTrigger.MOVING_WHILE_LOCKED, utcnow())
    assert (await soc.post(f"{url}/move", {"to_state": "theft_confirmed", **fresh})).status_code == 303
    police = workflow_form((await soc.http.get(url)).text)
    assert (await soc.post(f"{url}/move", {"to_state": "police_informed", **police})).status_code == 303
    # Closing: refused after a kind of trigger the page did not show, even of a lower severity (review N2) ...
    seen = workflow_form((await soc.http.get(url)).text)
    await raise_alarm(stack, TAYCAN, AlarmTrigger.TOWING, utcnow())
    assert (await soc.post(f"{url}/move", {"to_state": "closed", **seen})).status_code == 409
    # ... but not by the stolen car raising the alarms the page showed again and again.
    seen = workflow_form((await soc.http.get(url)).text)
    for trigger in (AlarmTrigger.TOWING, AlarmTrigger.TILT, AlarmTrigger.MOVING_WHILE_LOCKED):
        await raise_alarm(stack, TAYCAN, trigger, utcnow())
    assert (await soc.post(f"{url}/move", {"to_state": "closed", **seen})).status_code == 303
    closed = await case(stack, alarm_id)
    assert closed.state == "closed" and closed.signals == 7 and closed.closed_at is not None


async def test_a_false_alarm_can_be_marked_while_the_car_keeps_raising_it(stack: Stack, soc: Browser) -> None:
    # REQ: SEC-1 — review N2: wind or a car wash tilts the car several times a minute; the operator, having
    # called the owner, marks the false alarm over the tilts that keep coming. A new kind of trigger stops it.
    await activate_package(stack, TAYCAN)
    alarm_id = await raise_alarm(stack, TAYCAN, AlarmTrigger.GLASS_BREAK, utcnow())
    url = f"/soc/alarms/{alarm_id}"
    for target in ("acknowledged", "customer_contacted"):
        form = workflow_form((await soc.http.get(url)).text)
        assert (await soc.post(f"{url}/move", {"to_state": target, **form})).status_code == 303
    seen = workflow_form((await soc.http.get(url)).text)
    await raise_alarm(stack, TAYCAN, AlarmTrigger.TILT, utcnow())  # a new kind, of a lower severity
    assert (await soc.post(f"{url}/move", {"to_state": "false_alarm", **seen})).status_code == 409
    seen = workflow_form((await soc.http.get(url)).text)
    assert (seen["severity"], seen["triggers"]) == ("3", "2")
    for trigger in (AlarmTrigger.TILT, AlarmTrigger.TILT, AlarmTrigger.GLASS_BREAK):
        await raise_alarm(stack, TAYCAN, trigger, utcnow())
    assert (await soc.post(f"{url}/move", {"to_state": "false_alarm", **seen})).status_code == 303
    judged = await case(stack, alarm_id)
    assert (judged.state, judged.signals) == ("false_alarm", 5) and judged.closed_at is not None


async def test_a_car_without_a_package_gets_a_case_but_no_tracking_and_no_customer(
    stack: Stack, soc: Browser
) -> None:
    # REQ: SEC-1, PRV-4 — review F4: no package, no mandate: the alarm is kept and shown, nobody tracked.
    async with stack.db.session() as session:
        vid = await vehicle_id_of(session, NINE_ELEVEN)
        owner_name = await session.scalar(select(Account.display_name).where(Account.email == world.OWNER))
    alarm_id = await raise_alarm(stack, NINE_ELEVEN, AlarmTrigger.GLASS_BREAK, utcnow())
    await raise_alarm(stack, NINE_ELEVEN, AlarmTrigger.TILT, utcnow())
    # Review N6: no mandate, no position — neither the case's nor its signals'.
    flagged = await case(stack, alarm_id)
    assert flagged.without_package and (flagged.lat, flagged.lon) == (None, None)
    async with stack.db.session() as session:
        kept = list(
            await session.scalars(select(AlarmSignalRecord).where(AlarmSignalRecord.alarm_id == alarm_id))
        )
    assert len(kept) == 2 and all((signal.lat, signal.lon) == (None, None) for signal in kept)

    async def the_set() -> tuple[str, int]:
        async with stack.db.transaction() as session:
            vehicle = await session.get(Vehicle, vid)
            assert vehicle is not None
            revision = (await config.state_row(session, vid)).revision
            return (await config.build(session, vehicle, max(revision, 1))).tracking, revision

    tracking, revision = await the_set()
    assert tracking == "off"
    async with stack.db.transaction() as session:
        vehicle = await session.get(Vehicle, vid)
        assert vehicle is not None
        point = TrackPoint(at=utcnow(), location=Position(lat=48.8, lon=9.2))
        assert await alarms.record_track(session, vehicle, point) is None  # no case that may use it

    page = await soc.http.get(f"/soc/alarms/{alarm_id}")
    assert page.status_code == 200 and 'id="customer-no-mandate"' in page.text
    assert "no mandate for this customer" in page.text
    assert 'id="customer-name"' not in page.text and str(owner_name) not in page.text
    assert NINE_ELEVEN in page.text and f"{STUTTGART[0]:.5f}" not in page.text
    assert 'id="position-not-kept"' in page.text and "no mandate to locate the car" in page.text
    assert 'data-tracking="off"' in page.text and "the car has no tracking package" in page.text
    assert [row.what for row in await access_rows(stack, alarm_id)] == ["alarm"]
    missing = await soc.post(f"/soc/alarms/{alarm_id}/calls", {"outcome": "reached", "number": ""})
    assert missing.status_code == 400 and "type the number you called" in missing.text

    # Even a confirmed theft does not make such a car tracked: its set never changes for the case.
    for target in ("acknowledged", "customer_contacted", "theft_confirmed"):
        form = workflow_form((await soc.http.get(f"/soc/alarms/{alarm_id}")).text)
        assert (
            await soc.post(f"/soc/alarms/{alarm_id}/move", {"to_state": target, **form})
        ).status_code == 303
    assert await the_set() == ("off", revision)


async def test_the_stream_ends_when_the_role_goes_and_a_theft_position_in_privacy_mode_is_logged(
    stack: Stack, soc: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review F9: the live queue checks the role on every keep-alive.
    monkeypatch.setattr(console, "KEEP_ALIVE_SECONDS", 0.2)
    soc_id = await account_id(stack, world.SOC_OPERATOR)
    async with soc.http.stream("GET", "/soc/alarms/stream") as stream:
        lines = stream.aiter_lines()
        async with asyncio.timeout(10):
            assert (await anext(lines)).startswith("retry:")
            while not (await anext(lines)).startswith(": keep-alive"):
                pass
            async with stack.db.transaction() as session:
                await session.execute(
                    delete(StaffRole).where(StaffRole.account_id == soc_id, StaffRole.role == "soc")
                )
            rest = [line async for line in lines]  # the stream ends by itself
    assert not any(line.startswith("data:") for line in rest)
    async with stack.db.transaction() as session:
        operator = await session.get(Account, soc_id)
        assert operator is not None
        await identity.grant_staff_role(session, operator, identity.SOC)

    # The case's own position, taken in privacy mode for a confirmed theft, counts as a privacy override
    # (the page's banner and the access log's `alarm` row), not only track points. Review F9: exactly the
    # position taken in privacy mode, not whatever the car's privacy mode is now.
    await activate_package(stack, TAYCAN)
    alarm_id = await raise_alarm(stack, TAYCAN, AlarmTrigger.IGNITION_WITHOUT_KEY, utcnow())
    for target in ("acknowledged", "customer_contacted", "theft_confirmed"):
        form = workflow_form((await soc.http.get(f"/soc/alarms/{alarm_id}")).text)
        assert (
            await soc.post(f"/soc/alarms/{alarm_id}/move", {"to_state": target, **form})
        ).status_code == 303
    await set_privacy_mode(stack, TAYCAN, True)
    # The position came before privacy mode was switched on: shown, but no override.
    before = await soc.http.get(f"/soc/alarms/{alarm_id}")
    assert "48.77580, 9.18290" in before.text
    assert 'id="position-privacy"' not in before.text
    # The banner only for the track points the car (tracking the theft) may have sent in privacy mode.
    assert ('id="privacy-override"' in before.text) == ('data-privacy="yes"' in before.text)
    assert await last_alarm_view(stack, alarm_id) is False

    await file_alarm(stack, TAYCAN, AlarmTrigger.MOVING_WHILE_LOCKED, utcnow(), position=(48.9, 9.3))
    assert (await case(stack, alarm_id)).position_privacy
    page = await soc.http.get(f"/soc/alarms/{alarm_id}")
    assert 'id="privacy-override"' in page.text and "48.90000, 9.30000" in page.text
    assert 'id="position-privacy"' in page.text
    logged = [(row.what, row.privacy_override) for row in await access_rows(stack, alarm_id)]
    assert await last_alarm_view(stack, alarm_id) is True  # the position, marked
    assert ("customer", False) in logged
    assert not any(override for what, override in logged if what == "customer")

    # Privacy mode off again: the next position is no override, and the case's flag goes with it (the
    # banner may stay for the track points the car sent in privacy mode meanwhile).
    await set_privacy_mode(stack, TAYCAN, False)
    await file_alarm(stack, TAYCAN, AlarmTrigger.MOVING_WHILE_LOCKED, utcnow(), position=(49.0, 9.4))
    after = await soc.http.get(f"/soc/alarms/{alarm_id}")
    assert "49.00000, 9.40000" in after.text and 'id="position-privacy"' not in after.text
    assert await last_alarm_view(stack, alarm_id) is False


async def set_privacy_mode(stack: Stack, vin: str, enabled: bool) -> None:
    """The driver switches privacy mode in the car; back once the cloud has its report (VEH-6)."""
    await stack.fleet[vin].set_privacy_mode(enabled)

    async def reported() -> bool:
        async with stack.db.session() as session:
            return await session.scalar(select(Vehicle.privacy_mode).where(Vehicle.vin == vin)) is enabled

    await eventually(reported)


async def last_alarm_view(stack: Stack, alarm_id: int) -> bool:
    """privacy_override of the access log's row for the latest view of the case (its `alarm` row)."""
    return [row.privacy_override for row in await access_rows(stack, alarm_id) if row.what == "alarm"][-1]


async def test_the_queue_says_how_many_cases_it_leaves_out_and_has_its_index(
    stack: Stack, soc: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review F13: the limit never hides cases silently; a partial index serves the query.
    now = utcnow()
    for minutes, vin in enumerate((TAYCAN, PANAMERA, MACAN, NINE_ELEVEN)):
        await raise_alarm(stack, vin, AlarmTrigger.TILT, now - dt.timedelta(minutes=minutes))
    monkeypatch.setattr(soc_service, "QUEUE_LIMIT", 3)
    fragment = await soc.http.get("/soc/queue")
    assert len(queue_ids(fragment.text)) == 3
    assert 'data-more="1"' in fragment.text and "1 more case," in fragment.text
    monkeypatch.setattr(soc_service, "QUEUE_LIMIT", 4)
    assert "soc-queue-more" not in (await soc.http.get("/soc")).text

    async with stack.db.session() as session:
        indexes = await session.run_sync(
            lambda sync: {index["name"] for index in inspect(sync.connection()).get_indexes("alarms")}
        )
    assert "ix_alarms_queue" in indexes


# SQLite runs one writer at a time: the race needs PostgreSQL's row locks, so this runs on that stack only.
@pytest.mark.parametrize("stack", [POSTGRES_STACK], indirect=True)
async def test_a_move_racing_a_merge_on_postgresql_is_not_refused_needlessly(stack: Stack) -> None:
    # Review F10: the move's UPDATE waits for the merge's row lock, then checks the merged row.
    await activate_package(stack, TAYCAN)
    soc_id = await account_id(stack, world.SOC_OPERATOR)
    alarm_id = await raise_alarm(stack, TAYCAN, AlarmTrigger.TILT, utcnow())
    seen = await case(stack, alarm_id)
    merging = asyncio.Event()
    release = asyncio.Event()

    async def merge() -> None:
        signal = AlarmSignal(id=secrets.token_hex(8), trigger=AlarmTrigger.TILT, at=utcnow())
        async with stack.db.transaction() as session:
            vehicle = await session.scalar(select(Vehicle).where(Vehicle.vin == TAYCAN))
            assert vehicle is not None
            await alarms.ingest(session, vehicle, signal)
            await session.flush()  # the row is changed and locked until the commit
            merging.set()
            await release.wait()

    async def move() -> str:
        async with stack.db.transaction() as session:
            moved = await soc_service.move(
                session,
                alarm_id,
                "acknowledged",
                expected_version=seen.version,
                seen_state=seen.state,
                seen_severity=seen.severity,
                seen_triggers=len(seen.triggers),
                account_id=soc_id,
            )
            return moved.alarm.state

    merger = asyncio.create_task(merge())
    await asyncio.wait_for(merging.wait(), 10)
    mover = asyncio.create_task(move())
    await asyncio.sleep(0.5)
    assert not mover.done()  # waiting for the merge's row lock
    release.set()
    await asyncio.wait_for(merger, 10)
    assert await asyncio.wait_for(mover, 10) == "acknowledged"
    moved = await case(stack, alarm_id)
    assert (moved.state, moved.signals, moved.version) == ("acknowledged", 2, 3)


async def test_a_car_without_a_main_user_shows_no_name_not_the_former_buyer(
    stack: Stack, soc: Browser
) -> None:
    # REQ: SEC-1, PRV-5 — review N7: after the seller left, before the buyer adds the car, the SOC must not
    # ask for the seller (the package's buyer) by name.
    await activate_package(stack, TAYCAN)
    alarm_id = await raise_alarm(stack, TAYCAN, AlarmTrigger.GLASS_BREAK, utcnow())
    async with stack.db.transaction() as session:
        buyer = await session.scalar(select(Account.display_name).where(Account.email == world.OWNER))
        named = await session.scalar(
            select(func.count()).select_from(Account).where(Account.display_name == buyer)
        )
        await session.execute(
            delete(VehicleUser).where(
                VehicleUser.vehicle_id == await vehicle_id_of(session, TAYCAN), VehicleUser.role == "main"
            )
        )
    assert buyer and named == 1
    page = await soc.http.get(f"/soc/alarms/{alarm_id}")
    assert page.status_code == 200 and '<dd id="customer-name">no main user</dd>' in page.text
    assert str(buyer) not in page.text


async def test_the_stream_checks_the_role_by_the_clock_while_events_keep_coming(
    stack: Stack, soc: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review N4: an alarm storm never lets the queue go quiet; the role is checked all the same.
    monkeypatch.setattr(console, "KEEP_ALIVE_SECONDS", 0.3)
    soc_id = await account_id(stack, world.SOC_OPERATOR)
    event = await file_alarm(stack, TAYCAN, AlarmTrigger.TILT, utcnow())
    assert event is not None
    storming = True

    async def storm() -> None:
        while storming:
            await stack.platform.emit(alarms.SOC_CHANNEL, event)
            await asyncio.sleep(0.05)

    storm_task = asyncio.create_task(storm())
    try:
        async with soc.http.stream("GET", "/soc/alarms/stream") as stream:
            lines = stream.aiter_lines()
            async with asyncio.timeout(10):
                assert (await anext(lines)).startswith("retry:")
                await next_event(lines, event["id"])
                async with stack.db.transaction() as session:
                    await session.execute(
                        delete(StaffRole).where(StaffRole.account_id == soc_id, StaffRole.role == "soc")
                    )
                revoked = asyncio.get_running_loop().time()
                rest = [line async for line in lines]  # ends by itself, though the storm goes on
                ended = asyncio.get_running_loop().time()
        assert ended - revoked < 3
        assert not any(line.startswith(": keep-alive") for line in rest)  # never quiet
    finally:
        storming = False
        await storm_task
        async with stack.db.transaction() as session:
            operator = await session.get(Account, soc_id)
            assert operator is not None
            await identity.grant_staff_role(session, operator, identity.SOC)
