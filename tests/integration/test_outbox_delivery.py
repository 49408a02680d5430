"""Email delivery (notify.delivery): outbox mails go out over real SMTP as they were queued — at least once,
never by two jobs instances at the same time, and with growing pauses while the mail server is away."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from sqlalchemy import select, update

from carlink.clock import clock
from carlink.db.base import Database, utcnow
from carlink.demo.mailbox import MailSink, mailbox_router
from carlink.errors import NotFound
from carlink.notify.delivery import SmtpServer, deliver_due, retry_delay
from carlink.notify.models import OutboxEmail
from carlink.notify.service import send_email
from carlink.settings import Settings

VIN = "WP0ZZZY1ZPS100001"
RENEWED = {
    "name": "山田 花子",
    "service_name": "コネクトデータパッケージ",
    "vin": VIN,
    "amount": "¥1,100",
    "until": "2024年8月2日",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def mail_settings(url: str, smtp_port: int, **overrides: Any) -> Settings:
    return Settings(
        database_url=url,
        smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        mail_from="carlink <no-reply@carlink.example.com>",
        # Generous: on two busy cores a local SMTP exchange can take seconds, and a timeout here would be a
        # retry later rather than the behaviour under test. The down-server tests are refused at once anyway.
        smtp_timeout_seconds=20.0,
        **overrides,
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[MailSink]:
    mailbox = MailSink(tmp_path / "mail")
    await mailbox.start()
    try:
        yield mailbox
    finally:
        await mailbox.stop()


async def queue(db: Database, count: int = 1, *, language: str = "ja", prefix: str = "renewal") -> list[int]:
    async with db.transaction() as session:
        rows = [
            await send_email(
                session,
                to=f"driver{n}@example.com",
                language=language,
                template="subscription_renewed",
                context=RENEWED,
                dedupe_key=f"{prefix}-{n}",
            )
            for n in range(count)
        ]
    return [row.id for row in rows]


async def outbox(db: Database) -> list[OutboxEmail]:
    async with db.session() as session:
        return list(await session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)))


async def test_a_queued_mail_goes_out_once_with_its_headers_and_an_intact_utf8_body(
    db: Database, sink: MailSink
) -> None:
    settings = mail_settings(db.url, sink.port)
    [mail_id] = await queue(db)
    [row] = await outbox(db)
    assert row.state == "pending"

    assert await deliver_due(db, settings) == 1
    assert await deliver_due(db, settings) == 0

    [received] = sink.mails
    message = received.message
    assert message["From"] == "carlink <no-reply@carlink.example.com>"
    assert message["To"] == "driver0@example.com"
    assert message["Subject"] == row.subject
    assert "コネクトデータパッケージ" in row.subject
    assert message["Message-ID"] == f"<outbox-{mail_id}@carlink.example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "ja"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert received.text == row.body_text
    assert "山田 花子 様" in received.text
    assert received.recipients == ("driver0@example.com",)
    # Japanese travels base64-encoded, so a server without 8BITMIME cannot mangle it.
    assert received.eml.read_bytes().isascii()

    [row] = await outbox(db)
    assert row.state == "sent"
    assert row.sent_at is not None
    assert row.claimed_until is None
    assert row.attempts == 0


async def test_the_same_event_queued_twice_is_one_row_and_one_mail(db: Database, sink: MailSink) -> None:
    first = await queue(db, language="de")
    second = await queue(db, language="de")
    assert first == second
    assert len(await outbox(db)) == 1
    assert await deliver_due(db, mail_settings(db.url, sink.port)) == 1
    assert len(sink.mails) == 1


async def test_mail_waits_while_the_server_is_down_and_goes_out_after_the_back_off(
    db: Database, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet
    settings = mail_settings(db.url, port)
    await queue(db, 3)
    before = utcnow()

    assert await deliver_due(db, settings) == 0
    for row in await outbox(db):
        assert row.state == "pending"
        assert row.attempts == 1
        assert row.next_attempt_at >= before + dt.timedelta(seconds=30)
        assert row.claimed_until is None
        assert row.last_error.startswith("SMTPConnectError")
    # Not due again yet: no new attempt is counted.
    assert await deliver_due(db, settings) == 0
    assert {row.attempts for row in await outbox(db)} == {1}

    sink = MailSink(tmp_path / "mail", port=port)
    await sink.start()
    try:
        assert await deliver_due(db, settings) == 0
        clock.advance(seconds=31)
        assert await deliver_due(db, settings) == 3
        assert len(sink.mails) == 3
        assert {row.state for row in await outbox(db)} == {"sent"}
    finally:
        await sink.stop()


async def test_two_jobs_instances_deliver_every_mail_exactly_once(
    db: Database, database_url: str, sink: MailSink
) -> None:
    settings = mail_settings(database_url, sink.port)
    ids = await queue(db, 30)
    # PostgreSQL: two instances with their own connections. SQLite: one writer per process anyway.
    other = Database(database_url) if database_url.startswith("postgresql") else db
    try:
        sent = 0
        while True:
            counts = await asyncio.gather(
                deliver_due(db, settings, limit=4), deliver_due(other, settings, limit=4)
            )
            if sum(counts) == 0:
                break
            sent += sum(counts)
    finally:
        if other is not db:
            await other.dispose()
    assert sent == 30
    message_ids = sorted(str(mail.message["Message-ID"]) for mail in sink.mails)
    assert message_ids == sorted(f"<outbox-{n}@carlink.example.com>" for n in ids)
    assert {row.state for row in await outbox(db)} == {"sent"}


async def test_a_claim_held_by_another_instance_is_respected_until_it_lapses(
    db: Database, sink: MailSink
) -> None:
    settings = mail_settings(db.url, sink.port)
    [mail_id] = await queue(db)
    async with db.transaction() as session:
        # Another instance claimed the row and then died without sending it.
        await session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == mail_id)
            .values(claimed_until=utcnow() + dt.timedelta(seconds=60))
        )
    assert await deliver_due(db, settings) == 0
    assert sink.mails == []
    clock.advance(seconds=61)
    assert await deliver_due(db, settings) == 1
    assert len(sink.mails) == 1


async def test_a_mail_that_never_gets_through_is_marked_failed_after_the_last_attempt(db: Database) -> None:
    settings = mail_settings(db.url, free_port(), smtp_max_attempts=3)
    await queue(db)
    for attempt in range(1, 4):
        assert await deliver_due(db, settings) == 0
        [row] = await outbox(db)
        assert row.attempts == attempt
        assert row.state == ("failed" if attempt == 3 else "pending")
        clock.advance(hours=1, seconds=1)
    assert await deliver_due(db, settings) == 0
    [row] = await outbox(db)
    assert (row.state, row.attempts, row.sent_at, row.claimed_until) == ("failed", 3, None, None)


class RefusingHandler:
    """A mail server that has no mailbox for addresses at nobody.example and keeps everything else."""

    def __init__(self) -> None:
        self.accepted: list[list[str]] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.endswith("@nobody.example"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.accepted.append(list(envelope.rcpt_tos))
        return "250 OK"


async def test_a_refused_address_fails_at_once_and_the_other_mails_still_go_out(db: Database) -> None:
    handler = RefusingHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="test"), host="127.0.0.1", port=0)
    try:
        settings = mail_settings(db.url, server.sockets[0].getsockname()[1])
        async with db.transaction() as session:
            for n, to in enumerate(["first@example.com", "gone@nobody.example", "last@example.com"]):
                await send_email(
                    session,
                    to=to,
                    language="en",
                    template="subscription_renewed",
                    context=RENEWED,
                    dedupe_key=f"refusal-{n}",
                )
        assert await deliver_due(db, settings) == 2
    finally:
        server.close()
        await server.wait_closed()
    assert handler.accepted == [["first@example.com"], ["last@example.com"]]
    rows = {row.to_address: row for row in await outbox(db)}
    refused = rows["gone@nobody.example"]
    assert (refused.state, refused.attempts) == ("failed", 1)
    assert "550" in refused.last_error
    assert rows["last@example.com"].state == "sent"


async def test_the_demo_mailbox_shows_a_delivered_mail_decoded(db: Database, sink: MailSink) -> None:
    await queue(db, 2)
    assert await deliver_due(db, mail_settings(db.url, sink.port)) == 2
    app = FastAPI()
    app.include_router(mailbox_router(sink))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as http:
        inbox = await http.get("/demo/mailbox")
        assert inbox.status_code == 200
        assert "driver0@example.com" in inbox.text and "driver1@example.com" in inbox.text
        assert "コネクトデータパッケージ" in inbox.text
        # Newest first.
        assert inbox.text.index("driver1@example.com") < inbox.text.index("driver0@example.com")

        only = await http.get("/demo/mailbox", params={"to": "DRIVER1@example.com"})
        assert "driver1@example.com" in only.text and "driver0@example.com" not in only.text

        newest = sink.mails[0]
        page = await http.get(f"/demo/mailbox/{newest.number}")
        assert page.status_code == 200
        assert "<pre" in page.text and "山田 花子 様" in page.text
        assert "charset=utf-8" in page.headers["content-type"]

        with pytest.raises(NotFound):
            await http.get("/demo/mailbox/999")


def test_retries_wait_twice_as_long_each_time_up_to_an_hour() -> None:
    waits = [retry_delay(attempt).total_seconds() for attempt in range(1, 10)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert retry_delay(100) == dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://127.0.0.1:8025", SmtpServer("127.0.0.1", 8025, None, None, use_tls=False, start_tls=False)),
        (
            "smtp+starttls://mailer:p%40ss@mail.example.com:587",
            SmtpServer("mail.example.com", 587, "mailer", "p@ss", use_tls=False, start_tls=True),
        ),
        (
            "smtps://mailer:secret@mail.example.com",
            SmtpServer("mail.example.com", 465, "mailer", "secret", True, False),
        ),
    ],
)
def test_the_smtp_url_names_server_credentials_and_tls(url: str, expected: SmtpServer) -> None:
    assert SmtpServer.from_url(url) == expected


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "smtps://user:secret@host:notaport"])
def test_a_wrong_smtp_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ValueError, match="CARLINK_SMTP_URL") as refused:
        SmtpServer.from_url(url)
    assert "secret" not in str(refused.value)


async def test_a_sent_erasure_confirmation_and_invitation_forget_the_address_and_the_link(
    db: Database, sink: MailSink
) -> None:
    """PRV-5, ACC-4: once out, the erasure confirmation (bound to no ID) keeps neither the erased address
    nor its text, and an invitation no longer holds its registration link (only the token's hash stays)."""
    link = "https://carlink.example.com/register/secret-token-123"
    async with db.transaction() as session:
        await send_email(
            session,
            to="gone@example.com",
            language="en",
            template="erasure_completed",
            context={"requested_on": "01 Nov 2026", "request_number": "ER-000001"},
            dedupe_key="erasure-1-completed",
        )
        await send_email(
            session,
            to="buyer@example.com",
            language="en",
            template="invitation",
            context={
                "name": "Kim Buyer",
                "dealer_name": "Autohaus Example",
                "vehicle_name": "Taycan",
                "vin": VIN,
                "link": link,
                "resend_link": "https://carlink.example.com/register/resend",
                "expires": "15 Nov 2026",
            },
            dedupe_key="invitation-1",
        )
    await queue(db)
    assert await deliver_due(db, mail_settings(db.url, sink.port)) == 3

    # The mails went out whole ...
    received = {mail.recipients: mail.text for mail in sink.mails}
    assert "ER-000001" in received[("gone@example.com",)]
    assert link in received[("buyer@example.com",)]
    # ... and the rows forgot what they held; other mails keep theirs.
    rows = {row.template: row for row in await outbox(db)}
    erased, invitation, renewal = rows["erasure_completed"], rows["invitation"], rows["subscription_renewed"]
    assert (erased.state, erased.to_address, erased.body_text) == ("sent", "erased@erased.invalid", "")
    assert invitation.state == "sent" and invitation.to_address == "buyer@example.com"
    assert invitation.body_text == "(the registration link is not kept after sending)"
    assert renewal.state == "sent" and "山田 花子 様" in renewal.body_text


async def test_an_invitation_not_yet_sent_keeps_its_link_for_the_next_attempt(
    db: Database, tmp_path: Path
) -> None:
    async with db.transaction() as session:
        await send_email(
            session,
            to="buyer@example.com",
            language="en",
            template="invitation",
            context={
                "name": "Kim Buyer",
                "dealer_name": "Autohaus Example",
                "vehicle_name": "Taycan",
                "vin": VIN,
                "link": "https://carlink.example.com/register/secret-token-123",
                "resend_link": "https://carlink.example.com/register/resend",
                "expires": "15 Nov 2026",
            },
            dedupe_key="invitation-1",
        )
    assert await deliver_due(db, mail_settings(db.url, free_port())) == 0
    [row] = await outbox(db)
    assert row.state == "pending" and "secret-token-123" in row.body_text
