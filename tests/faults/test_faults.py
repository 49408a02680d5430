"""Issue 9, point 1: kill -9 of the service, a broker restart and a PostgreSQL restart, each in the middle
of (a) a remote command, (b) a checkout with payment, (c) a theft alarm, (d) a data-package download and
(e) the jobs role renewing a contract. After recovery the promises of docs/architecture.md hold:

- a command ends performed or expired, and the car executed it at most once;
- a paid order has exactly one contract per line and one charge, or its money went back;
- an alarm is in the SOC queue exactly once;
- a download finishes (resuming where it stopped);
- a contract is renewed once, charged once, and its owner told once.

Every scenario stops the operation at a fixed point (tests/faults/car.py, tests/faults/held_service.py),
injects the fault, lets the operation run on into it, recovers, and reads the outcome from the database, the
car and the SMTP server. The table of outcomes is printed at the end of the run (outcomes.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from carlink.demo import world as demo
from carlink.fod.models import Delivery
from carlink.garage.models import Vehicle
from carlink.remote.models import RemoteCommand
from carlink.security.models import Alarm, AlarmSignalRecord
from carlink.security.soc import queue
from carlink.store.models import Contract, Order, Payment
from carlink.store.payments import SandboxCharge, SandboxRefund
from carlink.store.service import add_months
from tests.faults import control
from tests.faults.outcomes import FAULTS, Outcome
from tests.faults.world import FaultWorld, within
from tests.support.purchases import ADDRESS, VISA
from tests.support.stack import TAYCAN

RECOVERY = 30.0  # seconds for an operation to reach its end after the fault is over
PLACED_STALE = 31  # seconds: the jobs role takes over an order left placed this long (store.contracts)
CLAIM_LAPSES = 61  # seconds: a renewal claim lapses after 60 s (store.contracts.CLAIM)

pytestmark = pytest.mark.timeout(120)
each_fault = pytest.mark.parametrize("fault", FAULTS, ids=["kill", "broker", "postgres"])


# --- (a) a remote command ----------------------------------------------------------------------------------


@pytest.mark.scenario("a. remote command")
@each_fault
async def test_a_command_ends_performed_or_expired_and_the_car_executes_it_at_most_once(
    world: FaultWorld, fault: str, outcome: Outcome
) -> None:
    car = world.car
    car.command_gate.arm()
    async with await world.as_user(demo.OWNER) as owner:
        sent = await owner.post(f"/api/v1/vehicles/{TAYCAN}/commands", json={"type": "LOCK"})
    assert sent.status_code == 202, sent.text
    command_id = sent.json()["id"]
    await car.command_gate.wait_reached()  # the car said "delivered" and has not executed yet

    async def meanwhile() -> None:
        car.command_gate.release()  # the car executes while the cloud is away; its answer goes nowhere
        await within(_true(lambda: car.executions_of(command_id) == 1), 10, "the car executed")

    await world.inject(fault, meanwhile)

    async def final() -> bool:
        return (await _command(world, command_id)).state in ("performed", "expired", "error")

    await within(final, 70, "the command's final state")  # at worst it expires (60 s TTL)
    row = await _command(world, command_id)
    executed = car.executions_of(command_id)
    outcome(f"{row.state}, executed by the car {executed}×, sent {row.publish_count + 1}×")
    assert row.state in ("performed", "expired")
    assert executed <= 1 and (row.state != "performed" or executed == 1)
    assert [c.id for c in car.executed] == [command_id]


async def _command(world: FaultWorld, command_id: str) -> RemoteCommand:
    async with world.db.session() as session:
        row = await session.get(RemoteCommand, command_id)
    assert row is not None
    return row


# --- (b) a checkout with payment ---------------------------------------------------------------------------


@pytest.mark.scenario("b. checkout with payment")
@each_fault
async def test_a_paid_order_has_one_contract_or_its_money_back(
    world: FaultWorld, fault: str, outcome: Outcome
) -> None:
    async with await world.as_user(demo.OWNER) as owner:
        revision = await _cart_with(owner, _paid_one_off_year)
        control.write(world.folder, control.HOLD_CHARGE, "order-")
        checkout = asyncio.create_task(
            owner.post(f"/api/v1/vehicles/{TAYCAN}/cart/checkout", json={"revision": revision})
        )
        await _charge_held(world)  # the provider booked the money; carlink has not recorded it

        async def meanwhile() -> None:
            control.write(world.folder, control.RELEASE_CHARGE, "")
            if fault != "kill -9 service":  # the checkout runs on into the broker's or database's absence
                await asyncio.wait([checkout], timeout=RECOVERY)

        await world.inject(fault, meanwhile)
        answer = await _answer(checkout)
    world.move_clock(PLACED_STALE)  # an order left placed is the jobs role's to finish

    async def settled() -> bool:
        return (await _order(world)).state in ("confirmed", "refunded", "failed")

    await within(settled, RECOVERY, "the order settled")
    order = await _order(world)
    async with world.db.session() as session:
        contracts = await _count(session, Contract, Contract.order_id == order.id)
        charges = await _count(session, SandboxCharge, SandboxCharge.idempotency_key == order.idempotency_key)
        refunds = await _count(
            session, SandboxRefund, SandboxRefund.idempotency_key == f"refund-order-{order.id}"
        )
        payments = await _count(session, Payment, Payment.order_id == order.id)
    await world.mails_delivered()
    mails = await world.mails_for(f"order-{order.id}-confirmation")
    outcome(
        f"checkout answered {answer}; order {order.state}, {contracts} contract, {charges} charge, "
        f"{refunds} refund, confirmation mail queued {mails[0]}× sent {mails[1]}×"
    )
    # Never a 500: a dead service cuts the connection, an unreachable database is a 503 with Retry-After.
    assert answer in ("201", "503 (Retry-After 5)", "RemoteProtocolError", "ReadError"), answer
    if order.state == "confirmed":
        assert (contracts, charges, refunds, payments) == (len(order.lines), 1, 0, 1)
        assert mails == (1, 1)
    else:  # the money went back, or was never taken
        assert contracts == 0 and refunds == charges
    assert world.no_mail_twice()


async def _cart_with(owner: httpx.AsyncClient, pick: Any, *, auto_renew: bool = False) -> int:
    """The owner's cart for the Taycan holds one offer, the address and a card; its revision to confirm."""
    store = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/store")).json()
    offer_id = pick(store)
    card = await owner.post("/api/v1/store/payment-methods", json=VISA)
    assert card.status_code == 201, card.text
    for method, path, body in (
        ("PUT", "cart/billing", ADDRESS),
        ("PUT", "cart/payment-method", {"payment_method_id": card.json()["id"]}),
        ("POST", "cart/lines", {"offer_id": offer_id, "auto_renew": auto_renew}),
    ):
        response = await owner.request(method, f"/api/v1/vehicles/{TAYCAN}/{path}", json=body)
        assert response.status_code == 200, response.text
    cart = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/cart")).json()
    assert cart["next_step"] == "review", cart
    return int(cart["revision"])


