"""Car security for the people of a car (SEC-1, SEC-3, SEC-4): what the portal page and the app API show and
the use cases behind their forms.

Every user of the car sees the package, its activation states, the mode in force and the SOC's contacts;
only the main user changes the SOC's number, sets or ends a mode and downloads the certificate (secondary
users: 403 `owner_only`); anyone else gets the same 404 as for a VIN that does not exist. A use case that
changes the car's security set answers the car to publish after the commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.clock import clock
from carlink.errors import Conflict, Forbidden
from carlink.garage import service as garage
from carlink.garage.service import GarageEntry
from carlink.identity.models import Account
from carlink.security import activations, modes
from carlink.security.certificate import CertificateData, package_name, render_pdf
from carlink.security.contacts import SocContact, contact_out, soc_contact
from carlink.security.models import DriverCard, SecurityModePeriod, TrackingActivation
from carlink.security.rules import DRIVER_CARD_PACKAGE, MODE_LONGEST, ActivationState

VERIFY_PATH = "/certificates/verify"
# How long each mode may last, in hours: the forms' bounds (SEC-3; rules.MODE_LONGEST decides).
MODE_HOURS = {kind: int(longest / dt.timedelta(hours=1)) for kind, longest in MODE_LONGEST.items()}
# The steps the owner follows, in order, with the activation's field that dates each (SEC-4).
STEPS = (
    (ActivationState.ORDERED, "ordered_at"),
    (ActivationState.INSTALLING, "installing_at"),
    (ActivationState.TEST_PASSED, "test_passed_at"),
    (ActivationState.ACTIVE, "activated_at"),
)


@dataclass(frozen=True)
class Step:
    state: str
    at: dt.datetime | None


@dataclass(frozen=True)
class SecurityView:
    entry: GarageEntry
    activation: TrackingActivation | None
    mode: SecurityModePeriod | None
    recent_modes: list[SecurityModePeriod]
    contact: SocContact
    driver_cards: int = 0  # the car's registered (not revoked) driver cards

    @property
    def steps(self) -> list[Step]:
        found = self.activation
        return [Step(state.value, getattr(found, field) if found else None) for state, field in STEPS]

    @property
    def live(self) -> bool:
        return self.activation is not None and self.activation.ended_at is None

    @property
    def phone_missing(self) -> bool:
        """After a change of hands the number was the seller's: the new main user is asked for theirs."""
        return self.live and self.activation is not None and not self.activation.phone

    @property
    def cards_missing(self) -> bool:
        """REQ: SEC-2 — tracking plus knows no driver card yet: the car raises no `no_driver_card` alarm
        until a dealer registers one (docs/protocol.md), so the owner is told to have them registered."""
        found = self.activation
        return (
            self.live and found is not None and found.package == DRIVER_CARD_PACKAGE and not self.driver_cards
        )

    @property
    def certificate_ready(self) -> bool:
        found = self.activation
        return found is not None and found.state == ActivationState.ACTIVE and bool(found.certificate_number)


async def security_view(session: AsyncSession, account: Account, vin: str) -> SecurityView:
    """REQ: SEC-1, SEC-4 — for every user of the car; the SOC's contacts with a package or without."""
    entry = await garage.garage_entry(session, account, vin)
    vehicle_id = entry.vehicle.id
    return SecurityView(
        entry=entry,
        activation=await activations.latest(session, vehicle_id),
        mode=await modes.in_force(session, vehicle_id, clock.now()),
        recent_modes=await modes.recent(session, vehicle_id),
        contact=soc_contact(entry.vehicle.country),
        driver_cards=await _driver_cards(session, vehicle_id),
    )


async def _driver_cards(session: AsyncSession, vehicle_id: int) -> int:
    found = await session.scalar(
        select(func.count()).where(DriverCard.vehicle_id == vehicle_id, DriverCard.revoked_at.is_(None))
    )
    return int(found or 0)


