"""The demo's mailbox: a local SMTP sink that keeps every mail carlink sends, and pages to read them.

Only `carlink demo` runs it (the demo's CARLINK_SMTP_URL points here); a deployment uses a real mail server.
Mails stay in memory for the pages and are also saved as .eml files, which any mail program opens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from carlink.clock import clock
from carlink.errors import NotFound
from carlink.web.templating import portal_templates

HERE = Path(__file__).parent
TEMPLATES = portal_templates(HERE / "templates")
# The pages list the newest mails; the .eml files keep all of them.
KEPT_IN_MEMORY = 500


@dataclass(frozen=True)
class ReceivedMail:
    number: int
    received_at: dt.datetime
    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    message_id: str
    eml: Path
    message: EmailMessage

    def is_for(self, address: str) -> bool:
        wanted = address.strip().lower()
        return any(recipient.lower() == wanted for recipient in self.recipients)


class MailSink:
    """An SMTP server on 127.0.0.1 that accepts every mail; port 0 takes a free port (see `url`)."""

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self.mails: list[ReceivedMail] = []  # newest first
        self._count = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            # A fixed hostname: aiosmtpd would otherwise look up the machine's name, which can be slow.
            lambda: SMTP(
                handler, hostname="carlink-demo", ident="carlink demo mailbox", enable_SMTPUTF8=True
            ),
            host=self.host,
            port=self.port,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    def received(self, to: str = "") -> list[ReceivedMail]:
        """The mails kept in memory, newest first; only those to `to` when given."""
        return [mail for mail in self.mails if not to or mail.is_for(to)]

    def find(self, number: int) -> ReceivedMail | None:
        return next((mail for mail in self.mails if mail.number == number), None)

    async def keep(self, sender: str, recipients: list[str], raw: bytes) -> ReceivedMail:
        self._count += 1
        number = self._count
        eml = self.directory / f"{number:05d}.eml"
        await asyncio.to_thread(eml.write_bytes, raw)
        message = BytesParser(policy=default_policy).parsebytes(raw)
        if not isinstance(message, EmailMessage):  # the default policy always parses to EmailMessage
            raise TypeError("mail parsed without the default policy")
        mail = ReceivedMail(
            number=number,
            received_at=clock.now(),
            sender=sender,
            recipients=tuple(recipients) or tuple(a for _, a in getaddresses(message.get_all("To", []))),
            subject=str(message.get("Subject", "")),
            text=_plain_text(message),
            message_id=str(message.get("Message-ID", "")),
            eml=eml,
            message=message,
        )
        self.mails.insert(0, mail)
        del self.mails[KEPT_IN_MEMORY:]
        return mail


class _Handler:
    """aiosmtpd calls handle_DATA once a mail is complete; the reply goes back to the sending client."""

    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        await self.sink.keep(str(envelope.mail_from or ""), [str(r) for r in envelope.rcpt_tos], raw)
        return "250 OK: kept in the carlink demo mailbox"


def _plain_text(message: EmailMessage) -> str:
    """The text/plain part, decoded from its transfer encoding and charset, with the CRLF line ends of
    MIME's canonical form turned back into plain newlines."""
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    content: Any = part.get_content()
    return content.replace("\r\n", "\n") if isinstance(content, str) else ""


def mailbox_router(sink: MailSink) -> APIRouter:
    router = APIRouter(prefix="/demo/mailbox", include_in_schema=False)

    @router.get("", response_class=HTMLResponse)
    async def inbox(request: Request, to: str = "") -> HTMLResponse:
        context = {
            "mails": sink.received(to),
            "to": to.strip(),
            "kept": KEPT_IN_MEMORY,
            "folder": sink.directory,
        }
        return TEMPLATES.TemplateResponse(request, "mailbox.html", context)

    @router.get("/{number}", response_class=HTMLResponse)
    async def one_mail(request: Request, number: int, to: str = "") -> HTMLResponse:
        mail = sink.find(number)
        if mail is None:
            raise NotFound(f"The demo mailbox holds no mail number {number}.", code="mail_not_found")
        return TEMPLATES.TemplateResponse(request, "mailbox_mail.html", {"mail": mail, "to": to.strip()})

    return router
