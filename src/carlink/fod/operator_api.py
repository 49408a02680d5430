"""/api/v1/operator/campaigns: software update campaigns for operators (OTA-2..4), as JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request

from carlink.error_responses import errors
from carlink.errors import NotFound
from carlink.fod import deliveries, updates
from carlink.fod import schemas as s
from carlink.fod.rules import CampaignState
from carlink.identity.access import platform_of, require_caller
from carlink.identity.service import OPERATOR, require_staff

# A campaign moved in a way its state does not allow is 409.
router = APIRouter(
    prefix="/api/v1/operator/campaigns", tags=["software update campaigns"], responses=errors(409)
)
MOVES = {"pause": CampaignState.PAUSED, "resume": CampaignState.RUNNING, "cancel": CampaignState.CANCELLED}


@router.get("")
async def list_campaigns(request: Request) -> list[dict[str, Any]]:
    async with platform_of(request).db.session() as session:
        caller = await require_caller(request, session)
        await require_staff(session, caller.account, OPERATOR)
        return [
            s.campaign_out(row, await updates.counts(session, row.id))
            for row in await updates.campaigns(session)
        ]


@router.post("", status_code=201)
async def create_campaign(
    body: s.CampaignIn, request: Request, background: BackgroundTasks
) -> dict[str, Any]:
    """Targets a model, some variants (none: all) and an installed version range; refused with
    `campaign_targets_no_car` when no car matches. The jobs role rolls it out wave by wave."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await require_caller(request, session)
        await require_staff(session, caller.account, OPERATOR)
        created = await updates.create_campaign(
            session, caller.account, updates.CampaignInput(**body.model_dump())
        )
        result = s.campaign_out(created.campaign, {})
        result |= {"matching": created.matching, "consented": created.consented}
    # The first wave is chosen now and its cars' sets go out right after the answer (a whole fleet takes a
    # while); the jobs role publishes whatever this process could not.
    background.add_task(deliveries.publish, platform, await updates.advance_rollouts(platform))
    return result


@router.get("/{campaign_id}")
async def get_campaign(campaign_id: int, request: Request, state: str = "") -> dict[str, Any]:
    async with platform_of(request).db.session() as session:
        caller = await require_caller(request, session)
        await require_staff(session, caller.account, OPERATOR)
        row = await updates.campaign(session, campaign_id)
        result = s.campaign_out(row, await updates.counts(session, row.id))
        result["vehicles"] = [
            {"vin": vin, **(s.delivery_out(delivery) or {})}
            for delivery, vin in await updates.campaign_cars(session, row.id, state=state[:16] or None)
        ]
        return result


@router.post("/{campaign_id}/{action}")
async def move_campaign(
    campaign_id: int, action: str, request: Request, background: BackgroundTasks
) -> dict[str, Any]:
    """pause | resume | cancel (cancel withdraws every update not yet installing)."""
    target = MOVES.get(action)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await require_caller(request, session)
        await require_staff(session, caller.account, OPERATOR)
        if target is None:
            await updates.campaign(session, campaign_id)  # 404 first for a campaign that does not exist
            raise NotFound("Campaigns can be paused, resumed or cancelled.", code="unknown_action")
        changed = await updates.move(session, campaign_id, target)
    if target == CampaignState.RUNNING:
        changed += await updates.advance_rollouts(platform)
    background.add_task(deliveries.publish, platform, changed)
    async with platform.db.session() as session:  # as it stands after the step (it may pause again)
        row = await updates.campaign(session, campaign_id)
        result = s.campaign_out(row, await updates.counts(session, row.id))
    return result
