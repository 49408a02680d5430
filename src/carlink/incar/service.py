"""Use cases of in-car ID login: an ID in a car, its profile and its service settings (VEH-7, VEH-8)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import cast

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.db.base import utcnow
from carlink.errors import CarlinkError, NotFound
from carlink.garage import service as garage
from carlink.garage.models import Vehicle, VehicleUser
from carlink.i18n import N_
from carlink.identity import service as identity
from carlink.identity.models import Account
from carlink.incar import rules
from carlink.incar.models import InCarCodeGuard, InCarLogin, InCarProfile, InCarServiceItem
from carlink.notify import service as notify
from carlink.protocol import catalogue
from carlink.protocol.messages import (
    IdLoginReply,
    IdLoginRequest,
    IdLoginRole,
    IdProfile,
    IdServiceSettings,
)
from carlink.settings import Settings

TOKEN_BYTES = 32


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- the ID's settings ----------------------------------------------------------------------------------


async def profile_of(session: AsyncSession, account_id: int) -> rules.Profile:
    row = await session.get(InCarProfile, account_id)
    if row is None:
        return rules.Profile()
    return rules.Profile(
        seat_position=row.seat_position,
        mirror_position=row.mirror_position,
        steering_position=row.steering_position,
        climate_temperature_c=row.climate_temperature_c,
        climate_mode=row.climate_mode,
    )


async def profile_updated_at(session: AsyncSession, account_id: int) -> dt.datetime | None:
    row = await session.get(InCarProfile, account_id)
    return row.updated_at if row else None


async def save_profile(session: AsyncSession, account_id: int, profile: rules.Profile) -> None:
    """Stores the ID's profile as the car (or a client) sent it; a setting left out keeps its value."""
    row = await session.get(InCarProfile, account_id)
    if row is None:
        row = InCarProfile(account_id=account_id)
        session.add(row)
    for name, value in profile.as_dict().items():
        if value is not None:
            setattr(row, name, value)
    row.updated_at = utcnow()
    await session.flush()


async def service_settings(session: AsyncSession, account_id: int) -> dict[str, list[str]]:
    rows = await session.scalars(
        select(InCarServiceItem)
        .where(InCarServiceItem.account_id == account_id)
        .order_by(InCarServiceItem.kind, InCarServiceItem.position, InCarServiceItem.id)
    )
    settings: dict[str, list[str]] = {kind: [] for kind in rules.SERVICE_LIMITS}
    for row in rows:
        if row.kind in settings:
            settings[row.kind].append(row.label)
    return settings


