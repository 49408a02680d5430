"""Online software updates (OTA-1..4): the person's consent per vehicle, update campaigns targeting model,
variants and an installed version range, and their staged rollout in waves.

Rollout, as hawkBit's rollout groups do it: wave i may hold the first `waves[i]` % of the eligible cars
(cars that match and whose person switched updates on). The next wave opens when the installed share of the
cars offered so far reaches `success_threshold`; the campaign pauses by itself when the failed share reaches
`error_threshold`. An operator resumes (after a fix) or cancels it; cancelling takes every delivery not yet
installing out of its car's set. A campaign finishes when every car in its range has its update: a car whose
person switches updates on later still gets it while the campaign runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.clock import clock
from carlink.errors import CarlinkError, Forbidden, NotFound
from carlink.fod import deliveries
from carlink.fod import service as packages
from carlink.fod.models import Delivery, UpdateCampaign, UpdateConsent
from carlink.fod.rules import (
    OPEN,
    CampaignState,
    DeliveryState,
    in_range,
    require_campaign_move,
    version_of,
    wave_size,
)
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.i18n import N_
from carlink.identity.models import Account
from carlink.platform import Platform
from carlink.privacy import service as privacy
from carlink.protocol.catalogue import CATALOGUE

log = logging.getLogger("carlink.fod")
MAX_WAVES = 10
SWITCHED_OFF = "updates_switched_off"


# --- consent (OTA-1) -------------------------------------------------------------------------------------


async def consent(session: AsyncSession, vehicle_id: int) -> UpdateConsent | None:
    row: UpdateConsent | None = await session.scalar(
        select(UpdateConsent)
        .where(UpdateConsent.vehicle_id == vehicle_id)
        .order_by(UpdateConsent.at.desc(), UpdateConsent.id.desc())
        .limit(1)
    )
    return row


async def set_consent(session: AsyncSession, account: Account, vin: str, enabled: bool) -> list[int]:
    """REQ: OTA-1 — the main user switches online updates on or off for this car, recorded with the time
    and the privacy policy version in force. Switching off withdraws updates the car has not begun to
    install. Returns the vehicle ids whose delivery set changed."""
    entry = await garage.garage_entry(session, account, vin)
    if not entry.is_main_user:
        raise Forbidden("Only the vehicle's main user can switch online updates.", code="owner_only")
    vehicle = entry.vehicle
    current = await consent(session, vehicle.id)
    if (current.enabled if current is not None else False) == enabled:
        return []  # a repeated click (or "off" where updates were never on) records nothing new
    policy = await privacy.latest_policy(session)  # the version in force, which the page links to
    session.add(
        UpdateConsent(
            vehicle_id=vehicle.id,
            account_id=account.id,
            enabled=enabled,
            policy_version=policy.version,
            at=clock.now(),
        )
    )
    if enabled:
        return []
    return await _withdraw_updates(session, vehicle.id)


async def reset_consent(session: AsyncSession, vehicle_id: int) -> None:
    """The car changed hands: the previous person's consent does not pass to the next one (OTA-1)."""
    current = await consent(session, vehicle_id)
    if current is None or not current.enabled:
        return
    session.add(UpdateConsent(vehicle_id=vehicle_id, account_id=None, enabled=False, at=clock.now()))
    await _withdraw_updates(session, vehicle_id)


async def _withdraw_updates(session: AsyncSession, vehicle_id: int) -> list[int]:
    pending = await session.scalars(
        select(Delivery).where(
            Delivery.vehicle_id == vehicle_id,
            Delivery.kind == "update",
            Delivery.state.in_([s.value for s in OPEN - {DeliveryState.INSTALLING}]),
        )
    )
    return await deliveries.cancel(session, list(pending), SWITCHED_OFF)


async def updates_of(session: AsyncSession, vehicle_id: int) -> list[tuple[Delivery, UpdateCampaign]]:
    rows = await session.execute(
        select(Delivery, UpdateCampaign)
        .join(UpdateCampaign, UpdateCampaign.id == Delivery.campaign_id)
        .where(Delivery.vehicle_id == vehicle_id)
        .order_by(Delivery.id.desc())
    )
    return [(delivery, campaign) for delivery, campaign in rows]


# --- campaigns (OTA-2) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignInput:
    name: str
    package: str
    model_key: str
    variants: list[str]
    version_from: str
    version_below: str
    to_version: str
    waves: list[int]
    success_threshold: int = 90
    error_threshold: int = 10


