"""/api/v1/vehicles/{vin}/commands: remote services with their lifecycle, pushed as server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from carlink.error_responses import errors
from carlink.garage import service as garage
from carlink.identity.access import platform_of, require_caller
from carlink.platform import Platform
from carlink.remote import service as remote
from carlink.remote.models import RemoteCommand
from carlink.remote.rules import is_terminal
from carlink.remote.schemas import AuditOut, ChallengeOut, CommandIn, CommandOut, command_out

router = APIRouter(prefix="/api/v1/vehicles", tags=["remote services"])


# 409: privacy mode, remote access not authorised or the car offline; 423: PIN locked; 429: rate limits
@router.post(
    "/{vin}/pin-challenges", response_model=ChallengeOut, status_code=201, responses=errors(409, 423, 429)
)
async def new_pin_challenge(vin: str, request: Request) -> dict[str, Any]:
    """A single-use challenge for the security PIN; answer it in the UNLOCK command's `spin`."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        row = await remote.issue_pin_challenge(session, platform.settings, entry, caller.account)
        return {"challenge_id": row.id, "challenge": row.challenge, "expires_at": row.expires_at}


@router.post("/{vin}/commands", response_model=CommandOut, status_code=202, responses=errors(409, 423, 429))
async def send_command(vin: str, body: CommandIn, request: Request) -> dict[str, Any]:
    """Sends a remote service to the car (RMT-1). Answers at once with state `accepted`; follow it by
    polling, by `?wait=` on the command, or by the vehicle's event stream."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        spin = (body.spin.challenge, body.spin.hash) if body.spin else None
        row = await remote.send_remote_service(
            session,
            platform.settings,
            platform.signer,
            entry,
            caller.account,
            body.type,
            body.params,
            spin=spin,
            channel="api",
        )
    await platform.dispatch(row)
    return command_out(row)


@router.get("/{vin}/commands", response_model=list[CommandOut])
async def list_commands(vin: str, request: Request) -> list[dict[str, Any]]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        return [command_out(row) for row in await remote.recent_commands(session, entry)]


@router.get("/{vin}/audit", response_model=list[AuditOut])
async def audit_log(
    vin: str, request: Request, limit: int = Query(100, ge=1, le=1000)
) -> list[dict[str, Any]]:
    """Every command and its outcome, and wrong PIN entries, newest first (main user only)."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        return [
            {"at": row.at, "action": row.action, "account_id": row.account_id, "detail": row.detail}
            for row in await remote.audit_trail(session, entry, limit)
        ]


@router.get("/{vin}/commands/{command_id}", response_model=CommandOut)
async def get_command(
    vin: str,
    command_id: str,
    request: Request,
    wait: float = Query(0, ge=0, le=30, description="seconds to wait for a final state"),
) -> dict[str, Any]:
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        row = await remote.get_command(session, entry, command_id)
    if wait and not is_terminal(row.state):
        row = await wait_for_outcome(platform, row, wait)
    return command_out(row)


async def wait_for_outcome(platform: Platform, row: RemoteCommand, timeout: float) -> RemoteCommand:
    """Waits for a final state, woken by the event hub; re-reads the database every half second so that a
    gateway in another process is seen too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with platform.hub.listen(row.vehicle_id) as events:
        while True:
            async with platform.db.session() as session:
                fresh = await session.get(RemoteCommand, row.id)
            if fresh is None or is_terminal(fresh.state) or loop.time() >= deadline:
                return fresh or row
            try:
                async with asyncio.timeout(min(0.5, max(0.0, deadline - loop.time()))):
                    while True:
                        event = await events.get()
                        if event.get("id") == row.id and is_terminal(str(event.get("state"))):
                            break
            except TimeoutError:
                pass


@router.get(
    "/{vin}/events",
    response_class=StreamingResponse,
    responses={200: {"description": "an endless event stream", "content": {"text/event-stream": {}}}},
)
async def vehicle_events(vin: str, request: Request) -> StreamingResponse:
    """Server-sent events for one vehicle: `command` (state changes), `telemetry`, `connection`."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
    vehicle_id = entry.vehicle.id

    async def stream() -> AsyncIterator[bytes]:
        async with platform.hub.listen(vehicle_id) as events:
            yield b"retry: 2000\n\n"  # sent once listening, so a client knows no event is missed from here
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(events.get(), timeout=15)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                data = json.dumps(event, default=str)
                yield f"event: {event.get('type', 'message')}\ndata: {data}\n\n".encode()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