async def replace_service_settings(
    session: AsyncSession, account_id: int, changes: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Replaces each named kind's list (checked and bounded); kinds not named stay as they are."""
    checked = rules.checked_service_settings(changes)
    for kind, labels in checked.items():
        await session.execute(
            delete(InCarServiceItem).where(
                InCarServiceItem.account_id == account_id, InCarServiceItem.kind == kind
            )
        )
        await session.flush()
        for position, label in enumerate(labels):
            session.add(InCarServiceItem(account_id=account_id, kind=kind, label=label, position=position))
    await session.flush()
    return await service_settings(session, account_id)


async def add_service_item(session: AsyncSession, account_id: int, kind: str, raw: str) -> None:
    label = rules.checked_label(kind, raw)
    current = (await service_settings(session, account_id))[kind]
    if label.casefold() in (known.casefold() for known in current):
        raise CarlinkError("%(label)s is in your list already", code="service_setting_exists", label=label)
    await replace_service_settings(session, account_id, {kind: [*current, label]})


async def remove_service_item(session: AsyncSession, account_id: int, kind: str, label: str) -> None:
    current = (await service_settings(session, account_id)).get(kind)
    if current is None or label not in current:
        raise NotFound("this entry is not in your list", code="service_setting_not_found")
    await replace_service_settings(session, account_id, {kind: [x for x in current if x != label]})


# --- logins in cars -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarLogin:
    """What a car learns at a login or resume: who, as what, and the ID's settings."""

    account_id: int
    email: str
    role: str
    profile: rules.Profile
    services: dict[str, list[str]]
    token: str | None = None


@dataclass(frozen=True)
class LoggedInCar:
    vehicle: Vehicle
    role: str
    since: dt.datetime
    last_used_at: dt.datetime

    @property
    def name(self) -> str:
        """The name the person gave the car, else its model (say "Taycan 4S")."""
        if self.vehicle.custom_name:
            return self.vehicle.custom_name
        try:
            return catalogue.find_variant(self.vehicle.variant_code)[1].name
        except KeyError:
            return self.vehicle.vin


def supports_id_login(vehicle: Vehicle) -> bool:
    return catalogue.profile(vehicle.model_key).in_car_id_login


def _require_id_login(vehicle: Vehicle) -> None:
    if not supports_id_login(vehicle):
        raise CarlinkError("this car has no ID login; use guest mode", code="id_login_unsupported")


async def _membership(session: AsyncSession, vehicle_id: int, account_id: int) -> str | None:
    return await session.scalar(
        select(VehicleUser.role).where(
            VehicleUser.vehicle_id == vehicle_id, VehicleUser.account_id == account_id
        )
    )


async def _check_security_code(session: AsyncSession, vehicle: Vehicle, code: str | None) -> None:
    """The car's security code is its main user's security PIN (VEH-8); wrong codes lock it for a while."""
    if code is None:
        raise CarlinkError(
            "you are not a user of this car: enter its security code to log in as a visitor",
            code="security_code_required",
        )
    now = utcnow()
    guard = await session.get(InCarCodeGuard, vehicle.id, with_for_update=True)
    if guard is None:
        guard = InCarCodeGuard(vehicle_id=vehicle.id, failures=0)
        session.add(guard)
    if rules.code_locked(guard.locked_until, now):
        assert guard.locked_until is not None
        minutes = int((guard.locked_until - now).total_seconds() // 60) + 1
        raise CarlinkError(
            "the security code is locked after repeated wrong entries; try again in %(minutes)s minutes",
            code="security_code_locked",
            minutes=minutes,
        )
    main_id = (await garage.main_users(session, {vehicle.id})).get(vehicle.id)
    main = await session.get(Account, main_id) if main_id is not None else None
    if main is not None and main.pin_hash is not None and await identity.check_secret(main.pin_hash, code):
        guard.failures = 0
        guard.locked_until = None
        return
    guard.failures += 1
    lock_minutes = rules.code_lock_minutes(guard.failures)
    if lock_minutes is not None:
        guard.locked_until = now + dt.timedelta(minutes=lock_minutes)
        if main_id is not None:
            # The owner should know that someone is trying codes in their car.
            await notify.notify(
                session,
                account_id=main_id,
                kind="security_code_locked",
                title=i18n.translate(
                    main.locale if main is not None else None,
                    N_("Wrong security codes were typed into %(vin)s"),
                    vin=vehicle.vin,
                ),
                body=i18n.translate(
                    main.locale if main is not None else None,
                    N_(
                        "After %(failures)s wrong security codes in a row, logging in with the code is "
                        "locked for %(minutes)s minutes. If it was not you or your family, consider a new "
                        "security PIN under Login & security."
                    ),
                    failures=guard.failures,
                    minutes=lock_minutes,
                ),
                link="/account",
                dedupe_key=f"security-code-lock-{vehicle.id}-{guard.failures}-{now.isoformat()}",
            )
        raise CarlinkError(
            "wrong security code; it is now locked for %(minutes)s minutes",
            code="security_code_locked",
            minutes=lock_minutes,
        )
    left = rules.CODE_FAILURES_BEFORE_LOCK - guard.failures % rules.CODE_FAILURES_BEFORE_LOCK
    raise CarlinkError(
        "wrong security code; %(left)s tries left before it locks", code="wrong_security_code", left=left
    )


async def _car_login(session: AsyncSession, account: Account, role: str, token: str | None) -> CarLogin:
    return CarLogin(
        account_id=account.id,
        email=account.email,
        role=role,
        profile=await profile_of(session, account.id),
        services=await service_settings(session, account.id),
        token=token,
    )


async def log_in(
    session: AsyncSession,
    settings: Settings,
    vehicle: Vehicle,
    *,
    email: str,
    password: str,
    security_code: str | None = None,
) -> CarLogin:
    """An ID typed into the car (VEH-7). Users of the car log in as their role; anyone else needs the car's
    security code and logs in as a visitor (VEH-8). Passwords go through the sign-in protection (ACC-7)."""
    _require_id_login(vehicle)
    account = await identity.authenticate(
        session, settings, email=email, password=password, source=f"car:{vehicle.vin}"
    )
    role = await _membership(session, vehicle.id, account.id)
    if role is None:
        await _check_security_code(session, vehicle, security_code)
        role = rules.VISITOR
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    login = await session.scalar(
        select(InCarLogin).where(InCarLogin.vehicle_id == vehicle.id, InCarLogin.account_id == account.id)
    )
    if login is None:
        login = InCarLogin(vehicle_id=vehicle.id, account_id=account.id, created_at=now)
        session.add(login)
    login.token_hash = _token_hash(token)
    login.role = role
    login.last_used_at = now
    await session.flush()
    return await _car_login(session, account, role, token)


async def _login_by_token(session: AsyncSession, vehicle: Vehicle, token: str) -> tuple[InCarLogin, Account]:
    _require_id_login(vehicle)
    login = await session.scalar(
        select(InCarLogin).where(
            InCarLogin.token_hash == _token_hash(token), InCarLogin.vehicle_id == vehicle.id
        )
    )
    account = await session.get(Account, login.account_id) if login is not None else None
    if login is None or account is None or account.deleted_at is not None:
        raise CarlinkError("this login has ended; log in again or drive as a guest", code="login_ended")
    role = await _membership(session, vehicle.id, account.id)
    if role is None and login.role != rules.VISITOR:
        # A user removed from the car keeps no way in without the security code.
        await session.delete(login)
        await session.flush()
        raise CarlinkError("you are no longer a user of this car; log in again", code="login_ended")
    login.role = role or rules.VISITOR
    login.last_used_at = utcnow()
    return login, account


async def resume(session: AsyncSession, vehicle: Vehicle, token: str) -> CarLogin:
    """The car started with a key that remembers an ID: its current profile and service settings."""
    login, account = await _login_by_token(session, vehicle, token)
    return await _car_login(session, account, login.role, None)


async def save_from_car(
    session: AsyncSession,
    vehicle: Vehicle,
    token: str,
    *,
    profile: rules.Profile | None,
    services: dict[str, list[str]] | None,
) -> CarLogin:
    """Settings changed in the car for the logged-in ID are kept in the account (VEH-7)."""
    login, account = await _login_by_token(session, vehicle, token)
    if profile is not None:
        await save_profile(session, account.id, profile)
    if services:
        await replace_service_settings(session, account.id, services)
    return await _car_login(session, account, login.role, None)


async def allow_timer(session: AsyncSession, vehicle: Vehicle, token: str) -> str:
    """Timers (scheduled remote services) need at least a secondary-user assignment (VEH-8)."""
    login, _ = await _login_by_token(session, vehicle, token)
    if not rules.may_use_timers(login.role):
        raise CarlinkError(
            "timers need you to be a user of this car; ask its main user to add you",
            code="timers_need_assignment",
        )
    return login.role


async def log_out_in_car(session: AsyncSession, vehicle: Vehicle, token: str) -> None:
    await session.execute(
        delete(InCarLogin).where(
            InCarLogin.token_hash == _token_hash(token), InCarLogin.vehicle_id == vehicle.id
        )
    )


async def logged_in_cars(session: AsyncSession, account_id: int) -> list[LoggedInCar]:
    rows = await session.execute(
        select(InCarLogin, Vehicle)
        .join(Vehicle, Vehicle.id == InCarLogin.vehicle_id)
        .where(InCarLogin.account_id == account_id)
        .order_by(InCarLogin.last_used_at.desc())
    )
    return [
        LoggedInCar(vehicle=vehicle, role=login.role, since=login.created_at, last_used_at=login.last_used_at)
        for login, vehicle in rows.all()
    ]


async def log_out_of_car(session: AsyncSession, account_id: int, vin: str) -> None:
    """From the portal: the car learns at its next resume that the login ended (VEH-7)."""
    login = await session.scalar(
        select(InCarLogin)
        .join(Vehicle, Vehicle.id == InCarLogin.vehicle_id)
        .where(InCarLogin.account_id == account_id, Vehicle.vin == vin.strip().upper())
    )
    if login is None:
        raise NotFound("you are not logged in to this car", code="in_car_login_not_found")
    await session.delete(login)
    await session.flush()


# --- the ID ends (ACC-5) --------------------------------------------------------------------------------


async def reset_for_account(session: AsyncSession, account_id: int) -> None:
    """ACC-5: the ID was deleted. Its in-car profile and service settings are reset and its logins in cars
    end; each car learns it at its next resume (`login_ended`) and falls back to guest mode."""
    await session.execute(delete(InCarLogin).where(InCarLogin.account_id == account_id))
    await session.execute(delete(InCarProfile).where(InCarProfile.account_id == account_id))
    await session.execute(delete(InCarServiceItem).where(InCarServiceItem.account_id == account_id))
    await session.flush()


# --- the car's requests over MQTT (docs/protocol.md "In-car ID login") -----------------------------------


def _wire_profile(profile: rules.Profile) -> IdProfile:
    return IdProfile.model_validate(profile.as_dict())


def _wire_login(request: IdLoginRequest, login: CarLogin) -> IdLoginReply:
    return IdLoginReply(
        request_id=request.id,
        action=request.action,
        ok=True,
        role=cast(IdLoginRole, login.role),
        email=login.email,
        token=login.token,
        profile=_wire_profile(login.profile),
        services=IdServiceSettings.model_validate(login.services),
    )


async def answer(
    session: AsyncSession, settings: Settings, vehicle: Vehicle, request: IdLoginRequest
) -> IdLoginReply:
    """The cloud's answer to a car's ID login request; a refusal is an answer too, with a stable code."""
    try:
        if request.action == "login":
            assert request.email is not None and request.password is not None
            login = await log_in(
                session,
                settings,
                vehicle,
                email=request.email,
                password=request.password,
                security_code=request.security_code,
            )
            return _wire_login(request, login)
        assert request.token is not None
        if request.action == "resume":
            return _wire_login(request, await resume(session, vehicle, request.token))
        if request.action == "save":
            profile = rules.checked_profile(request.profile.model_dump()) if request.profile else None
            services = (
                {k: v for k, v in request.services.model_dump().items() if v is not None}
                if request.services
                else None
            )
            saved = await save_from_car(session, vehicle, request.token, profile=profile, services=services)
            return _wire_login(request, saved)
        if request.action == "timer":
            role = await allow_timer(session, vehicle, request.token)
            return IdLoginReply(
                request_id=request.id, action=request.action, ok=True, role=cast(IdLoginRole, role)
            )
        await log_out_in_car(session, vehicle, request.token)
        return IdLoginReply(request_id=request.id, action=request.action, ok=True)
    except CarlinkError as refusal:
        return IdLoginReply(
            request_id=request.id,
            action=request.action,
            ok=False,
            error=refusal.code,
            message=refusal.message[:300],
        )


async def end_vehicle_logins(session: AsyncSession, vehicle_id: int) -> None:
    """The car changed hands, left its owner's profile, or its security code changed: every ID logged into
    it (visitors with the old code too) is logged out; the car learns it at its next start."""
    await session.execute(delete(InCarLogin).where(InCarLogin.vehicle_id == vehicle_id))
