"""The sale of a car and the buyer's way to an ID: the invitation, asking for it again, registering
(ACC-2, ACC-3, ACC-4), and the dealer's view of its sales.

A registration link is a random token mailed once; only its SHA-256 hash is stored. A link works once
and until it expires; a resend makes a new link and the older one stops working. Whether an address is
invited is never told to someone asking for the mail again: the answer is always the same.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from babel.dates import format_date
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.db.base import utcnow
from carlink.errors import CarlinkError, Conflict, Forbidden, NotFound, TooManyRequests
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.i18n import BABEL_LOCALES, N_, _
from carlink.identity import service as identity
from carlink.identity.models import Account, Invitation, InvitationRequest
from carlink.notify import service as notify
from carlink.partners import service as partners
from carlink.partners.models import Partner, Sale
from carlink.protocol.catalogue import ModelProfile, profile
from carlink.settings import Settings

EXPIRED = "invitation_expired"
USED = "invitation_used"
# REQ: ACC-4 — the same sentence whether or not the address is invited.
RESEND_ANSWER = N_(
    "If this address has an invitation waiting, a new registration mail is on its way. Look in your spam "
    "folder too. No mail within a few minutes? Ask your dealer."
)


class InvitationGone(CarlinkError):
    """A link that worked once: used, expired, replaced by a newer one or withdrawn (ACC-4)."""

    status = 410
    code = EXPIRED


@dataclass(frozen=True)
class SaleInput:
    """What the dealer types into the sale form (ACC-2)."""

    vin: str
    model_key: str
    variant_code: str
    model_year: int
    colour: str
    buyer_email: str
    buyer_name: str
    buyer_country: str
    language: str
    delivery_date: dt.date | None


@dataclass(frozen=True)
class SaleOutcome:
    sale: Sale
    vehicle: Vehicle
    # The buyer had an ID: the car is theirs at once, no invitation.
    buyer: Account | None
    invitation: Invitation | None


@dataclass(frozen=True)
class SaleRow:
    """One sale in the dealer console, with the state of its invitation."""

    sale: Sale
    vehicle: Vehicle
    invitation: Invitation | None
    state: str  # registered, invited, expired, cancelled


# --- recording a sale (ACC-2) ------------------------------------------------------------------------------


def vehicle_name(vehicle: Vehicle) -> str:
    if vehicle.custom_name:
        return vehicle.custom_name
    model = profile(vehicle.model_key)
    try:
        return model.variant(vehicle.variant_code).name
    except KeyError:
        return model.line


def _checked_model(model_key: str, variant_code: str) -> ModelProfile:
    try:
        model = profile(model_key)
    except KeyError:
        raise CarlinkError("choose the car's model from the list", code="invalid_model") from None
    try:
        model.variant(variant_code)
    except KeyError:
        raise CarlinkError(
            "choose a variant of the %(model)s from the list",
            code="invalid_variant",
            model=f"{model.line} {_(model.generation)}",
        ) from None
    return model


def _language(raw: str) -> str:
    language = raw.strip().lower()
    if language not in i18n.LANGUAGES:
        raise CarlinkError("choose English, German or Japanese", code="invalid_language")
    return language


async def record_sale(
    session: AsyncSession, settings: Settings, partner: Partner, recorded_by: Account, entered: SaleInput
) -> SaleOutcome:
    """REQ: ACC-2 — the dealer records a sale: the car is registered if it is new, and the buyer is
    invited at once (before delivery), or, with an ID already, gets the car in their garage at once. A used
    car changes owner when the buyer has an ID (now, or when they register)."""
    vin = garage.checked_vin(entered.vin)
    model = _checked_model(entered.model_key, entered.variant_code)
    email = identity.normalise_email(entered.buyer_email)
    name = entered.buyer_name.strip()
    if not name or len(name) > 120:
        raise CarlinkError("enter the buyer's name (at most 120 characters)", code="invalid_name")
    found_country = await partners.country(session, entered.buyer_country)
    if found_country is None:
        raise CarlinkError("choose the buyer's country from the list", code="invalid_country")
    country = found_country.code
    language = _language(entered.language)
    if await identity.find_account(session, email) is None:
        # A deleted ID keeps its address until its erasure is completed: an invitation could not be used.
        await identity.check_email_free(session, email)
    vehicle = await garage.vehicle_by_vin(session, vin)
    if vehicle is not None:
        # Sales and registrations of one car take turns (PostgreSQL row lock; SQLite writers take turns).
        vehicle = await garage.lock_vehicle(session, vehicle)
    if vehicle is not None and not await _may_sell(session, partner, vehicle):
        # A used car changes owner only through a dealer that serves it, or once its owner has removed it
        # from their profile (ACC-6); to any other dealer it is as unknown as a VIN that does not exist.
        raise NotFound(
            "no vehicle %(vin)s among the cars you serve; its owner removes it from their profile first, or "
            "the dealer who serves it records the sale",
            code="vehicle_not_found",
            vin=vin,
        )
    if vehicle is None and not entered.model_year:
        raise CarlinkError("enter the car's model year", code="invalid_year")
    if vehicle is None:
        vehicle = await garage.register_vehicle(
            session,
            vin=vin,
            model_key=model.key,
            variant_code=entered.variant_code,
            model_year=entered.model_year,
            country=country,
            color=entered.colour.strip()[:40],
        )
        from carlink.partners import recalls  # partners builds on identity

        await recalls.match_new_vehicle(session, vehicle)  # PAR-3: open campaigns that affect it
    elif vehicle.model_key != model.key:
        raise Conflict(
            "%(vin)s is registered as a %(model)s; check the VIN and the model",
            code="vehicle_mismatch",
            vin=vin,
            model=profile(vehicle.model_key).line,
        )
    # Before anything is written: a refusal keeps what the unit of work wrote.
    if await _recent_same_sale(session, partner.id, vehicle.id, email):
        raise Conflict(
            "this sale was recorded a moment ago; look at the customer's page before recording it again",
            code="sale_exists",
        )
    # A car sold again before the earlier buyer registered: that earlier link must not give it away.
    await session.execute(
        update(Invitation)
        .where(
            Invitation.sale_id.in_(select(Sale.id).where(Sale.vehicle_id == vehicle.id)),
            Invitation.used_at.is_(None),
            Invitation.cancelled_at.is_(None),
        )
        .values(cancelled_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    sale = Sale(
        partner_id=partner.id,
        vehicle_id=vehicle.id,
        buyer_email=email,
        buyer_name=name,
        delivery_date=entered.delivery_date,
        recorded_by=recorded_by.id,
    )
    session.add(sale)
    await session.flush()
    buyer = await identity.find_account(session, email)
    if buyer is not None and buyer.email_verified_at is not None:
        # The bad-input case of the issue: the buyer has an ID already; no invitation, the car is theirs.
        # Only for an address the ID has proven to read: anyone could self-register someone else's address.
        await give_car(session, settings, sale, vehicle, buyer, partner)
        return SaleOutcome(sale, vehicle, buyer, None)
    invitation = await _invite(session, settings, sale, vehicle, partner, country=country, language=language)
    return SaleOutcome(sale, vehicle, None, invitation)


async def _may_sell(session: AsyncSession, partner: Partner, vehicle: Vehicle) -> bool:
    from carlink.partners import dealers  # partners builds on identity

    has_owner = bool(await garage.main_users(session, {vehicle.id}))
    return not has_owner or await dealers.serves_vehicle(session, partner.id, vehicle.id)


async def _recent_same_sale(session: AsyncSession, partner_id: int, vehicle_id: int, email: str) -> bool:
    """A double-submitted sale form: the same car to the same buyer by the same dealer minutes ago."""
    since = utcnow() - dt.timedelta(minutes=10)
    found = await session.scalar(
        select(Sale.id).where(
            Sale.partner_id == partner_id,
            Sale.vehicle_id == vehicle_id,
            Sale.buyer_email == email,
            Sale.sold_at >= since,
        )
    )
    return found is not None


async def give_car(
    session: AsyncSession, settings: Settings, sale: Sale, vehicle: Vehicle, buyer: Account, partner: Partner
) -> None:
    """The buyer with an ID becomes the car's main user (a change of owner for a used car) and is told."""
    left = await garage.hand_over(session, vehicle, buyer)
    sale.buyer_account_id = buyer.id
    await _tell_those_who_left(session, vehicle, left)
    link = f"/vehicles/{vehicle.vin}"
    await notify.send_email(
        session,
        to=buyer.email,
        language=buyer.locale,
        template="vehicle_added",
        context={
            "name": buyer.display_name or sale.buyer_name or buyer.email,
            "dealer_name": partner.name,
            "vehicle_name": vehicle_name(vehicle),
            "vin": vehicle.vin,
            "link": f"{settings.base_url}{link}",
        },
        dedupe_key=f"sale-{sale.id}-vehicle-added",
        account_id=buyer.id,
        link=link,
    )


