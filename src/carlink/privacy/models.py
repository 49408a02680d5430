"""Tables of the privacy domain: policy versions and acceptances, consents, erasure requests, audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class PolicyVersion(Base):
    """One published version of the privacy policy (PRV-1); earlier versions stay readable.

    `texts` holds per language (en/de/ja) a title, a summary and the table rows
    ``{"data", "purpose", "basis", "kept"}``.
    """

    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    published_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_by: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    texts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PolicyAcceptance(Base):
    """A person accepted a version of the policy (PRV-1), with the time and where."""

    __tablename__ = "policy_acceptances"
    # One acceptance per person and version: accepting twice at once keeps the first (privacy.service).
    __table_args__ = (
        Index("ix_policy_acceptances_account_id_version", "account_id", "version", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(ForeignKey("policy_versions.version", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16), default="portal")
    accepted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConsentEvent(Base):
    """One decision about data exchange with the chosen partner (PRV-2); the latest one counts.

    Channels: portal, email (an operator recorded a revocation mailed to the country's contact address),
    registration, dealer.
    """

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_account_id_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("partners.id", ondelete="SET NULL"), default=None
    )
    granted: Mapped[bool]
    channel: Mapped[str] = mapped_column(String(16))
    recorded_by: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ErasureRequest(Base):
    """A person asked for their data to be erased (PRV-5, ACC-5); a dealer or operator completes it.

    requested -> completed | rejected (carlink.privacy.rules). The row outlives the erasure: it names the
    account by id only.
    """

    __tablename__ = "erasure_requests"
    __table_args__ = (
        Index("ix_erasure_requests_state_requested_at", "state", "requested_at"),
        # At most one open request per person, also when the form is sent twice at once.
        Index(
            "uq_erasure_requests_account_id_open",
            "account_id",
            unique=True,
            sqlite_where=text("state = 'requested'"),
            postgresql_where=text("state = 'requested'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="requested")
    # The person's preferred partner when they asked: that dealer keeps seeing the request after the
    # erasure has removed the choice (so completing it twice stays harmless).
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("partners.id", ondelete="SET NULL"), index=True, default=None
    )
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    decided_by: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    decided_role: Mapped[str] = mapped_column(String(16), default="")
    reason: Mapped[str] = mapped_column(String(500), default="")


class PrivacyAuditEntry(Base):
    """Who (and in which role) did what to whose data, and when (PRV-5).

    Survives an erasure and holds no personal data beyond account ids: `detail` carries ids, codes and
    counts only.
    """

    __tablename__ = "privacy_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    actor_role: Mapped[str] = mapped_column(String(16))  # person, dealer, operator, system
    action: Mapped[str] = mapped_column(String(64))
    subject_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True, default=None
    )
    erasure_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("erasure_requests.id", ondelete="SET NULL"), default=None
    )
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
