"""Email delivery by the jobs role: claim due outbox rows, send them over SMTP, record what happened.

At least once, never twice at the same time: a short transaction claims rows for CLAIM (on PostgreSQL with
``FOR UPDATE SKIP LOCKED``, so parallel jobs instances take different rows); the mails go out with no
transaction open; a row becomes ``sent`` only while the claim is still ours. An instance that dies between
sending and marking leaves the row to be sent again once its claim lapses, and the deterministic Message-ID
lets the receiving side recognise that duplicate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy import or_, select, update

from carlink.db.base import Database, utcnow
from carlink.notify.models import OutboxEmail
from carlink.settings import Settings

log = logging.getLogger("carlink.notify")

CLAIM = dt.timedelta(seconds=60)
FIRST_RETRY = dt.timedelta(seconds=30)
LONGEST_RETRY = dt.timedelta(hours=1)
ERROR_LENGTH = 300
# scheme -> (TLS from the first byte, STARTTLS before anything else, default port)
SCHEMES = {"smtp": (False, False, 25), "smtp+starttls": (False, True, 587), "smtps": (True, False, 465)}
# Non-ASCII text goes base64 or quoted-printable, so Japanese survives servers without 8BITMIME.
MESSAGE_POLICY = SMTP_POLICY.clone(cte_type="7bit")


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        # The message never repeats the URL: it may hold the password.
        problem = ValueError(
            "CARLINK_SMTP_URL must look like smtp://host:port, smtp+starttls://user:password@host:port "
            "or smtps://user:password@host:port"
        )
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise problem
        try:
            port = parts.port
        except ValueError:
            raise problem from None
        use_tls, start_tls, default_port = SCHEMES[parts.scheme]
        return cls(
            host=parts.hostname,
            port=port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            use_tls=use_tls,
            start_tls=start_tls,
        )

    def client(self, timeout: float) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            timeout=timeout,
        )


@dataclass(frozen=True)
class Sender:
    """`mail_from` as the From header, the envelope sender and the domain of our Message-IDs."""

    header: str
    address: str
    domain: str

    @classmethod
    def from_setting(cls, mail_from: str) -> Sender:
        address = parseaddr(mail_from)[1]
        local, _, domain = address.rpartition("@")
        if not local or "." not in domain:
            raise ValueError("CARLINK_MAIL_FROM must hold an address, like: carlink <no-reply@example.com>")
        return cls(header=mail_from, address=address, domain=domain)


# What a sent mail of these templates no longer keeps (docs/people.md): the confirmation of an erasure is
# bound to no ID and must not keep the erased address; an invitation's body holds the registration link,
# of which only the token's hash is stored anywhere else.
ERASED_ADDRESS = "erased@erased.invalid"
FORGET_AFTER_SENDING: dict[str, dict[str, str]] = {
    "erasure_completed": {"to_address": ERASED_ADDRESS, "body_text": ""},
    "invitation": {"body_text": "(the registration link is not kept after sending)"},
}


@dataclass(frozen=True)
class ClaimedEmail:
    id: int
    to_address: str
    language: str
    template: str
    subject: str
    body_text: str
    attempts: int
    created_at: dt.datetime
    # The claim's expiry also identifies it: a row whose claimed_until changed was taken over.
    claimed_until: dt.datetime


async def deliver_due(db: Database, settings: Settings, *, limit: int = 50) -> int:
    """Sends up to `limit` due mails over one SMTP connection; returns how many the server accepted."""
    server = SmtpServer.from_url(settings.smtp_url)
    sender = Sender.from_setting(settings.mail_from)
    claimed = await _claim_due(db, limit)
    if not claimed:
        return 0
    client = server.client(settings.smtp_timeout_seconds)
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as error:
        reason = _describe(error, server)
        for mail in claimed:
            await _record_failure(db, settings, mail, reason, permanent=False)
        return 0
    sent = 0
    try:
        for index, mail in enumerate(claimed):
            # Start a send only if it ends, at the latest, while the claim holds: no other instance may
            # take the row meanwhile.
            if utcnow() + dt.timedelta(seconds=settings.smtp_timeout_seconds) >= mail.claimed_until:
                await _release(db, claimed[index:])
                break
            try:
                async with asyncio.timeout(settings.smtp_timeout_seconds):
                    await client.send_message(
                        _message(mail, sender), sender=sender.address, recipients=[mail.to_address]
                    )
            except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused, ValueError) as error:
                # The server (or the address itself) refused this mail; the connection still serves the rest.
                await _record_failure(
                    db, settings, mail, _describe(error, server), permanent=_is_permanent(error)
                )
            except (aiosmtplib.SMTPException, OSError) as error:
                client.close()
                await _record_failure(db, settings, mail, _describe(error, server), permanent=False)
                # The connection is gone or in doubt; the others were not tried and are due again at once.
                await _release(db, claimed[index + 1 :])
                break
            else:
                await _mark_sent(db, mail)
                sent += 1
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
    return sent


def retry_delay(attempts: int) -> dt.timedelta:
    """Wait after the `attempts`-th failed attempt: 30 s, 1 min, 2 min … at most an hour."""
    doublings = min(max(attempts - 1, 0), 16)
    return min(FIRST_RETRY * (1 << doublings), LONGEST_RETRY)


async def _claim_due(db: Database, limit: int) -> list[ClaimedEmail]:
    async with db.transaction() as session:
        now = utcnow()
        until = now + CLAIM
        unclaimed = or_(OutboxEmail.claimed_until.is_(None), OutboxEmail.claimed_until < now)
        due = (
            select(OutboxEmail.id)
            .where(OutboxEmail.state == "pending", OutboxEmail.next_attempt_at <= now, unclaimed)
            .order_by(OutboxEmail.next_attempt_at, OutboxEmail.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(await session.scalars(due))
        if not ids:
            return []
        # Conditional again: SQLite has no row locks, and another process may have claimed in between.
        claim = (
            update(OutboxEmail)
            .where(OutboxEmail.id.in_(ids), OutboxEmail.state == "pending", unclaimed)
            .values(claimed_until=until)
            .returning(
                OutboxEmail.id,
                OutboxEmail.to_address,
                OutboxEmail.language,
                OutboxEmail.template,
                OutboxEmail.subject,
                OutboxEmail.body_text,
                OutboxEmail.attempts,
                OutboxEmail.created_at,
            )
            .execution_options(synchronize_session=False)
        )
        rows = (await session.execute(claim)).all()
    mails = [ClaimedEmail(**row._asdict(), claimed_until=until) for row in rows]
    return sorted(mails, key=lambda mail: mail.id)


async def _update_if_still_ours(db: Database, mail: ClaimedEmail, **values: Any) -> bool:
    async with db.transaction() as session:
        statement = (
            update(OutboxEmail)
            .where(
                OutboxEmail.id == mail.id,
                OutboxEmail.state == "pending",
                OutboxEmail.claimed_until == mail.claimed_until,
            )
            .values(**values)
            .returning(OutboxEmail.id)
            .execution_options(synchronize_session=False)
        )
        return (await session.scalar(statement)) is not None


async def _mark_sent(db: Database, mail: ClaimedEmail) -> None:
    forget = FORGET_AFTER_SENDING.get(mail.template, {})
    if await _update_if_still_ours(db, mail, state="sent", sent_at=utcnow(), claimed_until=None, **forget):
        log.info("outbox mail %d sent", mail.id)
    else:
        # Our claim lapsed during the send and another instance took the row: it may send it once more,
        # under the same Message-ID.
        log.warning("outbox mail %d sent after its claim lapsed", mail.id)


async def _record_failure(
    db: Database, settings: Settings, mail: ClaimedEmail, reason: str, *, permanent: bool
) -> None:
    attempts = mail.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "last_error": reason, "claimed_until": None}
    if permanent or attempts >= settings.smtp_max_attempts:
        values["state"] = "failed"
    else:
        values["next_attempt_at"] = utcnow() + retry_delay(attempts)
    if await _update_if_still_ours(db, mail, **values):
        log.warning("outbox mail %d not sent (attempt %d): %s", mail.id, attempts, reason)


async def _release(db: Database, mails: Sequence[ClaimedEmail]) -> None:
    for mail in mails:
        await _update_if_still_ours(db, mail, claimed_until=None)


def _message(mail: ClaimedEmail, sender: Sender) -> EmailMessage:
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["From"] = sender.header
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.created_at)
    # The same row always carries the same id, so a resent mail is recognisably the same mail.
    message["Message-ID"] = f"<outbox-{mail.id}@{sender.domain}>"
    # RFC 3834: tells vacation responders not to answer.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.body_text, charset="utf-8")
    message["Content-Language"] = mail.language  # after set_content, which clears every Content-* header
    return message


def _is_permanent(error: Exception) -> bool:
    """A 5xx refusal of every recipient, or an address that cannot be written in SMTP: trying again in an
    hour would give the same answer."""
    if isinstance(error, ValueError):
        return True
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(refused.code >= 500 for refused in error.recipients)
    return False


def _describe(error: Exception, server: SmtpServer) -> str:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        text = "recipient refused: " + "; ".join(f"{r.code} {r.message}" for r in error.recipients)
    elif isinstance(error, aiosmtplib.SMTPResponseException):
        text = f"{type(error).__name__}: {error.code} {error.message}"
    else:
        text = f"{type(error).__name__}: {error}"
    if server.password:
        text = text.replace(server.password, "***")
    return " ".join(text.split())[:ERROR_LENGTH]