async def _tell_those_who_left(session: AsyncSession, vehicle: Vehicle, account_ids: list[int]) -> None:
    for account_id in account_ids:
        person = await session.get(Account, account_id)
        language = person.locale if person is not None else None
        await notify.notify(
            session,
            account_id=account_id,
            kind="vehicle_left",
            title=i18n.translate(
                language,
                N_("%(car)s (%(vin)s) has a new owner and has left your profile"),
                car=vehicle_name(vehicle),
                vin=vehicle.vin,
            ),
            body=i18n.translate(
                language, N_("The car was sold. Its remaining contracts stay with the car for the new owner.")
            ),
            dedupe_key=f"vehicle-{vehicle.id}-left-{account_id}-{utcnow().isoformat()}",
        )


async def _invite(
    session: AsyncSession,
    settings: Settings,
    sale: Sale,
    vehicle: Vehicle,
    partner: Partner,
    *,
    country: str,
    language: str,
) -> Invitation:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    invitation = Invitation(
        token_hash=identity.token_hash(token),
        sale_id=sale.id,
        partner_id=partner.id,
        email=sale.buyer_email,
        country=country,
        language=language,
        created_at=now,
        expires_at=now + dt.timedelta(days=settings.invitation_days),
    )
    session.add(invitation)
    await session.flush()
    from carlink.partners.booking import zone_of  # partners builds on identity

    # The last day the link works, as the buyer's calendar shows it.
    last_day = invitation.expires_at.astimezone(zone_of(country)).date()
    expires = format_date(last_day, format="long", locale=BABEL_LOCALES[language])
    await notify.send_email(
        session,
        to=sale.buyer_email,
        language=language,
        template="invitation",
        context={
            "name": sale.buyer_name or sale.buyer_email,
            "dealer_name": partner.name,
            "vehicle_name": vehicle_name(vehicle),
            "vin": vehicle.vin,
            "link": f"{settings.base_url}/register/{token}",
            "resend_link": f"{settings.base_url}/register/resend",
            "expires": expires,
        },
        dedupe_key=f"invitation-{invitation.id}",
    )
    return invitation


