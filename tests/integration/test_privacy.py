"""The privacy policy and consent over HTTP (PRV-1..3): versions and acceptances, consent at registration and
on the portal with its history, revocation by email recorded by an operator, and the contact address per
country (or the dealer where a country has none)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from fastapi.routing import APIRoute
from sqlalchemy import func, select

from carlink.demo import world
from carlink.identity.models import Account
from carlink.notify import pages as notify_pages
from carlink.notify.models import Notification
from carlink.partners import service as partners
from carlink.partners.models import Country
from carlink.privacy import console as privacy_console
from carlink.privacy import pages as privacy_pages
from carlink.privacy import service as privacy
from carlink.privacy.models import (
    ConsentEvent,
    ErasureRequest,
    PolicyAcceptance,
    PolicyVersion,
    PrivacyAuditEntry,
)
from tests.support.portal import Browser, account_id, partner_id
from tests.support.stack import Stack


async def test_policy_versions_are_accepted_and_consent_changes_are_kept(stack: Stack) -> None:
    stranger_id = await account_id(stack, world.STRANGER)
    stuttgart = await partner_id(stack, "DE-STR-01")
    async with stack.db.transaction() as session:
        # REQ: PRV-1 — version 1 is seeded at start.
        assert [v.version for v in await session.scalars(select(PolicyVersion))] == [1]
        # REQ: PRV-2 — what registration records: the policy accepted and the consent to the chosen partner.
        await partners.choose_partner(session, stranger_id, stuttgart)
        await privacy.record_registration_choices(
            session, stranger_id, policy_version=None, partner_id=stuttgart, consent=True
        )
    async with stack.db.session() as session:
        state = await privacy.consent_state(session, stranger_id)
    assert state is not None and state.granted and state.partner_id == stuttgart
    assert state.channel == "registration"

    stranger = await Browser(stack).sign_in(world.STRANGER)
    operator = await Browser(stack).sign_in(world.OPERATOR)
    page = (await stranger.http.get("/privacy")).text
    assert "You accepted version 1" in page and 'id="accept-prompt"' not in page
    assert "Autohaus Example Stuttgart" in page and 'data-granted="yes"' in page
    # REQ: PRV-2 — a German ID is told the country's contact address for revocation by email.
    async with stack.db.session() as session:
        germany = await session.get(Country, "DE")
    assert germany is not None and germany.privacy_contact and germany.privacy_contact in page

    # REQ: PRV-1 — an operator publishes version 2; every ID is told and asked to accept it.
    form = await operator.http.get("/operator/policy")
    assert 'name="based_on" value="1"' in form.text
    version_2 = {
        "title": "How carlink handles your data",
        "summary": "Now with appointments.",
        "rows": "Appointments | Booking your service | Consent | 2 years\n"
        "Your ID | Signing in | Contract | Until erasure",
        "based_on": "1",
    }
    response = await operator.post("/operator/policy", version_2)
    assert response.status_code == 303, response.text
    # The same form sent again (a double click, a reload) publishes no version 3.
    again = await operator.post("/operator/policy", version_2)
    assert again.status_code == 409 and "version 2 was published a moment ago" in again.text
    assert 'name="based_on" value="2"' in again.text
    async with stack.db.session() as session:
        assert [v.version for v in await session.scalars(select(PolicyVersion))] == [1, 2]
    async with stack.db.session() as session:
        told = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.kind == "privacy_policy", Notification.account_id == stranger_id)
        )
    assert told == 1
    page = (await stranger.http.get("/privacy")).text
    assert 'id="accept-prompt"' in page and "Accept version 2" in page and "Appointments" in page
    # Accepting twice at the same moment records one acceptance.
    both = await asyncio.gather(*(stranger.post("/privacy/accept", {"version": "2"}) for _ in range(2)))
    assert [r.status_code for r in both] == [303, 303]
    async with stack.db.session() as session:
        accepted = list(
            await session.scalars(
                select(PolicyAcceptance)
                .where(PolicyAcceptance.account_id == stranger_id)
                .order_by(PolicyAcceptance.version)
            )
        )
    assert [(a.version, a.channel) for a in accepted] == [(1, "registration"), (2, "portal")]
    assert accepted[1].accepted_at >= accepted[0].accepted_at
    page = (await stranger.http.get("/privacy")).text
    assert "You accepted version 2" in page and 'id="accept-prompt"' not in page
    earlier = await stranger.http.get("/privacy/policy/1")
    assert earlier.status_code == 200 and "This is an earlier version" in earlier.text
    assert (await stranger.http.get("/privacy/policy/9")).status_code == 404
    # Anyone may read the policy; the privacy page itself needs a signed-in person.
    assert (await stack.http.get("/privacy/policy/2")).status_code == 200
    assert (await stack.http.get("/privacy")).status_code == 303

    # REQ: PRV-2 — withdrawn and given again on the portal, then withdrawn by email through an operator.
    assert (await stranger.post("/privacy/consent", {"decision": "revoke"})).status_code == 303
    assert 'data-granted="no"' in (await stranger.http.get("/privacy")).text
    assert (await stranger.post("/privacy/consent", {"decision": "grant"})).status_code == 303
    found = await operator.post("/operator/privacy-contacts/revocations", {"email": "nobody@example.com"})
    assert found.status_code == 400 and "No ID has this email address" in found.text
    recorded = await operator.post("/operator/privacy-contacts/revocations", {"email": world.STRANGER})
    assert recorded.status_code == 303
    async with stack.db.session() as session:
        history = list(
            await session.scalars(
                select(ConsentEvent).where(ConsentEvent.account_id == stranger_id).order_by(ConsentEvent.id)
            )
        )
        state = await privacy.consent_state(session, stranger_id)
    assert [(e.granted, e.channel) for e in history] == [
        (True, "registration"),
        (False, "portal"),
        (True, "portal"),
        (False, "email"),
    ]
    assert all(e.partner_id == stuttgart for e in history)
    assert history[-1].recorded_by == await account_id(stack, world.OPERATOR)
    assert state is not None and not state.granted and state.channel == "email"
    page = (await stranger.http.get("/privacy")).text
    assert "by email" in page and "on this page" in page and "at registration" in page


async def test_contacts_per_country_and_operators_edit_them(stack: Stack) -> None:
    family_id = await account_id(stack, world.FAMILY)
    stuttgart = await partner_id(stack, "DE-STR-01")
    async with stack.db.transaction() as session:
        # REQ: PRV-3 — a person in a country without a contact address (here the UAE).
        family = await session.get(Account, family_id)
        assert family is not None
        family.country = "AE"
        await partners.choose_partner(session, family_id, stuttgart)
    family_api = await stack.as_user(world.FAMILY)
    body = (await family_api.get("/api/v1/me/privacy")).json()
    assert body["revocation"]["via_dealer"] and body["revocation"]["contact_email"] is None
    assert body["revocation"]["partner"]["phone"] == "+49 711 555 0100"
    family_page = await Browser(stack).sign_in(world.FAMILY)
    page = (await family_page.http.get("/privacy")).text
    assert 'id="via-dealer"' in page and "+49 711 555 0100" in page and "Autohaus Example Stuttgart" in page

    # Only operators edit the addresses.
    owner = await Browser(stack).sign_in(world.OWNER)
    assert (
        await owner.post("/operator/privacy-contacts/AE", {"contact": "x@example.com"})
    ).status_code == 403
    assert (await owner.http.get("/operator/privacy-contacts")).status_code == 403
    assert (await owner.http.get("/operator")).status_code == 403
    dealer = await Browser(stack).sign_in(world.DEALER)
    assert (
        await dealer.post("/operator/privacy-contacts/AE", {"contact": "x@example.com"})
    ).status_code == 403

    operator = await Browser(stack).sign_in(world.OPERATOR)
    overview = (await operator.http.get("/operator")).text
    without = re.search(r'id="no-contact-count">(\d+)<', overview)
    assert without is not None and int(without.group(1)) >= 1
    refused = await operator.post("/operator/privacy-contacts/AE", {"contact": "not an address"})
    assert refused.status_code == 400 and "not a valid email address" in refused.text
    saved = await operator.post("/operator/privacy-contacts/AE", {"contact": " Privacy.AE@Example.com "})
    assert saved.status_code == 303
    page = (await family_page.http.get("/privacy")).text
    assert "privacy.ae@example.com" in page and 'id="via-dealer"' not in page
    assert (await operator.post("/operator/privacy-contacts/DE", {"contact": ""})).status_code == 303
    assert (await operator.post("/operator/privacy-contacts/ZZ", {"contact": ""})).status_code == 404
    overview = (await operator.http.get("/operator")).text
    after = re.search(r'id="no-contact-count">(\d+)<', overview)
    assert after is not None and int(after.group(1)) == int(without.group(1))  # AE gained one, DE lost one
    async with stack.db.session() as session:
        germany = await session.get(Country, "DE")
        trail = list(
            await session.scalars(
                select(PrivacyAuditEntry)
                .where(PrivacyAuditEntry.action == "country.privacy_contact")
                .order_by(PrivacyAuditEntry.id)
            )
        )
    assert germany is not None and germany.privacy_contact is None
    assert [(e.detail["country"], e.detail["after"], e.actor_role) for e in trail] == [
        ("AE", "privacy.ae@example.com", "operator"),
        ("DE", None, "operator"),
    ]
    for client in (family_api, family_page.http, owner.http, dealer.http, operator.http):
        await client.aclose()


def test_operator_sets_and_clears_a_contact_from_the_command_line(tmp_path: Path) -> None:
    # REQ: PRV-2, PRV-3 — `carlink countries set-contact`, validated like the console's form.
    def carlink(*args: str) -> subprocess.CompletedProcess[str]:
        env = os.environ | {"CARLINK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'carlink.db'}"}
        return subprocess.run(
            [sys.executable, "-m", "carlink.cli", "countries", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert carlink("set-contact", "ae", "Privacy.AE@example.com").returncode == 0
    assert carlink("set-contact", "DE").returncode == 0
    refused = carlink("set-contact", "FR", "not-an-address")
    assert refused.returncode == 1 and "not a valid email address" in refused.stdout
    listed = carlink("list", "--json")
    contacts = {
        row["code"]: row["privacy_contact"] for row in json.loads(listed.stdout.strip().splitlines()[-1])
    }
    assert contacts["AE"] == "privacy.ae@example.com" and contacts["DE"] is None and contacts["FR"]


async def test_every_privacy_form_refuses_a_post_without_the_sessions_token(stack: Stack) -> None:
    forms = {
        "/privacy/accept": {"version": "1"},
        "/privacy/consent": {"decision": "revoke"},
        "/privacy/erasure": {"password": world.PASSWORD},
        "/operator/privacy-contacts/revocations": {"email": world.OWNER},
        "/operator/privacy-contacts/{code}": {"contact": "x@example.com"},
        "/operator/policy": {"title": "t", "summary": "s", "rows": "a | b | c | d", "based_on": "1"},
        "/operator/erasure-requests/open": {"email": world.OWNER},
        "/operator/erasure-requests/{request_id}/complete": {},
        "/operator/erasure-requests/{request_id}/reject": {"reason": "no"},
        "/dealer/erasure-requests/{request_id}/complete": {},
        "/dealer/erasure-requests/{request_id}/reject": {"reason": "no"},
        "/notifications/read-all": {},
        "/notifications/{notification_id}/read": {},
    }
    posted = {
        route.path
        for route in (
            *privacy_pages.router.routes,
            *privacy_console.router.routes,
            *notify_pages.router.routes,
        )
        if isinstance(route, APIRoute) and "POST" in (route.methods or ())
    }
    assert posted == set(forms), "every privacy form is in this test"
    operator = await Browser(stack).sign_in(world.OPERATOR)
    for template, data in forms.items():
        path = template.format(code="DE", request_id=1, notification_id=1)
        for token in ("", "not-the-token"):
            response = await operator.http.post(path, data={**data, "csrf_token": token})
            assert response.status_code == 403, (path, response.status_code)
            assert "the form is out of date" in response.text
    # The JSON API with the portal's cookie needs the CSRF header too.
    assert (
        await operator.http.post("/api/v1/me/privacy/consent", json={"granted": False})
    ).status_code == 403
    async with stack.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ConsentEvent)) == 0
        assert await session.scalar(select(func.count()).select_from(PolicyVersion)) == 1
        assert await session.scalar(select(func.count()).select_from(ErasureRequest)) == 0
        germany = await session.get(Country, "DE")
    assert germany is not None and germany.privacy_contact != "x@example.com"
    await operator.http.aclose()


async def test_a_policy_form_sent_twice_at_once_publishes_one_version(stack: Stack) -> None:
    # REQ: PRV-1 — two identical posts of the same form: one publishes version 2, the other is refused.
    operator = await Browser(stack).sign_in(world.OPERATOR)
    form = {"title": "t", "summary": "s", "rows": "a | b | c | d", "based_on": "1"}
    both = await asyncio.gather(*(operator.post("/operator/policy", form) for _ in range(2)))
    assert sorted(r.status_code for r in both) == [303, 409]
    # A form filled in against a version that is no longer the latest is refused too.
    stale = await operator.post("/operator/policy", {**form, "based_on": "7"})
    assert stale.status_code == 409
    async with stack.db.session() as session:
        assert [v.version for v in await session.scalars(select(PolicyVersion))] == [1, 2]
        told = await session.scalar(
            select(func.count()).select_from(Notification).where(Notification.kind == "privacy_policy")
        )
        ids = await session.scalar(
            select(func.count()).select_from(Account).where(Account.deleted_at.is_(None))
        )
    assert told == ids
    # The JSON API: accepting the same version twice at once keeps one acceptance.
    owner = await stack.as_user(world.OWNER)
    accepted = await asyncio.gather(
        *(owner.post("/api/v1/me/privacy/accept", json={"version": 2}) for _ in range(2))
    )
    assert [r.status_code for r in accepted] == [200, 200]
    assert accepted[0].json() == accepted[1].json()
    owner_id = await account_id(stack, world.OWNER)
    async with stack.db.session() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(PolicyAcceptance)
            .where(PolicyAcceptance.account_id == owner_id, PolicyAcceptance.version == 2)
        )
    assert rows == 1
    for client in (operator.http, owner):
        await client.aclose()
