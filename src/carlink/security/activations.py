"""Tracking activations, from the concluded order to the insurer's certificate (SEC-1, SEC-4).

`ordered` when the contract is concluded, `installing` once the car applied a security set naming the
package, `test_passed` when its test alarm reached the SOC, `active` when a SOC operator confirmed it with the
customer, `ended` when its contract ends (docs/security.md). The phone number the SOC calls is the buyer's;
after a change of hands it is cleared (empty) until the new main user gives theirs. The activation keeps who
gave the number (`phone_account_id`): their export and erasure take it, not the contract buyer's (PRV-5).

The certificate (SEC-4) is issued with the confirmation: a random number (`CL-` + 10 digits) and a random
12-character verification code. The code is stored as it is, not hashed: the owner may download the
certificate again at any time and it must carry the same code, and the code is no secret of the customer's
(it is printed on the paper handed to an insurer; a check reveals only package, date and the VIN's end).
Guessing is throttled per source address instead (`verify`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import add_unique, utcnow
from carlink.errors import CarlinkError, Conflict, NotFound, TooManyRequests
from carlink.garage.models import Vehicle
from carlink.identity.models import LoginFailure
from carlink.security import config
from carlink.security.models import TrackingActivation
from carlink.security.rules import PACKAGES, ActivationState, may_step

# REQ: SEC-1 — what the SOC dials: an international (E.164-like) number, 7 to 15 digits.
_PHONE_CHARS = re.compile(r"^\+?[0-9][0-9 \-]*$")
PHONE_DIGITS = (7, 15)
# Unambiguous letters and digits (no 0/O, 1/I/L): a code read off paper is typed back without guessing.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12
CERTIFICATE_DIGITS = 10
# SEC-4: a verification page must not become an oracle: few wrong pairs per source address per window.
VERIFY_FAILURES_PER_WINDOW = 10
VERIFY_WINDOW = dt.timedelta(minutes=10)
# The car's clock and the cloud's may differ a little: before the car reported the set, a test alarm this
# much older than the order counts (after the report any test alarm does: `test_alarm_received`).
TEST_CLOCK_TOLERANCE = dt.timedelta(minutes=5)
PACKAGE_RUNNING = "tracking_package_running"


async def live(session: AsyncSession, vehicle_id: int) -> TrackingActivation | None:
    """The car's activation that has not ended, if any (at most one: a partial unique index)."""
    result: TrackingActivation | None = await session.scalar(
        select(TrackingActivation).where(
            TrackingActivation.vehicle_id == vehicle_id, TrackingActivation.ended_at.is_(None)
        )
    )
    return result


async def order(
    session: AsyncSession,
    *,
    vehicle_id: int,
    contract_id: int,
    package: str,
    phone: str,
    account_id: int | None = None,
) -> TrackingActivation:
    """REQ: SEC-1 — a concluded tracking contract starts its activation with the number `account_id` gave
    (the buyer, who typed it into the cart); None when no person is known to have given it (PRV-5: no
    export or erasure then finds the number). A car has one tracking package at a time: the store refuses a
    second while one runs (`refuse_while_running`), and the partial unique index guards against a race past
    that check. Either way this raises `tracking_package_running`, and the caller must roll its unit of work
    back whole (`store.contracts.conclude` does, and refunds)."""
    existing = await session.scalar(
        select(TrackingActivation).where(TrackingActivation.contract_id == contract_id)
    )
    if existing is not None:
        return existing
    if await live(session, vehicle_id) is not None:
        raise package_running()
    activation = TrackingActivation(
        vehicle_id=vehicle_id,
        contract_id=contract_id,
        package=package,
        phone=phone,
        phone_account_id=account_id if phone else None,
    )
    if not await add_unique(session, activation):  # PostgreSQL: another conclusion won the race
        raise package_running()
    await config.bump(session, vehicle_id)
    return activation


def package_running(*, in_cart: bool = False) -> Conflict:
    """REQ: SEC-1 — `tracking_package_running`: what the owner does instead (end the running one first)."""
    if in_cart:
        return Conflict(
            "Your cart already holds a tracking package, and a car has one at a time. End the running "
            "package first — withdraw within 14 days of buying it, or let it run out — then buy the other.",
            code=PACKAGE_RUNNING,
        )
    return Conflict(
        "This car already has a tracking package, and a car has one at a time. End the running package first "
        "— withdraw within 14 days of buying it, or let it run out — then buy the other.",
        code=PACKAGE_RUNNING,
    )


async def refuse_while_running(session: AsyncSession, vehicle_id: int) -> None:
    """REQ: SEC-1 — a tracking package cannot be bought while the car has one that has not ended: buying
    the same again would end the paid one, and another package would leave two contracts for one car."""
    if await live(session, vehicle_id) is not None:
        raise package_running()


