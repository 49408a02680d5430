"""Use cases of the garage: vehicles, their users and pairing codes, and the state the car reports."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import add_unique, utcnow
from carlink.errors import CarlinkError, Conflict, Forbidden, NotFound, vehicle_not_found
from carlink.garage.models import Vehicle, VehicleUser
from carlink.i18n import _
from carlink.identity.models import Account
from carlink.identity.service import find_account, set_pin
from carlink.protocol.catalogue import ModelProfile, Variant, profile
from carlink.protocol.vin import InvalidVin, normalise_vin

MAIN = "main"
SECONDARY = "secondary"


@dataclass(frozen=True)
class GarageEntry:
    """A vehicle as one person sees it."""

    vehicle: Vehicle
    membership: VehicleUser

    @property
    def is_main_user(self) -> bool:
        return self.membership.role == MAIN

    @property
    def model(self) -> ModelProfile:
        return profile(self.vehicle.model_key)

    @property
    def variant(self) -> Variant:
        return self.model.variant(self.vehicle.variant_code)


def checked_vin(raw: str) -> str:
    try:
        return normalise_vin(raw)
    except InvalidVin as exc:
        # protocol.vin's own reason is English (the car's side has no catalogue): say it in ours.
        raise CarlinkError(
            "a VIN has 17 characters: digits and capital letters except I, O and Q", code="invalid_vin"
        ) from exc


async def register_vehicle(
    session: AsyncSession,
    *,
    vin: str,
    model_key: str,
    variant_code: str,
    model_year: int,
    country: str = "DE",
    custom_name: str = "",
    color: str = "",
    color_hex: str = "c3cdd3",
) -> Vehicle:
    vin = checked_vin(vin)
    model = profile(model_key)
    model.variant(variant_code)
    first, last = model.years
    # A model year runs at most one calendar year ahead.
    if model_year < first or model_year > min(last or 9999, utcnow().year + 1):
        raise CarlinkError(
            "%(model)s was not built in %(year)s",
            code="invalid_year",
            model=f"{model.line} {_(model.generation)}",
            year=model_year,
        )
    taken = Conflict("vehicle %(vin)s is registered already", code="vehicle_exists", vin=vin)
    if await session.scalar(select(Vehicle.id).where(Vehicle.vin == vin)) is not None:
        raise taken
    vehicle = Vehicle(
        vin=vin,
        model_key=model_key,
        variant_code=variant_code,
        model_year=model_year,
        country=country,
        custom_name=custom_name,
        color=color,
        color_hex=color_hex,
    )
    # Two sales of a new car at once: one registers it, the other is told it exists.
    if not await add_unique(session, vehicle):
        raise taken
    return vehicle


async def _new_pairing_code(session: AsyncSession, vehicle_id: int) -> str:
    taken = set(
        await session.scalars(select(VehicleUser.pairing_code).where(VehicleUser.vehicle_id == vehicle_id))
    )
    while True:
        code = f"{secrets.randbelow(10**8):08d}"
        if code not in taken:
            return code


async def assign_user(
    session: AsyncSession, vehicle: Vehicle, account: Account, role: str, *, pairing_code: str | None = None
) -> VehicleUser:
    """Puts a person on a vehicle (VEH-2) with their own 8-digit pairing code (VEH-3)."""
    if role == MAIN:
        current = await session.scalar(
            select(VehicleUser).where(VehicleUser.vehicle_id == vehicle.id, VehicleUser.role == MAIN)
        )
        if current is not None and current.account_id != account.id:
            raise Conflict("this vehicle has a main user already", code="main_user_exists")
    existing = await session.scalar(
        select(VehicleUser).where(VehicleUser.vehicle_id == vehicle.id, VehicleUser.account_id == account.id)
    )
    if existing is not None:
        return existing
    membership = VehicleUser(
        vehicle_id=vehicle.id,
        account_id=account.id,
        role=role,
        pairing_code=pairing_code or await _new_pairing_code(session, vehicle.id),
    )
    session.add(membership)
    await session.flush()
    return membership


async def garage(session: AsyncSession, account: Account) -> list[GarageEntry]:
    rows = await session.execute(
        select(Vehicle, VehicleUser)
        .join(VehicleUser, VehicleUser.vehicle_id == Vehicle.id)
        .where(VehicleUser.account_id == account.id)
        .order_by(VehicleUser.role, Vehicle.id)
    )
    return [GarageEntry(vehicle, membership) for vehicle, membership in rows.all()]


async def garage_entry(session: AsyncSession, account: Account, raw_vin: str) -> GarageEntry:
    """The vehicle if this person is on it; the same 404 for unknown and foreign VINs."""
    vin = checked_vin(raw_vin)
    row = (
        await session.execute(
            select(Vehicle, VehicleUser)
            .join(VehicleUser, VehicleUser.vehicle_id == Vehicle.id)
            .where(Vehicle.vin == vin, VehicleUser.account_id == account.id)
        )
    ).first()
    if row is None:
        raise vehicle_not_found(vin)
    return GarageEntry(row[0], row[1])


async def users_of(session: AsyncSession, vehicle: Vehicle) -> list[tuple[VehicleUser, Account]]:
    rows = await session.execute(
        select(VehicleUser, Account)
        .join(Account, Account.id == VehicleUser.account_id)
        .where(VehicleUser.vehicle_id == vehicle.id)
        .order_by(VehicleUser.role, Account.email)
    )
    return [(row[0], row[1]) for row in rows.all()]


async def add_secondary_user(session: AsyncSession, entry: GarageEntry, email: str) -> VehicleUser:
    if not entry.is_main_user:
        raise Forbidden("only the main user adds secondary users", code="main_user_only")
    account = await find_account(session, email)
    if account is None:
        raise NotFound("no ID with this email address; the person registers first", code="account_not_found")
    if account.id == entry.membership.account_id:
        raise Conflict("you are the main user of this vehicle", code="already_main_user")
    return await assign_user(session, entry.vehicle, account, SECONDARY)


async def remove_user(session: AsyncSession, entry: GarageEntry, account_id: int) -> None:
    if not entry.is_main_user:
        raise Forbidden("only the main user removes secondary users", code="main_user_only")
    not_found = NotFound("no such secondary user on this vehicle", code="user_not_found")
    if not 0 < account_id < 2**31:  # ids come from URLs; beyond a 32-bit integer the driver would fail
        raise not_found
    membership = await session.scalar(
        select(VehicleUser).where(
            VehicleUser.vehicle_id == entry.vehicle.id,
            VehicleUser.account_id == account_id,
            VehicleUser.role == SECONDARY,
        )
    )
    if membership is None:
        raise not_found
    await session.delete(membership)


async def lock_vehicle(session: AsyncSession, vehicle: Vehicle) -> Vehicle:
    """The vehicle row locked until the unit of work ends, so that changes of its users take turns."""
    locked = await session.get(Vehicle, vehicle.id, with_for_update=True, populate_existing=True)
    assert locked is not None
    return locked


async def vehicle_by_id(session: AsyncSession, vehicle_id: int) -> Vehicle | None:
    return await session.get(Vehicle, vehicle_id)


async def vehicle_by_vin(session: AsyncSession, vin: str) -> Vehicle | None:
    return await session.scalar(select(Vehicle).where(Vehicle.vin == vin))


async def pair_in_car(session: AsyncSession, vehicle: Vehicle, code: str) -> tuple[bool, str | None]:
    """A pairing code typed into the car (VEH-3, VEH-4): (linked, error shown in the car)."""
    membership = await session.scalar(
        select(VehicleUser).where(VehicleUser.vehicle_id == vehicle.id, VehicleUser.pairing_code == code)
    )
    if membership is None:
        return False, "INVALID_CODE"
    if membership.role != MAIN:
        # REQ: VEH-4 — remote access is for the main user; the car shows "no data connection".
        return False, "NO_DATA_CONNECTION"
    membership.paired_at = utcnow()
    return True, None


async def record_connection(
    session: AsyncSession, vehicle: Vehicle, *, online: bool, network: str, at: dt.datetime | None
) -> None:
    vehicle.online = online
    vehicle.network = network if online else "NONE"
    vehicle.last_seen_at = at or utcnow()


async def record_reported_state(
    session: AsyncSession, vehicle: Vehicle, *, privacy_mode: bool | None, remote_access: bool | None
) -> None:
    if privacy_mode is not None:
        vehicle.privacy_mode = privacy_mode
    if remote_access is not None:
        # Until the car has applied a reset of the security code (VEH-5), an older 'authorised' is stale.
        vehicle.remote_access_authorised = remote_access and not vehicle.remote_access_reset_pending


async def change_security_pin(session: AsyncSession, account: Account, *, password: str, pin: str) -> None:
    """Sets the security PIN; resetting an existing one also revokes remote access (VEH-5)."""
    is_reset = account.pin_hash is not None
    await set_pin(session, account, password=password, pin=pin)
    if is_reset:
        from carlink.incar import service as incar  # builds on the garage

        for vehicle in await revoke_remote_access(session, account):
            # Visitors logged in with the old code are logged out (VEH-8).
            await incar.end_vehicle_logins(session, vehicle.id)


async def revoke_remote_access(session: AsyncSession, account: Account) -> list[Vehicle]:
    """The main user's security code was reset: remote access ends on all their cars until it is authorised
    again in each car (VEH-5). The jobs role tells the cars."""
    vehicles = list(
        await session.scalars(
            select(Vehicle)
            .join(VehicleUser, VehicleUser.vehicle_id == Vehicle.id)
            .where(VehicleUser.account_id == account.id, VehicleUser.role == MAIN)
        )
    )
    for vehicle in vehicles:
        vehicle.remote_access_authorised = False
        vehicle.remote_access_reset_pending = True
    return vehicles


async def confirm_remote_access_reset(session: AsyncSession, vehicle_id: int) -> None:
    """The car has switched remote access off after a reset of the security code (VEH-5)."""
    vehicle = await session.get(Vehicle, vehicle_id)
    if vehicle is not None:
        vehicle.remote_access_reset_pending = False


async def vehicles_awaiting_remote_access_reset(session: AsyncSession) -> list[Vehicle]:
    rows = await session.scalars(
        select(Vehicle).where(Vehicle.remote_access_reset_pending.is_(True), Vehicle.online.is_(True))
    )
    return list(rows)


async def main_users(session: AsyncSession, vehicle_ids: set[int]) -> dict[int, int]:
    """vehicle id -> account id of its main user, for the vehicles that have one."""
    if not vehicle_ids:
        return {}
    rows = await session.execute(
        select(VehicleUser.vehicle_id, VehicleUser.account_id).where(
            VehicleUser.vehicle_id.in_(vehicle_ids), VehicleUser.role == MAIN
        )
    )
    return {vehicle_id: account_id for vehicle_id, account_id in rows.all()}


async def main_user_vehicle_ids(session: AsyncSession, account_ids: set[int]) -> set[int]:
    """The vehicles of which one of these people is the main user."""
    if not account_ids:
        return set()
    rows = await session.scalars(
        select(VehicleUser.vehicle_id).where(
            VehicleUser.account_id.in_(account_ids), VehicleUser.role == MAIN
        )
    )
    return set(rows)


# --- change of owner and leaving a car (ACC-2, ACC-5, ACC-6, STO-9) ----------------------------------------


async def hand_over(session: AsyncSession, vehicle: Vehicle, new_owner: Account) -> list[int]:
    """The car has a new main user: everyone else leaves it, their pairing codes with them, and remote
    access authorised in the car for the previous owner ends (the jobs role tells the car, VEH-5).
    Contracts stay with the vehicle (STO-9). Answers the IDs that left the car."""
    memberships = list(await session.scalars(select(VehicleUser).where(VehicleUser.vehicle_id == vehicle.id)))
    left: list[int] = []
    had_other_owner = False
    for membership in memberships:
        if membership.account_id == new_owner.id:
            continue
        had_other_owner = had_other_owner or membership.role == MAIN
        left.append(membership.account_id)
        await session.delete(membership)
    await session.flush()
    if had_other_owner:
        vehicle.remote_access_authorised = False
        vehicle.remote_access_reset_pending = True
        await _forget_previous_owner(session, vehicle.id, left)
    mine = next((m for m in memberships if m.account_id == new_owner.id), None)
    if mine is None:
        await assign_user(session, vehicle, new_owner, MAIN)
    elif mine.role != MAIN:
        # A secondary user who buys the car keeps nothing of that place: a fresh code as main user.
        mine.role = MAIN
        mine.pairing_code = await _new_pairing_code(session, vehicle.id)
        mine.paired_at = None
    return left


async def _forget_previous_owner(session: AsyncSession, vehicle_id: int, leavers: list[int]) -> None:
    """What belonged to the previous owner's time with the car ends with it: logins in the car (including
    visitors who had the old security code), the driver cards registered for it (SEC-2), the leavers'
    future workshop appointments for it (PAR-2), their function orders still waiting for the car and the
    consent to online updates (FOD, OTA-1), and the phone number the SOC would call (SEC-1): the new main
    user gives theirs."""
    from carlink.fod import functions  # these domains build on the garage
    from carlink.incar import service as incar
    from carlink.partners import booking
    from carlink.security import activations
    from carlink.security import service as security

    await incar.end_vehicle_logins(session, vehicle_id)
    await functions.forget_previous_owner(session, vehicle_id, leavers)
    await security.revoke_cards_of_vehicle(session, vehicle_id)
    await activations.forget_phone(session, vehicle_id)
    await booking.release_for_leavers(session, vehicle_id, leavers)


async def leave_vehicle(session: AsyncSession, entry: GarageEntry) -> list[int]:
    """REQ: ACC-6 — the main user removes the car from the profile (the secondary users leave with them;
    contracts stay with the car, STO-9); a secondary user removes only themself. The ID stays."""
    query = select(VehicleUser).where(VehicleUser.vehicle_id == entry.vehicle.id)
    if not entry.is_main_user:
        query = query.where(VehicleUser.id == entry.membership.id)
    memberships = list(await session.scalars(query))
    for membership in memberships:
        await session.delete(membership)
    if entry.is_main_user:
        entry.vehicle.remote_access_authorised = False
        entry.vehicle.remote_access_reset_pending = True
        await _forget_previous_owner(session, entry.vehicle.id, [m.account_id for m in memberships])
    await session.flush()
    return [membership.account_id for membership in memberships]


async def leave_all_vehicles(session: AsyncSession, account: Account) -> list[str]:
    """REQ: ACC-5 — a deleted ID leaves every car at once: its pairing codes go, and remote access
    authorised for it in its own cars ends. The people it shared a car with keep their places. Answers
    the VINs."""
    from carlink.incar import service as incar  # builds on the garage

    vins = []
    for entry in await garage(session, account):
        if entry.is_main_user:
            entry.vehicle.remote_access_authorised = False
            entry.vehicle.remote_access_reset_pending = True
            # Visitors let in with this person's security code are logged out of the car (VEH-8).
            await incar.end_vehicle_logins(session, entry.vehicle.id)
        await session.delete(entry.membership)
        vins.append(entry.vehicle.vin)
    await session.flush()
    return vins
