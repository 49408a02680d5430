"""Use cases of remote services: send a command, the PIN challenge, acks from the car, expiry, wake-up."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.db.base import utcnow
from carlink.errors import CarlinkError, Conflict, Forbidden, Locked, NotFound, TooManyRequests, Unauthorised
from carlink.garage.models import Vehicle
from carlink.garage.service import GarageEntry
from carlink.identity.models import Account
from carlink.identity.service import check_secret
from carlink.protocol.catalogue import CLOUD_COMMANDS
from carlink.protocol.messages import Ack, Command, CommandType
from carlink.protocol.signing import Signed, public_key_text, sign_command
from carlink.remote.models import AuditEntry, CommandSigningKey, PinChallenge, RemoteCommand, WakeUp
from carlink.remote.rules import CommandState, can_move
from carlink.settings import Settings

CHALLENGE_SECONDS = 120
REMOTE_SERVICES = frozenset(CommandType) - CLOUD_COMMANDS


class CommandSigner:
    """The fleet's Ed25519 key, loaded from the database so every instance signs with the same key."""

    def __init__(self) -> None:
        self.kid = ""
        self._key: Ed25519PrivateKey | None = None
        self.public_keys: dict[str, str] = {}

    async def load(self, session: AsyncSession) -> None:
        rows = list(await session.scalars(select(CommandSigningKey).order_by(CommandSigningKey.created_at)))
        if not any(row.retired_at is None for row in rows):
            rows.append(await self.rotate(session))
        self.public_keys = {row.kid: row.public_key for row in rows}
        current = next(row for row in reversed(rows) if row.retired_at is None)
        self.kid = current.kid
        self._key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(current.private_key))

    async def rotate(self, session: AsyncSession) -> CommandSigningKey:
        key = Ed25519PrivateKey.generate()
        for old in await session.scalars(
            select(CommandSigningKey).where(CommandSigningKey.retired_at.is_(None))
        ):
            old.retired_at = utcnow()
        row = CommandSigningKey(
            kid=f"fleet-{uuid.uuid4().hex[:8]}",
            private_key=base64.b64encode(
                key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            ).decode(),
            public_key=public_key_text(key.public_key()),
        )
        session.add(row)
        await session.flush()
        return row

    def sign(self, message: Signed) -> Signed:
        if self._key is None:
            raise RuntimeError("CommandSigner.load() was not called")
        return sign_command(message.model_copy(update={"kid": self.kid}), self._key)


def checked_params(entry: GarageEntry, kind: CommandType, raw: dict[str, Any]) -> dict[str, Any]:
    """Validates what a command carries; the car checks again."""
    if kind is CommandType.HONK_FLASH:
        mode = str(raw.get("mode", "HONK_AND_FLASH")).upper()
        if mode not in ("HONK_AND_FLASH", "FLASH"):
            raise CarlinkError("mode is HONK_AND_FLASH or FLASH", code="invalid_parameters")
        return {"mode": mode}
    if kind is CommandType.CLIMATE_START:
        try:
            temperature = round(float(raw.get("target_temperature_c", 21.0)), 1)
        except (TypeError, ValueError) as exc:
            raise CarlinkError("target_temperature_c is a number", code="invalid_parameters") from exc
        if not 15.0 <= temperature <= 30.0:
            raise CarlinkError("target temperature is between 15 and 30 °C", code="invalid_parameters")
        zones = raw.get("zones") or {}
        if not isinstance(zones, dict) or not all(isinstance(v, bool) for v in zones.values()):
            raise CarlinkError("zones maps seat zones to true or false", code="invalid_parameters")
        return {"target_temperature_c": temperature, "zones": {str(k): v for k, v in zones.items()}}
    if kind is CommandType.CHARGE_TARGET:
        soc = raw.get("target_soc")
        if not isinstance(soc, int) or isinstance(soc, bool) or not 25 <= soc <= 100:
            raise CarlinkError("target_soc is a whole percentage from 25 to 100", code="invalid_parameters")
        return {"target_soc": soc}
    return {}


def _require_remote_access(entry: GarageEntry) -> None:
    vehicle = entry.vehicle
    if not entry.is_main_user:
        # REQ: VEH-4 — remote access is for the main user only.
        raise Forbidden("remote services are for the vehicle's main user", code="main_user_only")
    if vehicle.privacy_mode:
        # REQ: VEH-6
        raise Conflict("privacy mode is on in the car, so remote services are off", code="privacy_mode")
    if entry.model.remote_access_authorisation_required and not vehicle.remote_access_authorised:
        # REQ: VEH-5
        raise Conflict(
            "remote access is not authorised in the car; enable it in the car's connect settings",
            code="remote_access_not_authorised",
        )