async def car_applied(
    session: AsyncSession, vehicle_id: int, package: str | None, activation_id: int | None
) -> None:
    """The car reported a security set naming `package` of this activation: an ordered activation is
    installing. A report of an earlier activation's set (the same package bought before) does not count."""
    activation = await live(session, vehicle_id)
    if (
        activation is not None
        and activation.id == activation_id
        and activation.package == package
        and activation.state == ActivationState.ORDERED
    ):
        _step(activation, ActivationState.INSTALLING)


async def test_alarm_received(
    session: AsyncSession, vehicle_id: int, at: dt.datetime | None = None
) -> TrackingActivation | None:
    """REQ: SEC-4 — the car's test alarm reached the SOC; None when it does not count.

    Once the car reported applying this activation's set (`installing`), any test alarm counts, whatever
    its clock says: the car raises one after that install, and a car whose clock runs behind (a slow RTC, or
    one reset when the battery was disconnected) would otherwise never pass. Before that report (`ordered`:
    the alarm may overtake the report), `at` — when the car raised it, by its own clock — tells a re-send of
    an earlier package's test alarm (after an outage): one raised more than TEST_CLOCK_TOLERANCE before the
    order does not count."""
    activation = await live(session, vehicle_id)
    if activation is None:
        return None
    ordered = activation.state == ActivationState.ORDERED
    if ordered and at is not None and at < activation.ordered_at - TEST_CLOCK_TOLERANCE:
        return None
    if activation.state == ActivationState.ORDERED:
        _step(activation, ActivationState.INSTALLING)
    if activation.state == ActivationState.INSTALLING:
        _step(activation, ActivationState.TEST_PASSED)
    return activation


async def awaiting_confirmation(session: AsyncSession) -> list[TrackingActivation]:
    """Activations whose test alarm came: the SOC confirms them with the customer."""
    rows = await session.scalars(
        select(TrackingActivation)
        .where(TrackingActivation.state == ActivationState.TEST_PASSED, TrackingActivation.ended_at.is_(None))
        .order_by(TrackingActivation.test_passed_at, TrackingActivation.id)
    )
    return list(rows)


async def confirm(session: AsyncSession, activation_id: int, soc_account_id: int) -> TrackingActivation:
    """REQ: SEC-4 — the SOC confirmed the activation with the customer: it is active."""
    activation = await session.get(TrackingActivation, activation_id, with_for_update=True)
    if activation is None:
        raise NotFound("there is no such activation", code="activation_not_found")
    if activation.state == ActivationState.ACTIVE:
        return activation
    if not may_step(activation.state, ActivationState.ACTIVE):
        raise Conflict(
            "an activation that is %(state)s cannot be confirmed",
            code="activation_not_ready",
            state=activation.state,
        )
    if not activation.phone:  # REQ: SEC-4 — the welcome call needs a number (cleared at a change of hands)
        raise Conflict(
            "There is no phone number for this activation (the car changed hands): the welcome call cannot "
            "be made. The car's main user gives their number on the Car security page; confirm after the "
            "call.",
            code="phone_missing",
        )
    _step(activation, ActivationState.ACTIVE)
    activation.activated_by = soc_account_id
    await _issue_certificate(session, activation)  # REQ: SEC-4
    return activation


async def end_for_contract(session: AsyncSession, contract_id: int) -> bool:
    """The contract ended (expired, withdrawn): so does its activation, and the car's set changes; True
    when it did (the caller publishes the set after the commit)."""
    activation = await session.scalar(
        select(TrackingActivation).where(
            TrackingActivation.contract_id == contract_id, TrackingActivation.ended_at.is_(None)
        )
    )
    if activation is None:
        return False
    _step(activation, ActivationState.ENDED)
    await config.bump(session, activation.vehicle_id)
    return True


def needs_phone(service_code: str) -> bool:
    """REQ: SEC-1 — the tracking packages ask for the number the SOC calls; nothing else does."""
    return service_code in PACKAGES


def checked_phone(raw: str | None) -> str:
    """REQ: SEC-1 — the one check of a number the SOC calls, wherever it is typed (the store's cart, the
    owner's API and page, the SOC's call log): normalised to `+` and digits (digits only when given without
    `+`); `invalid_phone` otherwise. Spaces and dashes are how people write numbers; anything else is a
    typing error."""
    text = (raw or "").strip()
    digits = re.sub(r"[ \-]", "", text)
    low, high = PHONE_DIGITS
    if not _PHONE_CHARS.match(text) or not low <= len(digits.lstrip("+")) <= high:
        raise CarlinkError(
            "Please give a phone number with %(low)s to %(high)s digits, like +49 711 555 0100.",
            code="invalid_phone",
            status=422,
            low=low,
            high=high,
        )
    return digits


