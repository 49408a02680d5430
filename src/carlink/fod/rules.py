"""The state machines of deliveries, function orders and update campaigns (STYLE: explicit states)."""

from __future__ import annotations

from enum import StrEnum

from packaging.version import InvalidVersion, Version

from carlink.errors import CarlinkError


class DeliveryState(StrEnum):
    OFFERED = "offered"  # in the car's delivery set; not fetched yet
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"  # verified in the car; now the car shows its message (FOD-4, OTA-3)
    INSTALLING = "installing"
    INSTALLED = "installed"  # an update is in (OTA-4)
    ACTIVE = "active"  # a function is activated in the car (FOD-4)
    FAILED = "failed"  # with a reason; the car retries after its recovery routine (FOD-8)
    CANCELLED = "cancelled"  # the window passed (FOD-3) or the campaign was cancelled
    DEACTIVATED = "deactivated"  # a function that ended was switched off in the car (FOD-7)


# The car still has work to do on these: they are in its delivery set.
OPEN = frozenset(
    {
        DeliveryState.OFFERED,
        DeliveryState.DOWNLOADING,
        DeliveryState.DOWNLOADED,
        DeliveryState.INSTALLING,
        DeliveryState.FAILED,
    }
)

# What a car's report may move a delivery to, from where. A report that does not fit (late, repeated,
# about a cancelled delivery) changes nothing: reports are at-least-once and may arrive out of order.
REPORTED: dict[str, tuple[DeliveryState, frozenset[DeliveryState]]] = {
    "downloading": (DeliveryState.DOWNLOADING, frozenset({DeliveryState.OFFERED, DeliveryState.FAILED})),
    "downloaded": (
        DeliveryState.DOWNLOADED,
        frozenset({DeliveryState.OFFERED, DeliveryState.DOWNLOADING, DeliveryState.FAILED}),
    ),
    "installing": (DeliveryState.INSTALLING, frozenset({DeliveryState.DOWNLOADED, DeliveryState.FAILED})),
    "installed": (DeliveryState.INSTALLED, OPEN),
    "activated": (DeliveryState.ACTIVE, OPEN),
    "failed": (DeliveryState.FAILED, OPEN - {DeliveryState.FAILED}),
    "deactivated": (DeliveryState.DEACTIVATED, frozenset({DeliveryState.ACTIVE})),
}


def reported_move(current: str, reported: str, kind: str) -> DeliveryState | None:
    """The state a report moves a delivery to, or None when it does not apply."""
    if (reported == "installed" and kind != "update") or (
        reported in ("activated", "deactivated") and kind != "function"
    ):
        return None
    target, sources = REPORTED[reported]
    return target if DeliveryState(current) in sources else None


class FunctionOrderState(StrEnum):
    ORDERED = "ordered"  # waiting for the car: download within the window, then activation
    ACTIVATED = "activated"  # the car activated it; the charge is due (the jobs role retries it)
    ACTIVE = "active"  # charged once; the store contract runs
    PAYMENT_FAILED = "payment_failed"  # the card was refused at activation: the car switches it off again
    CANCELLED = "cancelled"  # the window passed (FOD-3) or the person cancelled before download: no charge


class CampaignState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # too many failures (error threshold) or by an operator
    FINISHED = "finished"
    CANCELLED = "cancelled"


CAMPAIGN_MOVES: dict[CampaignState, frozenset[CampaignState]] = {
    CampaignState.RUNNING: frozenset({CampaignState.PAUSED, CampaignState.FINISHED, CampaignState.CANCELLED}),
    CampaignState.PAUSED: frozenset({CampaignState.RUNNING, CampaignState.CANCELLED}),
    CampaignState.FINISHED: frozenset(),
    CampaignState.CANCELLED: frozenset(),
}


def require_campaign_move(current: str, target: CampaignState) -> None:
    if target not in CAMPAIGN_MOVES[CampaignState(current)]:
        raise CarlinkError(
            "A %(current)s campaign cannot become %(target)s.",
            code="campaign_state",
            status=409,
            current=current,
            target=target.value,
        )


def version_of(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise CarlinkError(
            "%(text)r is not a software version such as 2.1.0",
            code="invalid_version",
            status=422,
            text=text[:40],
        ) from None


def in_range(installed: str, version_from: str, version_below: str) -> bool:
    """OTA-2: the installed version is at least `version_from` and below `version_below`."""
    try:
        return Version(version_from) <= Version(installed) < Version(version_below)
    except InvalidVersion:
        return False


def wave_size(eligible: int, percent: int) -> int:
    """Cars a wave may hold in total: the share of the eligible cars, at least one when there are any."""
    return min(eligible, max(1, -(-eligible * percent // 100))) if eligible else 0
