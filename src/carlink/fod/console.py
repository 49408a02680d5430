"""The operator console's pages for functions on demand and software updates: the functions of the
catalogue with their offers and the latest orders (FOD-1..3), the signed package files and keys, and update
campaigns with their staged rollout and per-car status (OTA-2..4).

Same use cases and rules as the JSON API (fod.operator_api): the operator role is required (not signed in:
the sign-in page; signed in without the role: 403 `staff_only`); forms carry the session's CSRF token and
answer with a redirect, a refusal shows the form again with the reason.
"""

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from carlink.catalog.models import Offer, Service
from carlink.catalog.rules import FUNCTION
from carlink.errors import CarlinkError, NotFound
from carlink.fod import deliveries, updates
from carlink.fod import service as packages
from carlink.fod.models import Delivery, FunctionOrder, MetadataVersion
from carlink.fod.rules import CAMPAIGN_MOVES, CampaignState, DeliveryState
from carlink.garage.models import Vehicle
from carlink.i18n import N_
from carlink.identity import service as identity
from carlink.identity.access import Caller, platform_of
from carlink.protocol.catalogue import CATALOGUE
from carlink.protocol.packages import ROLES
from carlink.store.portal import form_number, refused, render, see_other, staff_caller, to_signin

router = APIRouter(include_in_schema=False)
MOVES = {"pause": CampaignState.PAUSED, "resume": CampaignState.RUNNING, "cancel": CampaignState.CANCELLED}
LATEST_ORDERS = 50
# Shown translated by the templates: {{ _(notices[done]) }}.
NOTICES = {
    "package": N_("The package is stored and a new targets version is signed."),
    "package_unchanged": N_("The package was already stored with these bytes: nothing new was signed."),
    "rotated": N_("The key is rotated: a new root version lists the new key."),
    "created": N_("The campaign is created; its first wave went out to the cars with online updates on."),
    "paused": N_("The campaign is paused."),
    "running": N_("The campaign runs again."),
    "cancelled": N_("The campaign is cancelled; updates not yet installing are withdrawn from the cars."),
}


async def _operator(request: Request, session: AsyncSession, csrf_token: str | None = None) -> Caller | None:
    found = await staff_caller(request, session, identity.OPERATOR, csrf_token)
    return found[0] if found is not None else None


async def _form_operator(request: Request, csrf_token: str) -> Caller:
    async with platform_of(request).db.transaction() as session:
        caller = await _operator(request, session, csrf_token)
    assert caller is not None  # a form without a session was refused as unauthorised
    return caller


def _console(request: Request, name: str, caller: Caller, section: str, **context: Any) -> HTMLResponse:
    return render(request, name, caller, section="", console_section=section, **context)


# --- functions of the catalogue and the latest orders (FOD-1..3) -----------------------------------------


@dataclass(frozen=True)
class CatalogueFunction:
    service: Service
    offers: dict[str, list[Offer]]  # by country, in force today


@dataclass(frozen=True)
class OrderRow:
    order: FunctionOrder
    vin: str
    delivery: Delivery | None


async def catalogue_functions(session: AsyncSession) -> list[CatalogueFunction]:
    services = list(
        await session.scalars(
            select(Service).where(Service.kind == FUNCTION).order_by(Service.sort_order, Service.code)
        )
    )
    offers = await session.scalars(
        select(Offer)
        .where(Offer.service_code.in_([s.code for s in services]), Offer.retired_at.is_(None))
        .order_by(Offer.country, Offer.term_months.desc())
    )
    by_service: dict[str, dict[str, list[Offer]]] = {s.code: {} for s in services}
    for offer in offers:
        by_service[offer.service_code].setdefault(offer.country, []).append(offer)
    return [CatalogueFunction(s, by_service[s.code]) for s in services]


async def latest_orders(session: AsyncSession, limit: int = LATEST_ORDERS) -> list[OrderRow]:
    rows = await session.execute(
        select(FunctionOrder, Vehicle.vin, Delivery)
        .join(Vehicle, Vehicle.id == FunctionOrder.vehicle_id)
        .outerjoin(Delivery, Delivery.function_order_id == FunctionOrder.id)
        .order_by(FunctionOrder.id.desc())
        .limit(limit)
    )
    return [OrderRow(order, vin, delivery) for order, vin, delivery in rows]


