"""The SOC console (role `soc`; SEC-1, SEC-4; docs/security.md "The SOC console"): the live queue of cases,
kept current by server-sent events, one case with its map, customer, calls and workflow, and the welcome
calls of new activations.

The same use cases and rules as everywhere (security.soc, which checks the role and writes the access log):
not signed in, the sign-in page; signed in without the role, 403 `staff_only`. Forms carry the session's
CSRF token and answer with a redirect; a refusal shows the page again with the reason — a move on a stale
page (409 `alarm_changed`) shows the case as it is now.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from carlink.errors import CarlinkError, Forbidden, NotFound
from carlink.i18n import N_, _
from carlink.identity import service as identity
from carlink.identity.access import Caller, platform_of
from carlink.security import alarms, config, soc
from carlink.store.portal import form_number, form_status, refused, render, see_other, staff_caller, to_signin
from carlink.web.headers import content_security_policy, redirect_source

router = APIRouter(include_in_schema=False)
Code = TypeVar("Code", str, int)

# The SOC's words for the domain's codes, marked for the catalogue and translated where shown (`_shown`);
# the live queue's script gets them too (data-labels). tests/unit/test_security_rules.py: every code has one.
TRIGGERS = {
    "towing": N_("Towing"),
    "tilt": N_("Tilt"),
    "glass_break": N_("Glass break"),
    "interior_motion": N_("Interior motion"),
    "ignition_without_key": N_("Ignition without key"),
    "moving_while_locked": N_("Moving while locked"),
    "no_driver_card": N_("No driver card (silent)"),
    "test": N_("Test alarm"),
}
STATES = {
    "new": N_("New"),
    "acknowledged": N_("Acknowledged"),
    "customer_contacted": N_("Customer contacted"),
    "false_alarm": N_("False alarm"),
    "theft_confirmed": N_("Theft confirmed"),
    "police_informed": N_("Police informed"),
    "closed": N_("Closed"),
}
MOVES = {
    "acknowledged": N_("Acknowledge"),
    "customer_contacted": N_("Customer contacted"),
    "false_alarm": N_("False alarm"),
    "theft_confirmed": N_("Confirm theft"),
    "police_informed": N_("Police informed"),
    "closed": N_("Close the case"),
}
SEVERITIES = {4: N_("Critical"), 3: N_("High"), 2: N_("Medium"), 1: N_("Low"), 0: N_("Test")}
OUTCOMES = {
    "reached": N_("Reached"),
    "no_answer": N_("No answer"),
    "voicemail": N_("Voicemail"),
    "wrong_number": N_("Wrong number"),
    "police": N_("Police"),
}
NOTICES = {
    "moved": N_("The case is moved."),
    "call": N_("The call is in the log."),
    "confirmed": N_("The activation is confirmed: the customer can download the certificate now."),
}
# OpenStreetMap's tiles when the SOC's network reaches them; without them the track is still drawn.
TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
TILES_POLICY = content_security_policy(img_src=redirect_source(TILES))
KEEP_ALIVE_SECONDS = 15


async def _soc(request: Request, session: AsyncSession) -> Caller | None:
    found = await staff_caller(request, session, identity.SOC)
    return found[0] if found is not None else None


async def _form_soc(request: Request, csrf_token: str) -> Caller:
    async with platform_of(request).db.transaction() as session:
        found = await staff_caller(request, session, identity.SOC, csrf_token)
    assert found is not None  # a form without a session was refused as unauthorised
    return found[0]


def _shown(labels: dict[Code, str]) -> dict[Code, str]:
    """A label map in the request's language."""
    return {code: _(label) for code, label in labels.items()}


def _console(request: Request, name: str, caller: Caller, **context: Any) -> HTMLResponse:
    return render(
        request,
        name,
        caller,
        section="",
        console_section="queue",
        triggers=_shown(TRIGGERS),
        states=_shown(STATES),
        severities=_shown(SEVERITIES),
        **context,
    )


