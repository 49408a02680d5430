"""Tables of the security domain."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class DriverCard(Base):
    """A driver card the dealer registered for a car; its serial is unique among the active cards."""

    __tablename__ = "driver_cards"
    __table_args__ = (
        Index(
            "uq_driver_cards_active_serial",
            "serial",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    serial: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(60), default="")
    registered_by: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    registered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class TrackingActivation(Base):
    """A tracking package bought for a car, from the order to the certificate (SEC-1, SEC-4).

    One per contract; a car has at most one that has not ended. `phone` is the number the SOC calls, and
    `phone_account_id` the ID that gave it — the buyer, or after a change of hands the new main user — so
    the number is that person's in their export and erasure (PRV-5), not the contract buyer's.
    """

    __tablename__ = "tracking_activations"
    __table_args__ = (
        Index(
            "uq_tracking_activations_live_vehicle",
            "vehicle_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"), unique=True)
    package: Mapped[str] = mapped_column(String(16))  # tracking | tracking-plus
    phone: Mapped[str] = mapped_column(String(20))
    phone_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True, default=None
    )
    state: Mapped[str] = mapped_column(String(16), default="ordered")  # security.rules.ActivationState
    ordered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    installing_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    test_passed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    activated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    activated_by: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # The insurer's certificate (SEC-4): a number printed on it and a code the insurer checks it with.
    certificate_number: Mapped[str | None] = mapped_column(String(20), unique=True, default=None)
    verification_code: Mapped[str | None] = mapped_column(String(64), default=None)


class VehicleSecurity(Base):
    """Where the car's signed security set stands (as entitlements): the cloud's revision, what was
    published, and what the car reported it applied."""

    __tablename__ = "vehicle_security"

    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(default=0)
    published_revision: Mapped[int] = mapped_column(default=0)
    applied_revision: Mapped[int] = mapped_column(default=0)
    applied_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class SecurityModePeriod(Base):
    """Service or transport mode set by the owner or a dealer for a bounded time (SEC-3)."""

    __tablename__ = "security_modes"
    __table_args__ = (Index("ix_security_modes_vehicle_id_until", "vehicle_id", "until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # service | transport
    starts_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    until: Mapped[dt.datetime]
    set_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    # Set by a dealer's staff: the partner, so the owner sees who put the car in the mode.
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("partners.id", ondelete="SET NULL"), default=None
    )
    # Ended early (before `until`) or, once it ran out, by the jobs role (= `until`): modes.ended_early.
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Alarm(Base):
    """One case in the SOC queue: the alarms of one car merged while the case is open (SEC-1).

    `version` rises with every change, so two SOC operators on one case cannot overwrite each other.
    """

    __tablename__ = "alarms"
    __table_args__ = (
        Index("ix_alarms_state_updated_at", "state", "updated_at"),
        Index("ix_alarms_updated_at", "updated_at"),
        Index(
            "uq_alarms_open_vehicle",
            "vehicle_id",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(24), default="new")  # security.rules.AlarmState
    severity: Mapped[int] = mapped_column(default=1)  # the highest of its signals (rules.SEVERITY)
    trigger: Mapped[str] = mapped_column(String(32))  # the most severe trigger so far
    triggers: Mapped[list[str]] = mapped_column(JSON, default=list)
    silent: Mapped[bool] = mapped_column(default=False)
    # No tracking package was in force when it came: stored and shown, flagged (issue 7).
    without_package: Mapped[bool] = mapped_column(default=False)
    signals: Mapped[int] = mapped_column(default=1)  # alarms merged into this case
    first_at: Mapped[dt.datetime]  # the car's time of the first signal
    last_at: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lat: Mapped[float | None] = mapped_column(default=None)
    lon: Mapped[float | None] = mapped_column(default=None)
    # `lat`/`lon` were taken while the car was in privacy mode, for a confirmed theft (SEC-1, PRV-4): the
    # SOC's page says so and its access log marks the view as a privacy override.
    position_privacy: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    version: Mapped[int] = mapped_column(default=1)
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)


# The SOC's live queue (security.soc.queue): only the cases not closed, in the queue's order, so the query
# reads the first rows of a small index however many closed cases the years leave behind.
Index(
    "ix_alarms_queue",
    Alarm.without_package,
    Alarm.severity.desc(),
    Alarm.last_at.desc(),
    Alarm.id.desc(),
    sqlite_where=text("state <> 'closed'"),
    postgresql_where=text("state <> 'closed'"),
)


class AlarmSignalRecord(Base):
    """Every alarm message a car sent, stored before it is acknowledged; the car's id makes re-sends one."""

    __tablename__ = "alarm_signals"
    __table_args__ = (UniqueConstraint("vehicle_id", "car_alarm_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"))
    car_alarm_id: Mapped[str] = mapped_column(String(64))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(32))
    silent: Mapped[bool] = mapped_column(default=False)
    at: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lat: Mapped[float | None] = mapped_column(default=None)
    lon: Mapped[float | None] = mapped_column(default=None)
    # The position was kept while the car was in privacy mode, for a confirmed theft (SEC-1, PRV-4).
    privacy: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # A mode in force covered the trigger (SEC-3): kept, but no case was opened.
    suppressed_by: Mapped[str | None] = mapped_column(String(16), default=None)


class AlarmEvent(Base):
    """The workflow log of a case: who moved it from which state to which, and why."""

    __tablename__ = "alarm_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    from_state: Mapped[str] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(String(500), default="")


class AlarmCall(Base):
    """A call the SOC made (or took) about a case: the call log."""

    __tablename__ = "alarm_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    number: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(16))  # security.rules.CALL_OUTCOMES
    note: Mapped[str] = mapped_column(String(500), default="")


class TrackPointRecord(Base):
    """Where a car was while it tracked for an alarm; `privacy` marks points taken in privacy mode for a
    confirmed theft (SEC-1)."""

    __tablename__ = "track_points"
    __table_args__ = (Index("ix_track_points_vehicle_id_at", "vehicle_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime]
    lat: Mapped[float]
    lon: Mapped[float]
    heading: Mapped[int | None] = mapped_column(default=None)
    speed_kmh: Mapped[float | None] = mapped_column(default=None)
    privacy: Mapped[bool] = mapped_column(default=False)


class SocAccess(Base):
    """Every view of a customer's data by a SOC operator (issue 7, point 5): who saw what, when."""

    __tablename__ = "soc_access_log"
    __table_args__ = (Index("ix_soc_access_log_vehicle_id_at", "vehicle_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), default=None)
    what: Mapped[str] = mapped_column(String(24))  # alarm | track | customer | activation
    # Seen while the car was in privacy mode, for a confirmed theft (SEC-1).
    privacy_override: Mapped[bool] = mapped_column(default=False)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
