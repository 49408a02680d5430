"""One simulated car: connects with its own broker account, verifies and executes signed commands, holds
the signed entitlements the cloud publishes, reports telemetry and connection state, and lets a test or the
demo act in the car (pairing code, privacy mode, remote-access authorisation, data connection, hotspot
sharing, restart, ID login with the car's keys, driving, parking and the charging cable). It fetches the
packages the cloud delivers and installs them when the driver has left (FOD-3..8, OTA-3, OTA-4). Its
security module raises theft alarms and re-sends them until the cloud has stored them, checks driver cards
and sends track points while the signed security set asks for them (SEC-1..4)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import socket
import tempfile
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from carlink.protocol import topics as kinds
from carlink.protocol.catalogue import CLOUD_COMMANDS, find_variant
from carlink.protocol.messages import (
    Ack,
    AckState,
    AlarmSignal,
    AlarmTrigger,
    Command,
    CommandType,
    Connection,
    DeliveryReport,
    EntitlementReport,
    IdLoginReply,
    IdLoginRequest,
    Network,
    RefusalReason,
    Reply,
    Request,
    SecurityReport,
    Telemetry,
    TrackPoint,
)
from carlink.protocol.signing import load_public_key, verify_command
from carlink.protocol.transport import BrokerAddress, make_client
from carlink.sim.deliveries import CarMessage, DeliveryUnit
from carlink.sim.entitlements import CarEntitlements
from carlink.sim.idlogin import GUEST_NO_TIMERS, GUEST_NOT_SAVED, IdLoginUnit, Occupant
from carlink.sim.packages import PackageClient
from carlink.sim.security import RESEND_SECONDS, SENSORS, SecurityUnit
from carlink.sim.state import CarState

log = logging.getLogger("carlink.sim")
SEEN_COMMANDS = 512
STOP_TIMEOUT = 5.0
SENT_KEPT = 1000  # alarms and track points kept in `alarms_sent`, `track_points_sent` (a demo runs for days)
THIEF_SPEED_KMH = 60.0  # a stolen car driven off through town: 5 km take 5 minutes, a track point per 500 m


@dataclass(frozen=True)
class CarSpec:
    vin: str
    variant_code: str
    password: str
    country: str = "DE"


class SimulatedCar:
    def __init__(
        self,
        spec: CarSpec,
        *,
        broker_url: str,
        prefix: str,
        trusted_keys: dict[str, str],
        network: Network = Network.LTE,
        perform_delay: float = 0.0,
        report_interval: float = 300.0,
        package_url: str | None = None,
        package_state_dir: Path | None = None,
        package_http: httpx.AsyncClient | None = None,
        trusted_root: dict[str, Any] | None = None,
        alarm_resend_interval: float = RESEND_SECONDS,
    ) -> None:
        self.spec = spec
        self.vin = spec.vin
        self.model, self.variant = find_variant(spec.variant_code)
        self.state = CarState.for_vehicle(spec.vin, self.model, self.variant, spec.country)
        self.address = BrokerAddress.parse(broker_url)
        self.topics = kinds.Topics(prefix)
        self.keys: dict[str, Ed25519PublicKey] = {kid: load_public_key(k) for kid, k in trusted_keys.items()}
        self.network = network
        self.perform_delay = perform_delay
        self.report_interval = report_interval
        self.clock_offset = dt.timedelta()
        self.data_on = True
        self.connected = asyncio.Event()
        self.executed: list[Command] = []
        self.refused: list[tuple[str, str]] = []
        self.entitlements = CarEntitlements(self.vin, self.keys)
        self._seen: OrderedDict[str, Ack] = OrderedDict()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._replies: dict[str, asyncio.Future[Reply]] = {}
        # In-car ID login (VEH-7, VEH-8): who drives, what each key remembers; requests sent, for tests.
        self.id_login = IdLoginUnit()
        self.id_login_requests: list[IdLoginRequest] = []
        self._id_replies: dict[str, asyncio.Future[IdLoginReply]] = {}
        self._stopping = False
        # Deliveries (FOD, OTA): without a package URL the car holds its set but never downloads.
        self.deliveries = DeliveryUnit(self.vin, self.keys)
        self.package_url = package_url
        self.package_http = package_http
        self.trusted_root = trusted_root
        self._package_state_dir = package_state_dir
        self._package_temp: tempfile.TemporaryDirectory[str] | None = None
        self._delivery_lock = asyncio.Lock()
        # Car security (SEC-1..4): the unit holds the set and the unacknowledged alarms; what was sent, newest
        # last, for tests; the car's time up to which a trip under way has been followed; a nudge for the
        # guard task.
        self.security = SecurityUnit(self.vin, self.keys, resend_interval=alarm_resend_interval)
        self.alarms_sent: list[AlarmSignal] = []
        self.track_points_sent: list[TrackPoint] = []
        self._moved_until = self.now()
        self._security_wake = asyncio.Event()

    # --- life cycle --------------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.clock_offset

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"car-{self.vin}")

    async def stop(self, *, graceful: bool = True) -> None:
        """Turns the car off; graceful publishes 'offline', otherwise the broker's last will does."""
        self._stopping = True
        if graceful and self._client is not None and self.connected.is_set():
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await self._publish(kinds.UP_CONNECTION, Connection(online=False, at=self.now()), retain=True)
        elif not graceful:
            self._cut_link()
        if self._task is not None:
            self._task.cancel()
            # Bounded: aiomqtt waits for the broker to confirm the disconnect, which a dead link never does.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, STOP_TIMEOUT)
        self.connected.clear()
        packages, self.deliveries.packages = self.deliveries.packages, None
        if packages is not None:
            await packages.aclose()  # made again at the next download; what is on disk stays

    def _cut_link(self) -> None:
        """Drops the TCP link without an MQTT DISCONNECT, as a car losing power does: only then does the
        broker publish the last will (a clean DISCONNECT, which closing the client sends, discards it)."""
        sock = self._client._client.socket() if self._client is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def wait_connected(self, timeout: float = 15.0) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    def _will(self) -> aiomqtt.Will:
        payload = Connection(online=False, network=Network.NONE).model_dump_json().encode()
        return aiomqtt.Will(self.topics.up(self.vin, kinds.UP_CONNECTION), payload, qos=1, retain=True)

    async def _run(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                client = make_client(
                    self.address,
                    username=self.vin,
                    password=self.spec.password,
                    identifier=f"car-{self.vin}",
                    will=self._will(),
                )
                async with client:
                    self._client = client
                    await client.subscribe(self.topics.down(self.vin, "#"), qos=1)
                    self.entitlements.expire(self.now())
                    self.state.set_hotspot_package(self.entitlements.data_package())
                    await self._publish(
                        kinds.UP_CONNECTION,
                        Connection(online=True, network=self.network, at=self.now()),
                        retain=True,
                    )
                    await self.report()
                    if self.entitlements.revision:
                        # Also what changed while the car could not report it (docs/protocol.md).
                        await self._publish(kinds.UP_ENTITLEMENTS, self.entitlements.report(self.now()))
                    for delivery_report in self.deliveries.reports_on_connect(self.now()):
                        await self._publish(kinds.UP_DELIVERIES, delivery_report)
                    await self._security_on_connect()
                    self.connected.set()
                    await self._process_deliveries()  # e.g. resumes a download the lost link interrupted
                    delay = 0.2
                    reporter = asyncio.create_task(self._report_periodically())
                    guard = asyncio.create_task(self._guard_periodically())
                    try:
                        async for message in client.messages:
                            await self._on_message(str(message.topic), message.payload)
                    finally:
                        reporter.cancel()
                        guard.cancel()
            except aiomqtt.MqttError as exc:
                if not self._stopping:
                    log.debug("car %s lost the broker: %s", self.vin, exc)
            finally:
                self.connected.clear()
                self._client = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _report_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.report_interval)
            await self._tick(self.report_interval)

    async def pass_time(self, seconds: float) -> None:
        """Simulated time passes in the car at once (tests, demo): its clock moves on, its state advances,
        terms that have passed end, and it reports as it does periodically."""
        self.clock_offset += dt.timedelta(seconds=seconds)
        await self._tick(seconds)

    async def _tick(self, seconds: float) -> None:
        self.state.advance(seconds)
        await self._security_duties()
        await self._after_entitlements(self.entitlements.expire(self.now()))
        self.deliveries.rest(seconds, self.state, self._entitled_functions())
        await self._process_deliveries()
        if self._online():
            await self.report()

    def _online(self) -> bool:
        return self._client is not None and self.connected.is_set()

    async def _publish(
        self,
        kind: str,
        message: (
            Ack
            | Telemetry
            | Connection
            | Request
            | EntitlementReport
            | IdLoginRequest
            | DeliveryReport
            | AlarmSignal
            | TrackPoint
            | SecurityReport
        ),
        *,
        retain: bool = False,
    ) -> None:
        if self._client is None:
            raise aiomqtt.MqttError("not connected")
        await self._client.publish(
            self.topics.up(self.vin, kind),
            message.model_dump_json().encode(),
            qos=1,
            retain=retain,
            timeout=10,
        )

    async def publish_raw(self, topic: str, payload: bytes) -> None:
        """For tests of what the cloud does with garbage or with another car's topics."""
        if self._client is None:
            raise aiomqtt.MqttError("not connected")
        await self._client.publish(topic, payload, qos=1, timeout=10)

    async def report(self, keys: frozenset[str] | None = None) -> None:
        await self._publish(kinds.UP_TELEMETRY, Telemetry(at=self.now(), values=self.state.values(keys)))

    # --- commands ----------------------------------------------------------------------------------------

    async def _on_message(self, topic: str, payload: Any) -> None:
        if topic == self.topics.down(self.vin, kinds.DOWN_COMMAND):
            await self._on_command(bytes(payload))
        elif topic == self.topics.down(self.vin, kinds.DOWN_REPLY):
            with contextlib.suppress(ValueError, ValidationError):
                reply = Reply.model_validate_json(bytes(payload))
                future = self._replies.pop(reply.request_id, None)
                if future is not None and not future.done():
                    future.set_result(reply)
        elif topic == self.topics.down(self.vin, kinds.DOWN_ID_LOGIN):
            with contextlib.suppress(ValueError, ValidationError):
                answer = IdLoginReply.model_validate_json(bytes(payload))
                waiting = self._id_replies.pop(answer.request_id, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(answer)
        elif topic == self.topics.down(self.vin, kinds.DOWN_ENTITLEMENTS):
            await self._after_entitlements(self.entitlements.receive(bytes(payload), self.now()))
        elif topic == self.topics.down(self.vin, kinds.DOWN_DELIVERIES):
            refused = len(self.deliveries.refused)
            self.deliveries.receive(bytes(payload))
            for revision, reason in self.deliveries.refused[refused:]:
                self.refused.append((f"deliveries-{revision}", reason))
            await self._process_deliveries()
        elif topic == self.topics.down(self.vin, kinds.DOWN_SECURITY):
            await self._on_security_set(bytes(payload))
        elif topic == self.topics.down(self.vin, kinds.DOWN_ALARM_ACK):
            self.security.receive_ack(bytes(payload))

    async def _on_command(self, payload: bytes) -> None:
        try:
            raw = json.loads(payload)
            command = Command.model_validate(raw)
        except (ValueError, ValidationError):
            self.refused.append(("?", "MALFORMED"))
            return
        previous = self._seen.get(command.id)
        if previous is not None:
            # A re-sent or replayed command: never executed twice; the outcome is reported again.
            self.refused.append((command.id, RefusalReason.REPLAYED.value))
            await self._publish(kinds.UP_ACK, previous)
            return
        refusal = self._check(command, raw)
        if refusal is not None:
            self.refused.append((command.id, refusal.value))
            if refusal in (RefusalReason.BAD_SIGNATURE, RefusalReason.WRONG_VEHICLE):
                return  # not from our cloud, or not for us: say nothing
            await self._finish(command, AckState.ERROR, refusal.value)
            return
        await self._publish(kinds.UP_ACK, Ack(command_id=command.id, state=AckState.DELIVERED, at=self.now()))
        if self.perform_delay:
            await asyncio.sleep(self.perform_delay)
        error = self._execute(command)
        # Remembered before anything is sent: if the link drops now, a re-send is answered, not re-executed.
        self.executed.append(command)
        outcome = self._remember(command, AckState.ERROR if error else AckState.PERFORMED, error)
        sends = [self._publish(kinds.UP_ACK, outcome)]
        if command.type is CommandType.WAKE:
            sends.insert(0, self.report())
        elif error is None and _touched(command.type):
            sends.insert(0, self.report(_touched(command.type)))
        # Queued together and in order (MQTT keeps one connection's order): the state the command changed
        # is stored before the cloud sees the outcome, at the cost of one wait for the broker, not two.
        await asyncio.gather(*sends)
        if command.type is CommandType.LOCK and error is None:
            await self._process_deliveries()  # locked: perhaps the chance to install (FOD-4)

    async def _finish(self, command: Command, state: AckState, reason: str | None) -> None:
        await self._publish(kinds.UP_ACK, self._remember(command, state, reason))

    def _remember(self, command: Command, state: AckState, reason: str | None) -> Ack:
        ack = Ack(command_id=command.id, state=state, reason=reason, at=self.now())
        self._seen[command.id] = ack
        while len(self._seen) > SEEN_COMMANDS:
            self._seen.popitem(last=False)
        return ack

    def _check(self, command: Command, raw: dict[str, Any]) -> RefusalReason | None:
        if not verify_command(raw, self.keys):
            return RefusalReason.BAD_SIGNATURE
        if command.vin != self.vin:
            return RefusalReason.WRONG_VEHICLE
        if command.expires_at <= self.now():
            return RefusalReason.EXPIRED
        if command.type not in self.model.commands(self.variant.engine):
            return RefusalReason.NOT_SUPPORTED
        if command.type not in CLOUD_COMMANDS:
            if self.state.privacy_mode:
                return RefusalReason.PRIVACY_MODE
            if not self.state.remote_access:
                return RefusalReason.REMOTE_ACCESS_DISABLED
        return None

    def _execute(self, command: Command) -> str | None:
        state, params = self.state, command.params
        match command.type:
            case CommandType.LOCK:
                if any(state.doors_open.values()):
                    return RefusalReason.NOT_POSSIBLE.value + ": a door is open"
                state.locked = True
            case CommandType.UNLOCK:
                state.locked = False
            case CommandType.CLIMATE_START:
                zones = {k: bool(v) for k, v in dict(params.get("zones", {})).items()}
                state.start_climate(float(params.get("target_temperature_c", 21.0)), zones)
            case CommandType.CLIMATE_STOP:
                state.climate_on = False
            case CommandType.DIRECT_CHARGING_START:
                if not state.plugged:
                    return RefusalReason.NOT_POSSIBLE.value + ": the charging cable is not plugged in"
                state.charging_mode = "DIRECT"
            case CommandType.DIRECT_CHARGING_STOP:
                state.charging_mode = "PROFILE"
            case CommandType.CHARGE_TARGET:
                soc = params.get("target_soc")
                if not isinstance(soc, int) or not 25 <= soc <= 100:
                    return RefusalReason.INVALID_PARAMETERS.value
                state.target_soc = soc
            case CommandType.REMOTE_ACCESS_RESET:
                state.remote_access = False  # REQ: VEH-5 — the person authorises it again in the car
            case CommandType.HONK_FLASH | CommandType.WAKE:
                pass
        return None

    # --- entitlements (STO-7) and the WiFi hotspot (CON-3) ------------------------------------------------

    async def _after_entitlements(self, changed: bool) -> None:
        """Follows a change of what the car offers: the hotspot goes with the data package (CON-3), and the
        cloud hears of both, the state first, when the car is online."""
        hotspot_changed = self.state.set_hotspot_package(self.entitlements.data_package())
        if not self._online():
            return  # reported on the next connect
        # A link lost now loses nothing either: the car reports both again when it connects.
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            if hotspot_changed:
                await self._report_hotspot()
            if changed:
                await self._publish(kinds.UP_ENTITLEMENTS, self.entitlements.report(self.now()))

    async def _report_hotspot(self) -> None:
        if self._online() and "hotspot" in self.state.measurements:
            await self.report(frozenset({"hotspot"}))

    # --- deliveries: functions on demand and software updates (FOD-3..8, OTA-3, OTA-4) -------------------

    @property
    def messages(self) -> list[CarMessage]:
        return self.deliveries.messages

    @property
    def active_functions(self) -> dict[str, int]:
        """Activated functions, each with the delivery it was activated from."""
        return self.deliveries.active_functions

    @property
    def software_version(self) -> str:
        return self.deliveries.software_version

    @property
    def download_limit(self) -> int | None:
        """Test hook: bytes per download attempt, as if the car went offline mid-download."""
        return self.deliveries.download_limit

    @download_limit.setter
    def download_limit(self, limit: int | None) -> None:
        self.deliveries.download_limit = limit

    @property
    def fail_next_install(self) -> str | None:
        """Test hook: the next install or activation fails with this reason code."""
        return self.deliveries.fail_next_install

    @fail_next_install.setter
    def fail_next_install(self, reason: str | None) -> None:
        self.deliveries.fail_next_install = reason

    def _entitled_functions(self) -> set[str]:
        """Functions of the newest verified entitlements, applied or pending (FOD-7)."""
        return {code for code, item in self.entitlements.held.items() if item.kind == "function"}

    def _package_client(self) -> PackageClient | None:
        if self.package_url is None:
            return None
        if self.deliveries.packages is None:
            state_dir = self._package_state_dir
            if state_dir is None:
                self._package_temp = tempfile.TemporaryDirectory(prefix=f"carlink-car-{self.vin}-")
                state_dir = self._package_state_dir = Path(self._package_temp.name)
            self.deliveries.packages = PackageClient(
                self.package_url,
                self.vin,
                self.spec.password,
                state_dir,
                trusted_root=self.trusted_root,
                http=self.package_http,
            )
        return self.deliveries.packages

    async def _process_deliveries(self) -> None:
        """Downloads, installs and switches off what the car's situation allows now, and reports it."""
        async with self._delivery_lock:
            if any(held.needs_download for held in self.deliveries.held.values()):
                self._package_client()  # made only when needed: an HTTP client is not free
            online = self._online() and self.data_on
            try:
                reports = await self.deliveries.process(
                    self.state, self.now(), online=online, entitled=self._entitled_functions()
                )
            except OSError:
                log.exception("car %s could not process its deliveries", self.vin)
                return
            if not self._online():
                return  # re-reported on the next connect
            # A link lost now loses nothing: the car re-reports every delivery's state when it connects.
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                for report in reports:
                    await self._publish(kinds.UP_DELIVERIES, report)

    # --- car security: alarms, driver cards, tracking (SEC-1..4) ------------------------------------------

    @property
    def pending_alarms(self) -> list[str]:
        """Ids of the alarms the cloud has not acknowledged yet, oldest first."""
        return [alarm.id for alarm in self.security.pending]

    async def trigger_sensor(self, trigger: str) -> str | None:
        """A theft sensor fires: the car raises and sends the alarm and returns its id, or None when a
        mode in force covers the trigger (SEC-3). Raises ValueError for anything but a sensor's trigger."""
        kind = AlarmTrigger(trigger)
        if kind not in SENSORS:
            raise ValueError(f"{trigger!r} is not one of the car's theft sensors")
        signal = await self._raise(kind)
        return signal.id if signal is not None else None

    def present_driver_card(self, serial: str | None) -> None:
        """A driver card is in the car now (None: no card); checked when the car starts to move (SEC-2)."""
        self.security.card_present(serial)

    async def tow_away(self, km: float = 1.0) -> None:
        """The parked car is lifted onto a tow truck and carried `km` off: towing, and, if it was locked,
        moving while locked; its position moves with it."""
        await self._raise(AlarmTrigger.TOWING)
        if self.state.locked:
            await self._raise(AlarmTrigger.MOVING_WHILE_LOCKED)
        self.state.displace(km)
        await self._after_person(frozenset({"location", "mileage"}))

    async def steal(self, km: float = 5.0) -> None:
        """A thief starts the locked car without its key and drives `km` off: ignition without key, with
        tracking plus also the silent driver-card alarm; then the car moves along its heading as time
        passes (real time, or `pass_time`), so the track points it sends make a line (SEC-1)."""
        await self._follow_trip()
        self.state.drive_off_without_key()
        await self._raise(AlarmTrigger.IGNITION_WITHOUT_KEY)
        await self._starts_moving()
        self.state.start_trip(km, THIEF_SPEED_KMH)
        self._security_wake.set()
        await self._after_person(frozenset({"lock", "doors", "parking"}))

    def _under_way(self) -> bool:
        return self.state.power_on and self.state.gear == "D"

    async def _starts_moving(self) -> None:
        signal = self.security.starts_moving(self.now(), self.state.position(), self.state.privacy_mode)
        if signal is not None:
            await self._send_new_alarm(signal)

    async def _raise(self, trigger: AlarmTrigger) -> AlarmSignal | None:
        now, state = self.now(), self.state
        signal = self.security.raise_alarm(trigger, now, state.position(), state.privacy_mode)
        if signal is not None:
            await self._send_new_alarm(signal)
        return signal

    async def _send_new_alarm(self, signal: AlarmSignal) -> None:
        """Sends a new alarm at once when online; it stays pending either way, so the guard re-sends it
        until the cloud acknowledges it, and the car sends it again after the next connect."""
        self._security_wake.set()
        if not self._online():
            return
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await self._send_alarm(signal)

    async def _send_alarm(self, signal: AlarmSignal) -> None:
        await self._publish(kinds.UP_ALARM, signal)
        self.alarms_sent.append(signal)
        del self.alarms_sent[:-SENT_KEPT]

    async def _on_security_set(self, payload: bytes) -> None:
        """A security set from down/security: applied if the cloud signed it for this car and it is newer;
        the car reports it, then sends the test alarm a new package raises (SEC-4)."""
        refused = len(self.security.refused)
        applied = self.security.receive(payload, self.now())
        for revision, reason in self.security.refused[refused:]:
            self.refused.append((f"security-{revision}", reason))
        if applied and self._online():
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await self._publish(kinds.UP_SECURITY, self.security.report(self.now()))
        await self._security_duties()
        self._security_wake.set()

    async def _security_on_connect(self) -> None:
        """After each connect: the set the car holds, then every unacknowledged alarm again, in order."""
        if self.security.revision:
            await self._publish(kinds.UP_SECURITY, self.security.report(self.now()))
        for signal in self.security.resend_all(self.now()):
            await self._send_alarm(signal)

    async def _guard_periodically(self) -> None:
        """While connected: re-sends unacknowledged alarms every `resend_interval` and sends track points
        every 30 s of the car's time. Sleeps until something is due, so an idle car costs nothing."""
        while True:
            self._security_wake.clear()
            now = self.now()
            waits = [
                wait
                for wait in (
                    self.security.next_resend_in(now),
                    self.security.next_track_in(now, self.state.privacy_mode),
                    self.security.track_interval if self.state.moving else None,
                )
                if wait is not None
            ]
            if not waits or min(waits) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._security_wake.wait(), min(waits) if waits else None)
            await self._security_duties()

    async def _security_duties(self) -> None:
        """Follows a trip under way up to the car's clock, sends the track points and the re-sends due."""
        online = self._online()
        points = self._catch_up(self.now(), track=online)
        if not online:
            return  # alarms go again after the next connect; track points resume with one at once
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            for point in points:
                await self._publish(kinds.UP_TRACK, point)
                self.track_points_sent.append(point)
                del self.track_points_sent[:-SENT_KEPT]
            for signal in self.security.due_resends(self.now()):
                await self._send_alarm(signal)

    async def _follow_trip(self) -> None:
        """Brings a trip under way up to the car's clock, so what happens next starts from where the car is
        now (and an idle car's past does not count as driving)."""
        if self.state.moving:
            await self._security_duties()
        self._moved_until = self.now()

    def _catch_up(self, now: dt.datetime, *, track: bool) -> list[TrackPoint]:
        """Follows the car's time from where it was followed last up to `now` in steps of the track interval:
        a trip under way moves the car, and while it tracks it takes the points that fall due on the way,
        also when simulated time jumps (SEC-1: a stolen car's track is a line, a point every 30 s)."""
        points: list[TrackPoint] = []
        at, privacy = self._moved_until, self.state.privacy_mode
        if not self.state.moving:
            # A standing car's track goes on from its last point; a track that starts now starts now.
            at = max(at, self.security.last_track or now)
        step = dt.timedelta(seconds=self.security.track_interval)
        while at < now and (self.state.moving or (track and self.security.tracking_active(privacy))):
            moved = min(step, now - at)
            at += moved
            self.state.move(moved.total_seconds())
            point = self.security.take_track_point(at, self.state.position(), privacy) if track else None
            points += [point] if point is not None else []
        self._moved_until = max(self._moved_until, now)
        point = self.security.take_track_point(now, self.state.position(), privacy) if track else None
        return points + ([point] if point is not None else [])

    # --- what a person does in the car -------------------------------------------------------------------

    async def drive(self) -> None:
        """A person gets in and drives off (unlocked, power on, D, parking brake off); with tracking plus
        and no registered driver card in the car, the silent alarm goes to the SOC at once (SEC-2)."""
        sets_off = not self._under_way()
        self.state.drive()
        if sets_off:
            await self._starts_moving()
        await self._after_person(frozenset({"lock", "doors", "parking"}))

    async def park_and_leave(self) -> None:
        """The driver parks (P, parking brake), switches off, leaves and locks: the chance to install."""
        await self._follow_trip()  # a trip under way ends where the car is now
        self.state.park_and_leave()
        await self._after_person(frozenset({"lock", "doors", "parking"}))

    async def set_charging_cable(self, plugged: bool) -> None:
        self.state.plugged = plugged
        await self._after_person(frozenset({"charging"}))

    async def _after_person(self, touched: frozenset[str]) -> None:
        if self._online():
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await self.report(touched)
        await self._process_deliveries()

    async def restart(self) -> None:
        """Switches the car (its infotainment) off and on, keeping the broker link: services bought since
        the last restart appear now if the car is online, else they stay pending (STO-7); after the
        recovery routine a failed delivery starts again (FOD-8)."""
        online = self.data_on and self.connected.is_set()
        await self._after_entitlements(self.entitlements.restart(self.now(), online=online))
        self.deliveries.restart()
        await self._process_deliveries()

    async def set_hotspot_sharing(self, on: bool) -> bool:
        """Switches WiFi hotspot sharing; False when refused: no data package is applied (CON-3)."""
        await self._after_entitlements(self.entitlements.expire(self.now()))
        before = self.state.hotspot_sharing
        if not self.state.share_hotspot(on):
            return False
        if self.state.hotspot_sharing != before:
            await self._report_hotspot()
        return True

    async def enter_pairing_code(self, code: str, timeout: float = 10.0) -> Reply:
        request = Request(id=uuid.uuid4().hex, kind="pair", code=code)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._replies[request.id] = future
        await self._publish(kinds.UP_REQUEST, request)
        return await asyncio.wait_for(future, timeout)

    async def set_privacy_mode(self, enabled: bool) -> None:
        self.state.privacy_mode = enabled
        self._security_wake.set()  # alarm tracking pauses in privacy mode, theft tracking does not (SEC-1)
        await self.report(frozenset({"privacy", "location"}))

    async def set_remote_access(self, authorised: bool) -> None:
        self.state.remote_access = authorised
        await self.report(frozenset({"remote_access"}))

    async def factory_reset(self) -> None:
        """A factory reset of the infotainment unit: remote-access authorisation is off again (VEH-5)."""
        self.state.remote_access = False
        self.state.privacy_mode = False
        await self.report(frozenset({"remote_access", "privacy"}))

    async def set_data_connection(self, on: bool) -> None:
        """Data off stops all connectivity (VEH-6); on connects again."""
        if on == self.data_on:
            return
        self.data_on = on
        if on:
            await self.start()
        else:
            await self.stop()

    # --- in-car ID login (VEH-7, VEH-8) ------------------------------------------------------------------

    async def _ask_id_login(self, request: IdLoginRequest, timeout: float) -> IdLoginReply:
        future: asyncio.Future[IdLoginReply] = asyncio.get_running_loop().create_future()
        self._id_replies[request.id] = future
        self.id_login_requests.append(request)
        try:
            await self._publish(kinds.UP_ID_LOGIN, request)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._id_replies.pop(request.id, None)

    def _local_refusal(self, action: str, code: str, message: str) -> IdLoginReply:
        """An answer the car gives itself, without asking the cloud (guest mode)."""
        return IdLoginReply.model_validate(
            {"request_id": uuid.uuid4().hex, "action": action, "ok": False, "error": code, "message": message}
        )

    async def start_with_key(self, key: str, timeout: float = 10.0) -> Occupant:
        """The car starts with `key`: the ID it remembers is resumed from the cloud (current profile and
        service settings); a guest's key, or a login the cloud has ended, gives guest mode."""
        token = self.id_login.insert_key(key)
        if token is not None:
            reply = await self._ask_id_login(
                IdLoginRequest(id=uuid.uuid4().hex, action="resume", token=token, at=self.now()), timeout
            )
            if reply.ok:
                self.id_login.logged_in(reply)
            else:
                self.id_login.login_ended(reply.message)
        return self.id_login.occupant

    async def log_in_id(
        self, email: str, password: str, security_code: str | None = None, timeout: float = 10.0
    ) -> IdLoginReply:
        """A person types their ID (and, if they are not a user of the car, its security code)."""
        reply = await self._ask_id_login(
            IdLoginRequest(
                id=uuid.uuid4().hex,
                action="login",
                email=email,
                password=password,
                security_code=security_code,
                at=self.now(),
            ),
            timeout,
        )
        if reply.ok:
            self.id_login.logged_in(reply)
        return reply

    async def adjust_cabin(self, timeout: float = 10.0, **values: Any) -> IdLoginReply | None:
        """Seat, mirror, steering or climate set in the car; kept for a logged-in ID, not for a guest."""
        changed = self.id_login.adjust_cabin(**values)
        token = self.id_login.occupant.token
        if token is None:
            return None  # REQ: VEH-7 — guest mode: nothing is sent to or kept in the cloud
        return await self._save(token, {"profile": changed}, timeout)

    async def change_service_settings(self, timeout: float = 10.0, **lists: list[str]) -> IdLoginReply:
        """Favourites, radio stations or weather places changed in the car (each list given in full)."""
        token = self.id_login.occupant.token
        if token is None:
            return self._local_refusal(
                "save", GUEST_NOT_SAVED, "Personal services need an ID: log in to keep favourites."
            )
        changed = self.id_login.change_services(**lists)
        return await self._save(token, {"services": changed}, timeout)

    async def _save(self, token: str, fields: dict[str, Any], timeout: float) -> IdLoginReply:
        request = IdLoginRequest.model_validate(
            {"id": uuid.uuid4().hex, "action": "save", "token": token, "at": self.now(), **fields}
        )
        reply = await self._ask_id_login(request, timeout)
        if reply.ok:
            self.id_login.logged_in(reply)
        elif reply.error == "login_ended":
            self.id_login.login_ended(reply.message)
        return reply

    async def request_timer(self, timeout: float = 10.0) -> IdLoginReply:
        """A person sets a departure or climate timer in the car; the cloud decides for an ID (VEH-8)."""
        token = self.id_login.occupant.token
        if token is None:
            return self._local_refusal("timer", GUEST_NO_TIMERS, "Timers need an ID: log in to set a timer.")
        request = IdLoginRequest(id=uuid.uuid4().hex, action="timer", token=token, at=self.now())
        reply = await self._ask_id_login(request, timeout)
        if not reply.ok and reply.error == "login_ended":
            self.id_login.login_ended(reply.message)
        return reply

    async def log_out_id(self, timeout: float = 10.0) -> IdLoginReply | None:
        """Logging out in the car ends the car's login; the key is a guest's from now on."""
        token = self.id_login.occupant.token
        self.id_login.logged_out()
        if token is None:
            return None
        request = IdLoginRequest(id=uuid.uuid4().hex, action="logout", token=token, at=self.now())
        return await self._ask_id_login(request, timeout)


def _touched(kind: CommandType) -> frozenset[str]:
    return {
        CommandType.LOCK: frozenset({"lock", "doors"}),
        CommandType.UNLOCK: frozenset({"lock", "doors"}),
        CommandType.CLIMATE_START: frozenset({"climate"}),
        CommandType.CLIMATE_STOP: frozenset({"climate"}),
        CommandType.DIRECT_CHARGING_START: frozenset({"charging"}),
        CommandType.DIRECT_CHARGING_STOP: frozenset({"charging"}),
        CommandType.CHARGE_TARGET: frozenset({"charging"}),
        CommandType.REMOTE_ACCESS_RESET: frozenset({"remote_access"}),
    }.get(kind, frozenset())