def _labels() -> str:
    words = {
        "more": _("+%(count)s more"),
        "no_package": _("no package"),
        "live": _("live"),
        "retrying": _("offline: retrying"),
        "reconnecting": _("offline: reconnecting"),
    }
    return json.dumps(
        {
            "triggers": _shown(TRIGGERS),
            "states": _shown(STATES),
            "severities": _shown(SEVERITIES),
            "words": words,
        }
    )


# --- the live queue and the welcome calls ------------------------------------------------------------------


async def _queue_page(
    request: Request, session: AsyncSession, caller: Caller, *, status: int = 200, **context: Any
) -> HTMLResponse:
    return _console(
        request,
        "soc/index.html",
        caller,
        status=status,
        queue=await soc.queue(session),
        welcome=await soc.welcome_calls(session, caller.account.id),
        labels=_labels(),
        notices=_shown(NOTICES),
        **context,
    )


@router.get("/soc", response_model=None)
async def queue_page(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _soc(request, session)
        if caller is None:
            return to_signin(request)
        return await _queue_page(request, session, caller, done=done)


@router.get("/soc/queue", response_model=None)
async def queue_rows(request: Request) -> Response:
    """The queue's rows alone: the page re-reads them every few seconds in case it missed an event."""
    async with platform_of(request).db.transaction() as session:
        caller = await _soc(request, session)
        if caller is None:
            return to_signin(request)
        return _console(request, "soc/_queue_rows.html", caller, queue=await soc.queue(session))


@router.get("/soc/welcome-calls", response_model=None)
async def welcome_rows(request: Request) -> Response:
    """The welcome calls alone: re-read when the stream says a car's test alarm came."""
    async with platform_of(request).db.transaction() as session:
        caller = await _soc(request, session)
        if caller is None:
            return to_signin(request)
        welcome = await soc.welcome_calls(session, caller.account.id)
        return _console(request, "soc/_welcome_calls.html", caller, welcome=welcome)


@router.get("/soc/alarms/stream", response_class=StreamingResponse)
async def alarm_stream(request: Request) -> Response:
    """Server-sent events of the live queue: `alarm` (a case opened, merged or moved) and `activation`
    (a car's test alarm came). A comment every 15 s keeps proxies from closing a quiet stream. Every 15 s
    by the clock, whether events flow or not (an alarm storm never lets the queue go quiet), the viewer's
    session and `soc` role are checked again, and the stream ends when either is gone (issue 7, point 5)."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        if await _soc(request, session) is None:
            return to_signin(request)

    async def stream() -> AsyncIterator[bytes]:
        async with platform.hub.listen(alarms.SOC_CHANNEL) as events:
            yield b"retry: 2000\n\n"  # sent once listening: from here on no event is missed
            check_at = time.monotonic() + KEEP_ALIVE_SECONDS
            quiet = True  # no event since the last check
            while not await request.is_disconnected():
                if time.monotonic() >= check_at:
                    if not await _still_soc(request):
                        return
                    check_at = time.monotonic() + KEEP_ALIVE_SECONDS
                try:
                    event = await asyncio.wait_for(events.get(), timeout=check_at - time.monotonic())
                except TimeoutError:  # time to check; a comment keeps proxies from closing a quiet stream
                    if quiet:
                        yield b": keep-alive\n\n"
                    quiet = True
                    continue
                quiet = False
                data = json.dumps(event, default=str)
                yield f"event: {event.get('type', 'alarm')}\ndata: {data}\n\n".encode()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _still_soc(request: Request) -> bool:
    """Whether the stream's viewer is still signed in with the `soc` role: a revoked role or a signed-out
    session stops the live queue within one keep-alive, not only when the browser disconnects."""
    try:
        async with platform_of(request).db.transaction() as session:
            return await _soc(request, session) is not None
    except Forbidden:
        return False


@router.post("/soc/activations/{activation_id}/confirm", response_model=None)
async def confirm_activation(request: Request, activation_id: str, csrf_token: str = Form("")) -> Response:
    """REQ: SEC-4 — the welcome call is done: the activation becomes active."""
    platform = platform_of(request)
    caller = await _form_soc(request, csrf_token)
    try:
        async with platform.db.transaction() as session:
            await soc.confirm_activation(session, form_number(activation_id), caller.account.id)
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _queue_page(
                request,
                session,
                caller,
                **refused(error),
            )
    return see_other("/soc?done=confirmed")


# --- one case ----------------------------------------------------------------------------------------------


async def _case_page(
    request: Request,
    session: AsyncSession,
    caller: Caller,
    alarm_id: int,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    view = await soc.view_case(session, alarm_id, caller.account.id)  # 404 alarm_not_found
    page = _console(
        request,
        "soc/case.html",
        caller,
        status=status,
        case=view,
        moves=_shown(MOVES),
        outcomes=_shown(OUTCOMES),
        notices=_shown(NOTICES),
        tiles=TILES,
        track_json=json.dumps([[point.lat, point.lon] for point in view.track]),
        position_json=json.dumps(
            [view.alarm.lat, view.alarm.lon]
            if view.alarm.lat is not None and view.alarm.lon is not None
            else None
        ),
        **context,
    )
    # The map may show the tile server's pictures; nothing else widens the portal's policy.
    page.headers["Content-Security-Policy"] = TILES_POLICY
    return page


@router.get("/soc/alarms/{alarm_id}", response_model=None)
async def case_page(request: Request, alarm_id: str, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _soc(request, session)
        if caller is None:
            return to_signin(request)
        return await _case_page(request, session, caller, form_number(alarm_id), done=done)


@router.post("/soc/alarms/{alarm_id}/move", response_model=None)
async def move_case(
    request: Request,
    alarm_id: str,
    to_state: str = Form(""),
    version: str = Form(""),
    state: str = Form(""),
    severity: str = Form(""),
    triggers: str = Form(""),
    note: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """One step of the workflow, from what the operator saw: version, state, severity, the number of kinds of
    trigger (soc.move)."""
    platform = platform_of(request)
    caller = await _form_soc(request, csrf_token)
    number = form_number(alarm_id)
    try:
        async with platform.db.transaction() as session:
            moved = await soc.move(
                session,
                number,
                to_state[:24],
                expected_version=form_number(version),
                seen_state=state[:24] or None,
                seen_severity=form_number(severity) if severity else None,
                seen_triggers=form_number(triggers) if triggers else None,
                account_id=caller.account.id,
                note=note,
            )
    except NotFound:
        raise
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _case_page(
                request,
                session,
                caller,
                number,
                **refused(error),
                note=note[:500],
            )
    await platform.emit(alarms.SOC_CHANNEL, moved.event)
    response = see_other(f"/soc/alarms/{number}?done=moved")
    if moved.set_changed:  # the car tracks differently now (SEC-1): its set goes out after the commit
        response.background = BackgroundTask(config.publish, platform, moved.alarm.vehicle_id)
    return response


@router.post("/soc/alarms/{alarm_id}/calls", response_model=None)
async def log_call(
    request: Request,
    alarm_id: str,
    number: str = Form(""),
    outcome: str = Form(""),
    note: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    platform = platform_of(request)
    caller = await _form_soc(request, csrf_token)
    case_id = form_number(alarm_id)
    try:
        async with platform.db.transaction() as session:
            await soc.log_call(
                session,
                case_id,
                account_id=caller.account.id,
                number=number[:40],
                outcome=outcome[:16],
                note=note,
            )
    except NotFound:
        raise
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _case_page(
                request,
                session,
                caller,
                case_id,
                status=form_status(error),
                call_error=error.message,
                call_error_code=error.code,
                call_form={"number": number[:40], "outcome": outcome[:16], "note": note[:500]},
            )
    return see_other(f"/soc/alarms/{case_id}?done=call#calls")
