"""/api/v1/vehicles/{vin}/functions and /software-updates: functions on demand and online updates for the
people of a car (FOD-1..8, OTA-1..4). Ordering and consent are the main user's; every user of the car sees
the states; anyone else gets the same 404 as for a VIN that does not exist."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from carlink.error_responses import errors
from carlink.fod import deliveries, functions, updates
from carlink.fod import schemas as s
from carlink.garage import service as garage
from carlink.identity.access import platform_of
from carlink.store.api import _caller

# An order or an update in the wrong state for the step is 409.
router = APIRouter(prefix="/api/v1", tags=["functions and updates"], responses=errors(409))


@router.get("/vehicles/{vin}/functions")
async def list_functions(vin: str, request: Request) -> dict[str, Any]:
    """REQ: FOD-1 — the functions this car's model can have in its country, each with its state."""
    async with platform_of(request).db.session() as session:
        caller, language = await _caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        items = await functions.functions_of(session, entry)
        return {
            "vin": entry.vehicle.vin,
            "can_order": entry.is_main_user,
            "functions": [s.function_out(item, language) for item in items],
        }


@router.post("/vehicles/{vin}/functions/orders", status_code=201)
async def order_function(
    vin: str, body: s.FunctionOrderIn, request: Request, response: Response
) -> dict[str, Any]:
    """REQ: FOD-2, FOD-3 — nothing is charged now; the car has 28 days to fetch the package. A second
    order for a function already on its way answers 200 with the first."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller, language = await _caller(request, session)
        order, created = await functions.order_function(
            session,
            caller.account,
            vin,
            offer_id=body.offer_id,
            payment_method_id=body.payment_method_id,
            accept_terms=body.accept_terms,
            language=language,
        )
        result = s.order_out(order, language)
        vehicle_id = order.vehicle_id
    if not created:
        response.status_code = 200
    await deliveries.publish(platform, [vehicle_id])
    return result


@router.get("/vehicles/{vin}/functions/orders")
async def list_function_orders(vin: str, request: Request) -> list[dict[str, Any]]:
    async with platform_of(request).db.session() as session:
        caller, language = await _caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        return [
            s.order_out(o, language) for o in await functions.orders_of_vehicle(session, entry.vehicle.id)
        ]


@router.post("/function-orders/{order_id}/cancellation")
async def cancel_function_order(order_id: int, request: Request) -> dict[str, Any]:
    """Before the car installs it, an order can be cancelled; nothing was charged."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller, language = await _caller(request, session)
        order = await functions.cancel_order(session, caller.account, order_id)
        result = s.order_out(order, language)
        vehicle_id = order.vehicle_id
    await deliveries.publish(platform, [vehicle_id])
    return result


@router.get("/vehicles/{vin}/software-updates")
async def software_updates(vin: str, request: Request) -> dict[str, Any]:
    """REQ: OTA-1..4 — whether online updates are on, the installed version and each update's state."""
    async with platform_of(request).db.session() as session:
        caller, _ = await _caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        vehicle = entry.vehicle
        return {
            "vin": vehicle.vin,
            "software_version": vehicle.software_version,
            "can_change": entry.is_main_user,
            "consent": s.consent_out(await updates.consent(session, vehicle.id)),
            "updates": [s.update_out(d, c) for d, c in await updates.updates_of(session, vehicle.id)],
        }


@router.put("/vehicles/{vin}/software-updates/consent")
async def set_update_consent(vin: str, body: s.ConsentIn, request: Request) -> dict[str, Any]:
    """REQ: OTA-1 — the main user switches online updates on or off for this car (recorded with time and
    policy version)."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller, _ = await _caller(request, session)
        changed = await updates.set_consent(session, caller.account, vin, body.enabled)
        entry = await garage.garage_entry(session, caller.account, vin)
        result = s.consent_out(await updates.consent(session, entry.vehicle.id))
    await deliveries.publish(platform, changed)
    return result
