"""The authorisation matrix (issue 9, point 2): every route of the API, the compatibility facade and the
portal, called as each role on the owner's objects, answers what docs/security/authorization.md says.

The whole matrix runs on SQLite with the embedded broker; on PostgreSQL with Mosquitto the hidden-object
rows run (every route with a VIN, called by the people who must not see the car), which is where a database
difference (a join, a case-sensitive comparison) would leak a car. A route of the app that the doc neither
lists nor leaves out with a reason fails `test_every_route_has_an_entry`, so a new route is judged from its
first day.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from carlink.demo import world
from carlink.garage import service as garage
from carlink.garage.models import VehicleUser
from carlink.identity import service as identity
from carlink.identity.access import CSRF_HEADER
from carlink.identity.models import Account, LoginFailure
from tests.authz import objects
from tests.authz.calls import (
    LAST,
    Call,
    call_for,
    names_the_car_in_its_form,
    object_parameters,
    with_role,
)
from tests.authz.matrix import ROLES, Answer, answer_of, excluded_routes, expected_rows
from tests.conftest import POSTGRES_STACK, STACKS
from tests.support.portal import Browser
from tests.support.stack import TAYCAN, Stack

EMAILS: dict[str, str | None] = {
    "owner": world.OWNER,
    "secondary": world.FAMILY,
    "other owner": world.JAPAN_OWNER,
    "dealer": world.DEALER,
    "other dealer": world.OTHER_DEALER,
    "soc": world.SOC_OPERATOR,
    "operator": world.OPERATOR,
    "stranger": None,
}
# The people who are not users of the car.
OUTSIDERS = ("other owner", "dealer", "other dealer", "soc", "operator", "stranger")
# For a signed-in outsider and a signed-out one, the owner's VIN and a VIN that does not exist must get the
# same answer (the other outsiders reach the same code path as the signed-in one: no membership).
PROBERS = ("other owner", "stranger")
# Where another ID gets 404 for an object of the path (an order, a sale, an appointment …), it must be the
# answer for an id no row has: the other owner for the owner's objects, the other dealer for the dealer's.
OBJECT_PROBERS = ("other owner", "other dealer")
# The owner and the secondary user act last in each row, so a permitted call that changes something (a
# cancelled appointment) has been refused to everyone else first.
CALL_ORDER = tuple(reversed(ROLES))


def app_routes(app: Any) -> set[str]:
    """Every route of the app as "METHOD /path" (HEAD only where it is declared alone); mounts aside."""

    def walk(routes: list[Any]) -> Any:
        for route in routes:
            if hasattr(route, "original_router"):
                yield from walk(route.original_router.routes)
            else:
                yield route

    found = set()
    for route in walk(app.routes):
        methods = getattr(route, "methods", None)
        if not methods:
            continue  # a mount: static files (listed in the doc's exclusions by prefix)
        for method in methods - {"HEAD"} or methods:
            found.add(f"{method} {route.path}")
    return found


def test_every_route_has_an_entry(tmp_path: Path) -> None:
    from carlink.app import create_app
    from carlink.settings import Settings

    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/routes.db"), migrate=False)
    routes = app_routes(app)
    listed = set(expected_rows()) | set(excluded_routes())
    unlisted = sorted(routes - listed)
    assert not unlisted, f"routes without a row in docs/security/authorization.md: {unlisted}"
    gone = sorted(listed - routes)
    assert not gone, f"rows of docs/security/authorization.md for routes that do not exist: {gone}"
    both = sorted(set(expected_rows()) & set(excluded_routes()))
    assert not both, f"routes both in the matrix and left out: {both}"


@dataclass
class Person:
    """One role's way in: a bearer client for the API and the facade, a browser for the portal."""

    role: str
    api: httpx.AsyncClient
    browser: Browser

    async def send(self, call: Call) -> Answer:
        call = with_role(call, self.role)
        if call.api:
            client = self.api
            request = client.build_request(call.method, call.path, json=call.json)
        elif call.json is not None:  # a page's script: JSON with the session's CSRF token in a header
            client = self.browser.http
            headers = {CSRF_HEADER: self.browser.csrf}
            request = client.build_request(call.method, call.path, json=call.json, headers=headers)
        else:
            client = self.browser.http
            form = None if call.method == "GET" else {"csrf_token": self.browser.csrf, **(call.form or {})}
            request = client.build_request(call.method, call.path, data=form)
        # A fresh connection per call: uvicorn closes a connection idle for 5 s, and a call reusing it in
        # that instant (on a loaded machine) would fail for a reason that is not the route's.
        request.headers["Connection"] = "close"
        try:
            response = await client.send(request, stream=True)
        except httpx.TransportError as error:  # the server dropped the call: named in the mismatches
            return Answer(599, type(error).__name__, "")
        try:  # a live stream answers its headers at once and never ends: its body is not read
            streaming = "event-stream" in response.headers.get("content-type", "")
            body = b"" if streaming else await response.aread()
        finally:
            await response.aclose()
        return answer_of(response, body)