def _require_online(entry: GarageEntry) -> None:
    vehicle = entry.vehicle
    if not vehicle.online:
        if vehicle.last_seen_at is None:
            raise Conflict(
                "the vehicle is offline and has never been seen; try again when it has a data connection",
                code="vehicle_offline",
            )
        raise Conflict(
            "the vehicle is offline (last seen %(seen)s); try again when it has a data connection",
            code="vehicle_offline",
            seen=i18n.datetime(vehicle.last_seen_at, "short", "UTC") + " UTC",
        )


async def send_command(
    session: AsyncSession,
    settings: Settings,
    signer: CommandSigner,
    entry: GarageEntry,
    account: Account,
    kind: CommandType,
    params: dict[str, Any],
    *,
    channel: str,
) -> RemoteCommand:
    """Records and signs a remote command; the caller publishes it after the commit."""
    if kind not in REMOTE_SERVICES:
        raise CarlinkError("%(kind)s is not a remote service", code="unknown_command", kind=kind.value)
    if kind not in entry.model.commands(entry.variant.engine):
        raise CarlinkError(
            "%(car)s does not support %(command)s",
            code="not_supported",
            car=entry.variant.name,
            command=kind.value,
        )
    _require_remote_access(entry)
    _require_online(entry)
    checked = checked_params(entry, kind, params)
    await _limit_commands(session, settings, entry, account)
    return await _record(session, settings, signer, entry.vehicle, account, kind, checked, channel)


async def _limit_commands(
    session: AsyncSession, settings: Settings, entry: GarageEntry, account: Account
) -> None:
    """At most `commands_per_vehicle` remote services from one ID to one car per window, on every channel
    (API, portal, compatibility facade): a runaway script must not drain the car's battery or flood its link
    (issue 9)."""
    wait = await _window_wait(
        session,
        entry,
        RemoteCommand.created_at,
        [
            RemoteCommand.vehicle_id == entry.vehicle.id,
            RemoteCommand.account_id == account.id,
            RemoteCommand.type != CommandType.WAKE.value,
        ],
        limit=settings.commands_per_vehicle,
        seconds=settings.command_window_seconds,
    )
    if wait is not None:
        raise TooManyRequests(
            "too many remote commands for this car; try again in %(seconds)s s",
            retry_after=wait,
            code="command_rate_limited",
            seconds=wait,
        )


async def _window_wait(
    session: AsyncSession,
    entry: GarageEntry,
    created_at: Any,
    conditions: list[Any],
    *,
    limit: int,
    seconds: int,
) -> int | None:
    """Seconds until one more request fits a sliding window of `limit` per `seconds`, or None if it fits now.
    Counted in the database, so every api instance sees the same count; the person's membership of the car
    is locked first, so parallel requests of one ID for one car count one after another (PostgreSQL; SQLite
    has one writer anyway) and none slips past the limit."""
    await session.refresh(entry.membership, with_for_update=True)
    now = utcnow()
    window = dt.timedelta(seconds=seconds)
    recent = list(
        await session.scalars(
            select(created_at)
            .where(*conditions, created_at > now - window)
            .order_by(created_at.desc())
            .limit(limit)
        )
    )
    if len(recent) < limit:
        return None
    return _seconds_until(recent[-1] + window, now)


def _seconds_until(moment: dt.datetime, now: dt.datetime) -> int:
    return max(1, int((moment - now).total_seconds()) + 1)


async def _record(
    session: AsyncSession,
    settings: Settings,
    signer: CommandSigner,
    vehicle: Vehicle,
    account: Account | None,
    kind: CommandType,
    params: dict[str, Any],
    channel: str,
) -> RemoteCommand:
    now = utcnow()
    command_id = str(uuid.uuid4())
    expires = now + dt.timedelta(seconds=settings.command_ttl_seconds)
    envelope = signer.sign(
        Command(
            id=command_id,
            vin=vehicle.vin,
            type=kind,
            params=params,
            issued_at=now,
            expires_at=expires,
            kid=signer.kid,
        )
    )
    row = RemoteCommand(
        id=command_id,
        vehicle_id=vehicle.id,
        account_id=account.id if account else None,
        type=kind.value,
        params=params,
        channel=channel,
        created_at=now,
        expires_at=expires,
        envelope=envelope.model_dump(mode="json"),
    )
    session.add(row)
    session.add(
        AuditEntry(
            account_id=row.account_id,
            vehicle_id=row.vehicle_id,
            action="command.accepted",
            detail={"command_id": command_id, "type": kind.value, "params": params, "channel": channel},
        )
    )
    await session.flush()
    return row


