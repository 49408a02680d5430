"""The notification centre in the portal (ACC-8): the list, "mark as read", and the unread badge that the top
navigation loads with htmx."""

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from carlink import i18n
from carlink.identity.access import platform_of
from carlink.notify.service import mark_all_read, mark_read, notifications_of, unread_count
from carlink.store.portal import current_caller, form_caller, form_number, render, see_other, to_signin

router = APIRouter(include_in_schema=False)


@router.get("/notifications", response_model=None)
async def notifications(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        rows = await notifications_of(session, caller.account.id)
        unread = await unread_count(session, caller.account.id)
    return render(
        request,
        "notifications/list.html",
        caller,
        section="notifications",
        notifications=rows,
        unread=unread,
        done=done,
    )


@router.get("/notifications/badge", response_class=HTMLResponse)
async def badge(request: Request) -> HTMLResponse:
    """The unread count for the top navigation; nothing at all when signed out or when all is read."""
    async with platform_of(request).db.session() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return HTMLResponse("")
        count = await unread_count(session, caller.account.id)
    if not count:
        return HTMLResponse("<span></span>")
    shown = "99+" if count > 99 else str(count)
    label = i18n.ngettext("%(num)s unread", "%(num)s unread", count)
    return HTMLResponse(f'<span class="badge" aria-label="{label}">{shown}</span>')


@router.post("/notifications/read-all", response_model=None)
async def read_all(request: Request, csrf_token: str = Form("")) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        await mark_all_read(session, caller.account.id)
    return see_other("/notifications?done=all")


@router.post("/notifications/{notification_id}/read", response_model=None)
async def read_one(request: Request, notification_id: str, csrf_token: str = Form("")) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        await mark_read(session, caller.account.id, form_number(notification_id))
    return see_other(f"/notifications#n{form_number(notification_id)}")