# --- the dealer's sales, resend and withdraw (ACC-4) -------------------------------------------------------


async def _latest_invitation(session: AsyncSession, sale_id: int) -> Invitation | None:
    found: Invitation | None = await session.scalar(
        select(Invitation).where(Invitation.sale_id == sale_id).order_by(Invitation.id.desc()).limit(1)
    )
    return found


def _state(sale: Sale, invitation: Invitation | None, now: dt.datetime) -> str:
    if sale.buyer_account_id is not None:
        return "registered"
    if invitation is None or invitation.cancelled_at is not None:
        return "cancelled"
    if invitation.expires_at <= now:
        return "expired"
    return "invited"


async def sales_of(session: AsyncSession, partner_id: int, *, email: str | None = None) -> list[SaleRow]:
    """The dealer's sales, newest first, each with its latest invitation, in one query."""
    latest = (
        select(Invitation.sale_id, func.max(Invitation.id).label("invitation_id"))
        .group_by(Invitation.sale_id)
        .subquery()
    )
    query = (
        select(Sale, Vehicle, Invitation)
        .join(Vehicle, Vehicle.id == Sale.vehicle_id)
        .outerjoin(latest, latest.c.sale_id == Sale.id)
        .outerjoin(Invitation, Invitation.id == latest.c.invitation_id)
        .where(Sale.partner_id == partner_id)
    )
    if email is not None:
        query = query.where(Sale.buyer_email == email)
    rows = (await session.execute(query.order_by(Sale.id.desc()))).all()
    now = utcnow()
    return [
        SaleRow(sale, vehicle, invitation, _state(sale, invitation, now))
        for sale, vehicle, invitation in rows
    ]


async def own_sale(session: AsyncSession, partner_id: int, sale_id: int) -> Sale:
    """A sale of this dealer; another dealer's sale is as unknown as one that does not exist."""
    sale = await session.get(Sale, sale_id) if 0 < sale_id < 2**31 else None
    if sale is None or sale.partner_id != partner_id:
        raise NotFound("there is no such sale of yours", code="sale_not_found")
    return sale


async def resend(session: AsyncSession, settings: Settings, partner_id: int, sale_id: int) -> Invitation:
    """REQ: ACC-4 — the dealer sends the registration mail again: a new link, and the older one stops."""
    sale = await own_sale(session, partner_id, sale_id)
    if sale.buyer_account_id is not None:
        raise Conflict("the buyer has an ID already; the car is in their garage", code="already_registered")
    current = await _latest_invitation(session, sale.id)
    if current is None:
        raise Conflict("this sale has no invitation to send", code="invitation_not_found")
    if current.cancelled_at is not None:
        raise Conflict("this invitation was withdrawn", code="invitation_cancelled")
    return await _replace(session, settings, sale, current)


