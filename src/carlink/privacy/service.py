"""Use cases of the privacy domain: the policy and its acceptances (PRV-1), consent to data exchange with the
chosen partner (PRV-2, PRV-3), country contact addresses, and the audit trail (PRV-5).

Export and erasure live in carlink.privacy.export and carlink.privacy.erasure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, func, insert, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.db.base import add_unique, utcnow
from carlink.errors import CarlinkError, Conflict, NotFound
from carlink.i18n import N_
from carlink.identity.models import Account
from carlink.notify.models import Notification
from carlink.partners import service as partners
from carlink.partners.models import Country, Partner
from carlink.privacy import rules
from carlink.privacy.models import ConsentEvent, PolicyAcceptance, PolicyVersion, PrivacyAuditEntry
from carlink.privacy.seed import ensure_policy

CHANNELS = ("portal", "email", "registration", "dealer")


@dataclass(frozen=True)
class ConsentState:
    """The latest consent decision of a person (PRV-2)."""

    granted: bool
    partner_id: int | None
    changed_at: dt.datetime
    channel: str


# --- the policy (PRV-1) ---------------------------------------------------------------------------------


async def latest_policy(session: AsyncSession) -> PolicyVersion:
    found = await session.scalar(select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1))
    if found is None:
        # Every start seeds version 1; a database used before that start still gets one.
        await ensure_policy(session)
        found = await session.scalar(select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1))
    assert found is not None
    return found


async def policy_version(session: AsyncSession, version: int) -> PolicyVersion:
    found = await session.get(PolicyVersion, version) if 0 < version < 2**31 else None
    if found is None:
        raise NotFound(
            "there is no version %(version)s of the privacy policy", code="policy_not_found", version=version
        )
    return found


async def policy_versions(session: AsyncSession) -> list[PolicyVersion]:
    return list(await session.scalars(select(PolicyVersion).order_by(PolicyVersion.version.desc())))


async def latest_acceptance(session: AsyncSession, account_id: int) -> PolicyAcceptance | None:
    return await session.scalar(
        select(PolicyAcceptance)
        .where(PolicyAcceptance.account_id == account_id)
        .order_by(PolicyAcceptance.version.desc(), PolicyAcceptance.accepted_at.desc())
        .limit(1)
    )


async def lock_account(session: AsyncSession, account_id: int) -> None:
    """Holds the person's account row until the unit of work ends (PostgreSQL), so that two submits of the
    same form at once take turns; SQLite's units of work take turns anyway (FOR UPDATE is left out there)."""
    await session.execute(select(Account.id).where(Account.id == account_id).with_for_update())


async def accept_policy(
    session: AsyncSession, account_id: int, version: int, *, channel: str = "portal"
) -> PolicyAcceptance:
    """Records that the person accepted this version now; accepting the same version again (also twice at
    the same moment) keeps the first."""
    await policy_version(session, version)
    await lock_account(session, account_id)
    mine = select(PolicyAcceptance).where(
        PolicyAcceptance.account_id == account_id, PolicyAcceptance.version == version
    )
    existing = await session.scalar(mine.order_by(PolicyAcceptance.id).limit(1))
    if existing is not None:
        return existing
    row = PolicyAcceptance(account_id=account_id, version=version, channel=channel)
    if not await add_unique(session, row):
        found = await session.scalar(mine.order_by(PolicyAcceptance.id).limit(1))
        assert found is not None
        return found
    return row


def policy_text(policy: PolicyVersion, language: str) -> dict[str, Any]:
    """The policy in the person's language, English when it has none in theirs."""
    texts = policy.texts or {}
    chosen: dict[str, Any] = texts.get(language) or texts.get("en") or next(iter(texts.values()), {})
    return dict(chosen)


async def publish_policy(
    session: AsyncSession,
    actor: Account,
    *,
    based_on: int,
    title: str,
    summary: str,
    rows: list[dict[str, str]],
) -> PolicyVersion:
    """Publishes the version after `based_on` (the one the operator's form showed) and tells every ID in its
    notification centre (PRV-1). A form sent twice, or after someone else published, is refused rather
    than publishing the same text again as the version after.

    One INSERT … SELECT per language writes all notifications, however many IDs there are."""
    rules.check_policy_text(title, summary, rows)
    latest = await latest_policy(session)
    if latest.version != based_on:
        raise _version_taken(latest.version)
    texts = dict(latest.texts or {})
    # Operators write the English text; German and Japanese readers see it in English until the
    # translations come (an earlier version's translation would say something else).
    texts["en"] = {"title": title.strip(), "summary": summary.strip(), "rows": rows}
    for language in ("de", "ja"):
        texts.pop(language, None)
    version = PolicyVersion(version=latest.version + 1, texts=texts, published_by=actor.id)
    if not await add_unique(session, version):
        raise _version_taken(version.version)
    now = utcnow()
    # "||" on both SQLite and PostgreSQL: one unique dedupe key per ID.
    key = literal(f"policy-{version.version}-", String) + cast(Account.id, String)
    # One INSERT per language, each ID told in its profile's language (English for any other).
    others = [language for language in i18n.LANGUAGES if language != i18n.DEFAULT_LANGUAGE]
    for language in i18n.LANGUAGES:
        catalogue = i18n.translations(language)
        title = catalogue.ugettext(N_("Our privacy policy has a new version (%(version)s)")) % {
            "version": version.version
        }
        body = catalogue.ugettext(
            N_("Please read what changed and accept the new version on your privacy page.")
        )
        speaks = (
            Account.locale == language
            if language in others
            else or_(Account.locale.is_(None), Account.locale.not_in(others))
        )
        await session.execute(
            insert(Notification).from_select(
                ["account_id", "dedupe_key", "kind", "title", "body", "link", "created_at"],
                select(
                    Account.id,
                    key,
                    literal("privacy_policy"),
                    literal(title),
                    literal(body),
                    literal("/privacy"),
                    literal(now, type_=Notification.created_at.type),
                ).where(Account.deleted_at.is_(None), speaks),
            )
        )
    await audit(
        session,
        actor_id=actor.id,
        actor_role="operator",
        action="policy.published",
        detail={"version": version.version},
    )
    return version