def _check(data: CampaignInput) -> None:
    def bad(message: str, code: str = "invalid_campaign", **values: Any) -> CarlinkError:
        # The messages are marked with N_ where they are written (tools/catalogs.py extracts them there).
        return CarlinkError(message, code=code, status=422, **values)

    if not data.name.strip() or len(data.name) > 120:
        raise bad(N_("A campaign needs a name of at most 120 characters."))
    model = next((m for m in CATALOGUE if m.key == data.model_key), None)
    if model is None:
        raise bad(N_("There is no model %(model)r."), "unknown_model", model=data.model_key[:40])
    codes = {variant.code for variant in model.variants}
    unknown = [code for code in data.variants if code not in codes]
    if unknown:
        raise bad(
            N_("The %(line)s %(generation)s has no variant %(variant)r."),
            "unknown_variant",
            line=model.line,
            generation=model.generation,
            variant=unknown[0][:20],
        )
    low, high, target = (version_of(v) for v in (data.version_from, data.version_below, data.to_version))
    if not low < high:
        raise bad(N_("The version range is empty: 'from' must be below 'below'."), "invalid_version_range")
    if target < high:
        raise bad(N_("The new version must not be below the range it updates."), "invalid_version_range")
    waves = data.waves
    if (
        not 1 <= len(waves) <= MAX_WAVES
        or waves[-1] != 100
        or any(not a < b for a, b in zip([0, *waves], waves, strict=False))
    ):
        raise bad(
            N_("Waves are rising percentages of the cars that end at 100, for example 10, 50, 100."),
            "invalid_waves",
        )
    for value in (data.success_threshold, data.error_threshold):
        if not 1 <= value <= 100:
            raise bad(N_("Thresholds are percentages from 1 to 100."), "invalid_threshold")


async def _matching(session: AsyncSession, campaign: UpdateCampaign | CampaignInput) -> list[tuple[int, str]]:
    """(vehicle id, installed version) of every car of the model, variants and version range."""
    query = select(Vehicle.id, Vehicle.software_version).where(Vehicle.model_key == campaign.model_key)
    if campaign.variants:
        query = query.where(Vehicle.variant_code.in_(campaign.variants))
    rows = await session.execute(query)
    return [
        (vid, version)
        for vid, version in rows
        if in_range(version, campaign.version_from, campaign.version_below)
    ]


async def _consented(session: AsyncSession, vehicle_ids: list[int]) -> set[int]:
    """The cars among these whose latest consent switched updates on."""
    latest = (
        select(UpdateConsent.vehicle_id, func.max(UpdateConsent.id).label("last"))
        .group_by(UpdateConsent.vehicle_id)
        .subquery()
    )
    enabled = set(
        await session.scalars(
            select(UpdateConsent.vehicle_id)
            .join(latest, latest.c.last == UpdateConsent.id)
            .where(UpdateConsent.enabled.is_(True))
        )
    )
    return enabled.intersection(vehicle_ids)


@dataclass(frozen=True)
class CreatedCampaign:
    campaign: UpdateCampaign
    matching: int
    consented: int


async def create_campaign(session: AsyncSession, account: Account, data: CampaignInput) -> CreatedCampaign:
    _check(data)
    await packages.package_file(session, data.package)  # 404 package_not_found
    matching = await _matching(session, data)
    if not matching:
        raise CarlinkError(
            "No car matches this model, these variants and this version range: nothing to roll out.",
            code="campaign_targets_no_car",
            status=422,
        )
    campaign = UpdateCampaign(
        name=data.name.strip(),
        package=data.package,
        model_key=data.model_key,
        variants=list(data.variants),
        version_from=data.version_from,
        version_below=data.version_below,
        to_version=data.to_version,
        waves=list(data.waves),
        success_threshold=data.success_threshold,
        error_threshold=data.error_threshold,
        created_by=account.id,
        created_at=clock.now(),
    )
    session.add(campaign)
    await session.flush()
    consented = await _consented(session, [vid for vid, _ in matching])
    return CreatedCampaign(campaign, len(matching), len(consented))


async def campaign(session: AsyncSession, campaign_id: int) -> UpdateCampaign:
    row = await session.get(UpdateCampaign, campaign_id) if 0 < campaign_id < 2**31 else None
    if row is None:
        raise NotFound("There is no such campaign.", code="campaign_not_found")
    return row


async def campaigns(session: AsyncSession) -> list[UpdateCampaign]:
    return list(await session.scalars(select(UpdateCampaign).order_by(UpdateCampaign.id.desc())))