@contextlib.asynccontextmanager
async def people(stack: Stack) -> AsyncIterator[dict[str, Person]]:
    signed_in: dict[str, Person] = {}
    try:
        for role, email in EMAILS.items():
            if email is None:
                api = httpx.AsyncClient(base_url=stack.base_url, timeout=30)
                browser = Browser(stack)
            else:
                api = await stack.as_user(email)
                browser = await Browser(stack).sign_in(email)
            signed_in[role] = Person(role, api, browser)
        yield signed_in
    finally:
        for person in signed_in.values():
            await person.api.aclose()
            await person.browser.close()


async def throttle_password_confirmations(stack: Stack) -> None:
    """Each role has used up its wrong-password confirmations (ACC-7), so the routes that confirm with the
    password answer `429 slow_down` at once: they have asked who is calling, and the matrix spends no
    argon2 time (about 0.7 s a call) on passwords that are wrong anyway."""
    async with stack.db.transaction() as session:
        for email in filter(None, EMAILS.values()):
            account_id = await session.scalar(select(Account.id).where(Account.email == email))
            for _ in range(identity.CONFIRM_FAILURES_PER_10_MIN):
                session.add(LoginFailure(source=f"confirm:{account_id}"))


async def restore_the_cars_people(stack: Stack) -> None:
    """After a row that removed people from the Taycan (leaving the car), the owner and family are back."""
    async with stack.db.transaction() as session:
        taycan = await garage.vehicle_by_vin(session, TAYCAN)
        assert taycan is not None
        members = set(
            await session.scalars(select(VehicleUser.account_id).where(VehicleUser.vehicle_id == taycan.id))
        )
        for email, role in ((world.OWNER, garage.MAIN), (world.FAMILY, garage.SECONDARY)):
            account = await session.scalar(select(Account).where(Account.email == email))
            assert account is not None
            if account.id not in members:
                await garage.assign_user(session, taycan, account, role)


def in_run_order(routes: list[str]) -> list[str]:
    ordinary = sorted(route for route in routes if route not in LAST)
    return ordinary + [route for route in LAST if route in routes]


async def run_matrix(
    stack: Stack, values: dict[str, str], routes: list[str], roles: tuple[str, ...]
) -> list[str]:
    """Calls each route as each role on the objects; the mismatches, one line each."""
    expected = expected_rows()
    await throttle_password_confirmations(stack)
    wrong: list[str] = []

    async def check(person: Person, route: str) -> None:
        want = expected[route].cells[person.role]
        got = await person.send(call_for(route, values))
        if got.outcome != want:
            wrong.append(f"{route} {person.role}: expected {want}, got {got.outcome} ({got})")
        probed = ("{vin}" in route and person.role in PROBERS) or (
            names_the_car_in_its_form(route) and person.role == "other dealer"
        )
        if probed and want != "ok":
            unknown = await person.send(call_for(route, values, vin=objects.UNKNOWN_VIN))
            if (unknown.status, unknown.code) != (got.status, got.code):
                wrong.append(
                    f"{route} {person.role}: the owner's VIN answers {got}, an unknown VIN {unknown}"
                )
        if person.role in OBJECT_PROBERS and want == "404" and object_parameters(route):
            unknown = await person.send(call_for(route, values, unknown_object=True))
            if (unknown.status, unknown.code) != (got.status, got.code):
                wrong.append(
                    f"{route} {person.role}: the owner's object answers {got}, an unknown one {unknown}"
                )

    async with people(stack) as everyone:
        for route in in_run_order(routes):
            if route in LAST:  # one at a time, the car's users last
                for role in (role for role in CALL_ORDER if role in roles):
                    await check(everyone[role], route)
                await restore_the_cars_people(stack)
                continue
            # The outsiders at once (their calls change nothing of the car's), then the car's users.
            await asyncio.gather(*(check(everyone[role], route) for role in OUTSIDERS if role in roles))
            for role in ("secondary", "owner"):
                if role in roles:
                    await check(everyone[role], route)
    return sorted(wrong)


@pytest.mark.parametrize("stack", [STACKS[0]], indirect=True)
async def test_every_route_answers_each_role_as_the_matrix_says(stack: Stack) -> None:
    values = await objects.build(stack)
    wrong = await run_matrix(stack, values, list(expected_rows()), ROLES)
    assert not wrong, f"{len(wrong)} cells differ from docs/security/authorization.md:\n" + "\n".join(wrong)
    # Found by the matrix: once the owner had cancelled or withdrawn, the same call by the secondary user
    # answered success instead of its refusal (the "already done" answer came before the check of who may).
    family = await stack.as_user(world.FAMILY)
    try:
        for path, code in (
            (f"/api/v1/store/contracts/{values['contract_id']}/cancellation", "owner_only"),
            (f"/api/v1/store/contracts/{values['contract_id']}/withdrawal", "buyer_only"),
            (f"/api/v1/function-orders/{values['function_order_id']}/cancellation", "buyer_only"),
        ):
            refused = await family.post(path)
            assert (refused.status_code, refused.json()["error"]["code"]) == (403, code), path
    finally:
        await family.aclose()


@pytest.mark.parametrize("stack", [POSTGRES_STACK], indirect=True)
async def test_the_car_stays_hidden_on_postgres(stack: Stack) -> None:
    routes = [route for route in expected_rows() if "{vin}" in route]
    wrong = await run_matrix(stack, await objects.build(stack), routes, PROBERS)
    assert not wrong, f"{len(wrong)} cells differ from docs/security/authorization.md:\n" + "\n".join(wrong)
