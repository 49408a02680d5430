"""Property-based fuzz of every uplink the gateway accepts (issue 9, point 3; docs/testing.md).

Whatever a car's broker account publishes — hostile field values in well-formed messages, or garbage — the
gateway (1) never lets an exception out of its uplink handler and keeps handling valid messages afterwards,
and (2) never writes garbage: after each batch, every row it wrote or changed keeps the domain's rules
(states move only along their state machines, no NUL or over-long text, numbers and positions in range, no
time from the car's future), no other car's row changed, and nothing at all was written for an unknown car.

Most examples go straight into `UplinkHandler` with a real database (SQLite and PostgreSQL); one test sends
fuzzed payloads through a real broker to the running service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import JSON, BigInteger, Integer, String, Table, select

import carlink.db.models  # noqa: F401  (every table in the metadata the snapshot walks)
from carlink.clock import clock
from carlink.db.base import Base, Database
from carlink.demo import world
from carlink.fod.models import Delivery
from carlink.fod.rules import REPORTED, DeliveryState, FunctionOrderState, reported_move
from carlink.garage import service as garage
from carlink.garage.models import VehicleUser
from carlink.gateway.credentials import car_password
from carlink.gateway.service import UplinkHandler
from carlink.incar import service as incar
from carlink.protocol import topics as kinds
from carlink.protocol.messages import (
    TELEMETRY_KEYS,
    AlarmAck,
    AlarmSignal,
    AlarmTrigger,
    IdLoginReply,
    Network,
    Reply,
)
from carlink.protocol.transport import BrokerAddress, make_client
from carlink.protocol.vin import make_vin
from carlink.remote.models import RemoteCommand
from carlink.remote.rules import CommandState, can_move
from carlink.security import alarms
from carlink.security.rules import ActivationState, AlarmState
from carlink.settings import Settings
from carlink.telemetry.service import MAX_VALUE_BYTES, plausible
from tests.conftest import POSTGRES_STACK
from tests.fuzz.uplink_messages import (
    UNKNOWN_KINDS,
    KnownIds,
    Uplink,
    batches,
    encoded,
    shaped_messages,
    uplinks,
)
from tests.support.stack import PANAMERA, SECRET, TAYCAN, Stack, eventually

CAR = TAYCAN  # the car whose account publishes; the broker's ACL puts its VIN in every topic it may use
UNKNOWN_VINS = (make_vin("WP0", "ZZZY1", "P", "S", 999_999), "WP0ZZZY1ZPS10000", "")
SKEW = dt.timedelta(minutes=5)  # how far ahead of the cloud a stored time may be (alarms.MAX_CLOCK_SKEW)
# Columns that hold a time the cloud decided in the future (a lockout, an expiry, a retry), never the car's.
FUTURE_COLUMNS = frozenset(
    {
        "expires_at",
        "until",
        "ends_at",
        "download_by",
        "locked_until",
        "login_locked_until",
        "pin_locked_until",
        "next_attempt_at",
        "claimed_until",
    }
)
# Rows a car's message may end: its in-car logins (logout) and the service lists a `save` replaces (VEH-7).
DELETABLE = frozenset({"in_car_logins", "in_car_service_items"})
# The database keeps what every example wrote, as a gateway's does, so a replay meets another state:
# no shrinking (it would chase a moving target); a failure reports the batch as generated.
FUZZ = settings(
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("CARLINK_FUZZ_UPLINK_BATCHES", "90")),  # more by hand: docs/testing.md
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

Rows = dict[str, dict[tuple[Any, ...], dict[str, Any]]]
# The dealers' service calendar, 600 of the world's 700 rows: only partners.booking writes it. Compared at
# the end of a run instead of after every batch, which keeps a batch's check at a few milliseconds.
CALENDAR = frozenset({"service_slots"})
PER_BATCH = frozenset(table.name for table in Base.metadata.sorted_tables) - CALENDAR


# --- the world the fuzz runs in --------------------------------------------------------------------------


@dataclass
class Gateway:
    """The gateway's uplink handler on a seeded database, with what it sent recorded."""

    db: Database
    car_id: int
    known: KnownIds
    handler: UplinkHandler = field(init=False)
    rows: Rows = field(default_factory=dict)
    calendar: Rows = field(default_factory=dict)
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    emitted: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    republished: list[int] = field(default_factory=list)
    batches_that_wrote: int = 0

    @classmethod
    async def open(cls, url: str) -> Gateway:
        db = Database(url)
        async with db.transaction() as session:
            await world.seed(session)
            other_vin = (await world.ensure_sim_fleet(session, 1))[0]  # a second Taycan, another owner's
        known, car_id = await _known_ids(db, other_vin)
        gateway = cls(db=db, car_id=car_id, known=known)
        gateway.rows = await snapshot(db, PER_BATCH)
        gateway.calendar = await snapshot(db, CALENDAR)
        return gateway

    def __post_init__(self) -> None:
        self.handler = UplinkHandler(
            self.db,
            self._emit,
            self._reply,
            kinds.Topics("fuzz"),
            republish_entitlements=self._republish,
            settings=Settings(database_url=self.db.url, secret_key=SECRET),
            after_delivery=self._after_delivery,
            republish_security=self._republish,
        )

    async def _emit(self, vehicle_id: int, event: dict[str, Any]) -> None:
        self.emitted.append((vehicle_id, event))

    async def _reply(self, topic: str, payload: bytes) -> bool:
        self.sent.append((topic, payload))
        return True

    async def _republish(self, vehicle_id: int) -> bool:
        self.republished.append(vehicle_id)
        return True

    async def _after_delivery(self, vehicle_id: int, changed: bool, charge_due: int | None) -> None:
        self.republished.append(vehicle_id)

    async def deliver(self, batch: list[Uplink]) -> None:
        """Hands the batch to the handler as the link's worker does, then checks what it left behind."""
        self.sent.clear()
        self.emitted.clear()
        self.republished.clear()
        for uplink in batch:
            await self.handler(uplink.vin, uplink.kind, uplink.payload)  # an exception fails the example
        before, self.rows = self.rows, await snapshot(self.db, PER_BATCH)
        vin = batch[0].vin
        problems = list(self._downlink_problems(vin))
        changes = list(diff(before, self.rows))
        if vin != CAR:
            problems += [f"{table}: written for unknown car {vin!r}: {b} -> {a}" for table, b, a in changes]
        problems += [p for table, b, a in changes for p in row_problems(table, b, a, self.car_id)]
        assert not problems, "\n".join(problems)
        self.batches_that_wrote += bool(changes)

    def _downlink_problems(self, vin: str) -> Iterator[str]:
        """What the handler sent back goes to this car only and is a valid message of its topic."""
        topics = kinds.Topics("fuzz")
        models: dict[str, Any] = {
            topics.down(vin, kinds.DOWN_REPLY): Reply,
            topics.down(vin, kinds.DOWN_ID_LOGIN): IdLoginReply,
            topics.down(vin, kinds.DOWN_ALARM_ACK): AlarmAck,
        }
        for topic, payload in self.sent:
            model = models.get(topic) if vin == CAR else None
            if model is None:
                yield f"published on {topic!r} for {vin!r}"
                continue
            model.model_validate_json(payload)
        for vehicle_id, event in self.emitted:
            if vehicle_id not in (self.car_id, alarms.SOC_CHANNEL) or event.get("vin", CAR) != CAR:
                yield f"event for vehicle {vehicle_id}: {event}"
        yield from (f"republished for vehicle {v}" for v in self.republished if v != self.car_id)

    async def close(self) -> None:
        await self.db.dispose()


