"""The self-service export (PRV-5): everything carlink holds about a person, from every domain, as a ZIP
made in memory with `data.json` (for machines) and `summary.html` (the same in plain words).

No password, PIN, session or token hash and no card token ever reaches the archive: each domain's
personal_data.export chooses what to hand out.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.db.base import utcnow
from carlink.fod import personal_data as fod_data
from carlink.garage import personal_data as garage_data
from carlink.identity import personal_data as identity_data
from carlink.incar import personal_data as incar_data
from carlink.notify import personal_data as notify_data
from carlink.partners import personal_data as partners_data
from carlink.privacy import personal_data as privacy_data
from carlink.privacy.service import audit
from carlink.remote import personal_data as remote_data
from carlink.security import personal_data as security_data
from carlink.store import personal_data as store_data
from carlink.web.templating import TEMPLATES

Exporter = Callable[[AsyncSession, int], Awaitable[dict[str, Any]]]


# Every domain's export, one key each in data.json.
EXPORTERS: tuple[tuple[str, Exporter], ...] = (
    ("identity", identity_data.export),
    ("garage", garage_data.export),
    ("store", store_data.export),
    ("fod", fod_data.export),
    ("security", security_data.export),
    ("partners", partners_data.export),
    ("incar", incar_data.export),
    ("remote", remote_data.export),
    ("privacy", privacy_data.export),
    ("notify", notify_data.export),
)


async def gather(session: AsyncSession, account_id: int) -> dict[str, Any]:
    """What every domain holds about the person, one key per domain."""
    data: dict[str, Any] = {"exported_at": utcnow().isoformat(), "account_id": account_id}
    for domain, export in EXPORTERS:
        data[domain] = await export(session, account_id)
    return data


def file_name(now: dt.datetime) -> str:
    return f"carlink-data-{now:%Y-%m-%d}.zip"


def _parsed(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _day(value: Any) -> str:
    """An ISO time of data.json as a day in the request's language ("—" when there is none)."""
    moment = _parsed(value)
    return i18n.date(moment) if moment else "—"


def _moment(value: Any) -> str:
    moment = _parsed(value)
    return i18n.datetime(moment, "short") if moment else "—"


def archive(data: dict[str, Any]) -> bytes:
    """The ZIP, built in memory: a person's data is small (no telemetry history is kept per person). The
    summary is in the request's language."""
    summary = TEMPLATES.env.get_template("privacy/export_summary.html").render(
        data=data, day=_day, moment=_moment
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("data.json", json.dumps(data, indent=2, ensure_ascii=False, default=str))
        zipped.writestr("summary.html", summary)
    return buffer.getvalue()


async def export_for(session: AsyncSession, account_id: int) -> tuple[str, bytes]:
    """The archive and its file name; every export is audit-logged (PRV-5)."""
    data = await gather(session, account_id)
    await audit(
        session,
        actor_id=account_id,
        actor_role="person",
        action="data.exported",
        subject_account_id=account_id,
        detail={"domains": sorted(k for k in data if k not in ("exported_at", "account_id"))},
    )
    return file_name(utcnow()), archive(data)