def _version_taken(version: int) -> CarlinkError:
    return Conflict(
        "version %(version)s was published a moment ago (maybe by this very form, sent twice); check it "
        "before publishing another",
        code="policy_version_taken",
        version=version,
    )


# --- consent (PRV-2, PRV-3) -----------------------------------------------------------------------------


async def record_registration_choices(
    session: AsyncSession,
    account_id: int,
    *,
    policy_version: int | None,
    partner_id: int | None,
    consent: bool,
) -> None:
    """At registration: the policy version accepted (None: the latest) and the consent to data exchange
    with the chosen partner (PRV-1, PRV-2)."""
    version = policy_version if policy_version is not None else (await latest_policy(session)).version
    await accept_policy(session, account_id, version, channel="registration")
    await record_consent(session, account_id, granted=consent, channel="registration", partner_id=partner_id)


async def consent_state(session: AsyncSession, account_id: int) -> ConsentState | None:
    latest = await session.scalar(
        select(ConsentEvent)
        .where(ConsentEvent.account_id == account_id)
        .order_by(ConsentEvent.at.desc(), ConsentEvent.id.desc())
        .limit(1)
    )
    if latest is None:
        return None
    return ConsentState(
        granted=latest.granted, partner_id=latest.partner_id, changed_at=latest.at, channel=latest.channel
    )


async def consent_history(session: AsyncSession, account_id: int) -> list[ConsentEvent]:
    rows = await session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.account_id == account_id)
        .order_by(ConsentEvent.at.desc(), ConsentEvent.id.desc())
    )
    return list(rows)


async def record_consent(
    session: AsyncSession,
    account_id: int,
    *,
    granted: bool,
    channel: str,
    partner_id: int | None = None,
    recorded_by: int | None = None,
) -> ConsentEvent:
    """Records one consent decision (PRV-2); without a partner it refers to the person's preferred one."""
    if channel not in CHANNELS:
        raise CarlinkError(
            "unknown consent channel %(channel)s", code="consent_channel_unknown", channel=repr(channel)
        )
    if partner_id is None:
        preferred = await partners.preferred_partner(session, account_id)
        partner_id = preferred.id if preferred is not None else None
    elif await session.get(Partner, partner_id) is None:
        partner_id = None
    row = ConsentEvent(
        account_id=account_id,
        partner_id=partner_id,
        granted=granted,
        channel=channel,
        recorded_by=recorded_by,
        at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True)
class RevocationRoute:
    """Where the person revokes consent outside the portal (PRV-2, PRV-3)."""

    country: str
    contact_email: str | None  # the country's privacy contact; None: through the dealer
    partner: Partner | None  # the preferred partner, whose phone/email the page names


async def revocation_route(session: AsyncSession, account: Account) -> RevocationRoute:
    found = await partners.country(session, account.country)
    preferred = await partners.preferred_partner(session, account.id)
    contact = found.privacy_contact if found is not None else None
    return RevocationRoute(country=account.country, contact_email=contact or None, partner=preferred)


# --- country contacts -----------------------------------------------------------------------------------


async def set_privacy_contact(
    session: AsyncSession, code: str, contact: str | None, *, actor_id: int | None, actor_role: str
) -> Country:
    """Changes or clears a country's privacy contact address; every change is audit-logged."""
    checked = rules.checked_contact(contact)
    found = await partners.country(session, code)
    if found is None:
        raise NotFound("no country %(country)s", code="country_not_found", country=code.strip().upper()[:2])
    before = found.privacy_contact
    if before == checked:
        return found
    found.privacy_contact = checked
    found.updated_at = utcnow()
    # Contact addresses are a department's, not a person's: keeping them in the trail is fine.
    await audit(
        session,
        actor_id=actor_id,
        actor_role=actor_role,
        action="country.privacy_contact",
        detail={"country": found.code, "before": before, "after": checked},
    )
    await session.flush()
    return found


async def countries_without_contact(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Country)
        .where((Country.privacy_contact.is_(None)) | (Country.privacy_contact == ""))
    )
    return int(count or 0)


# --- the audit trail (PRV-5) ----------------------------------------------------------------------------


async def audit(
    session: AsyncSession,
    *,
    actor_id: int | None,
    actor_role: str,
    action: str,
    subject_account_id: int | None = None,
    erasure_request_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> PrivacyAuditEntry:
    row = PrivacyAuditEntry(
        actor_id=actor_id,
        actor_role=actor_role,
        action=action,
        subject_account_id=subject_account_id,
        erasure_request_id=erasure_request_id,
        detail=detail or {},
    )
    session.add(row)
    await session.flush()
    return row


async def audit_trail(session: AsyncSession, *, limit: int = 100) -> list[PrivacyAuditEntry]:
    rows = await session.scalars(
        select(PrivacyAuditEntry)
        .order_by(PrivacyAuditEntry.at.desc(), PrivacyAuditEntry.id.desc())
        .limit(limit)
    )
    return list(rows)