def _offers(store: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (service, offer)
        for service in store["services"]
        if not service.get("carrier_run")
        for offer in service["offers"]
        if not offer["trial"] and offer["price"]["amount_minor"] > 0
    ]


def _paid_one_off_year(store: dict[str, Any]) -> int:
    return next(
        int(offer["id"]) for _, offer in _offers(store) if offer["term"] == "P1Y" and not offer["recurring"]
    )


def _monthly_subscription(store: dict[str, Any]) -> int:
    return next(int(offer["id"]) for _, offer in _offers(store) if offer["recurring"])


async def _charge_held(world: FaultWorld) -> str:
    async def held() -> bool:
        return control.read(world.folder, control.CHARGE_HELD) is not None

    await within(held, RECOVERY, "the charge booked and held")
    return control.read(world.folder, control.CHARGE_HELD) or ""


async def _answer(request: asyncio.Task[httpx.Response]) -> str:
    """The HTTP status the buyer saw, or the transport error when the service died under the request."""
    done, _ = await asyncio.wait([request], timeout=RECOVERY)
    if not done:
        request.cancel()
        return "nothing"
    try:
        response = request.result()
    except httpx.HTTPError as exc:
        return type(exc).__name__
    retry = response.headers.get("Retry-After")
    return f"{response.status_code}" + (f" (Retry-After {retry})" if retry else "")