async def _replace(session: AsyncSession, settings: Settings, sale: Sale, current: Invitation) -> Invitation:
    current.replaced_at = utcnow()
    vehicle = await session.get(Vehicle, sale.vehicle_id)
    partner = await session.get(Partner, sale.partner_id)
    assert vehicle is not None and partner is not None
    return await _invite(
        session, settings, sale, vehicle, partner, country=current.country, language=current.language
    )


async def withdraw(session: AsyncSession, partner_id: int, sale_id: int) -> None:
    """The dealer takes an invitation back (a sale recorded by mistake): its link stops working."""
    sale = await own_sale(session, partner_id, sale_id)
    current = await _latest_invitation(session, sale.id)
    if current is None or current.used_at is not None or sale.buyer_account_id is not None:
        raise Conflict("the buyer has registered already", code="already_registered")
    current.cancelled_at = current.cancelled_at or utcnow()


async def ask_again(session: AsyncSession, settings: Settings, raw_email: str) -> None:
    """REQ: ACC-4 — the person asks for the registration mail again. Always the same answer, whether or
    not the address is invited; at most `invitation_requests_per_hour` asks per address and hour."""
    email = identity.normalise_email(raw_email)
    now = utcnow()
    asked = await session.scalar(
        select(func.count()).where(
            InvitationRequest.email == email, InvitationRequest.at > now - dt.timedelta(hours=1)
        )
    )
    if (asked or 0) >= settings.invitation_requests_per_hour:
        raise TooManyRequests(
            "you have asked for this mail several times within the hour; please wait a while and look in "
            "your spam folder too",
            retry_after=3600,
            code="resend_limited",
        )
    session.add(InvitationRequest(email=email, at=now))
    await session.flush()
    current = await session.scalar(
        select(Invitation)
        .where(
            Invitation.email == email,
            Invitation.used_at.is_(None),
            Invitation.replaced_at.is_(None),
            Invitation.cancelled_at.is_(None),
        )
        .order_by(Invitation.id.desc())
        .limit(1)
    )
    if current is None:
        return
    sale = await session.get(Sale, current.sale_id)
    if sale is None or sale.buyer_account_id is not None:
        return
    await _replace(session, settings, sale, current)


# --- registering from the link (ACC-3) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Welcome:
    """What the registration page shows for a valid link."""

    invitation: Invitation
    sale: Sale
    vehicle: Vehicle
    dealer: Partner
    partners: list[Partner]


async def open_invitation(session: AsyncSession, token: str) -> Welcome:
    """The invitation behind a link, if it still works; 410 with a clear reason otherwise (ACC-4)."""
    invitation = await session.scalar(
        select(Invitation).where(Invitation.token_hash == identity.token_hash(token))
    )
    if invitation is None:
        raise NotFound(
            "this registration link is not known; check that you copied it whole", code="invitation_not_found"
        )
    if invitation.used_at is not None:
        raise InvitationGone(
            "this registration link has been used already; sign in with your ID instead", code=USED
        )
    if invitation.replaced_at is not None:
        raise InvitationGone(
            "a newer registration link was sent; use the link in the latest mail", code=EXPIRED
        )
    if invitation.cancelled_at is not None:
        raise InvitationGone("this registration link was withdrawn; ask your dealer", code=EXPIRED)
    if invitation.expires_at <= utcnow():
        raise InvitationGone("this registration link has expired; ask for a new one below", code=EXPIRED)
    sale = await session.get(Sale, invitation.sale_id)
    dealer = await session.get(Partner, invitation.partner_id)
    vehicle = await session.get(Vehicle, sale.vehicle_id) if sale is not None else None
    if sale is None or dealer is None or vehicle is None:
        raise InvitationGone("this registration link was withdrawn; ask your dealer", code=EXPIRED)
    return Welcome(invitation, sale, vehicle, dealer, await partners.partners_in(session, invitation.country))


@dataclass(frozen=True)
class Choices:
    """What the person enters on the registration page."""

    display_name: str
    password: str
    password_again: str
    partner_id: int
    policy_accepted: bool
    consent: bool
    # The policy version the form showed; the acceptance names it (PRV-1). None: the latest.
    policy_version: int | None = None