async def change_phone(
    session: AsyncSession, vehicle_id: int, raw: str, *, account_id: int
) -> TrackingActivation:
    """REQ: SEC-1 — the main user (`account_id`) gives the SOC another number (or theirs, after a change of
    hands); from now on it is theirs in an export or erasure (PRV-5)."""
    phone = checked_phone(raw)
    activation = await live(session, vehicle_id)
    if activation is None:
        raise Conflict("This car has no tracking package.", code="no_package")
    activation.phone = phone
    activation.phone_account_id = account_id
    return activation


async def forget_phone(session: AsyncSession, vehicle_id: int) -> None:
    """The car changed hands (or its main user left it): the number is the seller's, so the SOC must not
    call it; the new main user is asked for theirs on the Car security page."""
    activation = await live(session, vehicle_id)
    if activation is not None:
        activation.phone = ""
        activation.phone_account_id = None


async def latest(session: AsyncSession, vehicle_id: int) -> TrackingActivation | None:
    """The activation to show: the live one, or the last that ended (so the owner sees it ended)."""
    found: TrackingActivation | None = await session.scalar(
        select(TrackingActivation)
        .where(TrackingActivation.vehicle_id == vehicle_id)
        .order_by(TrackingActivation.ended_at.is_(None).desc(), TrackingActivation.id.desc())
        .limit(1)
    )
    return found


# --- the certificate (SEC-4) -------------------------------------------------------------------------------


async def _issue_certificate(session: AsyncSession, activation: TrackingActivation) -> None:
    """A random number nobody can count through, unique (checked, and guarded by the unique index), and a
    random code. Kept when the activation is confirmed twice."""
    if activation.certificate_number is not None:
        return
    while True:
        number = f"CL-{secrets.randbelow(10**CERTIFICATE_DIGITS):0{CERTIFICATE_DIGITS}d}"
        taken = await session.scalar(
            select(TrackingActivation.id).where(TrackingActivation.certificate_number == number)
        )
        if taken is None:
            break
    activation.certificate_number = number
    activation.verification_code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def grouped_code(code: str) -> str:
    """The code as printed: three groups of four, easier to read out and type."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def _typed_number(raw: str) -> str:
    return re.sub(r"\s", "", raw).upper()[:20]


def _typed_code(raw: str) -> str:
    return re.sub(r"[\s\-]", "", raw).upper()[:40]


@dataclass(frozen=True)
class Verification:
    """What the public page may say: valid or not and, for a valid pair, the package, the activation date
    and the VIN's last 6 characters. `ended_at` is set for a genuine certificate whose package ended."""

    valid: bool
    package: str = ""
    activated_at: dt.datetime | None = None
    vin_end: str = ""
    ended_at: dt.datetime | None = None


async def verify(session: AsyncSession, number: str, code: str, *, source: str) -> Verification:
    """REQ: SEC-4 — the insurer's check. A wrong code and an unknown number get the same answer (and take
    the same work), and every wrong pair counts against the source address; past the limit the page waits
    (`too_many_verifications`). Runs in a unit of work that commits on refusal, so counts stay."""
    now = utcnow()
    key = f"certificate:{source}"[:64]
    failures = await session.scalar(
        select(func.count()).where(LoginFailure.source == key, LoginFailure.at >= now - VERIFY_WINDOW)
    )
    if (failures or 0) >= VERIFY_FAILURES_PER_WINDOW:
        raise TooManyRequests(
            "Too many wrong certificate numbers or codes from your network; please wait a few minutes.",
            retry_after=int(VERIFY_WINDOW.total_seconds()),
            code="too_many_verifications",
        )
    found = await session.scalar(
        select(TrackingActivation).where(TrackingActivation.certificate_number == _typed_number(number))
    )
    stored = found.verification_code if found is not None and found.verification_code else "-" * CODE_LENGTH
    matches = hmac.compare_digest(stored.encode(), _typed_code(code).encode())
    if found is None or not matches or found.activated_at is None:
        session.add(LoginFailure(source=key, at=now))
        await session.flush()
        return Verification(valid=False)
    vehicle = await session.get(Vehicle, found.vehicle_id)
    vin_end = vehicle.vin[-6:] if vehicle is not None else ""
    return Verification(
        valid=found.ended_at is None,
        package=found.package,
        activated_at=found.activated_at,
        vin_end=vin_end,
        ended_at=found.ended_at,
    )


def _step(activation: TrackingActivation, target: ActivationState, now: dt.datetime | None = None) -> None:
    if not may_step(activation.state, target):
        raise Conflict(
            "an activation that is %(state)s cannot become %(target)s",
            state=activation.state,
            target=target.value,
        )
    at = now or utcnow()
    activation.state = target.value
    stamp = {
        ActivationState.INSTALLING: "installing_at",
        ActivationState.TEST_PASSED: "test_passed_at",
        ActivationState.ACTIVE: "activated_at",
        ActivationState.ENDED: "ended_at",
    }[target]
    setattr(activation, stamp, at)