async def _order(world: FaultWorld) -> Order:
    async with world.db.session() as session:
        order = await session.scalar(select(Order).order_by(Order.id.desc()).limit(1))
    assert order is not None
    return order


async def _count(session: Any, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# --- (c) a theft alarm -------------------------------------------------------------------------------------


@pytest.mark.scenario("c. theft alarm")
@each_fault
async def test_an_alarm_is_in_the_soc_queue_exactly_once(
    world: FaultWorld, fault: str, outcome: Outcome
) -> None:
    car = world.car
    car.lose_alarm_acks = True
    alarm_id = await car.trigger_sensor("glass_break")
    assert alarm_id is not None
    await car.alarm_ack_gate.wait_reached()  # stored and answered by the cloud; the car never heard it

    async def meanwhile() -> None:
        car.lose_alarm_acks = False
        await asyncio.sleep(1.5)  # one re-send (every second) goes out into the fault

    await world.inject(fault, meanwhile)
    await within(_true(lambda: car.pending_alarms == []), RECOVERY, "the car's alarm acknowledged")
    async with world.db.session() as session:
        vehicle_id = await session.scalar(select(Vehicle.id).where(Vehicle.vin == TAYCAN))
        stored = await _count(session, AlarmSignalRecord, AlarmSignalRecord.car_alarm_id == alarm_id)
        cases = list(await session.scalars(select(Alarm).where(Alarm.vehicle_id == vehicle_id)))
        listed = [row for row in (await queue(session)).rows if row.vin == TAYCAN]
    sent = sum(1 for signal in car.alarms_sent if signal.id == alarm_id)
    outcome(
        f"car sent it {sent}×; stored {stored}×, {len(cases)} case with {sum(c.signals for c in cases)} "
        f"signal, {len(listed)} row in the SOC queue"
    )
    assert sent >= 2  # the car did re-send, and the re-send found the stored alarm
    assert stored == 1 and len(cases) == 1 and cases[0].signals == 1 and len(listed) == 1


# --- (d) a data-package download ---------------------------------------------------------------------------


@pytest.mark.scenario("d. data-package download")
@each_fault
async def test_an_interrupted_package_download_resumes(
    world: FaultWorld, fault: str, outcome: Outcome
) -> None:
    car, downloads = world.car, world.downloads
    await car.set_charging_cable(False)
    await car.drive()  # on the road: it downloads, and installs nothing yet
    downloads.after_bytes = 64 * 1024
    downloads.gate.arm()
    async with await world.as_user(demo.OWNER) as owner:
        listed = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/functions")).json()["functions"]
        offer = next(
            o for f in listed if f["code"] == "lane-assist" for o in f["offers"] if o["term"] == "LIFE"
        )
        card = await owner.post("/api/v1/store/payment-methods", json=VISA)
        ordered = await owner.post(
            f"/api/v1/vehicles/{TAYCAN}/functions/orders",
            json={"offer_id": offer["id"], "payment_method_id": card.json()["id"], "accept_terms": True},
        )
    assert ordered.status_code == 201, ordered.text
    order_id = ordered.json()["id"]
    await downloads.gate.wait_reached()  # 64 KiB of the package in the car, the rest on the way

    async def meanwhile() -> None:
        downloads.gate.release()
        await within(_true(lambda: downloads.open_streams == 0), 15, "the car's download attempt over")

    await world.inject(fault, meanwhile)

    async def downloaded() -> bool:
        if (await _delivery(world, order_id)).state != "downloaded":
            await car.pass_time(1)  # the car's next chance to download
            return False
        return True

    await within(downloaded, RECOVERY, "the package downloaded")
    messages = [m.subject for m in car.messages]
    resumed = [r for r in downloads.ranges if r]
    outcome(
        f"downloaded in {len(downloads.ranges)} request(s)"
        + (f", resumed at {', '.join(r.removeprefix('bytes=') for r in resumed)}" if resumed else "")
        + f"; the car told the driver {len(messages)}×"
    )
    assert messages == ["lane-assist"]
    assert car.refused == []
    if fault == "kill -9 service":  # the service died mid-stream: the rest came with a Range request
        assert (
            len(resumed) == 1 and int(resumed[0].removeprefix("bytes=").rstrip("-")) >= downloads.after_bytes
        )


async def _delivery(world: FaultWorld, order_id: int) -> Delivery:
    async with world.db.session() as session:
        row = await session.scalar(select(Delivery).where(Delivery.function_order_id == order_id))
    assert row is not None
    return row


# --- (e) the jobs role renewing a contract ------------------------------------------------------------------


@pytest.mark.scenario("e. contract renewal (jobs)")
@each_fault
async def test_a_subscription_is_renewed_charged_and_announced_once(
    world: FaultWorld, fault: str, outcome: Outcome
) -> None:
    async with await world.as_user(demo.OWNER) as owner:
        revision = await _cart_with(owner, _monthly_subscription, auto_renew=True)
        bought = await owner.post(f"/api/v1/vehicles/{TAYCAN}/cart/checkout", json={"revision": revision})
    assert bought.status_code == 201 and bought.json()["state"] == "confirmed", bought.text
    async with world.db.session() as session:
        contract = await session.scalar(select(Contract).where(Contract.order_id == bought.json()["id"]))
    assert contract is not None and contract.auto_renew
    key = f"renew-{contract.id}-{contract.period + 1}"
    control.write(world.folder, control.HOLD_CHARGE, key)
    # The day before the end: the jobs role renews it (store.contracts.RENEWAL_LEAD).
    world.move_clock((contract.ends_at - dt.timedelta(hours=20) - dt.datetime.now(dt.UTC)).total_seconds())
    assert await _charge_held(world) == key

    async def meanwhile() -> None:
        control.write(world.folder, control.RELEASE_CHARGE, "")
        await asyncio.sleep(1.0)  # the renewal's own transaction meets the fault

    await world.inject(fault, meanwhile)
    world.move_clock(CLAIM_LAPSES)  # a renewal cut short is taken up again once its claim lapsed

    async def renewed() -> bool:
        async with world.db.session() as session:
            row = await session.get(Contract, contract.id)
        return row is not None and row.period > contract.period

    await within(renewed, RECOVERY, "the contract renewed")
    await world.mails_delivered()
    async with world.db.session() as session:
        row = await session.get(Contract, contract.id)
        charges = await _count(
            session, SandboxCharge, SandboxCharge.idempotency_key.like(f"renew-{contract.id}-%")
        )
        payments = await _count(session, Payment, Payment.contract_id == contract.id)
    assert row is not None
    mails = await world.mails_for(f"contract-{contract.id}-renewed-{contract.period + 1}")
    outcome(
        f"renewed {row.period - contract.period}×, {charges} charge, {payments} payment, "
        f"mail queued {mails[0]}× sent {mails[1]}×"
    )
    assert row.period == contract.period + 1
    assert row.ends_at == add_months(contract.ends_at, contract.term_months)
    assert (charges, payments, mails) == (1, 1, (1, 1))
    assert world.no_mail_twice()


def _true(check: Any) -> Any:
    async def wrapped() -> bool:
        return bool(check())

    return wrapped
