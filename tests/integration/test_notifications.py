"""The notification centre (ACC-8): a store mail appears there too; read and unread through the JSON API and
the page; the badge in the top navigation; another person's notification is a 404."""

from __future__ import annotations

import re

from carlink.demo import world
from carlink.notify.service import notify
from tests.integration.test_store_checkout import ready_cart
from tests.support.portal import Browser
from tests.support.stack import TAYCAN, Stack


async def test_store_mail_lands_in_the_notification_centre_and_is_read(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    browser = await Browser(stack).sign_in(world.OWNER)
    # REQ: ACC-8 — an empty centre says so, and the badge is an empty span.
    assert 'id="no-notifications"' in (await browser.http.get("/notifications")).text
    assert (await browser.http.get("/notifications/badge")).text == "<span></span>"
    signed_out = await stack.http.get("/notifications/badge")
    assert signed_out.status_code == 200 and signed_out.text == ""

    for service in ("remote-services", "navigation-plus"):
        cart = await ready_cart(owner, TAYCAN, service, "P1Y")
        response = await owner.post(
            f"/api/v1/vehicles/{TAYCAN}/cart/checkout", json={"revision": cart["revision"]}
        )
        assert response.status_code == 201, response.text
    listed = (await owner.get("/api/v1/me/notifications")).json()
    assert listed["unread"] == 2 and len(listed["notifications"]) == 2
    newest, older = listed["notifications"]
    assert newest["kind"] == "order_confirmation" and not newest["read"] and newest["id"] > older["id"]
    badge = (await browser.http.get("/notifications/badge")).text
    assert badge == '<span class="badge" aria-label="2 unread">2</span>'

    # Read one through the API: the unread filter and the count follow.
    read = await owner.post(f"/api/v1/me/notifications/{older['id']}/read")
    assert read.status_code == 200 and read.json()["read"]
    unread = (await owner.get("/api/v1/me/notifications", params={"unread": "true"})).json()
    assert [n["id"] for n in unread["notifications"]] == [newest["id"]] and unread["unread"] == 1
    page = (await browser.http.get("/notifications")).text
    assert re.search(rf'id="n{newest["id"]}"[^>]*data-state="unread"', page.replace("\n", " "))
    assert re.search(rf'id="n{older["id"]}"[^>]*data-state="read"', page.replace("\n", " "))
    assert "Mark all as read" in page and "Show the message" in page

    # Another person's notification is the same 404 as a missing one, on the API and the page.
    stranger = await stack.as_user(world.STRANGER)
    foreign = await stranger.post(f"/api/v1/me/notifications/{newest['id']}/read")
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "notification_not_found"
    assert (await stranger.post("/api/v1/me/notifications/999999/read")).status_code == 404
    stranger_page = await Browser(stack).sign_in(world.STRANGER)
    assert (await stranger_page.post(f"/notifications/{newest['id']}/read")).status_code == 404
    assert (await owner.get("/api/v1/me/notifications", params={"unread": "true"})).json()["unread"] == 1

    # Mark one on the page, then all through the API.
    assert (await browser.post(f"/notifications/{newest['id']}/read")).status_code == 303
    assert (await browser.http.get("/notifications/badge")).text == "<span></span>"
    marked = await owner.post("/api/v1/me/notifications/read-all")
    assert marked.status_code == 200 and marked.json()["marked"] == 0
    # Each entry links to the page it is about.
    owner_id = (await owner.get("/api/v1/me")).json()["id"]
    async with stack.db.transaction() as session:
        await notify(
            session,
            account_id=owner_id,
            kind="privacy_policy",
            title="New policy",
            link="/privacy",
            dedupe_key="t-1",
        )
    assert 'href="/privacy">New policy</a>' in (await browser.http.get("/notifications")).text
    # A form without the session's token changes nothing.
    assert (
        await browser.http.post("/notifications/read-all", data={"csrf_token": "wrong"})
    ).status_code == 403
    for client in (owner, stranger, browser.http, stranger_page.http):
        await client.aclose()