async def _known_ids(db: Database, other_vin: str) -> tuple[KnownIds, int]:
    """Commands, deliveries, pairing codes and login tokens of this car and of other cars."""
    async with db.transaction() as session:
        car = await garage.vehicle_by_vin(session, CAR)
        other = await garage.vehicle_by_vin(session, PANAMERA)
        other_taycan = await garage.vehicle_by_vin(session, other_vin)
        assert car is not None and other is not None and other_taycan is not None
        commands: dict[int, list[str]] = {car.id: [], other.id: []}
        for vehicle_id, states in ((car.id, ["accepted"] * 12 + ["delivered"] * 4), (other.id, ["accepted"])):
            for state in [*states, "performed", "error", "expired"]:
                command = _command(vehicle_id, state)
                session.add(command)
                commands[vehicle_id].append(command.id)
        deliveries = [
            Delivery(vehicle_id=vehicle_id, kind=kind, package=f"fuzz-{kind}-{n}.bin", state=state)
            for vehicle_id in (car.id, other.id)
            for n, (kind, state) in enumerate(
                [("function", "offered"), ("update", "offered"), ("function", "active"), ("update", "failed")]
                * 2
            )
        ]
        session.add_all(deliveries)
        await session.flush()
        memberships = list(await session.scalars(select(VehicleUser)))
        settings = Settings(database_url=db.url, secret_key=SECRET)
        own = await incar.log_in(session, settings, car, email=world.OWNER, password=world.PASSWORD)
        theirs = await incar.log_in(
            session, settings, other_taycan, email=world.FLEET_OWNER, password=world.PASSWORD
        )
        # Another car's alarm id: the same id from this car is this car's own alarm.
        theirs_alarm = "shared-alarm-0001"
        await alarms.ingest(session, other, _alarm(theirs_alarm))
        known = KnownIds(
            own_commands=tuple(commands[car.id]),
            other_commands=tuple(commands[other.id]),
            own_deliveries=tuple(d.id for d in deliveries if d.vehicle_id == car.id),
            other_deliveries=tuple(d.id for d in deliveries if d.vehicle_id == other.id),
            own_codes=tuple(m.pairing_code for m in memberships if m.vehicle_id == car.id and m.pairing_code),
            other_codes=tuple(
                m.pairing_code for m in memberships if m.vehicle_id != car.id and m.pairing_code
            ),
            emails=(world.OWNER, world.FAMILY, world.STRANGER, world.FLEET_OWNER, "nobody@example.com"),
            passwords=(world.PASSWORD, "wrong-password"),
            own_tokens=(own.token or "",),
            other_tokens=(theirs.token or "",),
            alarm_ids=("alarm-0001", "alarm-0002", "alarm-0003", theirs_alarm),
        )
        return known, car.id