async def get_command(session: AsyncSession, entry: GarageEntry, command_id: str) -> RemoteCommand:
    row = await session.get(RemoteCommand, command_id) if len(command_id) <= 36 else None
    if row is None or row.vehicle_id != entry.vehicle.id:
        raise NotFound("no such command for this vehicle", code="command_not_found")
    return row


async def recent_commands(session: AsyncSession, entry: GarageEntry, limit: int = 20) -> list[RemoteCommand]:
    rows = await session.scalars(
        select(RemoteCommand)
        .where(
            RemoteCommand.vehicle_id == entry.vehicle.id,
            RemoteCommand.type.not_in([c.value for c in CLOUD_COMMANDS]),
        )
        .order_by(RemoteCommand.created_at.desc())
        .limit(limit)
    )
    return list(rows)


async def audit_trail(session: AsyncSession, entry: GarageEntry, limit: int = 100) -> list[AuditEntry]:
    """Who did what to this vehicle and what came of it; for the main user only."""
    if not entry.is_main_user:
        raise Forbidden("only the main user sees the vehicle's audit log", code="main_user_only")
    rows = await session.scalars(
        select(AuditEntry)
        .where(AuditEntry.vehicle_id == entry.vehicle.id)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    return list(rows)


async def apply_ack(session: AsyncSession, vehicle_id: int, ack: Ack) -> RemoteCommand | None:
    """Moves a command along its lifecycle; acks for other cars' or finished commands change nothing."""
    # Gateways sharing the cars' uplinks (MQTT 5 shared subscriptions) may apply one command's 'delivered'
    # and 'performed' at the same moment: the row lock makes the later wait and read the other's state, so a
    # late 'delivered' never overwrites 'performed' (seen in benchmarks/scale_out.py). SQLite ignores it.
    row = await session.get(RemoteCommand, ack.command_id, with_for_update=True)
    if row is None or row.vehicle_id != vehicle_id:
        return None
    target = CommandState(ack.state.value)
    if not can_move(row.state, target):
        return None
    row.state = target.value
    now = utcnow()
    if target is CommandState.DELIVERED:
        row.delivered_at = now
    else:
        row.finished_at = now
        row.reason = ack.reason
        if row.delivered_at is None:
            row.delivered_at = now
        session.add(
            AuditEntry(
                account_id=row.account_id,
                vehicle_id=vehicle_id,
                action=f"command.{target.value}",
                detail={"command_id": row.id, "type": row.type, "reason": ack.reason},
            )
        )
    return row


async def expire_due(session: AsyncSession) -> list[RemoteCommand]:
    now = utcnow()
    rows = list(
        await session.scalars(
            select(RemoteCommand)
            .where(
                RemoteCommand.state.in_([CommandState.ACCEPTED.value, CommandState.DELIVERED.value]),
                RemoteCommand.expires_at <= now,
            )
            # Locked, so an outcome being applied right now is not overwritten with 'expired'; a row an ack
            # holds is skipped and, if still unfinished, expired in the next round.
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.state = CommandState.EXPIRED.value
        row.finished_at = now
        row.reason = "the car did not answer in time"
        session.add(
            AuditEntry(
                account_id=row.account_id,
                vehicle_id=row.vehicle_id,
                action="command.expired",
                detail={"command_id": row.id, "type": row.type},
            )
        )
    return rows


async def due_for_resend(session: AsyncSession, first_after: dt.timedelta) -> list[RemoteCommand]:
    """Unfinished commands to re-send (same id, same signature) after broker or network trouble: the car
    executes a command once and answers a repeat with its recorded outcome. Re-sends back off: after
    `first_after`, then twice as long each time (3, 6, 12, 24, 48 s)."""
    now = utcnow()
    rows = await session.scalars(
        select(RemoteCommand).where(
            RemoteCommand.state.in_([CommandState.ACCEPTED.value, CommandState.DELIVERED.value]),
            RemoteCommand.created_at <= now - first_after,
            RemoteCommand.expires_at > now,
        )
    )
    due = [row for row in rows if now - row.created_at >= first_after * 2**row.publish_count]
    for row in due:
        row.publish_count += 1
    return due


# --- security PIN (RMT-1: unlock) -------------------------------------------------------------------------


def spin_hash(pin: str, challenge: str) -> str:
    """The client's answer to a challenge: SHA-512 over the bytes of hex(pin + challenge), upper case."""
    return hashlib.sha512(bytes.fromhex(pin + challenge)).hexdigest().upper()


def _check_pin_lock(account: Account) -> None:
    if account.pin_locked_until and account.pin_locked_until > utcnow():
        minutes = int((account.pin_locked_until - utcnow()).total_seconds() // 60) + 1
        locked = Locked(
            "the security PIN is locked after repeated wrong entries; try again in %(minutes)s minutes",
            code="pin_locked",
            minutes=minutes,
        )
        locked.headers["Retry-After"] = str(_seconds_until(account.pin_locked_until, utcnow()))
        raise locked
    if account.pin_hash is None:
        raise CarlinkError("set a security PIN under Login & security first", code="pin_not_set")


async def issue_pin_challenge(
    session: AsyncSession, settings: Settings, entry: GarageEntry, account: Account
) -> PinChallenge:
    _require_remote_access(entry)
    _check_pin_lock(account)
    now = utcnow()
    # Each challenge is one PIN guess: besides the lock after wrong answers, at most
    # `pin_challenges_per_vehicle` per window per ID and car (issue 9).
    wait = await _window_wait(
        session,
        entry,
        PinChallenge.created_at,
        [PinChallenge.vehicle_id == entry.vehicle.id, PinChallenge.account_id == account.id],
        limit=settings.pin_challenges_per_vehicle,
        seconds=settings.pin_challenge_window_seconds,
    )
    if wait is not None:
        raise TooManyRequests(
            "too many PIN challenges for this car; try again in %(seconds)s s",
            retry_after=wait,
            code="pin_rate_limited",
            seconds=wait,
        )
    challenge = PinChallenge(
        id=str(uuid.uuid4()),
        challenge=secrets.token_hex(16).upper(),
        vehicle_id=entry.vehicle.id,
        account_id=account.id,
        created_at=now,
        expires_at=now + dt.timedelta(seconds=CHALLENGE_SECONDS),
    )
    session.add(challenge)
    await session.flush()
    return challenge


async def verify_pin_answer(
    session: AsyncSession,
    settings: Settings,
    entry: GarageEntry,
    account: Account,
    challenge: str,
    answer: str,
) -> None:
    """Consumes the challenge (single use) and checks the answer; wrong answers count towards the lock.

    Only an argon2 hash of the PIN is stored: the 10,000 possible PINs are hashed with the challenge to find
    the one the client used, and that PIN is then checked against the stored hash.
    """
    _check_pin_lock(account)
    row = await session.scalar(
        select(PinChallenge).where(PinChallenge.challenge == challenge.upper()).with_for_update()
    )
    now = utcnow()
    if row is None or row.account_id != account.id or row.vehicle_id != entry.vehicle.id:
        raise Unauthorised("unknown PIN challenge; request a new one", code="invalid_challenge")
    if row.used_at is not None:
        raise Unauthorised("this PIN challenge was used already; request a new one", code="challenge_used")
    if row.expires_at <= now:
        raise Unauthorised("this PIN challenge has expired; request a new one", code="challenge_expired")
    row.used_at = now
    # Bytes, not str: compare_digest refuses non-ASCII text, and any text may arrive here.
    expected = answer.strip().upper().encode()
    pin = next(
        (
            f"{n:04d}"
            for n in range(10_000)
            if hmac.compare_digest(spin_hash(f"{n:04d}", row.challenge).encode(), expected)
        ),
        None,
    )
    assert account.pin_hash is not None
    if pin is None or not await check_secret(account.pin_hash, pin):
        account.pin_failures += 1
        session.add(
            AuditEntry(account_id=account.id, vehicle_id=entry.vehicle.id, action="pin.wrong", detail={})
        )
        if account.pin_failures >= settings.pin_failures_before_lock:
            account.pin_locked_until = now + dt.timedelta(minutes=settings.pin_lock_minutes)
            account.pin_failures = 0
            locked = Locked(
                "wrong security PIN; it is now locked for %(minutes)s minutes",
                code="pin_locked",
                minutes=settings.pin_lock_minutes,
            )
            locked.headers["Retry-After"] = str(settings.pin_lock_minutes * 60)
            raise locked
        left = settings.pin_failures_before_lock - account.pin_failures
        raise Unauthorised(
            "wrong security PIN; %(left)s tries left before it locks", code="wrong_pin", left=left
        )
    account.pin_failures = 0


async def unlock_with_pin(
    session: AsyncSession,
    settings: Settings,
    signer: CommandSigner,
    entry: GarageEntry,
    account: Account,
    pin: str,
    *,
    channel: str,
) -> RemoteCommand:
    """The portal's unlock: the same single-use challenge and lockout, answered on the server side."""
    if not (len(pin) == 4 and pin.isdigit()):
        raise CarlinkError("the security PIN has 4 digits", code="invalid_pin_format")
    challenge = (await issue_pin_challenge(session, settings, entry, account)).challenge
    answer = spin_hash(pin, challenge)
    return await send_unlock(
        session, settings, signer, entry, account, challenge=challenge, answer=answer, channel=channel
    )


async def send_unlock(
    session: AsyncSession,
    settings: Settings,
    signer: CommandSigner,
    entry: GarageEntry,
    account: Account,
    *,
    challenge: str,
    answer: str,
    channel: str,
) -> RemoteCommand:
    _require_remote_access(entry)
    await _limit_commands(session, settings, entry, account)  # before the PIN check's hashing work
    await verify_pin_answer(session, settings, entry, account, challenge, answer)
    return await send_command(
        session, settings, signer, entry, account, CommandType.UNLOCK, {}, channel=channel
    )


async def send_remote_service(
    session: AsyncSession,
    settings: Settings,
    signer: CommandSigner,
    entry: GarageEntry,
    account: Account,
    kind: CommandType,
    params: dict[str, Any],
    *,
    spin: tuple[str, str] | None,
    channel: str,
) -> RemoteCommand:
    """Any remote service; UNLOCK needs `spin`, the (challenge, answer) of a PIN challenge."""
    if kind is not CommandType.UNLOCK:
        return await send_command(session, settings, signer, entry, account, kind, params, channel=channel)
    if spin is None:
        raise CarlinkError("unlocking needs the security PIN: answer a PIN challenge", code="pin_required")
    challenge, answer = spin
    return await send_unlock(
        session, settings, signer, entry, account, challenge=challenge, answer=answer, channel=channel
    )


# --- wake-up (RMT-2) --------------------------------------------------------------------------------------


async def request_wake(
    session: AsyncSession, settings: Settings, signer: CommandSigner, entry: GarageEntry, account: Account
) -> RemoteCommand:
    """Asks the car for its full state now; at most once per interval per vehicle (12 V battery)."""
    if entry.vehicle.privacy_mode and entry.model.privacy_scope.value == "all_services":
        raise Conflict("privacy mode is on in the car", code="privacy_mode")
    _require_online(entry)
    now = utcnow()
    row = await session.get(WakeUp, entry.vehicle.id, with_for_update=True)
    interval = dt.timedelta(seconds=settings.wake_interval_seconds)
    if row is not None and row.last_wake_at + interval > now:
        wait = int((row.last_wake_at + interval - now).total_seconds()) + 1
        raise TooManyRequests(
            "the car was woken moments ago; fresh data again in %(seconds)s s",
            retry_after=wait,
            code="wake_rate_limited",
            seconds=wait,
        )
    if row is None:
        session.add(WakeUp(vehicle_id=entry.vehicle.id, last_wake_at=now))
    else:
        row.last_wake_at = now
    return await _record(session, settings, signer, entry.vehicle, account, CommandType.WAKE, {}, "wake")


async def send_remote_access_resets(
    session: AsyncSession, settings: Settings, signer: CommandSigner, vehicles: list[Vehicle]
) -> list[RemoteCommand]:
    """Tells each car to switch remote access off (VEH-5), unless such a command is on its way already."""
    in_flight = set(
        await session.scalars(
            select(RemoteCommand.vehicle_id).where(
                RemoteCommand.type == CommandType.REMOTE_ACCESS_RESET.value,
                RemoteCommand.state.in_([CommandState.ACCEPTED.value, CommandState.DELIVERED.value]),
            )
        )
    )
    return [
        await _record(session, settings, signer, vehicle, None, CommandType.REMOTE_ACCESS_RESET, {}, "cloud")
        for vehicle in vehicles
        if vehicle.id not in in_flight
    ]