@router.get("/operator/functions", response_model=None)
async def functions_page(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _operator(request, session)
        if caller is None:
            return to_signin(request)
        return _console(
            request,
            "operator/functions.html",
            caller,
            "functions",
            functions=await catalogue_functions(session),
            orders=await latest_orders(session),
        )


# --- signed package files and keys ----------------------------------------------------------------------


async def _latest_metadata(session: AsyncSession, role: str) -> MetadataVersion | None:
    with contextlib.suppress(NotFound):
        return await (packages.current_root(session) if role == "root" else packages.current_targets(session))
    return None


async def _packages_page(
    request: Request, session: AsyncSession, caller: Caller, *, status: int = 200, **context: Any
) -> HTMLResponse:
    return _console(
        request,
        "operator/packages.html",
        caller,
        "packages",
        status=status,
        files=await packages.list_packages(session),
        targets=await _latest_metadata(session, "targets"),
        notices=NOTICES,
        **context,
    )


@router.get("/operator/packages", response_model=None)
async def packages_page(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _operator(request, session)
        if caller is None:
            return to_signin(request)
        return await _packages_page(request, session, caller, done=done)


def _spool(source: BinaryIO) -> Path:
    """The upload into a file of its own, so a large package is never held in memory at once."""
    with tempfile.NamedTemporaryFile(prefix="carlink-upload-", delete=False) as target:
        shutil.copyfileobj(source, target, packages.COPY_CHUNK)
    return Path(target.name)


@router.post("/operator/packages", response_model=None)
async def upload_package(
    request: Request,
    name: str = Form(""),
    file: UploadFile | None = File(None),
    csrf_token: str = Form(""),
) -> Response:
    platform = platform_of(request)
    caller = await _form_operator(request, csrf_token)
    name = name.strip() or (file.filename or "" if file is not None else "")
    spooled: Path | None = None
    try:
        if file is None or not file.filename:
            raise CarlinkError("Choose the package file to upload.", code="package_file_missing", status=422)
        spooled = await asyncio.to_thread(_spool, file.file)
        async with platform.db.transaction() as session:
            added = await packages.add_package(
                session,
                platform.settings,
                packages.check_name(name),
                spooled,
                content_type=file.content_type or "application/octet-stream",
            )
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _packages_page(
                request,
                session,
                caller,
                **refused(error),
                package_name=name[:200],
            )
    finally:
        if spooled is not None:
            await asyncio.to_thread(os.unlink, spooled)
    return see_other(f"/operator/packages?done={'package' if added.changed else 'package_unchanged'}")


async def _keys_page(
    request: Request, session: AsyncSession, caller: Caller, *, status: int = 200, **context: Any
) -> HTMLResponse:
    return _console(
        request,
        "operator/keys.html",
        caller,
        "keys",
        status=status,
        keys=await packages.all_keys(session),
        root=await _latest_metadata(session, "root"),
        targets=await _latest_metadata(session, "targets"),
        roles=ROLES,
        notices=NOTICES,
        **context,
    )


@router.get("/operator/keys", response_model=None)
async def keys_page(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _operator(request, session)
        if caller is None:
            return to_signin(request)
        return await _keys_page(request, session, caller, done=done)


@router.post("/operator/keys/rotate", response_model=None)
async def rotate(request: Request, role: str = Form(""), csrf_token: str = Form("")) -> Response:
    """A new key for the role; the old one is retired and a new root version lists the new key."""
    platform = platform_of(request)
    caller = await _form_operator(request, csrf_token)
    try:
        async with platform.db.transaction() as session:
            await packages.rotate_key(session, role[:16])
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _keys_page(
                request,
                session,
                caller,
                **refused(error),
            )
    return see_other("/operator/keys?done=rotated")


# --- update campaigns (OTA-2..4) -------------------------------------------------------------------------


def _numbers(raw: str) -> list[int]:
    """'10, 50, 100' or '10 50 100%' as numbers; anything that is not a number counts as 0 (refused)."""
    return [form_number(part) for part in re.split(r"[,;\s%]+", raw) if part]


def _threshold(raw: str, default: int) -> int:
    return form_number(raw) if raw.strip() else default


async def _campaigns_page(
    request: Request, session: AsyncSession, caller: Caller, *, status: int = 200, **context: Any
) -> HTMLResponse:
    rows = [(row, await updates.counts(session, row.id)) for row in await updates.campaigns(session)]
    context.setdefault("form", {})
    return _console(
        request,
        "operator/campaigns.html",
        caller,
        "campaigns",
        status=status,
        campaigns=rows,
        package_files=await packages.list_packages(session),
        models=CATALOGUE,
        notices=NOTICES,
        **context,
    )


@router.get("/operator/campaigns", response_model=None)
async def campaigns_page(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _operator(request, session)
        if caller is None:
            return to_signin(request)
        return await _campaigns_page(request, session, caller, done=done)


@router.post("/operator/campaigns", response_model=None)
async def create_campaign(
    request: Request,
    name: str = Form(""),
    package: str = Form(""),
    model_key: str = Form(""),
    variants: str = Form(""),
    version_from: str = Form(""),
    version_below: str = Form(""),
    to_version: str = Form(""),
    waves: str = Form(""),
    success_threshold: str = Form(""),
    error_threshold: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Targets a model, some variants (none: all) and an installed version range; refused on the form with
    `campaign_targets_no_car` when no car matches. The first wave goes out at once."""
    platform = platform_of(request)
    caller = await _form_operator(request, csrf_token)
    entered = {
        "name": name[:120],
        "package": package[:200],
        "model_key": model_key[:32],
        "variants": variants[:200],
        "version_from": version_from[:32],
        "version_below": version_below[:32],
        "to_version": to_version[:32],
        "waves": waves[:60],
        "success_threshold": success_threshold[:3],
        "error_threshold": error_threshold[:3],
    }
    data = updates.CampaignInput(
        name=name[:200],
        package=package[:200],
        model_key=model_key[:32],
        variants=[code.strip() for code in variants.split(",") if code.strip()][:20],
        version_from=version_from.strip()[:32],
        version_below=version_below.strip()[:32],
        to_version=to_version.strip()[:32],
        waves=_numbers(waves[:60]),
        success_threshold=_threshold(success_threshold, 90),
        error_threshold=_threshold(error_threshold, 10),
    )
    try:
        async with platform.db.transaction() as session:
            created = await updates.create_campaign(session, caller.account, data)
            campaign_id = created.campaign.id
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _campaigns_page(
                request,
                session,
                caller,
                **refused(error),
                form=entered,
            )
    # The first wave is chosen now; its cars' sets go out right after the answer (see operator_api).
    response = see_other(
        f"/operator/campaigns/{campaign_id}?done=created&matching={created.matching}"
        f"&consented={created.consented}"
    )
    response.background = BackgroundTask(
        deliveries.publish, platform, await updates.advance_rollouts(platform)
    )
    return response


async def _campaign_page(
    request: Request,
    session: AsyncSession,
    caller: Caller,
    campaign_id: int,
    *,
    state: str = "",
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    row = await updates.campaign(session, campaign_id)  # 404 campaign_not_found
    chosen = state if state in {s.value for s in DeliveryState} else ""
    return _console(
        request,
        "operator/campaign.html",
        caller,
        "campaigns",
        status=status,
        campaign=row,
        counts=await updates.counts(session, row.id),
        cars=await updates.campaign_cars(session, row.id, state=chosen or None),
        state=chosen,
        states=[s.value for s in DeliveryState],
        moves=[
            (action, target)
            for action, target in MOVES.items()
            if target in CAMPAIGN_MOVES[CampaignState(row.state)]
        ],
        notices=NOTICES,
        **context,
    )


@router.get("/operator/campaigns/{campaign_id}", response_model=None)
async def campaign_page(
    request: Request,
    campaign_id: str,
    state: str = "",
    done: str = "",
    matching: str = "",
    consented: str = "",
) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _operator(request, session)
        if caller is None:
            return to_signin(request)
        return await _campaign_page(
            request,
            session,
            caller,
            form_number(campaign_id),
            state=state[:16],
            done=done,
            matching=form_number(matching) if matching else None,
            consented=form_number(consented) if consented else None,
        )


@router.post("/operator/campaigns/{campaign_id}/{action}", response_model=None)
async def move_campaign(
    request: Request, campaign_id: str, action: str, csrf_token: str = Form("")
) -> Response:
    """pause | resume | cancel (cancel withdraws every update not yet installing)."""
    platform = platform_of(request)
    caller = await _form_operator(request, csrf_token)
    number, target = form_number(campaign_id), MOVES.get(action)
    try:
        async with platform.db.transaction() as session:
            await updates.campaign(session, number)  # 404 first for a campaign that does not exist
            if target is None:
                raise NotFound("Campaigns can be paused, resumed or cancelled.", code="unknown_action")
            changed = await updates.move(session, number, target)
    except NotFound:
        raise
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _campaign_page(
                request,
                session,
                caller,
                number,
                **refused(error),
            )
    if target == CampaignState.RUNNING:
        changed += await updates.advance_rollouts(platform)
    response = see_other(f"/operator/campaigns/{number}?done={target.value}")
    response.background = BackgroundTask(deliveries.publish, platform, changed)
    return response