def _command(vehicle_id: int, state: str) -> RemoteCommand:
    now = clock.now()
    finished = now if CommandState(state) not in (CommandState.ACCEPTED, CommandState.DELIVERED) else None
    return RemoteCommand(
        id=str(uuid.uuid4()),
        vehicle_id=vehicle_id,
        type="LOCK",
        state=state,
        expires_at=now + dt.timedelta(hours=1),
        finished_at=finished,
    )


def _alarm(alarm_id: str) -> AlarmSignal:
    return AlarmSignal(id=alarm_id, trigger=AlarmTrigger.TILT, at=clock.now())


# --- what the database holds, and its rules --------------------------------------------------------------


async def snapshot(db: Database, tables: frozenset[str] | None = None) -> Rows:
    """Every row of every table (or of `tables`), by primary key."""
    rows: Rows = {}
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            if tables is not None and table.name not in tables:
                continue
            keys = [column.name for column in table.primary_key.columns]
            result = await session.execute(select(table))
            rows[table.name] = {tuple(row[k] for k in keys): dict(row) for row in result.mappings()}
    return rows


def diff(before: Rows, after: Rows) -> Iterator[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
    for table, rows in after.items():
        old = before.get(table, {})
        for key in old.keys() | rows.keys():
            if old.get(key) != rows.get(key):
                yield table, old.get(key), rows.get(key)


def row_problems(
    table: str, before: dict[str, Any] | None, after: dict[str, Any] | None, car_id: int
) -> list[str]:
    """Why a row the handler wrote, changed or deleted breaks the domain's rules; empty when it keeps them."""
    row = after if after is not None else before
    assert row is not None
    where = f"{table} {_short(row)}"
    problems = []
    vehicle = row.get("id") if table == "vehicles" else row.get("vehicle_id")
    if vehicle is not None and vehicle != car_id:
        problems.append(f"{where}: another car's row changed")
    if after is None:
        if table not in DELETABLE:
            problems.append(f"{where}: deleted")
        return problems
    problems += [f"{where}: {p}" for p in _garbage(Base.metadata.tables[table], after)]
    problems += [f"{where}: {p}" for p in _domain_rules(table, before, after)]
    return problems


def _garbage(table: Table, row: dict[str, Any]) -> Iterator[str]:
    limit = clock.now() + SKEW
    for column in table.columns:
        value = row[column.name]
        kind = column.type
        if isinstance(value, str):
            yield from (f"{column.name}: {p}" for p in _text_problems(value))
            length = getattr(kind, "length", None)
            if isinstance(kind, String) and length is not None and len(value) > length:
                yield f"{column.name}: {len(value)} characters in a column of {length}"
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            bits = 63 if isinstance(kind, BigInteger) else 31
            if isinstance(kind, Integer) and not -(2**bits) <= value < 2**bits:
                yield f"{column.name}: {value} out of range"
        elif isinstance(value, float) and not math.isfinite(value):
            yield f"{column.name}: {value}"
        elif isinstance(value, dt.datetime):
            if value.tzinfo is None:
                yield f"{column.name}: naive time {value}"
            elif value > limit and column.name not in FUTURE_COLUMNS:
                yield f"{column.name}: {value.isoformat()} is in the future"
        elif isinstance(kind, JSON):
            yield from (f"{column.name}: {p}" for p in _json_problems(value))
    for name, low, high in (("lat", -90, 90), ("lon", -180, 180)):
        if row.get(name) is not None and not low <= row[name] <= high:
            yield f"{name} {row[name]} out of range"


def _text_problems(text: str) -> Iterator[str]:
    if any(ord(c) < 0x20 and c not in "\t\n\r" for c in text):
        yield f"control character in {text[:40]!r}"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        yield f"lone surrogate in {text[:40]!r}"


def _json_problems(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield from _text_problems(value)
    elif isinstance(value, float) and not math.isfinite(value):
        yield f"{value} in JSON"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _json_problems(key)
            yield from _json_problems(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_problems(item)


def _domain_rules(table: str, before: dict[str, Any] | None, after: dict[str, Any]) -> Iterator[str]:
    """The state machines and ranges of what the gateway writes (remote.rules, fod.rules, security.rules)."""
    old = before or {}
    if table == "remote_commands":
        if before is None:
            yield "a car's message created a command"
        elif old["state"] != after["state"] and not can_move(old["state"], after["state"]):
            yield f"command moved {old['state']} -> {after['state']}"
    elif table == "deliveries":
        if before is None:
            yield "a car's message created a delivery"
        elif old["state"] != after["state"]:
            moves = {reported_move(old["state"], report, after["kind"]) for report in REPORTED}
            if DeliveryState(after["state"]) not in moves:
                yield f"delivery moved {old['state']} -> {after['state']}"
        if not 0 <= (after["have"] or 0) <= 2**62 or not 0 <= (after["length"] or 0) <= 2**62:
            yield f"progress {after['have']} of {after['length']}"
    elif table == "function_orders" and old.get("state", after["state"]) != after["state"]:
        if (old["state"], after["state"]) != (FunctionOrderState.ORDERED, FunctionOrderState.ACTIVATED):
            yield f"function order moved {old['state']} -> {after['state']}"
    elif table == "alarms" and after["state"] != old.get("state", AlarmState.NEW):
        yield f"alarm case state {old.get('state')} -> {after['state']} from a car's message"
    elif table == "tracking_activations" and old.get("state", after["state"]) != after["state"]:
        steps = [ActivationState.ORDERED, ActivationState.INSTALLING, ActivationState.TEST_PASSED]
        if old["state"] not in steps or after["state"] not in steps[steps.index(old["state"]) + 1 :]:
            yield f"activation moved {old['state']} -> {after['state']}"
    elif table in ("vehicle_entitlements", "vehicle_security"):
        if after["applied_revision"] > after["revision"]:
            yield f"applied revision {after['applied_revision']} beyond {after['revision']}"
        if after["applied_revision"] < old.get("applied_revision", 0):
            yield "applied revision went back"
    elif table == "measurements":
        if after["key"] not in TELEMETRY_KEYS:
            yield f"unknown key {after['key']!r}"
        if not isinstance(after["value"], dict) or len(json.dumps(after["value"])) > MAX_VALUE_BYTES:
            yield "value is not a small object"
        elif not plausible(after["key"], after["value"]):
            yield f"implausible value {after['value']!r:.120}"
    elif table == "vehicles" and after["network"] not in {n.value for n in Network}:
        yield f"network {after['network']!r}"


def _short(row: dict[str, Any]) -> str:
    text = repr({k: v for k, v in row.items() if k in ("id", "vehicle_id", "key", "state", "vin")})
    return text[:120]


# --- the properties --------------------------------------------------------------------------------------


def test_every_uplink_kind_has_messages_of_its_shape() -> None:
    """A kind added to the protocol fails here until the fuzz can build its messages; the made-up kinds
    stay unknown to the gateway."""
    known = KnownIds((), (), (), (), (), (), (world.OWNER,), (world.PASSWORD,), (), (), ("alarm-0001",))
    assert sorted(shaped_messages(known)) == sorted(kinds.UPLINK_KINDS)
    assert set(UNKNOWN_KINDS) & set(kinds.UPLINK_KINDS) == set()


def test_hostile_uplinks_neither_crash_the_gateway_nor_write_garbage(database_url: str) -> None:
    """Both databases: SQLite and PostgreSQL refuse different things (NUL, NaN, surrogates, lengths)."""
    loop = asyncio.new_event_loop()
    gateway = loop.run_until_complete(Gateway.open(database_url))
    vins = st.one_of(st.just(CAR), st.just(CAR), st.just(CAR), st.just(CAR), st.sampled_from(UNKNOWN_VINS))
    accepted_before = {kind: handled(kind) for kind in kinds.UPLINK_KINDS}
    try:

        @FUZZ
        @given(batch=batches(vins, gateway.known))
        def one_batch(batch: list[Uplink]) -> None:
            note(repr(batch))
            loop.run_until_complete(gateway.deliver(batch))

        one_batch()
        loop.run_until_complete(_a_valid_ack_still_moves_a_command(gateway))
        assert loop.run_until_complete(snapshot(gateway.db, CALENDAR)) == gateway.calendar
        # The fuzz reached the database and the refusals alike, with every kind, or it proved nothing.
        assert gateway.batches_that_wrote >= 10
        assert gateway.handler.rejected >= 10
        assert [kind for kind in kinds.UPLINK_KINDS if handled(kind) == accepted_before[kind]] == []
    finally:
        loop.run_until_complete(gateway.close())
        loop.close()


def handled(kind: str) -> float:
    """Uplinks of this kind the handler accepted in this process (carlink.metrics)."""
    return REGISTRY.get_sample_value("carlink_uplinks_total", {"kind": kind}) or 0.0


async def _a_valid_ack_still_moves_a_command(gateway: Gateway) -> None:
    async with gateway.db.transaction() as session:
        command = _command(gateway.car_id, "accepted")
        session.add(command)
    for state in ("delivered", "performed"):
        ack = {
            "v": 1,
            "command_id": command.id,
            "state": state,
            "reason": None,
            "at": clock.now().isoformat(),
        }
        await gateway.handler(CAR, kinds.UP_ACK, encoded(ack, True))
    async with gateway.db.session() as session:
        stored = await session.get(RemoteCommand, command.id)
    assert stored is not None and stored.state == "performed"


@pytest.mark.parametrize("stack", [POSTGRES_STACK], indirect=True)
async def test_a_car_publishing_garbage_leaves_the_gateway_alive(stack: Stack) -> None:
    """Through Mosquitto with the car's own account and ACL: the running service's link survives whatever
    the car publishes on its uplink topics and then handles a valid ack."""
    known = KnownIds((), (), (), (), (), (), (world.OWNER,), (world.PASSWORD,), (), (), ("alarm-0001",))
    sent: list[Uplink] = []

    @settings(FUZZ, max_examples=60)
    @given(uplink=uplinks(CAR, known))
    def collect(uplink: Uplink) -> None:
        sent.append(uplink)

    collect()
    topics = kinds.Topics(stack.settings.mqtt_topic_prefix)
    address = BrokerAddress.parse(stack.broker.url)
    car = make_client(address, username=CAR, password=car_password(SECRET, CAR), identifier=f"fuzz-{CAR}")
    async with stack.db.transaction() as session:
        vehicle = await garage.vehicle_by_vin(session, CAR)
        assert vehicle is not None
        command = _command(vehicle.id, "accepted")
        session.add(command)
    handler = stack.platform.link.handler if stack.platform.link is not None else None
    assert isinstance(handler, UplinkHandler)
    rejected = handler.rejected
    async with car:
        for uplink in sent:
            await car.publish(topics.up(CAR, uplink.kind), uplink.payload, qos=1)
        ack = {"v": 1, "command_id": command.id, "state": "performed", "at": clock.now().isoformat()}
        await car.publish(topics.up(CAR, kinds.UP_ACK), encoded(ack, True), qos=1)

    async def performed() -> bool:
        async with stack.db.session() as session:
            stored = await session.get(RemoteCommand, command.id)
        return stored is not None and stored.state == "performed"

    await eventually(performed, 30)
    # One worker per car, in order: everything the car sent before its ack went through the handler.
    assert handler.rejected - rejected >= 10
    assert stack.platform.link is not None and stack.platform.link.connected.is_set()
    assert stack.platform.link.running