async def owner_entry(session: AsyncSession, account: Account, vin: str) -> GarageEntry:
    entry = await garage.garage_entry(session, account, vin)
    if not entry.is_main_user:
        raise Forbidden("Only the car's main user can change its security settings.", code="owner_only")
    return entry


async def change_phone(session: AsyncSession, account: Account, vin: str, phone: str) -> TrackingActivation:
    """REQ: SEC-1 — the main user gives the SOC another number."""
    entry = await owner_entry(session, account, vin)
    return await activations.change_phone(session, entry.vehicle.id, phone, account_id=account.id)


async def set_mode(session: AsyncSession, account: Account, vin: str, kind: str, hours: int) -> int:
    """REQ: SEC-3 — service or transport mode for `hours`; answers the car whose set to publish."""
    entry = await owner_entry(session, account, vin)
    await modes.set_mode(session, entry.vehicle.id, kind, hours, account_id=account.id)
    return entry.vehicle.id


async def end_mode(session: AsyncSession, account: Account, vin: str) -> tuple[int, bool]:
    """REQ: SEC-3 — ends the mode in force early; (car, whether a mode was in force)."""
    entry = await owner_entry(session, account, vin)
    return entry.vehicle.id, await modes.end_mode(session, entry.vehicle.id, account_id=account.id)


async def certificate(session: AsyncSession, account: Account, vin: str, base_url: str) -> tuple[str, bytes]:
    """REQ: SEC-4 — the insurer's PDF for the main user, once the package is active (409 `not_active`
    before); answers the file name and the document."""
    entry = await owner_entry(session, account, vin)
    found = await activations.live(session, entry.vehicle.id)
    if (
        found is None
        or found.state != ActivationState.ACTIVE
        or found.certificate_number is None
        or found.verification_code is None
        or found.activated_at is None
    ):
        raise Conflict(
            "The certificate can be downloaded once the package is fully active.", code="not_active"
        )
    data = CertificateData(
        vin=entry.vehicle.vin,
        model=f"{entry.model.line} {entry.variant.name}".strip(),
        package=found.package,
        activated_at=found.activated_at,
        number=found.certificate_number,
        code=found.verification_code,
        verify_url=f"{base_url.rstrip('/')}{VERIFY_PATH}",
    )
    # Printed in the owner's profile language (the request's when the profile names none we speak).
    language = i18n.supported(account.locale) or i18n.current()
    return f"carlink-certificate-{found.certificate_number}.pdf", render_pdf(data, language)


# --- JSON --------------------------------------------------------------------------------------------------


def mode_out(period: SecurityModePeriod, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": period.id,
        "kind": period.kind,
        "starts_at": period.starts_at,
        "until": period.until,
        "ended_at": period.ended_at,
        "in_force": period.ended_at is None and period.starts_at <= now < period.until,
        "set_by_dealer": period.partner_id is not None,
    }


def activation_out(view: SecurityView) -> dict[str, Any] | None:
    found = view.activation
    if found is None:
        return None
    main = view.entry.is_main_user
    return {
        "package": found.package,
        "package_name": package_name(found.package),
        "state": found.state,
        "steps": [{"state": step.state, "at": step.at} for step in view.steps],
        "ended_at": found.ended_at,
        # The number is the main user's own; a secondary user sees only whether one is given.
        "phone": (found.phone or None) if main else None,
        "phone_missing": view.phone_missing,
        "driver_cards_missing": view.cards_missing,
        "certificate_number": found.certificate_number if main else None,
        "certificate_available": view.certificate_ready and main,
    }


def view_out(view: SecurityView) -> dict[str, Any]:
    now = clock.now()
    return {
        "vin": view.entry.vehicle.vin,
        "can_change": view.entry.is_main_user,
        "activation": activation_out(view),
        "mode": mode_out(view.mode, now) if view.mode else None,
        "recent_modes": [mode_out(period, now) for period in view.recent_modes],
        "mode_limits_hours": MODE_HOURS,
        "soc": contact_out(view.contact),
    }