async def _check_choices(session: AsyncSession, choices: Choices, country: str) -> Partner:
    if len(choices.display_name.strip()) > 120:
        raise CarlinkError("a name has at most 120 characters", code="invalid_name")
    if choices.password != choices.password_again:
        raise CarlinkError("the two passwords are not the same", code="passwords_differ")
    identity.check_password_rules(choices.password)
    chosen = next(
        (p for p in await partners.partners_in(session, country) if p.id == choices.partner_id), None
    )
    if chosen is None:
        raise CarlinkError("choose your preferred partner from the list", code="invalid_partner")
    if not choices.policy_accepted:
        raise CarlinkError("please accept the privacy policy to create your ID", code="policy_not_accepted")
    from carlink.privacy import service as privacy  # privacy builds on identity

    latest = await privacy.latest_policy(session)
    if choices.policy_version is not None and choices.policy_version != latest.version:
        # REQ: PRV-1 — the acceptance must name the text the person was shown.
        raise CarlinkError(
            "the privacy policy changed while you were filling in the form; please read the new version and "
            "tick the box again",
            code="policy_changed",
        )
    return chosen


async def _record_choices(
    session: AsyncSession, account: Account, partner: Partner, consent: bool, policy_version: int | None
) -> None:
    """REQ: PAR-1, PRV-1, PRV-2 — the preferred partner, the policy accepted and the consent (or not)."""
    from carlink.privacy import service as privacy  # privacy builds on identity

    await partners.choose_partner(session, account.id, partner.id)
    await privacy.record_registration_choices(
        session, account.id, policy_version=policy_version, partner_id=partner.id, consent=consent
    )


async def accept(session: AsyncSession, token: str, choices: Choices) -> tuple[Account, Vehicle]:
    """REQ: ACC-3 — the buyer creates their ID from the link: the car becomes theirs (a change of owner
    for a used car), the sale names them, and the link is spent. A second submit of the same link (a double
    click, a second tab) finds it claimed and creates nothing."""
    welcome = await open_invitation(session, token)
    invitation = welcome.invitation
    partner = await _check_choices(session, choices, invitation.country)
    if await identity.find_account(session, invitation.email) is not None:
        raise Conflict(
            "this address has a carlink ID already: sign in with it, then open the link again to add the car",
            code="sign_in_to_add_car",
        )
    await identity.check_email_free(session, invitation.email)
    await _claim(session, invitation)
    account = await identity.create_account(
        session,
        email=invitation.email,
        password=choices.password,
        country=invitation.country,
        display_name=choices.display_name.strip() or welcome.sale.buyer_name,
        locale=invitation.language,
        email_verified=True,
    )
    await _take_the_car(session, welcome, account)
    await _record_choices(session, account, partner, choices.consent, choices.policy_version)
    return account, welcome.vehicle


async def claim_with_id(session: AsyncSession, token: str, account: Account) -> Vehicle:
    """The invited address has an ID already (self-registered, say): signed in with it, the person uses the
    link, which proves they read the mailbox too, and the car becomes theirs."""
    welcome = await open_invitation(session, token)
    if account.email != welcome.invitation.email:
        raise Forbidden(
            "this link was sent to another address; sign in with the ID of that address", code="wrong_id"
        )
    await _claim(session, welcome.invitation)
    if account.email_verified_at is None:
        account.email_verified_at = utcnow()
    await _take_the_car(session, welcome, account)
    return welcome.vehicle


async def _claim(session: AsyncSession, invitation: Invitation) -> None:
    """Spends the link in one conditional UPDATE: of two submits at once, exactly one gets it."""
    claimed: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        update(Invitation)
        .where(
            Invitation.id == invitation.id,
            Invitation.used_at.is_(None),
            Invitation.replaced_at.is_(None),
            Invitation.cancelled_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise InvitationGone(
            "this registration link has been used already; sign in with your ID instead", code=USED
        )


async def _take_the_car(session: AsyncSession, welcome: Welcome, account: Account) -> None:
    await garage.lock_vehicle(session, welcome.vehicle)
    welcome.invitation.account_id = account.id
    left = await garage.hand_over(session, welcome.vehicle, account)
    await _tell_those_who_left(session, welcome.vehicle, left)
    welcome.sale.buyer_account_id = account.id


async def register_self(
    session: AsyncSession, settings: Settings, *, email: str, country: str, language: str, choices: Choices
) -> Account:
    """REQ: ACC-3 — self-registration, only in the countries configured for it; the same choices as from
    an invitation, without a car; the ID speaks `language` (the page's)."""
    country = identity.check_self_registration(settings, country)
    partner = await _check_choices(session, choices, country)
    account = await identity.register(
        session,
        settings,
        email=email,
        password=choices.password,
        country=country,
        display_name=choices.display_name.strip(),
        locale=language,
    )
    await _record_choices(session, account, partner, choices.consent, choices.policy_version)
    return account