async def counts(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Cars of the campaign per delivery state (OTA per-car status, summed)."""
    rows = await session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.state)
    )
    return {state: count for state, count in rows}


async def campaign_cars(
    session: AsyncSession, campaign_id: int, *, state: str | None = None, limit: int = 200
) -> list[tuple[Delivery, str]]:
    query = (
        select(Delivery, Vehicle.vin)
        .join(Vehicle, Vehicle.id == Delivery.vehicle_id)
        .where(Delivery.campaign_id == campaign_id)
        .order_by(Delivery.updated_at.desc(), Delivery.id)
        .limit(limit)
    )
    if state:
        query = query.where(Delivery.state == state)
    return [(delivery, vin) for delivery, vin in await session.execute(query)]


async def move(session: AsyncSession, campaign_id: int, target: CampaignState) -> list[int]:
    """Operator: pause, resume or cancel; returns vehicle ids whose delivery set changed."""
    await campaign(session, campaign_id)  # the same 404 for ids out of range
    row = await session.get(UpdateCampaign, campaign_id, with_for_update=True, populate_existing=True)
    assert row is not None
    if row.state == target:
        return []
    require_campaign_move(row.state, target)
    row.state = target.value
    row.paused_reason = "operator" if target == CampaignState.PAUSED else None
    if target == CampaignState.RUNNING:
        row.resumed_at = clock.now()
    if target != CampaignState.CANCELLED:
        return []
    row.finished_at = clock.now()
    pending = await session.scalars(
        select(Delivery).where(
            Delivery.campaign_id == campaign_id,
            Delivery.state.in_(
                [
                    DeliveryState.OFFERED,
                    DeliveryState.DOWNLOADING,
                    DeliveryState.DOWNLOADED,
                    DeliveryState.FAILED,
                ]
            ),
        )
    )
    return await deliveries.cancel(session, list(pending), "campaign_cancelled")


# --- rollout (jobs) --------------------------------------------------------------------------------------


async def _advance(session: AsyncSession, row: UpdateCampaign) -> list[int]:
    """One step of one running campaign; returns the cars newly offered."""
    tally = await counts(session, row.id)
    offered = sum(tally.values()) - tally.get(DeliveryState.CANCELLED, 0)
    installed = tally.get(DeliveryState.INSTALLED, 0)
    failed = tally.get(DeliveryState.FAILED, 0)
    if row.resumed_at is not None:  # only what failed since the operator resumed the campaign counts
        since = select(func.count()).where(
            Delivery.campaign_id == row.id,
            Delivery.state == DeliveryState.FAILED,
            Delivery.updated_at > row.resumed_at,
        )
        failed = await session.scalar(since) or 0
    if offered and failed * 100 >= row.error_threshold * offered:
        row.state, row.paused_reason = CampaignState.PAUSED.value, "error_threshold"
        log.warning("campaign %s paused: %s of %s cars failed", row.id, failed, offered)
        return []
    matching = await _matching(session, row)
    # A car whose person switched updates off and on again gets its withdrawn delivery back.
    withdrawn: dict[int, int] = {}
    have: set[int] = set()
    for delivery_id, vehicle_id, state, reason in await session.execute(
        select(Delivery.id, Delivery.vehicle_id, Delivery.state, Delivery.reason).where(
            Delivery.campaign_id == row.id
        )
    ):
        if state == DeliveryState.CANCELLED and reason == SWITCHED_OFF:
            withdrawn[vehicle_id] = delivery_id
        else:
            have.add(vehicle_id)
    candidates = sorted(await _consented(session, [vid for vid, _ in matching if vid not in have]))
    eligible = offered + len(candidates)
    if offered and installed * 100 >= row.success_threshold * offered and row.wave < len(row.waves) - 1:
        cap = wave_size(eligible, row.waves[row.wave])
        if offered >= cap:
            row.wave += 1  # the wave reached its size and its success threshold: the next one opens
    room = wave_size(eligible, row.waves[row.wave]) - offered
    chosen = candidates[: max(room, 0)]
    if chosen:
        now = clock.now()
        fresh = [vid for vid in chosen if vid not in withdrawn]
        if fresh:
            await session.execute(
                insert(Delivery),
                [
                    {
                        "vehicle_id": vid,
                        "kind": "update",
                        "package": row.package,
                        "campaign_id": row.id,
                        "wave": row.wave,
                        "state": DeliveryState.OFFERED.value,
                        "failures": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for vid in fresh
                ],
            )
        again = [withdrawn[vid] for vid in chosen if vid in withdrawn]
        if again:
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(again))
                .values(state=DeliveryState.OFFERED.value, reason=None, wave=row.wave, updated_at=now)
            )
        await deliveries.bump(session, chosen)
    elif (
        row.wave == len(row.waves) - 1
        and not any(vid not in have for vid, _ in matching)  # none waits for its person's consent
        and not any(tally.get(state, 0) for state in OPEN)
    ):
        row.state, row.finished_at = CampaignState.FINISHED.value, clock.now()
    return chosen


async def advance_rollouts(platform: Platform) -> list[int]:
    """One step of every running campaign; returns the cars newly offered (their sets still to publish)."""
    async with platform.db.session() as session:
        running = list(
            await session.scalars(
                select(UpdateCampaign.id).where(UpdateCampaign.state == CampaignState.RUNNING)
            )
        )
    offered: list[int] = []
    for campaign_id in running:
        async with platform.db.transaction() as session:
            row = await session.get(UpdateCampaign, campaign_id, with_for_update=True, populate_existing=True)
            if row is None or row.state != CampaignState.RUNNING:
                continue
            offered += await _advance(session, row)
    return offered


async def run_rollouts(platform: Platform) -> int:
    """Jobs: advances every running campaign and publishes the sets of the cars it offered updates to."""
    offered = await advance_rollouts(platform)
    if offered:
        await deliveries.publish(platform, offered)
    return len(offered)
