"""Use cases of the ID: register, sign in with guessing protection, sessions, password and PIN."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.db.base import add_unique, utcnow
from carlink.errors import CarlinkError, Conflict, Forbidden, Locked, TooManyRequests, Unauthorised
from carlink.identity.captcha import LIFETIME as CAPTCHA_LIFETIME
from carlink.identity.captcha import check_captcha, token_nonce
from carlink.identity.models import (
    Account,
    LoginFailure,
    RefreshToken,
    SpentCaptcha,
    StaffRole,
    WebSession,
)
from carlink.settings import Settings

_hasher = PasswordHasher()
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PIN = re.compile(r"^[0-9]{4}$")
SESSION_DAYS = 14
MIN_PASSWORD = 8


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


async def check_secret(stored: str, secret: str) -> bool:
    """verify_secret off the event loop: argon2 takes tens of milliseconds of CPU on purpose, which would
    otherwise stall every other request and MQTT uplink meanwhile."""
    return await asyncio.to_thread(verify_secret, stored, secret)


def verify_secret(stored: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise CarlinkError("enter a valid email address", code="invalid_email")
    return email


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise CarlinkError(
            "a password needs at least %(count)s characters", code="weak_password", count=MIN_PASSWORD
        )
    if len(password) > 256:
        raise CarlinkError("a password has at most 256 characters", code="weak_password")


async def find_account(session: AsyncSession, email: str) -> Account | None:
    try:
        email = normalise_email(email)
    except CarlinkError:
        return None
    return await session.scalar(select(Account).where(Account.email == email, Account.deleted_at.is_(None)))


async def create_account(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    country: str,
    display_name: str = "",
    pin: str | None = None,
    locale: str = "en",
    hashes: tuple[str, str | None] | None = None,
    email_verified: bool = False,
) -> Account:
    """`hashes` (of password and PIN, made earlier by hash_secret) spares the argon2 work where many IDs
    share one password, as in the demo world."""
    email = normalise_email(email)
    check_password_rules(password)
    if await session.scalar(select(Account.id).where(Account.email == email)) is not None:
        raise Conflict("an ID with this email address exists already", code="email_taken")
    account = Account(
        email=email,
        password_hash=hashes[0] if hashes else hash_secret(password),
        country=country.upper(),
        display_name=display_name,
        locale=locale,
        email_verified_at=utcnow() if email_verified else None,
    )
    if pin is not None:
        account.pin_hash = hashes[1] if hashes and hashes[1] else hash_secret(_checked_pin(pin))
    # Two registrations of one address at once (a double click): one ID, and the other is told.
    if not await add_unique(session, account):
        raise Conflict("an ID with this email address exists already", code="email_taken")
    return account


async def register(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    country: str,
    display_name: str,
    locale: str,
) -> Account:
    """Self-registration, only in countries configured for it (ACC-3); elsewhere a dealer invites. The ID
    speaks `locale` (the language the person registered in) until they choose another."""
    country = check_self_registration(settings, country)
    await check_email_free(session, email)
    return await create_account(
        session,
        email=email,
        password=password,
        country=country,
        display_name=display_name,
        locale=i18n.supported(locale) or i18n.DEFAULT_LANGUAGE,
    )


def check_self_registration(settings: Settings, country: str) -> str:
    """The country, if people there may register without an invitation (ACC-3)."""
    country = country.strip().upper()
    if country not in settings.self_registration_countries:
        raise Forbidden(
            "in this country an ID is created from your dealer's invitation; ask your dealer to send it",
            code="self_registration_unavailable",
        )
    return country


async def authenticate(
    session: AsyncSession, settings: Settings, *, email: str, password: str, source: str
) -> Account:
    """Checks a password with per-source throttling and per-account delay and lock (ACC-7).

    A refresh token never passes through here, so a locked account's existing clients keep working.
    """
    now = utcnow()
    window_start = now - dt.timedelta(minutes=10)
    recent = await session.scalar(
        select(func.count()).where(LoginFailure.source == source, LoginFailure.at >= window_start)
    )
    if (recent or 0) >= settings.login_failures_per_source_per_10min:
        raise TooManyRequests(
            "too many failed sign-ins from your network; wait a few minutes", retry_after=600
        )
    account = await find_account(session, email)
    if account is not None and account.login_locked_until and account.login_locked_until > now:
        wait = int((account.login_locked_until - now).total_seconds()) + 1
        if account.login_failures >= settings.login_failures_before_lock:
            error: CarlinkError = Locked(
                "this ID is locked after repeated wrong passwords; try again in %(minutes)s minutes",
                code="account_locked",
                minutes=wait // 60 + 1,
            )
            error.headers["Retry-After"] = str(wait)
            raise error
        raise TooManyRequests(
            "wait %(seconds)s seconds before the next try", retry_after=wait, code="slow_down", seconds=wait
        )
    if account is None or not await check_secret(account.password_hash, password):
        session.add(LoginFailure(source=source, at=now))
        if account is not None:
            _count_failure(account, settings, now)
        await session.flush()
        raise Unauthorised("wrong email address or password", code="invalid_credentials")
    account.login_failures = 0
    account.login_locked_until = None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = hash_secret(password)
    return account


def _count_failure(account: Account, settings: Settings, now: dt.datetime) -> None:
    account.login_failures += 1
    failures = account.login_failures
    if failures >= settings.login_failures_before_lock:
        account.login_locked_until = now + dt.timedelta(minutes=settings.login_lock_minutes)
    elif failures >= settings.login_failures_before_delay:
        # 1, 2, 4, ... seconds: a person hardly notices, a guessing script crawls.
        delay = 2 ** (failures - settings.login_failures_before_delay)
        account.login_locked_until = now + dt.timedelta(seconds=min(delay, 60))


async def change_password(
    session: AsyncSession, account: Account, *, current: str, new: str, keep: WebSession | None = None
) -> None:
    """A new password signs out every other browser; apps keep their refresh tokens (ACC-7)."""
    await confirm_password(
        session,
        account,
        current,
        Unauthorised("the current password is not right", code="invalid_credentials"),
    )
    check_password_rules(new)
    account.password_hash = hash_secret(new)
    others = delete(WebSession).where(WebSession.account_id == account.id)
    if keep is not None:
        others = others.where(WebSession.token_hash != keep.token_hash)
    await session.execute(others)


CONFIRM_FAILURES_PER_10_MIN = 5


async def confirm_password(
    session: AsyncSession, account: Account, password: str, wrong: CarlinkError | None = None
) -> None:
    """A signed-in person confirms an action with the password (a new password or PIN, deleting the ID,
    erasure). Whoever holds a stolen session must not guess it freely: after a few wrong answers within ten
    minutes the confirmations wait (ACC-7). `wrong` is the refusal for a wrong password."""
    source = f"confirm:{account.id}"
    now = utcnow()
    recent = await session.scalar(
        select(func.count()).where(
            LoginFailure.source == source, LoginFailure.at >= now - dt.timedelta(minutes=10)
        )
    )
    if (recent or 0) >= CONFIRM_FAILURES_PER_10_MIN:
        raise TooManyRequests(
            "too many wrong passwords in a row; wait a few minutes", retry_after=600, code="slow_down"
        )
    if not await check_secret(account.password_hash, password):
        session.add(LoginFailure(source=source, at=now))
        await session.flush()  # kept: a refusal commits what the use case wrote
        raise wrong or Unauthorised("the password is not right", code="invalid_credentials")


async def start_web_session(session: AsyncSession, account: Account) -> tuple[str, WebSession]:
    token = secrets.token_urlsafe(32)
    row = WebSession(
        token_hash=token_hash(token),
        account_id=account.id,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=utcnow() + dt.timedelta(days=SESSION_DAYS),
    )
    session.add(row)
    await session.flush()
    return token, row


async def web_session_account(session: AsyncSession, token: str) -> tuple[Account, WebSession] | None:
    row = await session.get(WebSession, token_hash(token))
    if row is None or row.expires_at <= utcnow():
        return None
    account = await session.get(Account, row.account_id)
    if account is None or account.deleted_at is not None:
        return None
    return account, row


async def end_web_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))


async def spend_captcha(session: AsyncSession, secret: str, token: str, answer: str) -> bool:
    """True once for a correct answer: a solved picture cannot be replayed for another sign-in (ACC-7)."""
    if not token or not answer or not check_captcha(secret, token, answer):
        return False
    nonce = token_nonce(token)
    if await session.get(SpentCaptcha, nonce) is not None:
        return False
    now = utcnow()
    await session.execute(delete(SpentCaptcha).where(SpentCaptcha.expires_at < now))
    session.add(SpentCaptcha(nonce=nonce, expires_at=now + dt.timedelta(seconds=CAPTCHA_LIFETIME)))
    await session.flush()
    return True


def _checked_pin(pin: str) -> str:
    if not _PIN.match(pin):
        raise CarlinkError("the security PIN has 4 digits", code="invalid_pin_format")
    return pin


async def set_pin(session: AsyncSession, account: Account, *, password: str, pin: str) -> None:
    await confirm_password(session, account, password)
    account.pin_hash = hash_secret(_checked_pin(pin))
    account.pin_failures = 0
    account.pin_locked_until = None


DEALER = "dealer"
OPERATOR = "operator"
SOC = "soc"
STAFF_ROLES = (DEALER, OPERATOR, SOC)


async def staff_role(session: AsyncSession, account: Account, role: str) -> StaffRole | None:
    """The console role this ID holds, if it holds it (a dealer's row names the partner)."""
    return await session.scalar(
        select(StaffRole).where(StaffRole.account_id == account.id, StaffRole.role == role)
    )


async def require_staff(session: AsyncSession, account: Account, role: str) -> StaffRole:
    """For the consoles: a person without the role is told the page is not theirs, nothing more."""
    found = await staff_role(session, account, role)
    if found is None:
        raise Forbidden("this console is for staff with the right role", code="staff_only")
    return found


async def grant_staff_role(
    session: AsyncSession, account: Account, role: str, *, partner_id: int | None = None
) -> StaffRole:
    if role not in STAFF_ROLES:
        raise CarlinkError('unknown staff role "%(role)s"', code="invalid_role", role=role)
    if (role == DEALER) != (partner_id is not None):
        raise CarlinkError("a dealer works for exactly one partner", code="invalid_role")
    found = await staff_role(session, account, role)
    if found is None:
        found = StaffRole(account_id=account.id, role=role, partner_id=partner_id)
        session.add(found)
    found.partner_id = partner_id
    await session.flush()
    return found


# --- the end of an ID (ACC-5) -------------------------------------------------------------------------------


async def check_email_free(session: AsyncSession, email: str) -> None:
    """A new ID needs an address no ID uses; a deleted ID keeps its address until its erasure request is
    completed (ACC-5, PRV-5), and the person is told so."""
    email = normalise_email(email)
    found = await session.scalar(select(Account).where(Account.email == email))
    if found is None:
        return
    if found.deleted_at is not None:
        raise Conflict(
            "the ID of this email address was deleted; its data is kept until the erasure request you can "
            "ask for is completed, and only then can the address register again",
            code="id_deleted",
        )
    raise Conflict("an ID with this email address exists already; sign in instead", code="email_taken")


async def end_online_access(session: AsyncSession, account: Account, *, password: str) -> None:
    """REQ: ACC-5 — the ID is marked deleted and every way in ends now: browsers are signed out and the
    apps' refresh tokens revoked. The master data stays (the row is kept) under the retention policy."""
    await confirm_password(session, account, password)
    now = utcnow()
    account.deleted_at = now
    await session.execute(delete(WebSession).where(WebSession.account_id == account.id))
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.account_id == account.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.flush()


async def delete_id(
    session: AsyncSession, account: Account, *, password: str, request_erasure: bool = False
) -> None:
    """REQ: ACC-5 — Delete my ID: online access ends at once, running services stop (no subscription
    renews), the service settings are reset, the person leaves every car, and a mail confirms it. Full
    erasure is a separate, tracked request (PRV-5).

    The other domains build on identity, so they are imported here rather than at the top."""
    from carlink.garage import service as garage
    from carlink.incar import service as incar
    from carlink.notify import service as notify
    from carlink.store import contracts

    await end_online_access(session, account, password=password)
    await contracts.stop_renewals_of(session, account)
    await incar.reset_for_account(session, account.id)
    await garage.leave_all_vehicles(session, account)
    await notify.send_email(
        session,
        to=account.email,
        language=account.locale,
        template="account_deleted",
        context={"name": account.display_name or account.email, "email": account.email},
        dedupe_key=f"account-{account.id}-deleted",
    )
    if request_erasure:
        from carlink.privacy import erasure  # privacy builds on identity

        # Files PRV-5's tracked request now: a deleted ID can no longer sign in to ask for it.
        await erasure.request_after_deletion(session, account)
